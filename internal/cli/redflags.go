package cli

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/redflags"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

type redFlagsFlags struct {
	server, evidence, digest, auditKey, trustedRoot string
	wait                                            time.Duration
	jsonOut                                         bool
}

// redFlagsResult is custody redflags' JSON output.
type redFlagsResult struct {
	Artifact   string                `json:"artifact"`
	AuditKey   string                `json:"auditKey"`
	Statements []*redflags.Statement `json:"statements"`
	Rejected   []rejectedBundle      `json:"rejected"`
	// Missing are the verified provenance bundles (SHA-256) of the
	// artifact the server indexed that no statement is about (--server
	// only): builds whose red flags are not signed yet, or failed.
	Missing []string `json:"missing"`
}

func newRedFlagsCmd(s *streams) *cobra.Command {
	var f redFlagsFlags
	c := &cobra.Command{
		Use:   "redflags (ARTIFACT | --digest sha256:HEX) (--server URL | --evidence DIR --audit-key audit.pub --trusted-root F) [--json]",
		Short: "Show what the server found when it compared the artifact's build with its earlier builds",
		Long: "custody serve compares every build it indexes with the earlier builds of its lineage and signs\n" +
			"what it finds (red flags: a new dependency, builder or source, a toolchain change, an unusual\n" +
			"duration, ...) with its audit key. This prints each such statement about the artifact after\n" +
			"verifying it: signed by the audit key (--audit-key, else the server's, which it names), logged\n" +
			"or timestamped by the server's log or TSA (--trusted-root, else the server's). Bundles that do\n" +
			"not verify are listed and ignored. See docs/redflags.md for what each kind means and what\n" +
			"clears it. Exit 0 when a statement verified (with or without flags), 1 when none did,\n" +
			"2 bad input, 3 server unreachable.",
		Example: "  custody redflags --server $URL dist/app\n" +
			"  custody redflags --server $URL --wait 30s --json --digest sha256:…",
		Args: argsBetween(0, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runRedFlags(c.Context(), s, &f, args)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.server, "server", "", "custody serve URL (default $CUSTODY_SERVER); token from $CUSTODY_TOKEN")
	fl.StringVar(&f.evidence, "evidence", "", "read the statements from bundles in DIR (custody fetch --out DIR) instead of a server")
	fl.StringVar(&f.digest, "digest", "", "artifact digest sha256:HEX (instead of the artifact file)")
	fl.StringVar(&f.auditKey, "audit-key", "", "the server's audit public key (PEM); required with --evidence, pinned with --server")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json with the server's log and TSA (default: the server's)")
	fl.DurationVar(&f.wait, "wait", 0, "with --server: wait up to this long for a statement (the server signs it a moment after the build)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the statements as JSON")
	return c
}

