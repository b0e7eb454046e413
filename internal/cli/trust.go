package cli

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/fsutil"
	srv "github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/trust"
)

func newTrustCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "trust",
		Short: "Trust roots: manage custody's signed trust root, export a Sigstore trusted_root.json",
		Long: "custody's trust root (see trust/ROOT.md) lists admin keys and their threshold, signing keys with\n" +
			"role, identity, validity window and compromise time, and the logs and TSAs to trust. Every edit\n" +
			"of a signed version starts the next version and drops the signatures; it must be signed again by\n" +
			"the admins of the previous version (and of the new one).",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			return usageErr(errors.New("trust needs a subcommand"), "run 'custody trust --help'")
		},
	}
	c.AddCommand(newTrustExportCmd(s), newTrustInitCmd(s), newTrustAddKeyCmd(s), newTrustRotateCmd(s),
		newTrustRevokeCmd(s), newTrustSetCmd(s), newTrustSignCmd(s), newTrustShowCmd(s), newTrustVerifyCmd(s),
		newTrustPushCmd(s), newTrustPullCmd(s), newTrustSigningConfigCmd(s))
	return c
}

func newTrustExportCmd(s *streams) *cobra.Command {
	var server, out, dataDir, publicURL, rootPath, keysOut string
	export := &cobra.Command{
		Use:   "export (--server URL | --data DIR [--public-url URL] | --root root.json [--keys-out F]) [--out trusted_root.json]",
		Short: "Write the Sigstore trusted_root.json of a custody server or trust root",
		Long: "Writes a Sigstore trusted_root.json holding the server's transparency log and timestamp\n" +
			"authority, for custody verify --trusted-root, cosign and sigstore-go. Signing keys are not\n" +
			"part of the format: get the builder key with 'custody key public --server URL'.\n" +
			"With --root, exports a signed custody trust root: its logs and TSAs as trusted_root.json, and\n" +
			"custody's record of its keys (ID, role, identity, PEM, window, compromise time) to --keys-out\n" +
			"(default: next to --out, NAME.keys.json).",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if rootPath != "" {
				if server != "" || dataDir != "" {
					return usageErr(errors.New("give --root alone, without --server or --data"), "")
				}
				return exportRoot(s, rootPath, out, keysOut)
			}
			if keysOut != "" {
				return usageErr(errors.New("--keys-out needs --root"), "")
			}
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
				var err error
				if b, err = fetchTrustedRoot(c.Context(), server); err != nil {
					return err
				}
			}
			if _, err := root.NewTrustedRootFromJSON(b); err != nil {
				return failErr(fmt.Errorf("the server sent an unusable trusted root: %w", err), "")
			}
			return emit(s, out, b, "trusted root")
		},
	}
	export.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	export.Flags().StringVar(&out, "out", "", "write to this file instead of standard output")
	export.Flags().StringVar(&dataDir, "data", "", "data directory of custody serve (read without starting it)")
	export.Flags().StringVar(&publicURL, "public-url", "", "the server's public URL, with --data (default "+srv.DefaultPublicURL+")")
	export.Flags().StringVar(&rootPath, "root", "", "custody trust root to export (must be signed by its admins' threshold)")
	export.Flags().StringVar(&keysOut, "keys-out", "", "with --root: where to write custody's key record (default: NAME.keys.json beside --out)")
	return export
}

// exportRoot writes a verified custody trust root as trusted_root.json plus
// custody's key record.
func exportRoot(s *streams, rootPath, out, keysOut string) error {
	d, err := readRoot(rootPath)
	if err != nil {
		return err
	}
	if err := trust.VerifyDocument(d, time.Now()); err != nil {
		return failErr(fmt.Errorf("%s: %w", rootPath, err), "sign it with 'custody trust sign --root "+rootPath+" --key ADMIN.key'")
	}
	tr, err := d.Root.MarshalTrustedRootJSON()
	if err != nil {
		return usageErr(err, "")
	}
	keys, err := d.MarshalKeys()
	if err != nil {
		return usageErr(err, "")
	}
	if keysOut == "" && out != "" {
		keysOut = strings.TrimSuffix(out, filepath.Ext(out)) + ".keys.json"
	}
	if out == "" {
		if _, err := s.out.Write(tr); err != nil {
			return err
		}
	} else {
		if err := writeOut(out, tr); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "trusted root written to %s\n", out)
	}
	if keysOut != "" {
		if err := writeOut(keysOut, keys); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "key record (version %d, %d keys) written to %s\n", d.Version, len(d.Root.Keys), keysOut)
	}
	return nil
}

