package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/trust"
)

func newTrustSigningConfigCmd(s *streams) *cobra.Command {
	var server, trustedRoot, out string
	var withoutLog bool
	c := &cobra.Command{
		Use:   "signing-config (--server URL | --trusted-root trusted_root.json) [--out signing_config.json]",
		Short: "Write a Sigstore signing config naming a custody server's log (Rekor v2) and TSA, for cosign",
		Long: "Writes a Sigstore SigningConfig (v0.2) that sends stock Sigstore clients to the services of the\n" +
			"server's trusted root: its transparency log as a Rekor v2 log and its timestamp authority, each\n" +
			"valid from when the trusted root says. cosign sign-blob --signing-config F --trusted-root\n" +
			"trusted_root.json --key k.key then logs and timestamps with custody; the server must run with\n" +
			"--open-writes log,tsa, since cosign sends no token. cosign v3 logs images, signatures of images\n" +
			"and attestations as DSSE entries, which custody's log refuses (as Rekor v2 does): for those, write\n" +
			"a config --without-log, so cosign timestamps with custody's TSA and logs nothing. See docs/cosign.md.",
		Example: "  custody trust export --server http://127.0.0.1:8080 --out trusted_root.json\n" +
			"  custody trust signing-config --server http://127.0.0.1:8080 --out signing_config.json\n" +
			"  cosign sign-blob --signing-config signing_config.json --trusted-root trusted_root.json --key k.key --bundle b.json blob",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			var b []byte
			var err error
			switch {
			case trustedRoot != "" && server != "":
				return usageErr(errors.New("give either --server or --trusted-root, not both"), "")
			case trustedRoot != "":
				if b, err = readLimited(trustedRoot, trust.MaxDocumentBytes); err != nil {
					return usageErr(err, "")
				}
			default:
				if b, err = fetchTrustedRoot(c.Context(), server); err != nil {
					return err
				}
			}
			r, err := trust.LoadTrustedRoot(b)
			if err != nil {
				return failErr(fmt.Errorf("unusable trusted root: %w", err), "")
			}
			if withoutLog {
				r.Tlogs = nil
			}
			sc, err := r.MarshalSigningConfigJSON()
			if err != nil {
				return failErr(err, "")
			}
			return emit(s, out, append(sc, '\n'), "signing config")
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&trustedRoot, "trusted-root", "", "read the services from this trusted_root.json instead of a server")
	c.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	c.Flags().BoolVar(&withoutLog, "without-log", false, "name the TSA only, no log (for cosign sign and attest of images)")
	return c
}

// fetchTrustedRoot fetches the trusted_root.json of the server (--server,
// default $CUSTODY_SERVER).
func fetchTrustedRoot(ctx context.Context, server string) ([]byte, error) {
	cl, err := newClient(serverURL(server))
	if err != nil {
		return nil, err
	}
	b, err := cl.TrustedRoot(ctx)
	if err != nil {
		return nil, remoteErr(err, "couldn't fetch the trusted root")
	}
	return b, nil
}

// emit writes b, named what, to the file out, or to standard output when
// out is empty.
func emit(s *streams, out string, b []byte, what string) error {
	if out == "" {
		_, err := s.out.Write(b)
		return err
	}
	if err := writeOut(out, b); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "%s written to %s\n", what, out)
	return nil
}
