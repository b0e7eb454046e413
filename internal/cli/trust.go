package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	srv "github.com/custody-dev/custody/internal/server"
)

func newTrustCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "trust",
		Short: "Trust roots: export a Sigstore trusted_root.json",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			return usageErr(errors.New("trust needs a subcommand"), "run 'custody trust --help'")
		},
	}
	var server, out, dataDir, publicURL string
	export := &cobra.Command{
		Use:   "export (--server URL | --data DIR [--public-url URL]) [--out trusted_root.json]",
		Short: "Write the Sigstore trusted_root.json (log and TSA) of a custody server",
		Long: "Writes a Sigstore trusted_root.json holding the server's transparency log and timestamp\n" +
			"authority, for custody verify --trusted-root, cosign and sigstore-go. Signing keys are not\n" +
			"part of the format: get the builder key with 'custody key public --server URL'.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			var b []byte
			if dataDir != "" {
				if server != "" {
					return usageErr(errors.New("give either --data or --server, not both"), "")
				}
				var err error
				b, err = srv.ExportTrustedRoot(dataDir, publicURL, []byte(os.Getenv("CUSTODY_SERVER_PASSWORD")))
				if err != nil {
					return usageErr(err, "")
				}
			} else {
				cl, err := newClient(serverURL(server))
				if err != nil {
					return err
				}
				if b, err = cl.TrustedRoot(c.Context()); err != nil {
					return remoteErr(err, "couldn't fetch the trusted root")
				}
			}
			if _, err := root.NewTrustedRootFromJSON(b); err != nil {
				return failErr(fmt.Errorf("the server sent an unusable trusted root: %w", err), "")
			}
			if out == "" {
				_, err := s.out.Write(b)
				return err
			}
			if err := writeFileAtomic(out, b, 0o644); err != nil {
				return usageErr(fmt.Errorf("couldn't write %s: %w", out, err), "")
			}
			fmt.Fprintf(s.out, "trusted root written to %s\n", out)
			return nil
		},
	}
	export.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	export.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	export.Flags().StringVar(&dataDir, "data", "", "data directory of custody serve (read without starting it)")
	export.Flags().StringVar(&publicURL, "public-url", "", "the server's public URL, with --data (default "+srv.DefaultPublicURL+")")
	c.AddCommand(export)
	return c
}