func newTrustInitCmd(s *streams) *cobra.Command {
	var admins []string
	var threshold int
	var out, expires, trustedRoot string
	var force bool
	c := &cobra.Command{
		Use:   "init --admin a.pub [--admin b.pub ...] --threshold K --out root.json [--expires 365d] [--trusted-root trusted_root.json]",
		Short: "Start a trust root: an unsigned draft of version 1",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr(errors.New("--out is required"), "")
			}
			if len(admins) == 0 {
				return usageErr(errors.New("no admins: pass --admin FILE.pub at least once"), "")
			}
			if threshold == 0 {
				return usageErr(errors.New("--threshold is required"), "the number of admins that must sign each version, e.g. --threshold 2")
			}
			if !force {
				if _, err := os.Stat(out); err == nil {
					return usageErr(fmt.Errorf("%s already exists", out), "pass --force to replace it")
				}
			}
			exp, err := parseExpires(expires)
			if err != nil {
				return err
			}
			var keys []trust.Key
			for _, a := range admins {
				pub, err := loadPublicKey(a)
				if err != nil {
					return err
				}
				keys = append(keys, trust.Key{PublicKey: pub})
			}
			d, err := trust.NewDocument(keys, threshold, exp)
			if err != nil {
				return usageErr(err, "")
			}
			if trustedRoot != "" {
				if err := setAuthorities(d, trustedRoot); err != nil {
					return err
				}
			}
			return writeRoot(s, out, d)
		},
	}
	c.Flags().StringArrayVar(&admins, "admin", nil, "public key (PEM) of an admin; repeat for each")
	c.Flags().IntVar(&threshold, "threshold", 0, "how many admins must sign each version")
	c.Flags().StringVar(&out, "out", "", "where to write the trust root")
	c.Flags().StringVar(&expires, "expires", "365d", "expiry: a duration from now (e.g. 365d) or an RFC 3339 time")
	c.Flags().StringVar(&trustedRoot, "trusted-root", "", "Sigstore trusted_root.json whose logs, TSAs and CAs to trust")
	c.Flags().BoolVar(&force, "force", false, "replace an existing --out file")
	return c
}

func newTrustAddKeyCmd(s *streams) *cobra.Command {
	var rootPath, keyPath, role, identity, from, until string
	c := &cobra.Command{
		Use:   "add-key --root root.json --key KEY.pub --role ROLE [--identity ID] [--valid-from T] [--valid-until T]",
		Short: "Add a key (admin, builder, approver, rebuilder, log, tsa, packer or witness) to the trust root",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if keyPath == "" || role == "" {
				return usageErr(errors.New("--key and --role are required"), "")
			}
			r, err := trust.ParseRole(role)
			if err != nil {
				return usageErr(err, "")
			}
			pub, err := loadPublicKey(keyPath)
			if err != nil {
				return err
			}
			k := trust.Key{PublicKey: pub, Role: r, Identity: identity}
			if k.Window.Start, err = parseTimeFlag("--valid-from", from); err != nil {
				return err
			}
			if k.Window.End, err = parseTimeFlag("--valid-until", until); err != nil {
				return err
			}
			return editRoot(s, rootPath, func(d *trust.Document) error { return d.AddKey(k) })
		},
	}
	c.Flags().StringVar(&rootPath, "root", "", "trust root to edit")
	c.Flags().StringVar(&keyPath, "key", "", "public key (PEM) to add")
	c.Flags().StringVar(&role, "role", "", "admin, builder, approver, rebuilder, log, tsa, packer or witness")
	c.Flags().StringVar(&identity, "identity", "", "who holds the key, e.g. ci@example.com")
	c.Flags().StringVar(&from, "valid-from", "", "start of the key's window (RFC 3339 or date; default: always)")
	c.Flags().StringVar(&until, "valid-until", "", "end of the key's window, exclusive (default: open)")
	return c
}

