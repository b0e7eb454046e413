package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/sign"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/idtoken"
	"github.com/custody-dev/custody/signer"
)

// keylessApprovalSigner signs approvals keylessly: a fresh key for this
// approval only, certified by the server's CA for the identity in the
// ID token, the signature logged and timestamped by the server. The server
// is asked with the session of custody login or CUSTODY_TOKEN, else with
// the ID token itself (the CA lets its issuers' tokens log and push).
func keylessApprovalSigner(ctx context.Context, f *approveFlags) (signFunc, *client.Client, string, func(), error) {
	tok, _, err := idtoken.Find(ctx, idtoken.Options{Flag: f.identityToken})
	if err != nil {
		return nil, nil, "", nil, usageErr(err, "")
	}
	approver := f.approver
	if approver == "" {
		// Display only: the policy counts the certificate's identity.
		if approver = unverifiedSubject(tok); approver == "" {
			return nil, nil, "", nil, usageErr(errors.New("--identity-token names no email or subject"), "")
		}
	}
	server := serverURL(f.server)
	bearer := sessionToken(server)
	if bearer == "" {
		bearer = tok
	}
	cl, err := newClientToken(server, bearer)
	if err != nil {
		return nil, nil, "", nil, err
	}
	ca := sign.NewFulcio(&sign.FulcioOptions{BaseURL: strings.TrimRight(server, "/"), Timeout: 30 * time.Second})
	sign := func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := signer.SignStatementKeyless(ctx, payload, ca, tok,
			signer.WithTransparencyLog(cl.Transparency()), signer.WithTimestampAuthority(cl.TimestampAuthority()))
		if err != nil {
			return nil, remoteErr(fmt.Errorf("couldn't certify, sign, log and timestamp: %w", err),
				"keyless approval through the server's CA (serve --oidc-issuers must trust the token's issuer)")
		}
		return b, nil
	}
	return sign, cl, approver, func() {}, nil
}

// unverifiedSubject is the verified email an ID token claims, else its
// subject, read without verifying it (the CA verifies; this only names
// the approver in the approval's text).
func unverifiedSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Email    string `json:"email"`
		Verified bool   `json:"email_verified"`
		Subject  string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	if c.Email != "" && c.Verified {
		return c.Email
	}
	return c.Subject
}
