package cli

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

type policyFlags struct {
	policy, evidence, server, trustedRoot, digest string
	keys                                          []string
	jsonOut                                       bool
	// trustRoot is a custody trust root: its keys and logs are trusted for
	// evidence, and its admins must have signed a policy taken from the
	// server. checkEnv is policy check's --env (the server's policy).
	trustRoot, checkEnv string
	// registry configures the client of an oci:// artifact; image is that
	// artifact once resolved (its registry is one more evidence source).
	registry registryFlags
	image    *image
}

func newPolicyCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Check artifacts against an environment's policy, and compare policies",
	}
	c.AddCommand(newPolicyCheckCmd(s), newPolicyDiffCmd(s), newPolicyKeyIDCmd(s),
		newPolicySignCmd(s), newPolicyPushCmd(s), newPolicyShowCmd(s), newPolicyHistoryCmd(s))
	return c
}

func addEvidenceFlags(c *cobra.Command, f *policyFlags) {
	fl := c.Flags()
	fl.StringVar(&f.evidence, "evidence", "", "directory of bundles (*.json, recursively)")
	fl.StringVar(&f.server, "server", "", "custody server whose evidence index holds the bundles (default $CUSTODY_SERVER when no --evidence or --data is given)")
	fl.StringArrayVar(&f.keys, "key", nil, "trusted public key (PEM), repeatable: builders, approvers, scanners")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json: CAs, logs and TSAs")
	fl.StringVar(&f.trustRoot, "trust-root", "", "custody trust root: its keys and logs are trusted, and its admins must have signed the server's policy")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
}

func newPolicyCheckCmd(s *streams) *cobra.Command {
	var f policyFlags
	c := &cobra.Command{
		Use:   "check (--policy FILE | --server URL --env ENV --trust-root root.json) (--evidence DIR | --server URL) [--key PUB]... [--trusted-root F] (ARTIFACT | --digest sha256:HEX)",
		Short: "Dry run: would the environment's policy let this artifact in?",
		Long: "Verifies every bundle about the artifact (bundles that do not verify are listed and ignored),\n" +
			"evaluates the policy on what verified and prints the decision with every failed requirement and\n" +
			"what would satisfy it. Without --policy, the server's current policy of --env is used once its admin\n" +
			"signatures verify against --trust-root. Exit 0 allowed, 1 denied, 2 bad input, 3 server unreachable.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runPolicyCheck(c.Context(), s, &f, args)
		},
	}
	c.Flags().StringVar(&f.policy, "policy", "", "policy file (YAML, apiVersion custody.dev/policy/v1)")
	c.Flags().StringVar(&f.checkEnv, "env", "", "without --policy: use the server's current policy of this environment")
	c.Flags().StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	addEvidenceFlags(c, &f)
	addRegistryFlags(c.Flags(), &f.registry)
	return c
}

func newPolicyDiffCmd(s *streams) *cobra.Command {
	var f policyFlags
	c := &cobra.Command{
		Use:   "diff OLD NEW (--evidence DIR | --server URL) [--key PUB]... [--trusted-root F]",
		Short: "Which artifacts a new policy would newly deny or newly allow",
		Long: "Finds every artifact with SLSA provenance in the evidence, decides it under both policies and\n" +
			"lists the ones whose decision changes. Exit 0 when it could compare, 2 bad input, 3 unreachable.",
		Args: argsBetween(2, 2),
		RunE: func(c *cobra.Command, args []string) error {
			return runPolicyDiff(c.Context(), s, &f, args)
		},
	}
	addEvidenceFlags(c, &f)
	return c
}

func newPolicyKeyIDCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "key-id PUB...",
		Short: "Print the key ID (hex SHA-256 of the PKIX key) a policy names a public key by",
		Long:  "Prints each key's ID alone on a line, in the order given, so a script can use it as it is.",
		Example: "  custody policy key-id release.pub\n" +
			"  sed \"s/@builder@/$(custody policy key-id builder.pub)/\" prod.tmpl > prod.yaml",
		Args: argsBetween(1, -1),
		RunE: func(c *cobra.Command, args []string) error {
			for _, p := range args {
				pub, err := loadPublicKey(p)
				if err != nil {
					return err
				}
				id, err := gate.KeyID(pub)
				if err != nil {
					return usageErr(err, "")
				}
				fmt.Fprintln(s.out, id)
			}
			return nil
		},
	}
}

