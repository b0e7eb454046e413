package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/trust"
)

// reservedNamespaces are the predicate types whose meaning is server state,
// written without their scheme: an in-toto statement of one of these types
// (or a later version under the same path) is made only by the server
// itself (audit entries, signed with the audit key) or stands for a
// document the server accepts only through its governed routes (trust
// root versions, policies: POST /api/v1/trust-root and /api/v1/policies).
// No client path may put one in the log or the index (checkReserved).
var reservedNamespaces = []string{
	"custody.dev/audit",      // PredicateAudit: the server's audit entries
	"custody.dev/trust-root", // trust.DocumentType: a custody trust root version
	"custody.dev/trust-keys", // trust.KeysMediaType: a trust root's key record
	"custody.dev/policy",     // a policy (policy.APIVersion custody.dev/policy/v1)
	"custody.dev/redflags",   // attest.PredicateRedFlags: what the server found comparing a build with its lineage
}

// reservedPayloadTypes are the DSSE payload types of documents that are
// server state: signed policies and trust root versions.
var reservedPayloadTypes = []string{policy.SignedPayloadType, trust.DocumentPayloadType}

// errReserved is wrapped by checkReserved's error: the request asks for an
// entry of a type only the server writes. Handlers answer 403.
var errReserved = errors.New("reserved for the server's own records")

// reservedPredicate reports whether predicateType names server state. The
// comparison ignores case and the scheme (http or https), so spelling
// variants of a reserved type are reserved too.
func reservedPredicate(predicateType string) bool {
	t := strings.ToLower(strings.TrimSpace(predicateType))
	for _, scheme := range []string{"https://", "http://"} {
		t = strings.TrimPrefix(t, scheme)
	}
	for _, ns := range reservedNamespaces {
		rest, ok := strings.CutPrefix(t, ns)
		if ok && (rest == "" || strings.ContainsRune("/?#@", rune(rest[0]))) {
			return true
		}
	}
	return false
}

// reservedPayloadType reports whether a DSSE payload type (a media type,
// compared without parameters and case) is a server-state document's.
func reservedPayloadType(payloadType string) bool {
	t, _, _ := strings.Cut(payloadType, ";")
	t = strings.TrimSpace(t)
	for _, r := range reservedPayloadTypes {
		if strings.EqualFold(t, r) {
			return true
		}
	}
	return false
}

// checkReserved refuses a DSSE envelope a client sends (to be signed,
// pushed or logged) when its payload type is reserved, or when its payload
// is an in-toto statement any of whose "predicateType" members (matched
// case-insensitively, as encoding/json matches them; every duplicate
// counts) is reserved. A payload that is not a JSON object is not a
// statement and is left to the caller's own checks (a malformed one is
// judged by the members read before it breaks off). The error wraps
// errReserved and names the type.
func checkReserved(payloadType string, payload []byte) error {
	if reservedPayloadType(payloadType) {
		return fmt.Errorf("payload type %q is %w", payloadType, errReserved)
	}
	// A payload that stops being JSON after a reserved member still
	// names it: every member read before the error counts.
	types, _ := predicateTypes(payload)
	for _, t := range types {
		if reservedPredicate(t) {
			return fmt.Errorf("predicate type %q is %w", t, errReserved)
		}
	}
	return nil
}

// checkReservedStatement is checkReserved for a statement the signing
// service is asked to sign (its payload type is attest.PayloadType).
func checkReservedStatement(statement []byte) error {
	return checkReserved(attest.PayloadType, statement)
}

// checkReservedBundle is checkReserved for a pushed Sigstore bundle (JSON):
// the DSSE envelope's payload type and statement. A bundle that does not
// parse, or has no DSSE envelope, is left to checkBundle.
func checkReservedBundle(bundleJSON []byte) error {
	pb := new(protobundle.Bundle)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(bundleJSON, pb); err != nil {
		return nil
	}
	env := pb.GetDsseEnvelope()
	if env == nil {
		return nil
	}
	return checkReserved(env.GetPayloadType(), env.GetPayload())
}

// predicateTypes returns the string values of every top-level member of
// the JSON object b whose name is "predicateType" in any case, in order.
// It reads b as tokens, so duplicate members are all seen; on an error it
// returns the values read until then.
func predicateTypes(b []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, err
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return out, err
		}
		if !strings.EqualFold(name, "predicateType") {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			out = append(out, s)
		}
	}
	return out, nil
}