func newTrustRotateCmd(s *streams) *cobra.Command {
	var rootPath, old, newPath, at, identity string
	c := &cobra.Command{
		Use:   "rotate --root root.json --old KEYID --new NEW.pub --at T",
		Short: "End a key's window at T and start a new key's window at T, in the same role",
		Long: "Signatures that a trusted timestamp or log entry places inside the old key's window stay valid;\n" +
			"the old key signs nothing placed after T.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if old == "" || newPath == "" || at == "" {
				return usageErr(errors.New("--old, --new and --at are required"), "")
			}
			t, err := parseTimeFlag("--at", at)
			if err != nil {
				return err
			}
			pub, err := loadPublicKey(newPath)
			if err != nil {
				return err
			}
			ref, err := keyRef(old)
			if err != nil {
				return err
			}
			return editRoot(s, rootPath, func(d *trust.Document) error {
				return d.RotateKey(ref, trust.Key{PublicKey: pub, Identity: identity}, t)
			})
		},
	}
	c.Flags().StringVar(&rootPath, "root", "", "trust root to edit")
	c.Flags().StringVar(&old, "old", "", "key to rotate out: its ID (or a unique prefix, base64 or hex) or its .pub file")
	c.Flags().StringVar(&newPath, "new", "", "public key (PEM) of the new key")
	c.Flags().StringVar(&at, "at", "", "rotation time (RFC 3339 or date): the old key signs before it, the new key from it on")
	c.Flags().StringVar(&identity, "identity", "", "identity of the new key (default: the old key's)")
	return c
}

func newTrustRevokeCmd(s *streams) *cobra.Command {
	var rootPath, key, since string
	c := &cobra.Command{
		Use:   "revoke --root root.json --key KEYID --compromised-since T",
		Short: "Mark a key compromised since T",
		Long: "Signatures placed at or after T fail. Signatures before T stay valid only when a trusted timestamp\n" +
			"or log entry proves when they were made: a bundle without one is checked at the current time, after T.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if key == "" || since == "" {
				return usageErr(errors.New("--key and --compromised-since are required"), "")
			}
			t, err := parseTimeFlag("--compromised-since", since)
			if err != nil {
				return err
			}
			ref, err := keyRef(key)
			if err != nil {
				return err
			}
			return editRoot(s, rootPath, func(d *trust.Document) error { return d.RevokeKey(ref, t) })
		},
	}
	c.Flags().StringVar(&rootPath, "root", "", "trust root to edit")
	c.Flags().StringVar(&key, "key", "", "compromised key: its ID (or a unique prefix, base64 or hex) or its .pub file")
	c.Flags().StringVar(&since, "compromised-since", "", "when the key was compromised (RFC 3339 or date)")
	return c
}

