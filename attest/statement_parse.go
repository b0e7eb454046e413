package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/custody-dev/custody/internal/jsonstrict"
)

// digestHexLen is the hex length of the digest algorithms whose values
// ParseStatement validates. Other algorithms are allowed but never matched.
var digestHexLen = map[string][]int{
	"sha256":    {64},
	"sha384":    {96},
	"sha512":    {128},
	"sha1":      {40},
	"gitCommit": {40, 64}, // SHA-1 or SHA-256 object format
}

// NewStatement returns an in-toto Statement v1 about subjects carrying
// predicate, which is marshalled to JSON. The result is validated with the
// same rules as ParseStatement.
func NewStatement(subjects []Subject, predicateType string, predicate any) (*Statement, error) {
	raw, err := json.Marshal(predicate)
	if err != nil {
		return nil, fmt.Errorf("couldn't marshal predicate: %w", err)
	}
	s := &Statement{
		Type:          StatementTypeV1,
		Subject:       subjects,
		PredicateType: predicateType,
		Predicate:     raw,
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseStatement parses an in-toto statement from untrusted bytes. It accepts
// Statement v1 and v0.1 (the latter is still emitted by the SLSA GitHub
// generators) and rejects input larger than MaxStatementBytes, statements
// without subjects, subjects without digests, malformed digests of the known
// algorithms (sha256, sha384, sha512, sha1, gitCommit: lowercase hex of the
// algorithm's length), an empty predicateType, and JSON that
// jsonstrict.Check refuses: a duplicate member name, invalid UTF-8.
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > MaxStatementBytes {
		return nil, fmt.Errorf("statement is %d bytes, more than the limit of %d", len(b), MaxStatementBytes)
	}
	// A name given twice (a hidden first "subject") or a string that is
	// not UTF-8 would read differently in another parser, or be stored
	// as other bytes than were signed.
	if err := jsonstrict.Check(b); err != nil {
		return nil, fmt.Errorf("couldn't parse statement: %w", err)
	}
	var s Statement
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("couldn't parse statement: %w", err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Marshal validates s and returns its JSON encoding.
func (s *Statement) Marshal() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("couldn't marshal statement: %w", err)
	}
	return b, nil
}

// SubjectFor returns the first subject whose digest for alg equals hex,
// compared case-insensitively.
func (s *Statement) SubjectFor(alg, hex string) (Subject, bool) {
	if hex == "" {
		return Subject{}, false
	}
	for _, sub := range s.Subject {
		if v, ok := sub.Digest[alg]; ok && strings.EqualFold(v, hex) {
			return sub, true
		}
	}
	return Subject{}, false
}

func (s *Statement) validate() error {
	if s.Type != StatementTypeV1 && s.Type != StatementTypeV01 {
		return fmt.Errorf("statement _type %q is neither %q nor %q", s.Type, StatementTypeV1, StatementTypeV01)
	}
	if len(s.Subject) == 0 {
		return errors.New("statement has no subject")
	}
	for i, sub := range s.Subject {
		if len(sub.Digest) == 0 {
			return fmt.Errorf("subject %d (%q) has no digest", i, sub.Name)
		}
		for alg, v := range sub.Digest {
			if err := checkDigest(alg, v); err != nil {
				return fmt.Errorf("subject %d (%q): %w", i, sub.Name, err)
			}
		}
	}
	if s.PredicateType == "" {
		return errors.New("statement has no predicateType")
	}
	if p := bytes.TrimSpace(s.Predicate); len(p) > 0 && p[0] != '{' && !bytes.Equal(p, []byte("null")) {
		return errors.New("statement predicate is not a JSON object")
	}
	return nil
}

func checkDigest(alg, v string) error {
	if alg == "" {
		return errors.New("digest algorithm is empty")
	}
	if v == "" {
		return fmt.Errorf("%s digest is empty", alg)
	}
	lens, known := digestHexLen[alg]
	if !known {
		return nil
	}
	okLen := false
	for _, n := range lens {
		okLen = okLen || len(v) == n
	}
	if !okLen {
		return fmt.Errorf("%s digest has %d hex digits, want %v", alg, len(v), lens)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%s digest is not lowercase hex", alg)
		}
	}
	return nil
}