func loadPolicy(path string) (*policy.Policy, error) {
	return readParsed(path, policy.MaxPolicyBytes, "policy", policy.Parse)
}

// policyTrust is what gate verifies against: public keys found by their
// hint, and a trusted root.
func policyTrust(f *policyFlags) (root.TrustedMaterial, error) {
	var tms root.TrustedMaterialCollection
	if f.trustedRoot != "" {
		tm, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
		tms = append(tms, tm)
	}
	if len(f.keys) > 0 {
		var pubs []crypto.PublicKey
		for _, k := range f.keys {
			pub, err := loadPublicKey(k)
			if err != nil {
				return nil, err
			}
			pubs = append(pubs, pub)
		}
		tm, err := gate.KeyMaterial(pubs...)
		if err != nil {
			return nil, usageErr(err, "")
		}
		tms = append(tms, tm)
	}
	if f.trustRoot != "" {
		tm, err := trustRootMaterial(f.trustRoot)
		if err != nil {
			return nil, err
		}
		tms = append(tms, tm)
	}
	if len(tms) == 0 {
		return nil, usageErr(errors.New("nothing to trust: no --key or --trusted-root"),
			"pass --key for every builder, approver and scanner key, and --trusted-root for logs, timestamps and keyless signers")
	}
	return tms, nil
}

func checkSource(f *policyFlags) error {
	switch {
	case f.evidence != "" && f.server != "":
		return usageErr(errors.New("give either --evidence or --server, not both"), "")
	case f.evidence == "" && f.server == "" && f.image == nil:
		return usageErr(errors.New("no evidence: give --evidence DIR or --server URL"), "or an oci:// image, whose registry holds its evidence")
	}
	return nil
}

// policyResult is policy check's JSON output.
type policyResult struct {
	Decision *policy.Decision `json:"decision"`
	Rejected []rejectedBundle `json:"rejected"`
	// RedFlags are the red flags statements the decision did not count
	// (not signed by a --key), verified against the server's audit key.
	RedFlags []redFlagsSeen `json:"redFlags"`
}

type rejectedBundle struct {
	Bundle string `json:"bundle"`
	Reason string `json:"reason"`
	index  int    // in the bundles given to decide
}

func runPolicyCheck(ctx context.Context, s *streams, f *policyFlags, args []string) error {
	f.server = sourceServer(f.server, f.evidence)
	if f.policy == "" && (f.checkEnv == "" || f.server == "") {
		return usageErr(errors.New("no policy: give --policy FILE, or --server URL --env ENV for the server's current policy"), "")
	}
	args, err := f.takeImage(ctx, s, args)
	if err != nil {
		return err
	}
	if err := checkSource(f); err != nil {
		return err
	}
	var dg string
	switch {
	case len(args) == 1 && f.digest != "":
		return usageErr(errors.New("give either an artifact or --digest, not both"), "")
	case len(args) == 1:
		d, err := digest.File(args[0])
		if err != nil {
			return usageErr(fmt.Errorf("couldn't hash artifact: %w", err), "")
		}
		dg = d.String()
	case f.digest != "":
		d, err := digest.Parse(f.digest)
		if err != nil || d.Alg != "sha256" {
			return usageErr(fmt.Errorf("--digest %q is not sha256:HEX", f.digest), "use --digest sha256:HEX")
		}
		dg = d.String()
	default:
		return usageErr(errors.New("no artifact to check"), "pass the artifact file, or --digest sha256:HEX")
	}
	p, err := policyFor(ctx, f, f.checkEnv)
	if err != nil {
		return err
	}
	tm, err := policyTrust(f)
	if err != nil {
		return err
	}
	start := time.Now()
	bundles, err := evidenceBundles(ctx, f, dg)
	if err != nil {
		return err
	}
	d, rej, err := decide(ctx, p, dg, bundles, tm, start)
	if err != nil {
		return usageErr(err, "")
	}
	rej, seen, err := f.redFlagsApart(ctx, dg, bundles, rej)
	if err != nil {
		return err
	}
	if f.jsonOut {
		if err := writeJSON(s.out, policyResult{Decision: d, Rejected: rej, RedFlags: seen}); err != nil {
			return err
		}
	} else {
		printDecision(s.out, d, rej)
		printRedFlagsSeen(s.out, "  ", seen)
	}
	if !d.Allowed {
		first := d.Failures[0]
		return failErr(fmt.Errorf("%s denied in %s: %s: %s", d.Artifact, d.Environment, first.Requirement, first.Message), first.Fix)
	}
	return nil
}

