package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/osv"
	"github.com/custody-dev/custody/internal/sbom"
)

// Suffixes of the evidence bundles written beside a provenance bundle.
const (
	SBOMSuffix  = ".sbom" + BundleSuffix
	VulnsSuffix = ".vulns" + BundleSuffix
)

// ScannerURI names custody's scanner in vulnerability predicates.
const ScannerURI = "https://custody.dev/scanner/osv"

// ScanTargets are the components an OSV database can match: those with an
// ecosystem.
func ScanTargets(comps []sbom.Component) []osv.Target {
	ts := make([]osv.Target, 0, len(comps))
	for _, c := range comps {
		if c.Ecosystem == "" {
			continue
		}
		ts = append(ts, osv.Target{Ecosystem: c.Ecosystem, Name: c.Name, Version: c.Version, PURL: c.PURL})
	}
	return ts
}

// VulnsPredicate is the vulnerability predicate of a scan against db that
// ran from started to finished.
func VulnsPredicate(db *osv.DB, findings []osv.Finding, started, finished time.Time) *attest.VulnsPredicate {
	sc := attest.VulnsScanner{URI: ScannerURI, DB: attest.VulnsDB{URI: "https://osv.dev"}}
	if t := db.LastModified(); !t.IsZero() {
		sc.DB.LastUpdate = t.Format(time.RFC3339)
		sc.DB.Version = fmt.Sprintf("%d entries, last modified %s", db.Len(), sc.DB.LastUpdate)
	}
	return osv.NewPredicate(findings, sc, started, finished)
}

// EvidencePath names an evidence bundle beside a provenance bundle:
// dist/app.sigstore.json -> dist/app.sbom.sigstore.json.
func EvidencePath(provenanceBundle, suffix string) string {
	base := strings.TrimSuffix(provenanceBundle, BundleSuffix)
	if base == provenanceBundle {
		base = strings.TrimSuffix(base, ".json")
	}
	return base + suffix
}

// bundleComponents returns, for every provenance bundle, the build's
// resolved dependencies plus the build information of the bundle's Go
// binaries, and all of them as scan targets.
func bundleComponents(res *Result, bundles []SignedBundle) ([][]sbom.Component, []osv.Target, error) {
	lockComps := sbom.FromDependencies(res.Provenance.BuildDefinition.ResolvedDependencies)
	paths := map[string]string{} // subject name -> file
	for _, o := range res.Outputs {
		paths[o.Name] = o.Path
	}
	per := make([][]sbom.Component, len(bundles))
	for i, b := range bundles {
		lists := [][]sbom.Component{lockComps}
		for _, sub := range b.Subjects {
			p, ok := paths[sub.Name]
			if !ok {
				continue
			}
			fh, err := os.Open(p)
			if err != nil {
				return nil, nil, fmt.Errorf("couldn't read output: %w", err)
			}
			bi, err := sbom.FromBuildInfo(fh, sub.Name)
			fh.Close()
			if err == nil {
				lists = append(lists, bi)
			}
		}
		per[i] = sbom.Merge(lists...)
	}
	return per, ScanTargets(sbom.Merge(per...)), nil
}

// signBuildEvidence signs, for every provenance bundle, an SBOM of its
// components (when sopts.SBOM) and a vulnerability scan of them (when db
// is not nil), beside the provenance bundle, and records them in out.
func signBuildEvidence(ctx context.Context, sopts SignOptions, bundles []SignedBundle, per [][]sbom.Component, db *osv.DB, out *Released) error {
	if !sopts.SBOM && db == nil {
		return nil
	}
	var jobs []EvidenceJob
	seen := map[string]bool{}
	now := time.Now()
	for i, b := range bundles {
		comps := per[i]
		if sopts.SBOM {
			var subs []sbom.Subject
			for _, sub := range b.Subjects {
				subs = append(subs, sbom.Subject{Name: sub.Name, SHA256: sub.Digest["sha256"]})
			}
			pred, err := sbom.Encode(sbom.New(subs, comps, sbom.Options{Tool: "custody build", Time: now}))
			if err != nil {
				return err
			}
			path := EvidencePath(b.Bundle, SBOMSuffix)
			jobs = append(jobs, EvidenceJob{Bundle: path, Subjects: b.Subjects, PredicateType: attest.PredicateCycloneDX, Predicate: json.RawMessage(pred)})
			out.SBOMs = append(out.SBOMs, SignedBundle{Bundle: path, Subjects: b.Subjects})
		}
		if db != nil {
			started := time.Now()
			findings := db.Scan(ScanTargets(comps))
			path := EvidencePath(b.Bundle, VulnsSuffix)
			jobs = append(jobs, EvidenceJob{Bundle: path, Subjects: b.Subjects, PredicateType: attest.PredicateVulnsV01, Predicate: VulnsPredicate(db, findings, started, time.Now())})
			out.Scans = append(out.Scans, SignedBundle{Bundle: path, Subjects: b.Subjects})
			for _, f := range findings {
				if k := f.ID + " " + f.PURL; !seen[k] {
					seen[k] = true
					out.Findings = append(out.Findings, f)
				}
			}
		}
	}
	return SignEvidence(ctx, sopts.Sign, jobs)
}
