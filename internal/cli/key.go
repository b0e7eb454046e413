package cli

import (
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/prompt"
	"github.com/custody-dev/custody/signer"
)

const passwordEnv = "CUSTODY_PASSWORD"

func newKeyCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Generate and inspect signing keys",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			return usageErr(errors.New("key needs a subcommand"), "run 'custody key --help'")
		},
	}
	c.AddCommand(newKeyGenerateCmd(s), newKeyPublicCmd(s))
	return c
}

func newKeyGenerateCmd(s *streams) *cobra.Command {
	var out, alg string
	var force bool
	c := &cobra.Command{
		Use:   "generate --out NAME",
		Short: "Generate a key pair: NAME.key (encrypted, 0600) and NAME.pub",
		Long: "Generates an ECDSA P-256 (default) or Ed25519 key pair. The private key is written in the\n" +
			"Sigstore encrypted key format (scrypt + secretbox; cosign reads it) with the password from\n" +
			"$CUSTODY_PASSWORD or a prompt. Existing files are never overwritten without --force.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr(errors.New("--out is required"), "custody key generate --out release")
			}
			a, err := signer.ParseAlgorithm(alg)
			if err != nil {
				return usageErr(err, "use --algorithm ecdsa-p256 or --algorithm ed25519")
			}
			pw, err := prompt.Password(passwordEnv, true, s.in, s.err)
			if err != nil {
				return usageErr(err, "set CUSTODY_PASSWORD or run on a terminal")
			}
			keyPath, pubPath, err := signer.WriteKeyPair(out, a, pw, force)
			if err != nil {
				if errors.Is(err, os.ErrExist) {
					return usageErr(err, "pass --force to replace the existing key")
				}
				return usageErr(err, "")
			}
			fmt.Fprintf(s.out, "Private key written to %s (encrypted, mode 0600)\nPublic key written to %s\n", keyPath, pubPath)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "name of the key pair: writes NAME.key and NAME.pub")
	c.Flags().StringVar(&alg, "algorithm", string(signer.ECDSAP256), "key algorithm: ecdsa-p256 or ed25519")
	c.Flags().BoolVar(&force, "force", false, "overwrite existing key files")
	return c
}

func newKeyPublicCmd(s *streams) *cobra.Command {
	var keyRef, server, name string
	c := &cobra.Command{
		Use:   "public (--key REF | --server URL [--name builder])",
		Short: "Print the public key (PEM) of a signing key, or of a custody server's builder key",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if server != "" {
				if keyRef != "" {
					return usageErr(errors.New("give either --key or --server, not both"), "")
				}
				cl, err := newClient(server)
				if err != nil {
					return err
				}
				pemBytes, err := cl.PublicKey(c.Context(), name)
				if err != nil {
					return remoteErr(err, "couldn't fetch the builder key")
				}
				if _, err := signer.ParsePublicKey(pemBytes); err != nil {
					return failErr(fmt.Errorf("the server sent an unusable public key: %w", err), "")
				}
				_, err = s.out.Write(pemBytes)
				return err
			}
			if keyRef == "" {
				return usageErr(errors.New("--key or --server is required"), "")
			}
			sg, err := loadSigner(s, keyRef)
			if err != nil {
				return err
			}
			pemBytes, err := signer.MarshalPublicKey(sg.Public())
			if err != nil {
				return usageErr(err, "")
			}
			_, err = s.out.Write(pemBytes)
			return err
		},
	}
	c.Flags().StringVar(&keyRef, "key", "", "signing key: path to an encrypted key file")
	c.Flags().StringVar(&server, "server", "", "custody server whose builder key to print")
	c.Flags().StringVar(&name, "name", "builder", "name of the server's builder key")
	return c
}

// loadSigner opens a signing key, asking for its password only when needed.
func loadSigner(s *streams, ref string) (crypto.Signer, error) {
	sg, err := signer.Load(ref, func() ([]byte, error) {
		return prompt.Password(passwordEnv, false, s.in, s.err)
	})
	if err != nil {
		switch {
		case errors.Is(err, signer.ErrWrongPassword):
			return nil, usageErr(fmt.Errorf("couldn't open key %s: %w", ref, err), "check CUSTODY_PASSWORD")
		case errors.Is(err, os.ErrNotExist):
			return nil, usageErr(fmt.Errorf("couldn't open key: %w", err), "create one with 'custody key generate --out NAME'")
		}
		return nil, usageErr(fmt.Errorf("couldn't open key %s: %w", ref, err), "")
	}
	return sg, nil
}

// loadPublicKey reads a PEM public key file.
func loadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't read public key: %w", err), "")
	}
	pub, err := signer.ParsePublicKey(b)
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't parse public key %s: %w", path, err), "")
	}
	return pub, nil
}
