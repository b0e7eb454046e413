package attest

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/custody-dev/custody/internal/jsonstrict"
	"github.com/custody-dev/custody/internal/lazyre"
)

// Predicate types custody knows by name but does not parse: the evidence
// kinds a policy may require (an SBOM is checked for presence, not read).
const (
	PredicateCycloneDX  = "https://cyclonedx.org/bom"
	PredicateSPDX       = "https://spdx.dev/Document"
	PredicateCosignVuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	PredicateTestResult = "https://in-toto.io/attestation/test-result/v0.1"
)

// maxNameLen bounds the names, identities and IDs a predicate carries.
const maxNameLen = 1024

var (
	commitHex    = lazyre.New(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	sha256Hex    = lazyre.New(`^[0-9a-f]{64}$`)
	sha256Digest = lazyre.New(`^sha256:[0-9a-f]{64}$`)
)

// decodePredicate is the first step of every predicate parser: b is at most
// limit bytes, one JSON object that jsonstrict.Check accepts (no duplicate
// member name, which another parser would read differently; valid UTF-8,
// so what is stored is what was signed), decoded into v. With known, a
// member v has no field for is an error too. what names the predicate in
// errors.
func decodePredicate(what string, b []byte, limit int, known bool, v any) error {
	if len(b) > limit {
		return fmt.Errorf("%s predicate is %d bytes, more than the limit of %d", what, len(b), limit)
	}
	if err := jsonstrict.Check(b); err != nil {
		return fmt.Errorf("couldn't parse %s predicate: %w", what, err)
	}
	if bytes.TrimSpace(b)[0] != '{' {
		return fmt.Errorf("%s predicate is not a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if known {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("couldn't parse %s predicate: %w", what, err)
	}
	return nil
}
