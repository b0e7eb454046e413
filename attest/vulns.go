package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// In-toto vulnerability predicate types
// (https://github.com/in-toto/attestation/blob/main/spec/predicates/vulns_02.md).
// custody writes v0.1 (`custody scan`, `custody build --scan`) and reads
// both.
const (
	PredicateVulnsV01 = "https://in-toto.io/attestation/vulns/v0.1"
	PredicateVulnsV02 = "https://in-toto.io/attestation/vulns/v0.2"
)

// VulnsPredicate is the predicate of PredicateVulnsV01 and V02.
type VulnsPredicate struct {
	Invocation *VulnsInvocation `json:"invocation,omitempty"`
	Scanner    VulnsScanner     `json:"scanner"`
	Metadata   VulnsMetadata    `json:"metadata"`
}

// VulnsInvocation says what ran the scan.
type VulnsInvocation struct {
	URI      string `json:"uri,omitempty"`
	EventID  string `json:"event_id,omitempty"`
	Producer string `json:"builder.id,omitempty"`
}

// VulnsScanner names the scanner, its database and the results.
type VulnsScanner struct {
	URI     string        `json:"uri"`
	Version string        `json:"version,omitempty"`
	DB      VulnsDB       `json:"db"`
	Result  []VulnsResult `json:"result"`
}

// VulnsDB describes the vulnerability database.
type VulnsDB struct {
	URI        string `json:"uri,omitempty"`
	Version    string `json:"version,omitempty"`
	LastUpdate string `json:"lastUpdate"`
}

// VulnsResult is one vulnerability.
type VulnsResult struct {
	ID          string           `json:"id"`
	Severity    []VulnsScore     `json:"severity"`
	Annotations []map[string]any `json:"annotations,omitempty"`
}

// VulnsScore is one severity rating: a CVSS base score ("7.5") or a
// severity name ("HIGH"), as its method gives it.
type VulnsScore struct {
	Method string     `json:"method"`
	Score  ScoreValue `json:"score"`
}

// ScoreValue is a score as written: the specification makes it a string,
// and some scanners write a JSON number, kept here as its literal text
// ("9.8"). Other JSON values are an error.
type ScoreValue string

// UnmarshalJSON reads a string or a number.
func (s *ScoreValue) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = ScoreValue(v)
		return nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return errors.New("vulnerability score is neither a string nor a number")
	}
	*s = ScoreValue(n)
	return nil
}

// VulnsMetadata holds the scan's times.
type VulnsMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}

// ParseVulns parses a vulnerability predicate (v0.1 or v0.2) from untrusted
// bytes. Members it does not know are ignored. Besides what
// decodePredicate refuses (over MaxStatementBytes, a duplicate member,
// invalid UTF-8), it refuses a result without an id and a score that is
// neither a string nor a number.
func ParseVulns(b []byte) (*VulnsPredicate, error) {
	var p VulnsPredicate
	if err := decodePredicate("vulnerability", b, MaxStatementBytes, false, &p); err != nil {
		return nil, err
	}
	for i, r := range p.Scanner.Result {
		if r.ID == "" {
			return nil, fmt.Errorf("scan result %d has no id", i)
		}
	}
	return &p, nil
}
