package policy

import (
	"math"
	"strconv"
	"strings"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
)

var sha256Digest = lazyre.New(`^sha256:[0-9a-f]{64}$`)

// VulnFindings reads the findings of an in-toto vulnerability predicate
// (attest.ParseVulns): scanner.result[].id with severity[].score. A score
// is a CVSS base score (0.1-3.9 low, 4-6.9 medium, 7-8.9 high, 9-10
// critical) or a severity name; a finding takes its highest score, and a
// finding with no readable score counts as critical.
func VulnFindings(p *attest.VulnsPredicate) []Vulnerability {
	var findings []Vulnerability
	for _, r := range p.Scanner.Result {
		v := Vulnerability{ID: r.ID, Severity: SeverityCritical}
		best, ok := SeverityNone, false
		for _, s := range r.Severity {
			if sev, good := scoreSeverity(string(s.Score)); good {
				if !ok || sev > best {
					best = sev
				}
				ok = true
			}
		}
		if ok {
			v.Severity = best
		}
		findings = append(findings, v)
	}
	return findings
}

func scoreSeverity(score string) (Severity, bool) {
	if sev, err := ParseSeverity(score); err == nil {
		return sev, true
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(score), 64)
	switch {
	case err != nil || math.IsNaN(f) || f < 0 || f > 10:
		return 0, false
	case f == 0:
		return SeverityNone, true
	case f < 4:
		return SeverityLow, true
	case f < 7:
		return SeverityMedium, true
	case f < 9:
		return SeverityHigh, true
	}
	return SeverityCritical, true
}
