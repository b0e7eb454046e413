package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/policy"
)

// PushPolicy sends a signed policy (admin token); actor says who asks
// (recorded in the audit entry). The server makes it the environment's
// current policy only when enough admins of its trust root signed it and
// its version is above the current one.
func (c *Client) PushPolicy(ctx context.Context, sp *policy.Signed, actor string) (*api.PolicyPushAnswer, error) {
	body, err := sp.Marshal()
	if err != nil {
		return nil, err
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/policies?"+url.Values{"actor": {actor}}.Encode(), "application/json", body)
	if err != nil {
		return nil, err
	}
	return api.DecodePolicyPushAnswer(b, sp.Digest())
}

// Policy returns env's current signed policy as the server holds it,
// parsed but not verified: check it with policy.Signed.Verify against a
// trust root the caller trusts.
func (c *Client) Policy(ctx context.Context, env string) (*policy.Signed, error) {
	b, err := c.do(ctx, http.MethodGet, "/api/v1/policies/"+url.PathEscape(env), "", nil)
	if err != nil {
		return nil, err
	}
	sp, err := policy.ParseSigned(b)
	if err != nil {
		return nil, fmt.Errorf("server sent a malformed signed policy: %w", err)
	}
	if sp.Policy().Environment != env {
		return nil, fmt.Errorf("server sent the policy of %s when asked for %s", sp.Policy().Environment, env)
	}
	return sp, nil
}