func newTrustSetCmd(s *streams) *cobra.Command {
	var rootPath, expires, trustedRoot string
	var threshold, witnessThreshold int
	c := &cobra.Command{
		Use:   "set --root root.json [--threshold K] [--witness-threshold K] [--expires T] [--trusted-root trusted_root.json]",
		Short: "Change the admin or witness threshold, the expiry, or the logs and TSAs of the trust root",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			setWitnesses := c.Flags().Changed("witness-threshold")
			if threshold == 0 && !setWitnesses && expires == "" && trustedRoot == "" {
				return usageErr(errors.New("nothing to set"), "pass --threshold, --witness-threshold, --expires or --trusted-root")
			}
			var exp time.Time
			if expires != "" {
				var err error
				if exp, err = parseExpires(expires); err != nil {
					return err
				}
			}
			var auth *trust.Root
			if trustedRoot != "" {
				var err error
				if auth, err = loadAuthorities(trustedRoot); err != nil {
					return err
				}
			}
			return editRoot(s, rootPath, func(d *trust.Document) error {
				if threshold != 0 {
					if err := d.SetThreshold(threshold); err != nil {
						return err
					}
				}
				if setWitnesses {
					if err := d.SetWitnessThreshold(witnessThreshold); err != nil {
						return err
					}
				}
				if !exp.IsZero() {
					if err := d.SetExpires(exp); err != nil {
						return err
					}
				}
				if auth != nil {
					return d.SetAuthorities(auth)
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&rootPath, "root", "", "trust root to edit")
	c.Flags().IntVar(&threshold, "threshold", 0, "how many admins must sign each version")
	c.Flags().IntVar(&witnessThreshold, "witness-threshold", 0, "how many distinct witnesses (role witness) must cosign a log checkpoint; 0 restores the default")
	c.Flags().StringVar(&expires, "expires", "", "expiry: a duration from now (e.g. 365d) or an RFC 3339 time")
	c.Flags().StringVar(&trustedRoot, "trusted-root", "", "Sigstore trusted_root.json whose logs, TSAs and CAs replace the current ones")
	return c
}

func newTrustSignCmd(s *streams) *cobra.Command {
	var rootPath, keyRef string
	c := &cobra.Command{
		Use:   "sign --root root.json --key ADMIN.key",
		Short: "Add an admin's signature to the trust root",
		Long: "Signs the trust root's canonical payload (a DSSE envelope) and adds the signature, replacing an\n" +
			"earlier one by the same key. Admins of the previous version sign too when the admins change.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if keyRef == "" {
				return usageErr(errors.New("--key is required"), "")
			}
			d, err := readRoot(rootPath)
			if err != nil {
				return err
			}
			pub, release, err := signFile(c.Context(), s, keyRef, rootPath, d)
			defer release()
			if err != nil {
				return err
			}
			t, _ := d.CountSignatures(d, time.Now())
			fmt.Fprintf(s.out, "signed version %d of %s: %d of %d admin signatures of this version\n", d.Version, rootPath, len(t.Valid), d.Threshold)
			if !isAdmin(d, pub, time.Now()) {
				fmt.Fprintf(s.out, "note: this key is not a valid admin of version %d (not listed, rotated out or revoked); its signature counts only for the previous version's admins\n", d.Version)
			}
			return nil
		},
	}
	c.Flags().StringVar(&rootPath, "root", "", "trust root to sign")
	c.Flags().StringVar(&keyRef, "key", "", "admin's private key (file; password from CUSTODY_PASSWORD)")
	return c
}

func newTrustPushCmd(s *streams) *cobra.Command {
	var server, actor string
	c := &cobra.Command{
		Use:   "push ROOT --server URL [--actor NAME]",
		Short: "Send the next trust root version to the server (admin token)",
		Long: "The server accepts it only if it chains from the server's newest version (one version newer, signed by\n" +
			"the threshold of the previous version's admins and of its own, not expired), writes a \"trust.changed\"\n" +
			"audit entry, serves it at /api/v1/trust-root and checks policy changes against it. Exit 1 refused.",
		Args: argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := readRoot(args[0])
			if err != nil {
				return err
			}
			var v int
			var existed bool
			err = pushChange(server, actor, "push the trust root", "collect the previous version's admins' signatures with 'custody trust sign'",
				func(cl *client.Client, actor string) (err error) {
					v, existed, err = cl.PushTrustRoot(c.Context(), d, actor)
					return err
				})
			if err != nil {
				return err
			}
			if existed {
				fmt.Fprintf(s.out, "the server already has trust root version %d\n", v)
				return nil
			}
			fmt.Fprintf(s.out, "the server's trust root is now version %d\n", v)
			return nil
		},
	}
	addPushFlags(c, &server, &actor)
	return c
}

func newTrustPullCmd(s *streams) *cobra.Command {
	var server, rootPath string
	c := &cobra.Command{
		Use:   "pull --server URL --root root.json",
		Short: "Update a local trust root to the server's newest version, through the chain of versions",
		Long: "Fetches every version after the local one and accepts the newest only if each chains from the one\n" +
			"before (trust verify's rules: no rollback, no fork, the previous admins' threshold). The server's\n" +
			"word alone changes nothing. Exit 1 refused.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			local, err := readRoot(rootPath)
			if err != nil {
				return err
			}
			cl, err := newClient(serverURL(server))
			if err != nil {
				return err
			}
			newest, err := cl.TrustRootDocument(c.Context(), 0)
			if err != nil {
				return remoteErr(err, "fetch the trust root")
			}
			switch {
			case newest.Version < local.Version:
				return chainErr(fmt.Errorf("%w: the server's trust root version %d is older than %s's version %d", trust.ErrRollback, newest.Version, rootPath, local.Version))
			case newest.Version == local.Version:
				same, err := samePayload(local, newest)
				if err != nil {
					return err
				}
				if !same {
					return chainErr(fmt.Errorf("%w: the server's version %d differs from %s", trust.ErrFork, newest.Version, rootPath))
				}
				fmt.Fprintf(s.out, "%s is up to date (version %d)\n", rootPath, local.Version)
				return nil
			}
			var chain []*trust.Document
			for v := local.Version + 1; v < newest.Version; v++ {
				d, err := cl.TrustRootDocument(c.Context(), v)
				if err != nil {
					return remoteErr(err, fmt.Sprintf("fetch trust root version %d", v))
				}
				chain = append(chain, d)
			}
			chain = append(chain, newest)
			if _, err := trust.UpdateChain(local, chain, time.Now()); err != nil {
				return chainErr(fmt.Errorf("the server's trust root does not chain from %s: %w", rootPath, err))
			}
			if err := writeMarshaled(rootPath, newest); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "%s updated from version %d to %d\n", rootPath, local.Version, newest.Version)
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&rootPath, "root", "", "the local trust root to update")
	return c
}

