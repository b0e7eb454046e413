package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/idtoken"
	"github.com/custody-dev/custody/signer"
)

// identityFlags say where a command finds the OIDC identity token it signs
// keylessly with.
type identityFlags struct {
	token, audience string
}

func addIdentityFlags(c *cobra.Command, f *identityFlags) {
	fl := c.Flags()
	fl.StringVar(&f.token, "identity-token", "", "sign keylessly with this OIDC identity token (or @FILE), certified by the server's CA "+
		"(default: $SIGSTORE_ID_TOKEN, or GitHub Actions' token service, when $CUSTODY_TOKEN is not set)")
	fl.StringVar(&f.audience, "identity-audience", "sigstore", "audience to ask GitHub Actions' token service for")
}

// wanted reports whether to sign keylessly: a token was given, or none of
// custody's own is set and the CI offers one.
func (f *identityFlags) wanted() bool {
	return f.token != "" || (os.Getenv(tokenEnv) == "" && idtoken.Available(nil))
}

// keylessSigner signs with an ephemeral key certified by the server's CA
// for the identity token, logs and timestamps through the server with the
// same token and pushes the bundle there: no builder token, no key file.
func keylessSigner(ctx context.Context, s *streams, server string, f *identityFlags) (signFunc, error) {
	tok, source, err := idtoken.Find(ctx, idtoken.Options{Flag: f.token, Audience: f.audience})
	if errors.Is(err, idtoken.ErrNone) {
		return nil, usageErr(err, "pass --identity-token TOKEN|@FILE or set SIGSTORE_ID_TOKEN")
	}
	if err != nil {
		return nil, usageErr(err, "")
	}
	dir, err := checkpointDir()
	if err != nil {
		return nil, usageErr(err, "")
	}
	cl, err := client.New(server, tok, client.WithCheckpointDir(dir))
	if err != nil {
		return nil, usageErr(fmt.Errorf("bad server URL %q: %w", server, err), "")
	}
	fmt.Fprintf(s.err, "signing keylessly with the identity token from %s\n", source)
	ca := sign.NewFulcio(&sign.FulcioOptions{BaseURL: server, Timeout: 30 * time.Second})
	return func(ctx context.Context, payload []byte) ([]byte, error) {
		b, err := signer.SignStatementKeyless(ctx, payload, ca, tok,
			signer.WithTransparencyLog(cl.Transparency()), signer.WithTimestampAuthority(cl.TimestampAuthority()))
		if err != nil {
			return nil, remoteErr(fmt.Errorf("couldn't sign keylessly: %w", err), "certificate, log and timestamp from the server")
		}
		if _, _, err := cl.Push(ctx, b); err != nil {
			return nil, remoteErr(fmt.Errorf("couldn't push the bundle: %w", err), "push to the server")
		}
		return b, nil
	}, nil
}
