package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/packer"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
)

type packFlags struct {
	out, env, server, evidence, key            string
	signedPolicy, trustRoot, trustedRoot, data string
	digest, validFor                           string
}

func newPackCmd(s *streams) *cobra.Command {
	var f packFlags
	c := &cobra.Command{
		Use:   "pack (ARTIFACT | --digest sha256:HEX) --out FILE --env ENV (--server URL [--key PACKER.key] | --key PACKER.key --evidence DIR --policy ENV.signed.json --trust-root root.json [--trusted-root F] [--data DIR])",
		Short: "Write an evidence pack: everything a device needs to decide offline, signed",
		Long: "Gathers the artifact's evidence bundles, the custody trust root chain, the Sigstore trusted root, the\n" +
			"environment's signed policy, the log checkpoint (with witness cosignatures) and consistency proofs, and\n" +
			"the incident quarantine, and signs the manifest with --key (a packer key of the trust root). With --server\n" +
			"and no --key the server makes the pack from its own state and signs it with its audit key (a deployer or\n" +
			"admin token). The device decides with 'custody verify --pack' or custody-verify. Format:\n" +
			"docs/design/evidence-pack.md.\n" +
			"Exit 0 written, 1 refused, 2 bad input, 3 server unreachable.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runPack(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.out, "out", "", "pack file to write (e.g. app.custody)")
	fl.StringVar(&f.env, "env", "", "environment whose signed policy the pack carries")
	fl.StringVar(&f.server, "server", "", "custody server to gather everything from (default $CUSTODY_SERVER without --evidence)")
	fl.StringVar(&f.evidence, "evidence", "", "directory of bundles (*.json, recursively) instead of a server")
	fl.StringVar(&f.key, "key", "", "packer key (file or pkcs11: URI) that signs the pack; the trust root lists it with role packer (without it, --server signs with its audit key)")
	fl.StringVar(&f.signedPolicy, "policy", "", "with --evidence: the environment's signed policy (custody policy sign's envelope)")
	fl.StringVar(&f.trustRoot, "trust-root", "", "with --evidence: the custody trust root the policy is signed under")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "with --evidence: Sigstore trusted_root.json of the logs and TSAs")
	fl.StringVar(&f.data, "data", "", "with --evidence: data directory whose incident ledger is consulted")
	fl.StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	fl.StringVar(&f.validFor, "valid-for", "7d", "how long devices accept the pack (capped by the trust root's expiry and the policy's maxAge)")
	return c
}

func runPack(ctx context.Context, s *streams, f *packFlags, args []string) error {
	dg, err := artifactDigest(args, f.digest)
	if err != nil {
		return err
	}
	switch {
	case f.out == "":
		return usageErr(errors.New("--out is required"), "pass --out app.custody")
	case f.key == "" && f.evidence != "":
		return usageErr(errors.New("--evidence needs --key: a pack made from local files is signed by a packer key"), "pass --key packer.key")
	case f.evidence != "" && f.data == "":
		return usageErr(errors.New("--evidence needs --data DIR: a device allows nothing from a pack whose packer consulted no incident ledger"), "pass --data with the data directory whose incidents/ ledger quarantines artifacts")
	case f.env == "" || !store.ValidEnvironment(f.env):
		return usageErr(fmt.Errorf("--env %q is not an environment name", f.env), "")
	}
	valid, err := parseAge(f.validFor)
	if err != nil || valid <= 0 {
		return usageErr(fmt.Errorf("--valid-for %q is not a positive duration", f.validFor), "use e.g. 24h or 7d")
	}
	if f.key == "" {
		return runServerPack(ctx, s, f, dg, valid)
	}
	now := time.Now()
	c, err := packContents(ctx, f, dg, now)
	if err != nil {
		return err
	}
	c.Expires = now.Add(valid)
	sg, release, err := loadSigner(s, f.key)
	defer release()
	if err != nil {
		return err
	}
	b, err := pack.Build(ctx, c, func(ctx context.Context, st []byte) ([]byte, error) { return signer.SignStatement(ctx, sg, st) })
	if err != nil {
		return usageErr(err, "")
	}
	if err := fsutil.WriteFileAtomic(f.out, b, 0o644); err != nil {
		return usageErr(fmt.Errorf("couldn't write pack: %w", err), "")
	}
	fmt.Fprintf(s.out, "pack of %s for %s written to %s: %d bundle(s), trust root version %d, policy %s, %d checkpoint(s); quarantine %s; expires %s\n",
		dg, f.env, f.out, len(c.Bundles), c.TrustRoots[len(c.TrustRoots)-1].Version, c.PolicyDigest, len(c.Checkpoints), quarantineText(c.Quarantine), c.Expires.UTC().Format(time.RFC3339))
	return nil
}