// isAdmin reports whether pub is an admin of d whose window contains now.
func isAdmin(d *trust.Document, pub crypto.PublicKey, now time.Time) bool {
	id, err := trust.KeyID(pub)
	if err != nil {
		return false
	}
	for _, k := range d.Root.Keys {
		if k.Role == trust.RoleAdmin {
			if kid, err := trust.KeyID(k.PublicKey); err == nil && kid == id {
				return k.ValidAt(now)
			}
		}
	}
	return false
}

func newTrustShowCmd(s *streams) *cobra.Command {
	var jsonOut bool
	c := &cobra.Command{
		Use:   "show ROOT [--json]",
		Short: "Show a trust root: version, expiry, admins, keys and their windows, signatures",
		Args:  argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := readRoot(args[0])
			if err != nil {
				return err
			}
			v := viewRoot(d, time.Now())
			if jsonOut {
				return writeJSON(s.out, v)
			}
			printRoot(s.out, v)
			return nil
		},
	}
	c.Flags().BoolVar(&jsonOut, "json", false, "print as JSON")
	return c
}

func newTrustVerifyCmd(s *streams) *cobra.Command {
	var trusted string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "verify --trusted OLD.json NEW.json [NEWER.json ...]",
		Short: "Check that new trust root versions chain from a trusted one",
		Long: "Each version must be exactly one more than the one before, signed by the threshold of the previous\n" +
			"version's admins and of its own, and the last must not be expired. Exit 1 if refused.",
		Args: argsBetween(1, -1),
		RunE: func(c *cobra.Command, args []string) error {
			if trusted == "" {
				return usageErr(errors.New("--trusted is required"), "pass the trust root you already trust")
			}
			old, err := readRoot(trusted)
			if err != nil {
				return err
			}
			var next []*trust.Document
			for _, a := range args {
				d, err := readRoot(a)
				if err != nil {
					return err
				}
				next = append(next, d)
			}
			got, err := trust.UpdateChain(old, next, time.Now())
			if jsonOut {
				res := struct {
					Accepted bool   `json:"accepted"`
					Version  int    `json:"version,omitempty"`
					Reason   string `json:"reason,omitempty"`
				}{Accepted: err == nil}
				if err != nil {
					res.Reason = err.Error()
				} else {
					res.Version = got.Version
				}
				if werr := writeJSON(s.out, res); werr != nil {
					return werr
				}
			}
			if err != nil {
				return chainErr(err)
			}
			if !jsonOut {
				fmt.Fprintf(s.out, "accepted: version %d chains from trusted version %d\n", got.Version, old.Version)
			}
			return nil
		},
	}
	c.Flags().StringVar(&trusted, "trusted", "", "the trust root already trusted")
	c.Flags().BoolVar(&jsonOut, "json", false, "print the decision as JSON")
	return c
}

// chainErr maps trust.Update's refusals to exit 1, malformed input to 2.
func chainErr(err error) error {
	if errors.Is(err, trust.ErrMalformed) {
		return usageErr(err, "")
	}
	hint := ""
	switch {
	case errors.Is(err, trust.ErrVersionGap):
		hint = "pass every version in between, in order"
	case errors.Is(err, trust.ErrThreshold):
		hint = "collect more admin signatures with 'custody trust sign'"
	case errors.Is(err, trust.ErrRollback), errors.Is(err, trust.ErrFork):
		hint = "never accept an older or conflicting trust root; find out who published it"
	}
	return failErr(err, hint)
}

// keyRef turns a key reference into one trust.Root.FindKey reads: a public
// key file (PEM) becomes its key ID; anything else is taken as an ID.
func keyRef(v string) (string, error) {
	if !strings.HasSuffix(v, ".pub") && !strings.HasSuffix(v, ".pem") {
		return v, nil
	}
	pub, err := loadPublicKey(v)
	if err != nil {
		return "", err
	}
	id, err := trust.KeyID(pub)
	if err != nil {
		return "", usageErr(err, "")
	}
	return id, nil
}

