package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/tsa"
)

// Transparency returns the server's transparency log as sigstore-go's
// signing code writes to it (sign.BundleOptions.TransparencyLogs): Rekor v2
// CreateEntryRequests posted to /api/v2/log/entries with this client's
// token (builder, admin, approver or deployer). The server answers once the
// entry is covered by a published checkpoint, so the bundle carries an
// inclusion proof.
func (c *Client) Transparency() sign.Transparency {
	return sign.NewRekor(&sign.RekorOptions{BaseURL: c.base, Version: 2, ClientV2: logWriter{c}, Retries: 0})
}

// TimestampAuthority returns the server's RFC 3161 timestamp authority as
// sigstore-go's signing code asks it (sign.BundleOptions.TimestampAuthorities),
// with this client's token.
func (c *Client) TimestampAuthority() *sign.TimestampAuthority {
	return sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: c.base + tsa.Path, Transport: bearer{c}})
}

// logWriter is sign.RekorV2Client over the client's authenticated requests.
type logWriter struct{ c *Client }

// Add implements sign.RekorV2Client.
func (w logWriter) Add(ctx context.Context, entry any) (*protorekor.TransparencyLogEntry, error) {
	req := &rekorpb.CreateEntryRequest{}
	switch e := entry.(type) {
	case *rekorpb.HashedRekordRequestV002:
		req.Spec = &rekorpb.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: e}
	case *rekorpb.DSSERequestV002:
		req.Spec = &rekorpb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: e}
	default:
		return nil, fmt.Errorf("log entry of type %T is not a Rekor v2 request", entry)
	}
	body, err := protojson.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode log entry: %w", err)
	}
	b, err := w.c.do(ctx, http.MethodPost, "/api/v2/log/entries", "application/json", body)
	if err != nil {
		return nil, err
	}
	var tle protorekor.TransparencyLogEntry
	if err := protojson.Unmarshal(b, &tle); err != nil {
		return nil, errors.New("server answered a malformed log entry")
	}
	return &tle, nil
}

// bearer adds the client's token to requests (the timestamp authority's).
type bearer struct{ c *Client }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.c.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.c.token)
	}
	t := b.c.hc.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	return t.RoundTrip(r)
}
