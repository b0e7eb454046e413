package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/osv"
	"github.com/custody-dev/custody/internal/sbom"
)

// Suffixes of the evidence bundles written beside an artifact.
const (
	sbomSuffix  = build.SBOMSuffix
	vulnsSuffix = build.VulnsSuffix
)

// osvHint says what --osv-db takes.
const osvHint = "point --osv-db at a directory of OSV JSON files (DIR/Go/*.json, DIR/npm/*.json) or an all.zip"

type scanFlags struct {
	key, osvDB, sbomPath, bundle string
	jsonOut                      bool
}

func newScanCmd(s *streams) *cobra.Command {
	var f scanFlags
	c := &cobra.Command{
		Use:   "scan ARTIFACT --osv-db DIR --key KEY [--sbom BUNDLE|FILE]",
		Short: "Match an artifact's SBOM against an offline OSV database and sign the result",
		Long: "Reads the artifact's CycloneDX SBOM (--sbom: a bundle custody build wrote, or a CycloneDX JSON\n" +
			"file; default ARTIFACT" + sbomSuffix + ", else a Go binary's embedded build information),\n" +
			"matches every Go module and npm package against the OSV database in DIR (OSV JSON files as\n" +
			"published per ecosystem, e.g. DIR/Go/*.json, or all.zip), and signs an in-toto vulnerability\n" +
			"attestation (" + attest.PredicateVulnsV01 + ") about the artifact: ARTIFACT" + vulnsSuffix + " or --bundle.\n" +
			"Exit 0 when the scan is done, whatever it found: policy (maxSeverity) decides.",
		Args: argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runScan(c.Context(), s, &f, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "signing key: path to an encrypted key file or a pkcs11: URI")
	fl.StringVar(&f.osvDB, "osv-db", "", "directory of OSV JSON files (DIR/Go/*.json, DIR/npm/*.json, or all.zip)")
	fl.StringVar(&f.sbomPath, "sbom", "", "SBOM: a bundle with a CycloneDX statement about ARTIFACT, or a CycloneDX JSON file")
	fl.StringVar(&f.bundle, "bundle", "", "where to write the vulnerability attestation (default ARTIFACT"+vulnsSuffix+")")
	fl.BoolVar(&f.jsonOut, "json", false, "print the findings as JSON")
	return c
}

type scanReport struct {
	Artifact string        `json:"artifact"`
	SBOM     string        `json:"sbom"`
	Packages int           `json:"packages"`
	Findings []osv.Finding `json:"findings"`
	Bundle   string        `json:"bundle"`
}

func runScan(ctx context.Context, s *streams, f *scanFlags, artifact string) error {
	switch {
	case f.key == "":
		return usageErr(errors.New("--key is required"), "create a key with 'custody key generate --out NAME'")
	case f.osvDB == "":
		return usageErr(errors.New("--osv-db is required"), "download OSV data (e.g. https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip) into a directory")
	}
	ds, err := digest.Files(ctx, []string{artifact}, 0)
	if err != nil {
		return usageErr(fmt.Errorf("couldn't hash artifact: %w", err), "")
	}
	d := ds[0]
	subject := attest.Subject{Name: filepath.Base(artifact), Digest: map[string]string{d.Alg: d.Hex}}
	comps, source, err := scanComponents(artifact, f.sbomPath, d.Hex)
	if err != nil {
		return err
	}
	db, err := loadOSV(ctx, f.osvDB, build.ScanTargets(comps))
	if err != nil {
		return err
	}
	sg, release, err := loadSigner(s, f.key)
	if err != nil {
		return err
	}
	defer release()
	started := time.Now()
	findings := db.Scan(build.ScanTargets(comps))
	pred := build.VulnsPredicate(db, findings, started, time.Now())
	out := f.bundle
	if out == "" {
		out = artifact + vulnsSuffix
	}
	jobs := []build.EvidenceJob{{Bundle: out, Subjects: []attest.Subject{subject}, PredicateType: attest.PredicateVulnsV01, Predicate: pred}}
	if err := build.SignEvidence(ctx, keySigner(sg), jobs); err != nil {
		return err
	}
	rep := scanReport{Artifact: d.String(), SBOM: source, Packages: len(comps), Findings: findings, Bundle: out}
	if rep.Findings == nil {
		rep.Findings = []osv.Finding{}
	}
	if f.jsonOut {
		return writeJSON(s.out, rep)
	}
	fmt.Fprintf(s.out, "scan %s: %d package(s) from %s, %d vulnerabilit(ies)\n", rep.Artifact, rep.Packages, source, len(findings))
	printFindings(s.out, findings)
	fmt.Fprintf(s.out, "signed %s\n", out)
	return nil
}

// scanComponents finds what to scan: the SBOM at sbomPath, else the
// bundle beside the artifact, else the artifact's Go build information.
func scanComponents(artifact, sbomPath, sha256Hex string) ([]sbom.Component, string, error) {
	if sbomPath == "" {
		if _, err := os.Stat(artifact + sbomSuffix); err == nil {
			sbomPath = artifact + sbomSuffix
		}
	}
	if sbomPath == "" {
		fh, err := os.Open(artifact)
		if err != nil {
			return nil, "", usageErr(fmt.Errorf("couldn't read artifact: %w", err), "")
		}
		defer fh.Close()
		comps, err := sbom.FromBuildInfo(fh, filepath.Base(artifact))
		if errors.Is(err, sbom.ErrNotGoBinary) {
			return nil, "", usageErr(fmt.Errorf("no SBOM for %s: no %s beside it and it is not a Go binary", artifact, sbomSuffix),
				"pass --sbom BUNDLE|FILE (custody build writes NAME"+sbomSuffix+")")
		}
		if err != nil {
			return nil, "", usageErr(err, "")
		}
		return comps, "Go build information", nil
	}
	b, err := readLimited(sbomPath, attest.MaxStatementBytes*2)
	if err != nil {
		return nil, "", usageErr(fmt.Errorf("couldn't read SBOM: %w", err), "")
	}
	predicate, err := sbomPredicate(b, sha256Hex)
	if err != nil {
		return nil, "", usageErr(fmt.Errorf("SBOM %s: %w", sbomPath, err), "")
	}
	bom, err := sbom.Parse(predicate)
	if err != nil {
		return nil, "", usageErr(fmt.Errorf("SBOM %s: %w", sbomPath, err), "")
	}
	comps, _ := sbom.Components(bom)
	return comps, sbomPath, nil
}

// sbomPredicate returns the CycloneDX document in b: b itself, or the
// predicate of the in-toto statement in a Sigstore bundle, which must be a
// CycloneDX statement about the artifact.
func sbomPredicate(b []byte, sha256Hex string) ([]byte, error) {
	var probe struct {
		BOMFormat string          `json:"bomFormat"`
		MediaType string          `json:"mediaType"`
		Envelope  json.RawMessage `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if probe.BOMFormat != "" || probe.Envelope == nil {
		return b, nil
	}
	var bu bundle.Bundle
	if err := bu.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("not a Sigstore bundle: %w", err)
	}
	env := bu.GetDsseEnvelope()
	if env == nil {
		return nil, errors.New("the bundle signs no in-toto statement")
	}
	st, err := attest.ParseStatement(env.GetPayload())
	if err != nil {
		return nil, fmt.Errorf("couldn't parse statement: %w", err)
	}
	if st.PredicateType != attest.PredicateCycloneDX {
		return nil, fmt.Errorf("predicate type is %s, not %s", st.PredicateType, attest.PredicateCycloneDX)
	}
	for _, sub := range st.Subject {
		if strings.EqualFold(sub.Digest["sha256"], sha256Hex) {
			return st.Predicate, nil
		}
	}
	return nil, fmt.Errorf("the SBOM is not about this artifact (sha256:%s)", sha256Hex)
}

// loadOSV loads what in the database can affect ts (osv.LoadFor).
func loadOSV(ctx context.Context, dir string, ts []osv.Target) (*osv.DB, error) {
	db, err := osv.LoadFor(ctx, dir, ts)
	if err != nil {
		return nil, usageErr(err, osvHint)
	}
	return db, nil
}

func printFindings(w io.Writer, findings []osv.Finding) {
	for _, f := range findings {
		sev := "no severity given (policy counts it as critical)"
		if len(f.Scores) > 0 {
			var parts []string
			for _, sc := range f.Scores {
				parts = append(parts, sc.Method+" "+string(sc.Score))
			}
			sev = strings.Join(parts, ", ")
		}
		fixed := "no fix"
		if f.Fixed != "" {
			fixed = "fixed in " + f.Fixed
		}
		fmt.Fprintf(w, "  %s %s@%s: %s; %s\n", f.ID, f.Package, f.Version, fixed, sev)
	}
}