// aboutArtifact keeps the bundles that are evidence about dg, and the
// review attestations of its source commits (gate.ForArtifact, an
// unverified read: gate verifies what is kept). Bundles that do not parse
// are kept so that they are reported as rejected.
func aboutArtifact(bs []gate.Bundle, dg string) []gate.Bundle {
	return gate.ForArtifact(bs, dg)
}

// decide verifies bundles and evaluates p on them; start is when fetching
// the bundles began, for the policy's latency budget (fetch: until now).
func decide(ctx context.Context, p *policy.Policy, dg string, bundles []gate.Bundle, tm root.TrustedMaterial, start time.Time) (*policy.Decision, []rejectedBundle, error) {
	fetched := time.Since(start)
	ev, rej, err := gate.Gather(ctx, dg, gate.JSONs(bundles), tm)
	if err != nil {
		return nil, nil, err
	}
	out := []rejectedBundle{}
	for _, r := range rej {
		out = append(out, rejectedBundle{Bundle: bundles[r.Index].Name, Reason: r.Reason, index: r.Index})
	}
	verified := time.Since(start) - fetched
	d, err := p.Evaluate(ctx, ev, time.Now())
	if err != nil {
		return nil, nil, err
	}
	p.Measure(d, policy.StepFetch, fetched)
	p.Measure(d, policy.StepVerify, verified)
	p.Measure(d, policy.StepTotal, time.Since(start))
	return d, out, nil
}

// redFlagsApart takes the red flags statements out of the bundles decide
// rejected and verifies them against the server's audit key
// (serverAuditTrust): they are the server's findings, not counted because
// no --key is the audit key (or for the reason decide gave), never a
// reason to trust anything more. The decision is not changed.
func (f *policyFlags) redFlagsApart(ctx context.Context, dg string, bundles []gate.Bundle, rej []rejectedBundle) ([]rejectedBundle, []redFlagsSeen, error) {
	kept, seen := []rejectedBundle{}, []redFlagsSeen{}
	var at *auditTrust
	for _, r := range rej {
		b := bundles[r.index]
		if !isRedFlags(b) {
			kept = append(kept, r)
			continue
		}
		if at == nil {
			var cl *client.Client
			if f.server != "" {
				var err error
				if cl, err = newClient(serverURL(f.server)); err != nil {
					return nil, nil, err
				}
			}
			a := serverAuditTrust(ctx, f.trustRoot, cl)
			at = &a
		}
		rf := at.see(ctx, b, dg, "decided without it: "+r.Reason)
		if rf.Verified && !f.hasKey(rf.AuditKey) {
			rf.Reason = pack.AuditKeyNotGiven
		}
		seen = append(seen, rf)
	}
	return kept, seen, nil
}

// hasKey reports whether one of the --key files is the key of ID id (hex).
func (f *policyFlags) hasKey(id string) bool {
	for _, k := range f.keys {
		if pub, err := loadPublicKey(k); err == nil && signer.KeyID(pub) == id {
			return true
		}
	}
	return false
}

