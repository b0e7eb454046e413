package client

import (
	"context"
	"encoding/json"

	"github.com/custody-dev/custody/internal/api"
)

// Tokens lists the server's tokens (admin token): names, roles, times;
// never a secret.
func (c *Client) Tokens(ctx context.Context) (*api.TokenList, error) {
	b, err := c.do(ctx, "GET", "/api/v1/tokens", "", nil)
	if err != nil {
		return nil, err
	}
	return api.DecodeTokenList(b)
}

// RevokeToken revokes the server's token named nameOrID (admin token).
func (c *Client) RevokeToken(ctx context.Context, nameOrID string) (*api.TokenStatus, error) {
	req, err := json.Marshal(api.RevokeRequest{Name: nameOrID})
	if err != nil {
		return nil, err
	}
	b, err := c.do(ctx, "POST", "/api/v1/tokens/revoke", "application/json", req)
	if err != nil {
		return nil, err
	}
	return api.DecodeTokenStatus(b)
}