// editRoot reads a trust root, applies edit, and writes it back.
func editRoot(s *streams, path string, edit func(*trust.Document) error) error {
	if path == "" {
		return usageErr(errors.New("--root is required"), "")
	}
	d, err := readRoot(path)
	if err != nil {
		return err
	}
	if err := edit(d); err != nil {
		return usageErr(err, "")
	}
	return writeRoot(s, path, d)
}

func writeRoot(s *streams, path string, d *trust.Document) error {
	if err := writeMarshaled(path, d); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "trust root version %d written to %s (unsigned: sign it with 'custody trust sign --root %s --key ADMIN.key')\n", d.Version, path, path)
	return nil
}

// readRoot reads and parses a custody trust root file.
func readRoot(path string) (*trust.Document, error) {
	if path == "" {
		return nil, usageErr(errors.New("--root is required"), "")
	}
	return readParsed(path, trust.MaxDocumentBytes, "trust root", trust.ParseDocument)
}

func loadAuthorities(path string) (*trust.Root, error) {
	return readParsed(path, trust.MaxDocumentBytes, "trusted root", trust.LoadTrustedRoot)
}

func setAuthorities(d *trust.Document, path string) error {
	r, err := loadAuthorities(path)
	if err != nil {
		return err
	}
	if err := d.SetAuthorities(r); err != nil {
		return usageErr(err, "")
	}
	return nil
}

// parseExpires reads a duration from now ("365d", "720h") or a time.
func parseExpires(v string) (time.Time, error) {
	if d, err := parseAge(v); err == nil {
		return time.Now().Add(d).UTC().Truncate(time.Second), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr(fmt.Errorf("--expires %q is neither a duration nor a time", v), "use e.g. 365d or 2027-01-31T00:00:00Z")
}

// trustRootStatePath is where a client keeps the trust root it trusts.
func trustRootStatePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("couldn't find a config directory for the stored trust root: %w", err)
	}
	return filepath.Join(dir, "custody", "trust-root.json"), nil
}

// trustRootPinPath is where a client records which trust root it stored
// (its version and SHA-256), beside its remembered checkpoints: once a
// machine has trusted a root, a missing or replaced store is refused
// instead of meaning "trust the next self-signed root on first use".
func trustRootPinPath() (string, error) {
	dir, err := checkpointDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "trust-root.pin"), nil
}

// rootPin is the content of the pin file.
type rootPin struct {
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
}

func readRootPin(path string) (*rootPin, error) {
	b, err := readLimited(path, 4096)
	if err != nil {
		return nil, err
	}
	var p rootPin
	if err := json.Unmarshal(b, &p); err != nil || p.SHA256 == "" {
		return nil, fmt.Errorf("%s is not a trust root pin", path)
	}
	return &p, nil
}

// storedRoot reads the stored trust root, re-checking every time that it is
// signed by its own admins and is the one custody stored (the pin). It
// returns nil, nil when nothing is stored and no root was ever trusted
// here. Every failure names the store and is fail closed.
func storedRoot(state, pinPath string) (*trust.Document, error) {
	const hint = "restore it from a backup; a trust root never becomes trusted by being put there. Only after checking the " +
		"trust root you mean to trust out of band, remove both %s and %s and run again to trust it on first use"
	fix := fmt.Sprintf(hint, state, pinPath)
	pin, perr := readRootPin(pinPath)
	if perr != nil && !errors.Is(perr, os.ErrNotExist) {
		return nil, usageErr(fmt.Errorf("couldn't read the trust root pin: %w", perr), fix)
	}
	b, err := readLimited(state, trust.MaxDocumentBytes)
	switch {
	case errors.Is(err, os.ErrNotExist) && pin == nil:
		return nil, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, usageErr(fmt.Errorf("the stored trust root %s is missing, but this machine trusted version %d of one (%s): "+
			"a deleted store does not mean trusting any self-signed root", state, pin.Version, pinPath), fix)
	case err != nil:
		return nil, usageErr(fmt.Errorf("couldn't read the stored trust root %s: %w", state, err), fix)
	}
	old, err := trust.ParseDocument(b)
	if err == nil {
		err = trust.VerifyStored(old)
	}
	if err != nil {
		return nil, usageErr(fmt.Errorf("the stored trust root %s is damaged or was tampered with: %w", state, err), fix)
	}
	if sum := sha256.Sum256(b); pin != nil && pin.SHA256 != hex.EncodeToString(sum[:]) {
		return nil, usageErr(fmt.Errorf("the stored trust root %s (version %d) is not the one custody stored (version %d, %s)",
			state, old.Version, pin.Version, pinPath), fix)
	}
	return old, nil
}

