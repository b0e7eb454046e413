package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/custody-dev/custody/internal/api"
)

// Pack asks the server to make the evidence pack of req.Artifact for
// req.Environment from its own state, signed with its audit key (POST
// /api/v1/packs), and returns the pack file. The caller (a device, or
// pack.Open) verifies it: the client checks nothing in it.
func (c *Client) Pack(ctx context.Context, req api.PackRequest) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, "/api/v1/packs", "application/json", b)
}
