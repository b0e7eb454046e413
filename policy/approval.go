package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
)

// MaxPredicateBytes bounds the approval predicates ParseApproval reads.
// (Rebuild and review predicates, which list many subjects or commits, are
// bounded by attest.MaxStatementBytes.)
const MaxPredicateBytes = 64 << 10

var sha256Digest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ApprovalPredicate is the predicate of PredicateApproval: a person's
// approval of one artifact for one environment. APPROVAL.md is its schema.
type ApprovalPredicate struct {
	Environment string    `json:"environment"`
	Artifact    string    `json:"artifact"` // sha256:HEX
	Approver    string    `json:"approver"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// NewApproval returns the in-toto statement (PredicateApproval, the
// artifact as its only subject) that an approver signs. It validates the
// predicate as ParseApproval does.
func NewApproval(p ApprovalPredicate) (*attest.Statement, error) {
	p.Time = p.Time.UTC().Truncate(time.Second)
	if err := p.validate(); err != nil {
		return nil, err
	}
	sub := attest.Subject{Digest: map[string]string{"sha256": strings.TrimPrefix(p.Artifact, "sha256:")}}
	return attest.NewStatement([]attest.Subject{sub}, PredicateApproval, p)
}

// ParseApproval parses an approval predicate from untrusted bytes. It
// refuses input over MaxPredicateBytes, unknown fields, trailing data, an
// empty environment or approver, an artifact that is not sha256:HEX
// (lowercase) and a missing time.
func ParseApproval(predicate []byte) (*ApprovalPredicate, error) {
	if len(predicate) > MaxPredicateBytes {
		return nil, fmt.Errorf("approval predicate is %d bytes, more than the limit of %d", len(predicate), MaxPredicateBytes)
	}
	var p ApprovalPredicate
	if err := strictJSON(predicate, &p); err != nil {
		return nil, fmt.Errorf("couldn't parse approval predicate: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func (p *ApprovalPredicate) validate() error {
	switch {
	case p.Environment == "" || len(p.Environment) > maxNameLen:
		return errors.New("approval has no environment (or one over 1024 bytes)")
	case p.Approver == "" || len(p.Approver) > maxNameLen:
		return errors.New("approval has no approver (or one over 1024 bytes)")
	case len(p.Reason) > 4*maxNameLen:
		return errors.New("approval reason is over 4096 bytes")
	case !sha256Digest.MatchString(p.Artifact):
		return fmt.Errorf("approval artifact %q is not sha256:HEX (64 lowercase hex digits)", p.Artifact)
	case p.Time.IsZero():
		return errors.New("approval has no time")
	}
	return nil
}

// ParseVulnScan reads the findings of an in-toto vulnerability predicate
// (PredicateVulnsV01 or PredicateVulnsV02,
// https://github.com/in-toto/attestation/blob/main/spec/predicates/vulns_02.md):
// scanner.uri and scanner.result[].id with severity[].score. A score is a
// CVSS base score (0.1-3.9 low, 4-6.9 medium, 7-8.9 high, 9-10 critical) or
// a severity name; a finding takes its highest score, and a finding with no
// readable score counts as critical. Other predicate types are an error.
func ParseVulnScan(predicateType string, predicate []byte) (scanner string, findings []Vulnerability, err error) {
	if predicateType != PredicateVulnsV01 && predicateType != PredicateVulnsV02 {
		return "", nil, fmt.Errorf("predicate type %q is not an in-toto vulnerability scan", predicateType)
	}
	if len(predicate) > attest.MaxStatementBytes {
		return "", nil, fmt.Errorf("scan is %d bytes, more than the limit of %d", len(predicate), attest.MaxStatementBytes)
	}
	var p struct {
		Scanner struct {
			URI    string `json:"uri"`
			Result []struct {
				ID       string `json:"id"`
				Severity []struct {
					Method string `json:"method"`
					Score  any    `json:"score"`
				} `json:"severity"`
			} `json:"result"`
		} `json:"scanner"`
	}
	if err := json.Unmarshal(predicate, &p); err != nil {
		return "", nil, fmt.Errorf("couldn't parse vulnerability scan: %w", err)
	}
	for i, r := range p.Scanner.Result {
		if r.ID == "" {
			return "", nil, fmt.Errorf("scan result %d has no id", i)
		}
		v := Vulnerability{ID: r.ID, Severity: SeverityCritical}
		best, ok := SeverityNone, false
		for _, s := range r.Severity {
			if sev, good := scoreSeverity(s.Score); good {
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
	return p.Scanner.URI, findings, nil
}

func scoreSeverity(score any) (Severity, bool) {
	var f float64
	switch s := score.(type) {
	case float64:
		f = s
	case string:
		if sev, err := ParseSeverity(s); err == nil {
			return sev, true
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return 0, false
		}
		f = v
	default:
		return 0, false
	}
	switch {
	case math.IsNaN(f) || f < 0 || f > 10:
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

// strictJSON decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