// storeRoot writes d as the stored trust root, then its pin.
func storeRoot(state, pinPath string, d *trust.Document) error {
	out, err := d.Marshal()
	if err != nil {
		return usageErr(err, "")
	}
	sum := sha256.Sum256(out)
	pin, err := json.Marshal(rootPin{Version: d.Version, SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return usageErr(err, "")
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{state, out}, {pinPath, pin}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return usageErr(fmt.Errorf("couldn't store the trust root: %w", err), "")
		}
		if err := fsutil.WriteFileAtomic(f.path, f.b, 0o600); err != nil {
			return usageErr(fmt.Errorf("couldn't store the trust root: %w", err), "")
		}
	}
	return nil
}

// trustRootMaterial reads the custody trust root at path, accepts it
// against the stored one (or stores it on first use), and returns its
// trust material.
func trustRootMaterial(path string) (root.TrustedMaterial, error) {
	d, err := readRoot(path)
	if err != nil {
		return nil, err
	}
	if _, err := acceptRoot(d, time.Now()); err != nil {
		return nil, err
	}
	tm, err := d.Root.TrustedMaterial()
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", path, err), "")
	}
	return tm, nil
}

// acceptRoot decides whether d may be used: it must chain from the stored
// trust root (one version newer), be the same document, or, with nothing
// stored, be signed by its own admins' threshold (trust on first use). An
// accepted newer version replaces the stored one. It reports whether d was
// stored.
func acceptRoot(d *trust.Document, now time.Time) (bool, error) {
	state, err := trustRootStatePath()
	if err != nil {
		return false, usageErr(err, "")
	}
	pinPath, err := trustRootPinPath()
	if err != nil {
		return false, usageErr(err, "")
	}
	old, err := storedRoot(state, pinPath)
	switch {
	case err != nil:
		return false, err
	case old == nil:
		if err := trust.VerifyDocument(d, now); err != nil {
			return false, chainErr(fmt.Errorf("trust root version %d: %w", d.Version, err))
		}
	case d.Version == old.Version:
		same, err := samePayload(old, d)
		if err != nil {
			return false, err
		}
		if !same {
			return false, chainErr(fmt.Errorf("%w: version %d differs from the stored version %d at %s", trust.ErrFork, d.Version, old.Version, state))
		}
		if !now.Before(d.Expires) {
			return false, chainErr(fmt.Errorf("%w: version %d expired at %s", trust.ErrExpired, d.Version, d.Expires.UTC().Format(time.RFC3339)))
		}
		return false, nil
	default:
		if err := trust.Update(old, d, now); err != nil {
			return false, chainErr(fmt.Errorf("trust root refused against the stored version %d (%s): %w", old.Version, state, err))
		}
	}
	if err := storeRoot(state, pinPath, d); err != nil {
		return false, err
	}
	return true, nil
}

// rootView is what 'trust show' prints.
type rootView struct {
	Version   int       `json:"version"`
	Expires   time.Time `json:"expires"`
	Expired   bool      `json:"expired"`
	Threshold int       `json:"threshold"`
	// WitnessThreshold is the trust root's, or the default's (0 or 1).
	WitnessThreshold int       `json:"witnessThreshold"`
	WitnessDefault   bool      `json:"witnessThresholdDefault"`
	Signatures       sigView   `json:"signatures"`
	Keys             []keyView `json:"keys"`
	Tlogs            []string  `json:"tlogs"`
	TSAs             []string  `json:"timestampAuthorities"`
	CAs              []string  `json:"certificateAuthorities"`
	CTLogs           []string  `json:"ctlogs"`
}

type sigView struct {
	Count   int      `json:"count"`
	Valid   []string `json:"validAdmins"`
	Ignored []string `json:"ignored,omitempty"`
	Met     bool     `json:"thresholdMet"`
}

type keyView struct {
	ID               string     `json:"id"`
	Role             string     `json:"role"`
	Identity         string     `json:"identity,omitempty"`
	ValidFrom        *time.Time `json:"validFrom,omitempty"`
	ValidUntil       *time.Time `json:"validUntil,omitempty"`
	CompromisedSince *time.Time `json:"compromisedSince,omitempty"`
	Status           string     `json:"status"`
}

