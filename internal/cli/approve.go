package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
)

type approveFlags struct {
	env, key, reason, approver, digest, evidence, server string
	identityToken                                        string
	jsonOut, attach                                      bool
	registry                                             registryFlags
}

func newApproveCmd(s *streams) *cobra.Command {
	var f approveFlags
	c := &cobra.Command{
		Use:   "approve --env ENV (--key KEY | --identity-token TOKEN|@FILE) [--reason R] [--approver NAME] (ARTIFACT | oci://IMAGE | --digest sha256:HEX) (--server URL | --evidence DIR | --attach)",
		Short: "Sign an approval of an artifact for an environment",
		Long: "Signs an approval (predicate https://custody.dev/approval/v1) bound to the artifact's digest and the\n" +
			"environment with the approver's key, and stores it: pushed to the server (an approver token in\n" +
			"CUSTODY_TOKEN) or written into a local evidence directory. The policy counts the approval by the\n" +
			"signing key, never by the --approver name (default: the key file's name). With --identity-token (an OIDC\n" +
			"ID token of the person, or @FILE holding one) the approval is keyless: an ephemeral key, certified for\n" +
			"minutes by the server's CA, so policies count it by the certificate's identity and issuer.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runApprove(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.env, "env", "", "environment the approval is for")
	fl.StringVar(&f.key, "key", "", "approver's signing key (encrypted key file, pkcs11: URI or KMS reference)")
	fl.StringVar(&f.identityToken, "identity-token", "", "keyless: the approver's OIDC ID token, or @FILE holding it (certificate from --server's CA)")
	fl.StringVar(&f.reason, "reason", "", "why it is approved")
	fl.StringVar(&f.approver, "approver", "", "approver's name recorded in the approval (default: the key file's name)")
	fl.StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	fl.StringVar(&f.evidence, "evidence", "", "write the approval bundle into this evidence directory")
	fl.StringVar(&f.server, "server", "", "push the approval to this custody server (default $CUSTODY_SERVER)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	fl.BoolVar(&f.attach, "attach", false, "also attach the approval to the oci:// image in its registry")
	addRegistryFlags(fl, &f.registry)
	return c
}

// artifactDigest is the sha256 digest of the artifact file in args, or
// --digest.
func artifactDigest(args []string, flagDigest string) (string, error) {
	switch {
	case len(args) == 1 && flagDigest != "":
		return "", usageErr(errors.New("give either an artifact or --digest, not both"), "")
	case len(args) == 1:
		d, err := digest.File(args[0])
		if err != nil {
			return "", usageErr(fmt.Errorf("couldn't hash artifact: %w", err), "")
		}
		return d.String(), nil
	case flagDigest != "":
		d, err := digest.Parse(flagDigest)
		if err != nil || d.Alg != "sha256" {
			return "", usageErr(fmt.Errorf("--digest %q is not sha256:HEX", flagDigest), "use --digest sha256:HEX")
		}
		return d.String(), nil
	}
	return "", usageErr(errors.New("no artifact given"), "pass the artifact file, or --digest sha256:HEX")
}

type approvalResult struct {
	Environment string `json:"environment"`
	Artifact    string `json:"artifact"`
	Approver    string `json:"approver"`
	Stored      string `json:"stored"` // file path, or "server:ID"
}

func runApprove(ctx context.Context, s *streams, f *approveFlags, args []string) error {
	switch {
	case f.env == "":
		return usageErr(errors.New("--env is required"), "")
	case !store.ValidEnvironment(f.env):
		return usageErr(fmt.Errorf("--env %q is not an environment name", f.env), "")
	case f.key != "" && f.identityToken != "":
		return usageErr(errors.New("give either --key or --identity-token, not both"), "")
	case f.key == "" && f.identityToken == "":
		return usageErr(errors.New("--key or --identity-token is required"), "the approver signs with their own key (custody key generate --out NAME) or keyless with an OIDC ID token")
	case f.identityToken != "" && f.evidence != "":
		return usageErr(errors.New("--identity-token needs --server: the certificate comes from the server's CA"), "")
	case f.evidence != "" && f.server != "":
		return usageErr(errors.New("give either --evidence or --server, not both"), "")
	case f.evidence == "" && serverURL(f.server) == "" && !f.attach:
		return usageErr(errors.New("nowhere to store the approval"), "pass --server URL (approver token in CUSTODY_TOKEN), --evidence DIR, or --attach for an oci:// image")
	}
	im, args, err := approveImage(ctx, s, f, args)
	if err != nil {
		return err
	}
	dg, err := artifactDigest(args, f.digest)
	if err != nil {
		return err
	}
	sign, cl, approver, release, err := approvalSigner(ctx, s, f)
	if err != nil {
		return err
	}
	defer release()
	st, err := attest.NewApproval(attest.ApprovalPredicate{Environment: f.env, Artifact: dg, Approver: approver,
		Reason: f.reason, Time: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return usageErr(fmt.Errorf("couldn't build approval: %w", err), "")
	}
	payload, err := st.Marshal()
	if err != nil {
		return usageErr(err, "")
	}
	b, err := sign(ctx, payload)
	if err != nil {
		return err
	}
	res := approvalResult{Environment: f.env, Artifact: dg, Approver: approver}
	if res.Stored, err = storeApproval(ctx, f, cl, im, dg, b); err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(s.out, res)
	}
	fmt.Fprintf(s.out, "approval of %s for %s by %s stored in %s\n", dg, f.env, approver, res.Stored)
	return nil
}

// storeApproval writes the approval bundle b into --evidence or pushes it
// to the server, and with --attach attaches it to the image; it says where.
func storeApproval(ctx context.Context, f *approveFlags, cl *client.Client, im *image, dg string, b []byte) (string, error) {
	var where []string
	if f.evidence != "" {
		sum := sha256.Sum256(b)
		p := filepath.Join(f.evidence, fmt.Sprintf("approval-%s-%s-%s.json", f.env, strings.TrimPrefix(dg, "sha256:")[:12], hex.EncodeToString(sum[:6])))
		if err := os.MkdirAll(f.evidence, 0o755); err != nil {
			return "", usageErr(fmt.Errorf("couldn't create evidence directory: %w", err), "")
		}
		if err := fsutil.WriteFileAtomic(p, b, 0o644); err != nil {
			return "", usageErr(fmt.Errorf("couldn't write approval: %w", err), "")
		}
		where = append(where, p)
	} else if cl != nil {
		id, _, err := cl.Push(ctx, b)
		if err != nil {
			return "", remoteErr(err, "push approval")
		}
		where = append(where, fmt.Sprintf("server:%d", id))
	}
	if f.attach {
		attached, err := attachAll(ctx, []*image{im}, b)
		if err != nil {
			return "", err
		}
		where = append(where, attached[0].Image+" (referrer "+attached[0].Referrer+")")
	}
	return strings.Join(where, ", "), nil
}

// approveImage resolves approve's oci:// argument (see imageArg); --attach
// needs one.
func approveImage(ctx context.Context, s *streams, f *approveFlags, args []string) (*image, []string, error) {
	im, args, err := imageArg(ctx, s, &f.registry, &f.digest, args)
	if err == nil && im == nil && f.attach {
		return nil, nil, usageErr(errors.New("--attach needs an oci:// image"), "")
	}
	return im, args, err
}

// approvalSigner returns how approve signs: with --key (through the
// server when there is one: logged and timestamped there) or keyless with
// --identity-token; the server's client (nil with --evidence), the
// approver's name and what to release when done.
func approvalSigner(ctx context.Context, s *streams, f *approveFlags) (signFunc, *client.Client, string, func(), error) {
	if f.identityToken != "" {
		return keylessApprovalSigner(ctx, f)
	}
	approver := f.approver
	if approver == "" {
		approver = strings.TrimSuffix(filepath.Base(f.key), filepath.Ext(f.key))
	}
	sg, release, err := loadSigner(s, f.key)
	if err != nil {
		return nil, nil, "", nil, err
	}
	if f.evidence != "" || serverURL(f.server) == "" {
		return keySigner(sg), nil, approver, release, nil
	}
	cl, err := newClient(serverURL(f.server))
	if err != nil {
		release()
		return nil, nil, "", nil, err
	}
	return loggedKeySigner(sg, cl), cl, approver, release, nil
}

type approvalsFlags struct {
	policyFlags
	env string
}

func newApprovalsCmd(s *streams) *cobra.Command {
	var f approvalsFlags
	c := &cobra.Command{
		Use:   "approvals (ARTIFACT | oci://IMAGE | --digest sha256:HEX) (--evidence DIR | --server URL) --key PUB... [--env ENV] [--policy FILE]",
		Short: "List the verified approvals of an artifact",
		Long: "Verifies every approval of the artifact against the trusted keys (--key, --trusted-root) and lists\n" +
			"who approved it for which environment and when; with --policy, the policy's groups each approver's\n" +
			"key belongs to. Approvals that do not verify are listed as ignored; other evidence is not listed.",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runApprovals(c.Context(), s, &f, args)
		},
	}
	c.Flags().StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	c.Flags().StringVar(&f.env, "env", "", "only approvals for this environment")
	c.Flags().StringVar(&f.policy, "policy", "", "policy whose groups to show")
	addEvidenceFlags(c, &f.policyFlags)
	addRegistryFlags(c.Flags(), &f.registry)
	return c
}

// approvalView is one verified approval as approvals prints it.
type approvalView struct {
	Environment string    `json:"environment"`
	Approver    string    `json:"approver"`
	Signer      string    `json:"signer"`
	Member      string    `json:"member,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
	SignedAt    time.Time `json:"signedAt,omitzero"`
}

func runApprovals(ctx context.Context, s *streams, f *approvalsFlags, args []string) error {
	f.server = sourceServer(f.server, f.evidence)
	args, err := f.takeImage(ctx, s, args)
	if err != nil {
		return err
	}
	if err := checkSource(&f.policyFlags); err != nil {
		return err
	}
	dg, err := artifactDigest(args, f.digest)
	if err != nil {
		return err
	}
	var p *policy.Policy
	if f.policy != "" {
		if p, err = loadPolicy(f.policy); err != nil {
			return err
		}
	}
	tm, err := policyTrust(&f.policyFlags)
	if err != nil {
		return err
	}
	bundles, err := evidenceBundles(ctx, &f.policyFlags, dg)
	if err != nil {
		return err
	}
	// Only approvals are judged here: the artifact's provenance, SBOM or
	// decisions signed by keys not given are not failures of this listing.
	bundles = gate.OfPredicateType(bundles, attest.PredicateApproval)
	ev, rej, err := gate.Gather(ctx, dg, gate.JSONs(bundles), tm)
	if err != nil {
		return usageErr(err, "")
	}
	views := []approvalView{}
	for _, a := range ev.Approvals {
		if f.env != "" && a.Environment != f.env {
			continue
		}
		v := approvalView{Environment: a.Environment, Approver: a.Approver, Signer: a.Signer.String(), Reason: a.Reason,
			Time: a.Time, SignedAt: a.SignedAt}
		if p != nil {
			v.Member, v.Groups = groupsOf(p, a.Signer)
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Time.Before(views[j].Time) })
	if f.jsonOut {
		out := struct {
			Artifact  string           `json:"artifact"`
			Approvals []approvalView   `json:"approvals"`
			Rejected  []rejectedBundle `json:"rejected"`
		}{dg, views, []rejectedBundle{}}
		for _, r := range rej {
			out.Rejected = append(out.Rejected, rejectedBundle{Bundle: bundles[r.Index].Name, Reason: r.Reason})
		}
		return writeJSON(s.out, out)
	}
	fmt.Fprintf(s.out, "%d verified approval(s) of %s\n", len(views), dg)
	for _, v := range views {
		who := v.Approver
		if p != nil {
			switch {
			case v.Member == "":
				who += " (in no group of the policy)"
			default:
				who += fmt.Sprintf(" (member %s of %s)", v.Member, strings.Join(v.Groups, ", "))
			}
		}
		fmt.Fprintf(s.out, "  %-8s %s  %s  signer %s", v.Environment, v.Time.UTC().Format(time.RFC3339), who, v.Signer)
		if v.Reason != "" {
			fmt.Fprintf(s.out, "  reason: %s", v.Reason)
		}
		fmt.Fprintln(s.out)
	}
	for _, r := range rej {
		fmt.Fprintf(s.out, "  IGNORED %s: %s\n", bundles[r.Index].Name, r.Reason)
	}
	return nil
}

// groupsOf returns the policy member whose key or identity signed, and the
// groups that member belongs to.
func groupsOf(p *policy.Policy, signer policy.Principal) (string, []string) {
	member := ""
	var groups []string
	for g, members := range p.Groups {
		for _, m := range members {
			hit := false
			for _, k := range m.KeyIDs {
				hit = hit || (signer.KeyID != "" && k == signer.KeyID)
			}
			for _, id := range m.Identities {
				hit = hit || (signer.Identity != "" && id.Identity == signer.Identity && id.Issuer == signer.Issuer)
			}
			if hit {
				member = m.Name
				groups = append(groups, g)
			}
		}
	}
	sort.Strings(groups)
	return member, groups
}

// evidenceBundles are the bundles about dg attached to the oci:// image
// it was resolved from (if any), and from --evidence or --server. A
// directory holds evidence about many artifacts: only what is about dg is
// kept (the rest is not "rejected").
func evidenceBundles(ctx context.Context, f *policyFlags, dg string) ([]gate.Bundle, error) {
	var out []gate.Bundle
	if f.image != nil {
		// The image's evidence, or, for another digest (a rollback's
		// earlier image), what is attached to that digest in the same
		// repository.
		im := &image{ref: f.image.ref.WithDigest(dg), cl: f.image.cl}
		bs, err := im.bundles(ctx)
		if err != nil {
			return nil, err
		}
		out = bs
	}
	switch {
	case f.evidence != "":
		all, err := gate.ReadDir(f.evidence)
		if err != nil {
			return nil, usageErr(err, "")
		}
		return append(out, aboutArtifact(all, dg)...), nil
	case f.image != nil && f.server == "":
		return out, nil
	}
	cl, err := newClientTrusting(serverURL(f.server), f.trustRoot)
	if err != nil {
		return nil, err
	}
	bs, err := gate.FromServer(ctx, cl, dg)
	if err != nil {
		return nil, remoteErr(err, "fetch evidence")
	}
	return append(out, bs...), nil
}