func runRedFlags(ctx context.Context, s *streams, f *redFlagsFlags, args []string) error {
	art, err := artifactDigest(args, f.digest)
	if err != nil {
		return err
	}
	f.server = sourceServer(f.server, f.evidence)
	switch {
	case f.evidence != "" && f.server != "":
		return usageErr(errors.New("give either --evidence or --server, not both"), "")
	case f.evidence == "" && f.server == "":
		return usageErr(errors.New("no evidence: give --server URL or --evidence DIR"), "")
	case f.evidence != "" && (f.auditKey == "" || f.trustedRoot == ""):
		return usageErr(errors.New("--evidence needs --audit-key and --trusted-root"),
			"custody key public --server URL --name audit > audit.pub; custody trust export --server URL --out trusted_root.json")
	case f.evidence != "" && f.wait > 0:
		return usageErr(errors.New("--wait needs --server"), "")
	}
	read, audit, tm, err := redFlagsSource(ctx, s, f, art)
	if err != nil {
		return err
	}
	res := &redFlagsResult{Artifact: art, AuditKey: signer.KeyID(audit), Statements: []*redflags.Statement{}, Rejected: []rejectedBundle{}}
	deadline := time.Now().Add(f.wait)
	for {
		bs, builds, err := read(ctx)
		if err != nil {
			return err
		}
		res.Statements, res.Rejected, res.Missing = res.Statements[:0], res.Rejected[:0], []string{}
		for _, b := range bs {
			st, err := redflags.Verify(ctx, b.JSON, b.Name, art, tm)
			if err != nil {
				res.Rejected = append(res.Rejected, rejectedBundle{Bundle: b.Name, Reason: err.Error()})
				continue
			}
			res.Statements = append(res.Statements, st)
		}
		for _, b := range builds {
			if !slices.ContainsFunc(res.Statements, func(st *redflags.Statement) bool { return st.RedFlags.Build.Bundle == b }) {
				res.Missing = append(res.Missing, b)
			}
		}
		if (len(res.Statements) > 0 && len(res.Missing) == 0) || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if f.jsonOut {
		if err := writeJSON(s.out, res); err != nil {
			return err
		}
	} else {
		printRedFlags(s.out, res)
	}
	const hint = "custody serve signs them a moment after it indexes the build's provenance: retry with --wait 30s; " +
		"none at all means the server could not compute them (its log and custody_redflags_failures_total say why)"
	switch {
	case len(res.Statements) == 0:
		return failErr(fmt.Errorf("no verified red flags statement about %s", art), hint)
	case len(res.Missing) > 0:
		return failErr(fmt.Errorf("%d build(s) of %s have no verified red flags statement", len(res.Missing), art), hint)
	}
	return nil
}

// redFlagsSource returns how to read the candidate bundles about art, the
// audit key and the trust material to verify them with.
//
// read returns the red flags bundles and, from a server, the SHA-256 of
// the verified provenance bundles about art.
func redFlagsSource(ctx context.Context, s *streams, f *redFlagsFlags, art string) (read func(context.Context) ([]gate.Bundle, []string, error), audit crypto.PublicKey, tm root.TrustedMaterial, err error) {
	var trusted root.TrustedMaterial
	if f.trustedRoot != "" {
		if trusted, err = verify.LoadTrustedRoot(f.trustedRoot); err != nil {
			return nil, nil, nil, usageErr(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
	}
	if f.evidence != "" {
		if audit, err = loadPublicKey(f.auditKey); err != nil {
			return nil, nil, nil, err
		}
		read = func(context.Context) ([]gate.Bundle, []string, error) {
			bs, err := gate.ReadDir(f.evidence)
			if err != nil {
				return nil, nil, usageErr(err, "")
			}
			return gate.OfPredicateType(gate.ForArtifact(bs, art), attest.PredicateRedFlags), nil, nil
		}
	} else {
		cl, err := newClient(f.server)
		if err != nil {
			return nil, nil, nil, err
		}
		if audit, err = auditKeyFor(ctx, s, cl, f.auditKey); err != nil {
			return nil, nil, nil, err
		}
		if trusted == nil {
			b, err := cl.TrustedRoot(ctx)
			if err != nil {
				return nil, nil, nil, remoteErr(err, "fetch the trusted root")
			}
			if trusted, err = root.NewTrustedRootFromJSON(b); err != nil {
				return nil, nil, nil, failErr(fmt.Errorf("the server's trusted root: %w", err), "")
			}
		}
		read = func(ctx context.Context) ([]gate.Bundle, []string, error) {
			found, err := cl.SearchAll(ctx, api.Query{Digest: art, PredicateType: attest.PredicateRedFlags})
			if err != nil {
				return nil, nil, remoteErr(err, "search red flags")
			}
			out := make([]gate.Bundle, 0, len(found))
			for _, e := range found {
				out = append(out, gate.Bundle{Name: fmt.Sprintf("server:%d", e.ID), JSON: e.Bundle})
			}
			var builds []string
			for _, pt := range []string{attest.PredicateSLSAv1, attest.PredicateSLSAv02} {
				prov, err := cl.SearchAll(ctx, api.Query{Digest: art, PredicateType: pt})
				if err != nil {
					return nil, nil, remoteErr(err, "search provenance")
				}
				for _, e := range prov {
					if e.Verified {
						builds = append(builds, e.BundleSHA256)
					}
				}
			}
			return out, builds, nil
		}
	}
	km, err := gate.KeyMaterial(audit)
	if err != nil {
		return nil, nil, nil, usageErr(err, "")
	}
	return read, audit, root.TrustedMaterialCollection{trusted, km}, nil
}

// printRedFlags prints the statements for people.
func printRedFlags(w io.Writer, res *redFlagsResult) {
	for _, st := range res.Statements {
		p := st.RedFlags
		head := "no red flags"
		if n := len(p.Flags); n > 0 {
			head = fmt.Sprintf("%d red flag(s)", n)
		}
		fmt.Fprintf(w, "%s %s: %s\n", st.Subject.Name, res.Artifact, head)
		b := p.Build
		fmt.Fprintf(w, "  build %s from %s %s by %s (provenance bundle sha256:%s)\n", orDash(b.BuildID), orDash(b.SourceURI), orDash(b.SourceRef), orDash(b.BuilderID), b.Bundle)
		l := p.Lineage
		fmt.Fprintf(w, "  compared with %d earlier build(s) of %s from %s (track %s)\n", l.Compared, l.SubjectName, orDash(l.SourceURI), orDash(l.Track))
		for _, fl := range p.Flags {
			fmt.Fprintf(w, "  %s: %s\n", fl.Kind, fl.Message)
			if fl.Clear != "" {
				fmt.Fprintf(w, "    clears it: %s\n", fl.Clear)
			}
		}
		if len(p.Dependencies) > 0 {
			since := "the previous build"
			if lr := l.LastRelease; lr != nil {
				since = "build " + orDash(lr.BuildID)
			}
			fmt.Fprintf(w, "  dependencies since %s:\n", since)
			for _, d := range p.Dependencies {
				switch d.Change {
				case "added":
					fmt.Fprintf(w, "    + %s %s\n", d.Name, d.To)
				case "removed":
					fmt.Fprintf(w, "    - %s %s\n", d.Name, d.From)
				default:
					fmt.Fprintf(w, "    ~ %s %s -> %s\n", d.Name, orDash(d.From), orDash(d.To))
				}
			}
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		fmt.Fprintf(w, "  signed by audit key %s at %s (%s; computed by %s)\n", res.AuditKey, st.SignedAt.UTC().Format(time.RFC3339), st.Source, p.ComputedBy)
	}
	for _, m := range res.Missing {
		fmt.Fprintf(w, "missing: no red flags statement about the build of provenance bundle sha256:%s\n", m)
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(w, "rejected %s: %s\n", r.Bundle, strings.ReplaceAll(r.Reason, "\n", " "))
	}
}