func viewRoot(d *trust.Document, now time.Time) rootView {
	v := rootView{Version: d.Version, Expires: d.Expires, Expired: !now.Before(d.Expires), Threshold: d.Threshold,
		Tlogs: []string{}, TSAs: []string{}, CAs: []string{}, CTLogs: []string{}, Keys: []keyView{}}
	if wp, err := d.WitnessPolicy(now); err == nil {
		v.WitnessThreshold, v.WitnessDefault = wp.Threshold, !wp.Explicit
	}
	t, _ := d.CountSignatures(d, now)
	v.Signatures = sigView{Count: len(d.Signatures), Valid: t.Valid, Ignored: t.Ignored, Met: t.Met()}
	if v.Signatures.Valid == nil {
		v.Signatures.Valid = []string{}
	}
	for i, id := range v.Signatures.Valid {
		v.Signatures.Valid[i] = keyid.Display(id)
	}
	for _, k := range d.Root.Keys {
		kv := keyView{ID: keyid.Display(k.ID), Role: string(k.Role), Identity: k.Identity}
		if !k.Window.Start.IsZero() {
			kv.ValidFrom = ptr(k.Window.Start)
		}
		if !k.Window.End.IsZero() {
			kv.ValidUntil = ptr(k.Window.End)
		}
		if !k.CompromisedSince.IsZero() {
			kv.CompromisedSince = ptr(k.CompromisedSince)
		}
		switch {
		case !k.CompromisedSince.IsZero():
			kv.Status = "revoked"
		case k.ValidAt(now):
			kv.Status = "valid"
		case !k.Window.End.IsZero() && !now.Before(k.Window.End):
			kv.Status = "ended"
		default:
			kv.Status = "not yet valid"
		}
		v.Keys = append(v.Keys, kv)
	}
	for _, l := range d.Root.Tlogs {
		v.Tlogs = append(v.Tlogs, l.BaseURL)
	}
	for _, l := range d.Root.CTLogs {
		v.CTLogs = append(v.CTLogs, l.BaseURL)
	}
	for _, a := range d.Root.TSAs {
		v.TSAs = append(v.TSAs, a.URI)
	}
	for _, a := range d.Root.CertificateAuthorities {
		v.CAs = append(v.CAs, a.URI)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

func printRoot(w io.Writer, v rootView) {
	exp := "expires"
	if v.Expired {
		exp = "EXPIRED"
	}
	fmt.Fprintf(w, "custody trust root version %d (%s %s)\n", v.Version, exp, v.Expires.UTC().Format(time.RFC3339))
	state := "threshold met"
	if !v.Signatures.Met {
		state = "NOT signed: threshold not met"
	}
	fmt.Fprintf(w, "signatures: %d valid of %d needed from this version's admins, %d present (%s)\n",
		len(v.Signatures.Valid), v.Threshold, v.Signatures.Count, state)
	for _, why := range v.Signatures.Ignored {
		fmt.Fprintf(w, "  ignored: %s\n", why)
	}
	switch {
	case !v.WitnessDefault:
		fmt.Fprintf(w, "witnesses: a log checkpoint needs valid cosignatures of %d distinct witnesses\n", v.WitnessThreshold)
	case v.WitnessThreshold > 0:
		fmt.Fprintln(w, "witnesses: default: a pack's checkpoints need 1 witness cosignature (set --witness-threshold to require k, and on clients of a server)")
	}
	fmt.Fprintln(w, "keys:")
	for _, k := range v.Keys {
		from, until := "always", "open"
		if k.ValidFrom != nil {
			from = k.ValidFrom.UTC().Format(time.RFC3339)
		}
		if k.ValidUntil != nil {
			until = k.ValidUntil.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %-9s %s  %s\n", k.Role, k.ID, k.Status)
		if k.Identity != "" {
			fmt.Fprintf(w, "            identity %s\n", k.Identity)
		}
		fmt.Fprintf(w, "            valid %s .. %s\n", from, until)
		if k.CompromisedSince != nil {
			fmt.Fprintf(w, "            compromised since %s\n", k.CompromisedSince.UTC().Format(time.RFC3339))
		}
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"transparency logs", v.Tlogs}, {"timestamp authorities", v.TSAs}, {"certificate authorities", v.CAs}, {"CT logs", v.CTLogs}} {
		if len(l.list) > 0 {
			fmt.Fprintf(w, "%s: %s\n", l.name, strings.Join(l.list, ", "))
		}
	}
}