func printDecision(w io.Writer, d *policy.Decision, rej []rejectedBundle) {
	pack.WriteDecision(w, d)
	for _, l := range d.Latency {
		over := ""
		if l.OverBudget {
			over = " OVER BUDGET"
		}
		budget := ""
		if l.BudgetSeconds > 0 {
			budget = fmt.Sprintf(" (budget %s)", time.Duration(l.BudgetSeconds*float64(time.Second)))
		}
		fmt.Fprintf(w, "  TIME  %-8s %s%s%s\n", l.Step, time.Duration(l.Seconds*float64(time.Second)).Round(time.Microsecond), budget, over)
	}
	for _, r := range rej {
		fmt.Fprintf(w, "  IGNORED %s: %s\n", r.Bundle, r.Reason)
	}
}

// diffResult is policy diff's JSON output.
type diffResult struct {
	Old     string             `json:"old"`
	New     string             `json:"new"`
	Checked int                `json:"checked"`
	Changes []policy.DiffEntry `json:"changes"`
}

func runPolicyDiff(ctx context.Context, s *streams, f *policyFlags, args []string) error {
	f.server = sourceServer(f.server, f.evidence)
	if err := checkSource(f); err != nil {
		return err
	}
	oldP, err := loadPolicy(args[0])
	if err != nil {
		return err
	}
	newP, err := loadPolicy(args[1])
	if err != nil {
		return err
	}
	tm, err := policyTrust(f)
	if err != nil {
		return err
	}
	var all []gate.Bundle
	fetch := func(dg string) ([]gate.Bundle, error) { return aboutArtifact(all, dg), nil }
	if f.evidence != "" {
		if all, err = gate.ReadDir(f.evidence); err != nil {
			return usageErr(err, "")
		}
	} else {
		cl, err := newClientTrusting(serverURL(f.server), f.trustRoot)
		if err != nil {
			return err
		}
		if all, err = gate.ProvenanceOnServer(ctx, cl); err != nil {
			return remoteErr(err, "fetch evidence")
		}
		fetch = func(dg string) ([]gate.Bundle, error) {
			b, err := gate.FromServer(ctx, cl, dg)
			if err != nil {
				return nil, remoteErr(err, "fetch evidence")
			}
			return b, nil
		}
	}
	var candidates []*policy.Evidence
	for _, dg := range gate.Candidates(all) {
		bs, err := fetch(dg)
		if err != nil {
			return err
		}
		ev, _, err := gate.Gather(ctx, dg, gate.JSONs(bs), tm)
		if err != nil {
			return usageErr(err, "")
		}
		candidates = append(candidates, ev)
	}
	changes := policy.Diff(oldP, newP, candidates, time.Now())
	if f.jsonOut {
		if changes == nil {
			changes = []policy.DiffEntry{}
		}
		return writeJSON(s.out, diffResult{Old: oldP.Digest(), New: newP.Digest(), Checked: len(candidates), Changes: changes})
	}
	fmt.Fprintf(s.out, "%d artifact(s) checked; %d change(s) from %s (%s) to %s (%s)\n", len(candidates), len(changes), args[0], oldP.Digest(), args[1], newP.Digest())
	for _, c := range changes {
		why := ""
		if c.Change == policy.NewlyDenied && len(c.New.Failures) > 0 {
			why = ": " + c.New.Failures[0].Requirement + ": " + c.New.Failures[0].Message
		}
		fmt.Fprintf(s.out, "  %-14s %s%s\n", c.Change, c.Artifact, why)
	}
	return nil
}

// policyFor returns the policy to decide with: the file --policy, or
// without it the server's current signed policy of env, once its admin
// signatures verify against the custody trust root --trust-root (accepted
// against the stored one as 'custody verify --trust-root' does). The
// server's word alone is never enough.
func policyFor(ctx context.Context, f *policyFlags, env string) (*policy.Policy, error) {
	if f.policy != "" {
		return loadPolicy(f.policy)
	}
	sp, _, _, err := serverPolicy(ctx, serverURL(f.server), env, f.trustRoot)
	if err != nil {
		return nil, err
	}
	return sp.Policy(), nil
}

