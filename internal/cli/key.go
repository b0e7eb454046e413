package cli

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

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
	var out, alg, p11 string
	var force bool
	c := &cobra.Command{
		Use:   "generate --out NAME [--pkcs11 URI]",
		Short: "Generate a key pair: NAME.key (encrypted, 0600) and NAME.pub, or a key in a PKCS#11 token and NAME.pub",
		Long: "Generates an ECDSA P-256 (default) or Ed25519 key pair. The private key is written in the\n" +
			"Sigstore encrypted key format (scrypt + secretbox; cosign reads it) with the password from\n" +
			"$CUSTODY_PASSWORD or a prompt. Existing files are never overwritten without --force.\n\n" +
			"With --pkcs11 URI (RFC 7512, e.g. pkcs11:token=custody;object=release) the key pair is created\n" +
			"inside the token (ECDSA P-256 only; the private key never leaves it) and only NAME.pub is\n" +
			"written. The PIN comes from the URI (pin-value, pin-source) or $CUSTODY_PKCS11_PIN. A key\n" +
			"with the same label or id in the token is never replaced: --force is refused with --pkcs11.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr(errors.New("--out is required"), "custody key generate --out release")
			}
			a, err := signer.ParseAlgorithm(alg)
			if err != nil {
				return usageErr(err, "use --algorithm ecdsa-p256 or --algorithm ed25519")
			}
			if p11 != "" {
				return generateInToken(s, p11, out, a, force)
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
				if errors.Is(err, signer.ErrEmptyPassword) {
					return usageErr(err, "set CUSTODY_PASSWORD to a non-empty password (or answer the prompt with one), or keep the key in a token with --pkcs11")
				}
				return usageErr(err, "")
			}
			fmt.Fprintf(s.out, "Private key written to %s (encrypted, mode 0600)\nPublic key written to %s\n", keyPath, pubPath)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "name of the key pair: writes NAME.key and NAME.pub")
	c.Flags().StringVar(&alg, "algorithm", string(signer.ECDSAP256), "key algorithm: ecdsa-p256 or ed25519")
	c.Flags().BoolVar(&force, "force", false, "overwrite existing key files (not with --pkcs11)")
	c.Flags().StringVar(&p11, "pkcs11", "", "create the key inside the PKCS#11 token this RFC 7512 URI names (writes only NAME.pub)")
	return c
}

// generateInToken creates a key in a PKCS#11 token and writes NAME.pub.
func generateInToken(s *streams, uri, out string, alg signer.Algorithm, force bool) error {
	shown := signer.RedactKeyRef(uri)
	if force {
		return usageErr(errors.New("--force is not allowed with --pkcs11: custody never replaces a key in a token"),
			"choose another object= label, or delete the old key with the token's own tools")
	}
	if !signer.IsPKCS11URI(uri) {
		return usageErr(fmt.Errorf("--pkcs11 %q is not a pkcs11: URI", shown), "e.g. --pkcs11 'pkcs11:token=custody;object=release'")
	}
	pubPath, keyURI, err := signer.WritePKCS11KeyPair(uri, out, alg)
	if err != nil {
		switch {
		case errors.Is(err, signer.ErrWrongPIN):
			return usageErr(err, "check CUSTODY_PKCS11_PIN, or the URI's pin-value / pin-source")
		case errors.Is(err, signer.ErrUnsupportedKey):
			return usageErr(err, "use --algorithm ecdsa-p256")
		}
		return usageErr(err, "")
	}
	u, err := signer.ParsePKCS11URI(keyURI)
	if err != nil {
		return usageErr(err, "")
	}
	fmt.Fprintf(s.out, "Key created in token %q as %s (the private key stays in the token)\nPublic key written to %s\n",
		u.Token, keyURI, pubPath)
	return nil
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
			sg, release, err := loadSigner(s, keyRef)
			if err != nil {
				return err
			}
			defer release()
			pemBytes, err := signer.MarshalPublicKey(sg.Public())
			if err != nil {
				return usageErr(err, "")
			}
			_, err = s.out.Write(pemBytes)
			return err
		},
	}
	c.Flags().StringVar(&keyRef, "key", "", "signing key: path to an encrypted key file, or a pkcs11: URI")
	c.Flags().StringVar(&server, "server", "", "custody server whose builder key to print")
	c.Flags().StringVar(&name, "name", "builder", "name of the server's builder key")
	return c
}

// loadSigner opens a signing key (a key file or a pkcs11: URI; a KMS
// reference is refused in one line), asking for a file's password only
// when needed. Messages show a PKCS#11 URI without its PIN.
//
// The returned release is never nil, also on error: call it (defer it) when
// the command is done signing. For a pkcs11: key it ends the command's hold
// on the token (its sessions, the login, and the module once no key uses it);
// for other keys it does nothing. A failure to release is printed as a
// warning: by then the command's work is done.
func loadSigner(s *streams, ref string) (sg crypto.Signer, release func(), err error) {
	shown := signer.RedactKeyRef(ref)
	nop := func() {}
	sg, err = signer.Load(ref, func() ([]byte, error) {
		return prompt.Password(passwordEnv, false, s.in, s.err)
	})
	if err != nil {
		switch {
		case errors.Is(err, signer.ErrWrongPassword):
			return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "check CUSTODY_PASSWORD")
		case errors.Is(err, signer.ErrWrongPIN):
			return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "check CUSTODY_PKCS11_PIN, or the URI's pin-value / pin-source")
		case errors.Is(err, signer.ErrKeyNotFound):
			return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "create it with 'custody key generate --pkcs11 URI --out NAME'")
		case errors.Is(err, signer.ErrKMSUnsupported):
			return nil, nop, usageErr(err, "")
		case signer.IsPKCS11URI(ref):
			return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "")
		case errors.Is(err, os.ErrNotExist):
			// The file error alone: the signer's own "couldn't open key"
			// would say it twice.
			if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "create one with 'custody key generate --out NAME'")
		}
		return nil, nop, usageErr(fmt.Errorf("couldn't open key %s: %w", shown, err), "")
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if err := signer.Close(sg); err != nil {
				fmt.Fprintf(s.err, "custody: warning: %s\n", oneLine(err.Error()))
			}
		})
	}
	return sg, release, nil
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
