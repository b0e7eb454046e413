package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/trust"
)

// TrustRootDocument returns the newest custody trust root the server accepted
// (version 0) or the given version, parsed. The caller decides whether to
// trust it (trust.Update from a version it already trusts): the server's
// word alone is not enough.
func (c *Client) TrustRootDocument(ctx context.Context, version int) (*trust.Document, error) {
	path := "/api/v1/trust-root"
	if version > 0 {
		path += fmt.Sprintf("/%d", version)
	}
	b, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	d, err := trust.ParseDocument(b)
	if err != nil {
		return nil, fmt.Errorf("server sent a malformed trust root: %w", err)
	}
	if version > 0 && d.Version != version {
		return nil, fmt.Errorf("server sent trust root version %d when asked for version %d", d.Version, version)
	}
	return d, nil
}

// PushTrustRoot sends the next version of the custody trust root (admin
// token); actor says who asks (recorded in the audit entry). The server
// accepts it only if it chains from its newest version. existed is true
// when the server already had this version.
func (c *Client) PushTrustRoot(ctx context.Context, d *trust.Document, actor string) (version int, existed bool, err error) {
	body, err := d.Marshal()
	if err != nil {
		return 0, false, err
	}
	b, err := c.do(ctx, http.MethodPost, "/api/v1/trust-root?"+url.Values{"actor": {actor}}.Encode(), "application/json", body)
	if err != nil {
		return 0, false, err
	}
	resp, err := api.DecodeTrustPushAnswer(b, d.Version)
	if err != nil {
		return 0, false, err
	}
	return resp.Version, resp.Existed, nil
}