// serverPolicy fetches env's current signed policy and verifies it against
// the trust root at rootPath. It returns the tally and the trust root.
func serverPolicy(ctx context.Context, server, env, rootPath string) (*policy.Signed, trust.Tally, *trust.Document, error) {
	var none trust.Tally
	switch {
	case env == "":
		return nil, none, nil, usageErr(errors.New("no environment: pass --env ENV"), "")
	case !store.ValidEnvironment(env):
		return nil, none, nil, usageErr(fmt.Errorf("--env %q is not an environment name", env), "")
	case rootPath == "":
		return nil, none, nil, usageErr(errors.New("the server's policy needs a custody trust root to verify its admin signatures"),
			"pass --trust-root root.json (the root you trust; 'custody trust pull' updates it), or a local --policy FILE")
	}
	d, err := readRoot(rootPath)
	if err != nil {
		return nil, none, nil, err
	}
	now := time.Now()
	if _, err := acceptRoot(d, now); err != nil {
		return nil, none, nil, err
	}
	cl, err := newClient(server)
	if err != nil {
		return nil, none, nil, err
	}
	sp, err := cl.Policy(ctx, env)
	if err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			return nil, none, nil, failErr(fmt.Errorf("the server has no signed policy for %s", env), "push one with 'custody policy push'")
		}
		return nil, none, nil, remoteErr(err, "fetch the policy")
	}
	t, err := sp.Verify(d, now)
	if err != nil {
		return nil, none, nil, failErr(fmt.Errorf("the server's policy of %s (version %d, %s) is refused: %w", env, sp.Policy().Version, sp.Digest(), err),
			"if the server's trust root is newer, update yours with 'custody trust pull --root "+rootPath+"'")
	}
	return sp, t, d, nil
}

// envelopePath is where policy sign keeps the signatures of POLICY.yaml.
func envelopePath(policyPath string) string {
	return strings.TrimSuffix(policyPath, filepath.Ext(policyPath)) + ".signed.json"
}

func newPolicySignCmd(s *streams) *cobra.Command {
	var keyRef, envelope, rootPath string
	c := &cobra.Command{
		Use:   "sign POLICY.yaml --key ADMIN.key [--envelope FILE] [--trust-root root.json]",
		Short: "Add an admin's signature to a policy (a DSSE envelope over its exact bytes)",
		Long: "Signs the policy file's bytes as they are and adds the signature to --envelope (default POLICY.signed.json,\n" +
			"created when missing; an envelope over other bytes is refused). Each admin runs it with their key\n" +
			"(a file or pkcs11: URI) until the trust root's threshold is met; then 'custody policy push'. With\n" +
			"--trust-root it says how many of the threshold have signed.",
		Args: argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if keyRef == "" {
				return usageErr(errors.New("--key is required"), "")
			}
			if envelope == "" {
				envelope = envelopePath(args[0])
			}
			sp, err := readParsed(args[0], policy.MaxPolicyBytes, "policy", policy.NewSigned)
			if err != nil {
				return err
			}
			if old, err := readLimited(envelope, policy.MaxSignedBytes); err == nil {
				prev, err := policy.ParseSigned(old)
				if err != nil {
					return usageErr(fmt.Errorf("%s: %w", envelope, err), "")
				}
				if !bytes.Equal(prev.Payload, sp.Payload) {
					return usageErr(fmt.Errorf("%s signs other bytes than %s (%s, not %s)", envelope, args[0], prev.Digest(), sp.Digest()),
						"every admin must sign the same file; pass another --envelope for a new version")
				}
				sp = prev
			} else if !errors.Is(err, os.ErrNotExist) {
				return usageErr(fmt.Errorf("couldn't read envelope: %w", err), "")
			}
			var d *trust.Document
			if rootPath != "" {
				if d, err = readRoot(rootPath); err != nil {
					return err
				}
			}
			pub, release, err := signFile(c.Context(), s, keyRef, envelope, sp)
			defer release()
			if err != nil {
				return err
			}
			p := sp.Policy()
			fmt.Fprintf(s.out, "signed %s (environment %s, version %d, %s): %d signature(s) in %s\n",
				args[0], p.Environment, p.Version, sp.Digest(), len(sp.Signatures), envelope)
			if d != nil {
				t, _ := sp.Verify(d, time.Now())
				fmt.Fprintf(s.out, "%d of %d admin signatures of trust root version %d\n", len(t.Valid), d.Threshold, d.Version)
				if !isAdmin(d, pub, time.Now()) {
					fmt.Fprintf(s.out, "note: this key is not a current admin of trust root version %d; its signature does not count\n", d.Version)
				}
			}
			if p.Version < 1 {
				fmt.Fprintf(s.out, "note: the policy has no version; a server refuses it (add 'version: 1', then sign again)\n")
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyRef, "key", "", "admin's private key: file (password from CUSTODY_PASSWORD) or pkcs11: URI")
	c.Flags().StringVar(&envelope, "envelope", "", "signed envelope to add to (default POLICY.signed.json)")
	c.Flags().StringVar(&rootPath, "trust-root", "", "custody trust root: report how many admins have signed")
	return c
}

func newPolicyPushCmd(s *streams) *cobra.Command {
	var server, actor string
	c := &cobra.Command{
		Use:   "push ENVELOPE [--server URL] [--actor NAME]",
		Short: "Make a signed policy its environment's current policy on the server (admin token)",
		Long: "The server accepts it when at least the threshold of its trust root's current admins signed it and\n" +
			"its version is above the current one (an older policy cannot be replayed), writes a \"policy.changed\"\n" +
			"audit entry, then makes it current. Exit 1 refused, 2 malformed, 3 unreachable.",
		Args: argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			sp, err := readParsed(args[0], policy.MaxSignedBytes, "envelope", policy.ParseSigned)
			if err != nil {
				return err
			}
			var ans *api.PolicyPushAnswer
			err = pushChange(server, actor, "push the policy", "collect more admin signatures with 'custody policy sign'",
				func(cl *client.Client, actor string) (err error) {
					ans, err = cl.PushPolicy(c.Context(), sp, actor)
					return err
				})
			if err != nil {
				return err
			}
			if ans.Existed {
				fmt.Fprintf(s.out, "policy of %s version %d (%s) was already current\n", ans.Environment, ans.Version, ans.Digest)
				return nil
			}
			fmt.Fprintf(s.out, "policy of %s is now version %d (%s)\n", ans.Environment, ans.Version, ans.Digest)
			return nil
		},
	}
	addPushFlags(c, &server, &actor)
	return c
}

