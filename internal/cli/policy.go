package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/verify"
)

type policyFlags struct {
	policy, evidence, server, trustedRoot, digest string
	keys                                          []string
	jsonOut                                       bool
}

func newPolicyCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Check artifacts against an environment's policy, and compare policies",
	}
	c.AddCommand(newPolicyCheckCmd(s), newPolicyDiffCmd(s), newPolicyKeyIDCmd(s))
	return c
}

func addEvidenceFlags(c *cobra.Command, f *policyFlags) {
	fl := c.Flags()
	fl.StringVar(&f.evidence, "evidence", "", "directory of bundles (*.json, recursively)")
	fl.StringVar(&f.server, "server", "", "custody server whose evidence index holds the bundles")
	fl.StringArrayVar(&f.keys, "key", nil, "trusted public key (PEM), repeatable: builders, approvers, scanners")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json: CAs, logs and TSAs")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
}

func newPolicyCheckCmd(s *streams) *cobra.Command {
	var f policyFlags
	c := &cobra.Command{
		Use:   "check --policy FILE (--evidence DIR | --server URL) [--key PUB]... [--trusted-root F] (ARTIFACT | --digest sha256:HEX)",
		Short: "Dry run: would the environment's policy let this artifact in?",
		Long: "Verifies every bundle about the artifact (bundles that do not verify are listed and ignored),\n" +
			"evaluates the policy on what verified and prints the decision with every failed requirement and\n" +
			"what would satisfy it. Exit 0 allowed, 1 denied, 2 bad input, 3 server unreachable.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runPolicyCheck(c.Context(), s, &f, args)
		},
	}
	c.Flags().StringVar(&f.policy, "policy", "", "policy file (YAML, apiVersion custody.dev/policy/v1)")
	c.Flags().StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	addEvidenceFlags(c, &f)
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
		Args:  argsBetween(1, -1),
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
				fmt.Fprintf(s.out, "%s  %s\n", id, p)
			}
			return nil
		},
	}
}

func loadPolicy(path string) (*policy.Policy, error) {
	b, err := readLimited(path, policy.MaxPolicyBytes)
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't read policy: %w", err), "")
	}
	p, err := policy.Parse(b)
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", path, err), "")
	}
	return p, nil
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
	case f.evidence == "" && f.server == "":
		return usageErr(errors.New("no evidence: give --evidence DIR or --server URL"), "")
	}
	return nil
}

// policyResult is policy check's JSON output.
type policyResult struct {
	Decision *policy.Decision `json:"decision"`
	Rejected []rejectedBundle `json:"rejected"`
}

type rejectedBundle struct {
	Bundle string `json:"bundle"`
	Reason string `json:"reason"`
}

func runPolicyCheck(ctx context.Context, s *streams, f *policyFlags, args []string) error {
	if f.policy == "" {
		return usageErr(errors.New("--policy is required"), "")
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
	p, err := loadPolicy(f.policy)
	if err != nil {
		return err
	}
	tm, err := policyTrust(f)
	if err != nil {
		return err
	}
	var bundles []gate.Bundle
	if f.evidence != "" {
		if bundles, err = gate.ReadDir(f.evidence); err != nil {
			return usageErr(err, "")
		}
	} else {
		cl, err := newClient(serverURL(f.server))
		if err != nil {
			return err
		}
		if bundles, err = gate.FromServer(ctx, cl, dg); err != nil {
			return remoteErr(err, "fetch evidence")
		}
	}
	// A directory holds evidence about many artifacts; only what is about
	// this one is considered (the rest is not "rejected").
	if f.evidence != "" {
		bundles = aboutArtifact(bundles, dg)
	}
	d, rej, err := decide(ctx, p, dg, bundles, tm)
	if err != nil {
		return usageErr(err, "")
	}
	if f.jsonOut {
		if err := writeJSON(s.out, policyResult{Decision: d, Rejected: rej}); err != nil {
			return err
		}
	} else {
		printDecision(s.out, d, rej)
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

func decide(ctx context.Context, p *policy.Policy, dg string, bundles []gate.Bundle, tm root.TrustedMaterial) (*policy.Decision, []rejectedBundle, error) {
	ev, rej, err := gate.Gather(ctx, dg, gate.JSONs(bundles), tm)
	if err != nil {
		return nil, nil, err
	}
	out := []rejectedBundle{}
	for _, r := range rej {
		out = append(out, rejectedBundle{Bundle: bundles[r.Index].Name, Reason: r.Reason})
	}
	d, err := p.Evaluate(ctx, ev, time.Now())
	if err != nil {
		return nil, nil, err
	}
	return d, out, nil
}

func printDecision(w io.Writer, d *policy.Decision, rej []rejectedBundle) {
	verdict := "ALLOWED"
	if !d.Allowed {
		verdict = "DENIED"
	}
	fmt.Fprintf(w, "%s: %s in environment %s (policy %s)\n", verdict, d.Artifact, d.Environment, d.PolicyDigest)
	for _, fl := range d.Failures {
		fmt.Fprintf(w, "  FAIL  %-24s %s\n", fl.Requirement, fl.Message)
		fmt.Fprintf(w, "        %-24s fix: %s\n", "", fl.Fix)
	}
	for _, ps := range d.Passed {
		fmt.Fprintf(w, "  PASS  %s\n", ps)
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
		cl, err := newClient(serverURL(f.server))
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
