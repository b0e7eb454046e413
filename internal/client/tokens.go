package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/custody-dev/custody/internal/server"
)

// Tokens lists the server's tokens (admin token): names, roles, times;
// never a secret.
func (c *Client) Tokens(ctx context.Context) (*server.TokenList, error) {
	b, err := c.do(ctx, "GET", "/api/v1/tokens", "", nil)
	if err != nil {
		return nil, err
	}
	var l server.TokenList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("server answered a malformed token list: %w", err)
	}
	return &l, nil
}

// RevokeToken revokes the server's token named nameOrID (admin token).
func (c *Client) RevokeToken(ctx context.Context, nameOrID string) (*server.TokenStatus, error) {
	req, err := json.Marshal(server.RevokeRequest{Name: nameOrID})
	if err != nil {
		return nil, err
	}
	b, err := c.do(ctx, "POST", "/api/v1/tokens/revoke", "application/json", req)
	if err != nil {
		return nil, err
	}
	var st server.TokenStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("server answered a malformed token: %w", err)
	}
	return &st, nil
}