// addPushFlags adds the --server and --actor flags of a push to the server.
func addPushFlags(c *cobra.Command, server, actor *string) {
	c.Flags().StringVar(server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(actor, "actor", "", "who pushes, for the audit entry (default $USER)")
}

// pushChange runs push, an admin-signed change sent to server as actor
// (default $USER); a refusal of it is mapped by changeErr.
func pushChange(server, actor, what, hint string, push func(cl *client.Client, actor string) error) error {
	cl, err := newClient(serverURL(server))
	if err != nil {
		return err
	}
	if actor == "" {
		actor = os.Getenv("USER")
	}
	if err := push(cl, actor); err != nil {
		return changeErr(err, what, hint)
	}
	return nil
}

// changeErr maps a refused policy or trust root change: too few signatures
// (403 not about the token) and stale versions (409) are refusals (exit 1).
func changeErr(err error, what, hint string) error {
	var apiErr *client.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusForbidden && !strings.Contains(apiErr.Message, "token may not") {
		return failErr(fmt.Errorf("%s: %w", what, err), hint)
	}
	return remoteErr(err, what)
}

func newPolicyShowCmd(s *streams) *cobra.Command {
	var server, env, rootPath string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "show --server URL --env ENV --trust-root root.json [--json]",
		Short: "Print the server's current policy of an environment, after verifying its admin signatures",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			sp, t, d, err := serverPolicy(c.Context(), serverURL(server), env, rootPath)
			if err != nil {
				return err
			}
			p := sp.Policy()
			if jsonOut {
				return writeJSON(s.out, struct {
					Environment      string   `json:"environment"`
					Version          int      `json:"version"`
					Digest           string   `json:"digest"`
					TrustRootVersion int      `json:"trustRootVersion"`
					Admins           []string `json:"admins"`
					Policy           string   `json:"policy"`
				}{p.Environment, p.Version, sp.Digest(), d.Version, t.Valid, string(sp.Payload)})
			}
			fmt.Fprintf(s.out, "# policy of %s, version %d, %s\n# signed by %d of %d admins of trust root version %d (verified)\n",
				p.Environment, p.Version, sp.Digest(), len(t.Valid), d.Threshold, d.Version)
			_, err = s.out.Write(sp.Payload)
			return err
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&env, "env", "", "environment")
	c.Flags().StringVar(&rootPath, "trust-root", "", "custody trust root whose admins must have signed the policy")
	c.Flags().BoolVar(&jsonOut, "json", false, "print as JSON")
	return c
}