func quarantineText(q pack.Quarantine) string {
	switch {
	case !q.Checked:
		return "not consulted"
	case q.Incident != "":
		return "QUARANTINED by incident " + q.Incident
	}
	return "not quarantined"
}

// runServerPack is pack --server without --key: the server makes the
// pack from its own state and signs it with its audit key. The pack is
// opened here with the server's audit key and current trust root before
// it is written: a pack the server's own trust would refuse is not.
func runServerPack(ctx context.Context, s *streams, f *packFlags, dg string, valid time.Duration) error {
	srv := serverURL(f.server)
	if srv == "" {
		return usageErr(errors.New("no server: give --server URL, or --key with --evidence DIR"), "")
	}
	cl, err := newClient(srv)
	if err != nil {
		return err
	}
	b, err := cl.Pack(ctx, api.PackRequest{Artifact: dg, Environment: f.env, ValidForSeconds: int64(valid / time.Second)})
	if err != nil {
		return remoteErr(err, "make the pack")
	}
	pemPub, err := cl.PublicKey(ctx, api.AuditKeyName)
	if err != nil {
		return remoteErr(err, "fetch the server's audit key")
	}
	audit, err := signer.ParsePublicKey(pemPub)
	if err != nil {
		return failErr(fmt.Errorf("the server's audit key: %w", err), "")
	}
	anchor, err := cl.TrustRootDocument(ctx, 0)
	if err != nil {
		return remoteErr(err, "fetch the server's trust root")
	}
	op, err := pack.Open(ctx, b, pack.Options{Artifact: dg, Environment: f.env, Anchor: anchor, PackKeys: []crypto.PublicKey{audit}})
	if err != nil {
		return failErr(fmt.Errorf("the server's pack does not open under its own trust root and audit key: %w", err), "")
	}
	if err := fsutil.WriteFileAtomic(f.out, b, 0o644); err != nil {
		return usageErr(fmt.Errorf("couldn't write pack: %w", err), "")
	}
	m := op.Manifest
	fmt.Fprintf(s.out, "pack of %s for %s written to %s, signed by the server's audit key %s: %d bundle(s), trust root version %d, policy %s, %d checkpoint(s); quarantine %s; expires %s\n",
		dg, f.env, f.out, keyid.Display(op.Signer), len(op.Bundles), m.TrustRootVersion, m.PolicyDigest, len(op.Checkpoints), quarantineText(m.Quarantine), m.Expires.UTC().Format(time.RFC3339))
	return nil
}

// packContents gathers the pack from the server or the local files.
func packContents(ctx context.Context, f *packFlags, dg string, now time.Time) (*pack.Contents, error) {
	if f.evidence == "" {
		srv := serverURL(f.server)
		if srv == "" {
			return nil, usageErr(errors.New("no evidence: give --server URL or --evidence DIR"), "")
		}
		cl, err := newClient(srv)
		if err != nil {
			return nil, err
		}
		c, err := packer.FromServer(ctx, cl, dg, f.env, now)
		if err != nil {
			return nil, remoteErr(err, "gather the pack")
		}
		return c, nil
	}
	if f.server != "" {
		return nil, usageErr(errors.New("give either --evidence or --server, not both"), "")
	}
	if f.signedPolicy == "" || f.trustRoot == "" {
		return nil, usageErr(errors.New("--evidence needs --policy ENV.signed.json and --trust-root root.json"), "")
	}
	l := &packer.Local{}
	var err error
	if l.Bundles, err = gate.ReadDir(f.evidence); err != nil {
		return nil, usageErr(err, "")
	}
	if l.SignedPolicy, err = readParsed(f.signedPolicy, policy.MaxSignedBytes, "signed policy", policy.ParseSigned); err != nil {
		return nil, err
	}
	if l.TrustRoot, err = readRoot(f.trustRoot); err != nil {
		return nil, err
	}
	if f.trustedRoot != "" {
		if l.TrustedRoot, err = readLimited(f.trustedRoot, 1<<20); err != nil {
			return nil, usageErr(fmt.Errorf("couldn't read trusted root: %w", err), "")
		}
	}
	if f.data != "" {
		l.Ledger = incident.FileLedger{Dir: filepath.Join(f.data, "incidents")}
	}
	c, err := packer.FromLocal(ctx, l, dg, f.env, now)
	if err != nil {
		return nil, failErr(err, "")
	}
	return c, nil
}