// policyVersion is one line of policy history.
type policyVersion struct {
	Version  int       `json:"version"`
	Digest   string    `json:"digest"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor,omitempty"`
	Token    string    `json:"token"`
	Admins   []string  `json:"admins"`
	LogIndex int64     `json:"logIndex"`
	Verified bool      `json:"verified"`
	Problem  string    `json:"problem,omitempty"`
}

func newPolicyHistoryCmd(s *streams) *cobra.Command {
	var server, env, auditKey string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "history --server URL --env ENV [--audit-key audit.pub] [--json]",
		Short: "List the policy versions of an environment from the server's audit entries",
		Long: "Each \"policy.changed\" audit entry is verified (audit key signature, inclusion in the log). Exit 1\n" +
			"when one fails verification.",
		Args: argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case env == "":
				return usageErr(errors.New("--env is required"), "")
			case !store.ValidEnvironment(env):
				return usageErr(fmt.Errorf("--env %q is not an environment name", env), "")
			}
			cl, err := newClient(serverURL(server))
			if err != nil {
				return err
			}
			key, err := auditKeyFor(c.Context(), s, cl, auditKey)
			if err != nil {
				return err
			}
			// The server selects the environment's entries (subject
			// "policy/ENV"); each one's record is still checked below.
			trail, err := cl.AuditTrail(c.Context(), client.AuditQuery{Action: "policy.changed", Subject: api.SubjectPolicyPrefix + env}, key)
			if err != nil {
				return remoteErr(err, "read the audit trail")
			}
			out := []policyVersion{}
			var bad []string
			for _, e := range trail {
				var ch api.PolicyChange
				if json.Unmarshal(e.Detail, &ch) != nil || ch.Environment != env {
					if !e.Verified {
						bad = append(bad, fmt.Sprintf("audit entry %d (log index %d): %s", e.EvidenceID, e.LogIndex, e.Problem))
					}
					continue
				}
				out = append(out, policyVersion{Version: ch.Version, Digest: ch.Digest, Time: e.Time, Actor: e.Actor, Token: e.Token,
					Admins: ch.Admins, LogIndex: e.LogIndex, Verified: e.Verified, Problem: e.Problem})
				if !e.Verified {
					bad = append(bad, fmt.Sprintf("version %d (log index %d): %s", ch.Version, e.LogIndex, e.Problem))
				}
			}
			if jsonOut {
				if err := writeJSON(s.out, out); err != nil {
					return err
				}
			} else {
				for _, v := range out {
					ok := "verified"
					if !v.Verified {
						ok = "FAILED: " + v.Problem
					}
					fmt.Fprintf(s.out, "version %d  %s  %s  by %s (%s), %d admin signature(s)  log index %d  %s\n",
						v.Version, v.Digest, v.Time.UTC().Format(time.RFC3339), orDash(v.Actor), v.Token, len(v.Admins), v.LogIndex, ok)
				}
			}
			if len(bad) > 0 {
				return failErr(fmt.Errorf("%s failed verification: %s", plural(len(bad), "audit entry", "audit entries"), strings.Join(bad, "; ")), "")
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().StringVar(&env, "env", "", "environment")
	c.Flags().StringVar(&auditKey, "audit-key", "", "the server's audit public key (PEM) to pin (default: fetched from the server)")
	c.Flags().BoolVar(&jsonOut, "json", false, "print as JSON")
	return c
}

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}
