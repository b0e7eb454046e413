// Package pack reads and writes custody evidence packs: one file that holds
// everything needed to decide offline whether an artifact may enter an
// environment, and that the device checks before it believes any of it.
//
// A pack is a JSON document (media type MediaType) with two members: a
// manifest, which is a Sigstore bundle v0.3
// (https://github.com/sigstore/protobuf-specs/blob/main/protos/sigstore_bundle.proto)
// whose DSSE envelope signs an in-toto statement
// (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
// about the artifact with predicate type PredicateType, and a list of named
// entries (the artifact's evidence bundles, the custody trust root chain,
// the Sigstore trusted root, the environment's signed policy, log
// checkpoints and consistency proofs). The manifest lists every entry by
// name, SHA-256 and size; an entry the manifest does not list, a listed
// entry that is missing, a name outside the fixed grammar of names and a
// name given twice are refused. Nothing in a pack is a file path, nothing
// is compressed, and every part has a size cap. docs/design/evidence-pack.md
// says why this format and not an OCI image layout; docs/edge.md shows it
// used.
package pack

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/custody-dev/custody/internal/jsonstrict"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/verify"
)

// Format identifiers.
const (
	// MediaType is the pack document's mediaType member.
	MediaType = "application/vnd.custody.pack.v1+json"
	// PredicateType is the predicate type of the manifest statement.
	PredicateType = "https://custody.dev/pack/v1"
)

// Size caps. A pack over MaxBytes, with more than MaxEntries entries, or
// with an entry over its kind's cap is refused before anything in it is
// verified.
const (
	MaxBytes      = 64 << 20
	MaxEntries    = 1024
	maxSmallEntry = 1 << 20  // trust roots, trusted root, policy
	maxNoteEntry  = 64 << 10 // checkpoints, consistency proofs
)

// Entry kinds, told apart by name (see kindOf).
const (
	KindBundle      = "bundle"       // bundle/NNNN: a Sigstore bundle of evidence
	KindTrustRoot   = "trust-root"   // trust-root/V: custody trust root version V (signed)
	KindTrustedRoot = "trusted-root" // trusted-root.json: Sigstore trusted root
	KindPolicy      = "policy"       // policy.signed.json: the environment's signed policy
	KindCheckpoint  = "checkpoint"   // checkpoint/N: a log's signed checkpoint note
	KindProof       = "consistency"  // consistency/N/SIZE: proof from SIZE to checkpoint N
)

// ErrMalformed is returned (wrapped) for bytes that are not a well-formed
// pack: too large, not JSON, unknown members, bad or repeated names.
var ErrMalformed = errors.New("malformed evidence pack")

var (
	nameRe = lazyre.New(`^(bundle/[0-9]{4}|trust-root/[1-9][0-9]{0,5}|trusted-root\.json|policy\.signed\.json|checkpoint/[0-9]{1,2}|consistency/[0-9]{1,2}/[1-9][0-9]{0,18})$`)
)

// kindOf returns the kind of a valid entry name and its size cap.
func kindOf(name string) (kind string, limit int, ok bool) {
	if !nameRe.MatchString(name) {
		return "", 0, false
	}
	switch k, _, _ := strings.Cut(name, "/"); k {
	case "bundle":
		return KindBundle, verify.MaxBundleBytes, true
	case "trust-root":
		return KindTrustRoot, maxSmallEntry, true
	case "trusted-root.json":
		return KindTrustedRoot, maxSmallEntry, true
	case "policy.signed.json":
		return KindPolicy, maxSmallEntry, true
	case "checkpoint":
		return KindCheckpoint, maxNoteEntry, true
	default:
		return KindProof, maxNoteEntry, true
	}
}

// Entry is one named part of a pack.
type Entry struct {
	Name    string `json:"name"`
	Content []byte `json:"content"` // base64 in JSON
}

// Kind returns the entry's kind (KindBundle, ...).
func (e Entry) Kind() string {
	k, _, _ := kindOf(e.Name)
	return k
}

// document is the pack file.
type document struct {
	MediaType string          `json:"mediaType"`
	Manifest  json.RawMessage `json:"manifest"`
	Entries   []Entry         `json:"entries"`
}

// Pack is a pack as read by Parse: well formed, nothing verified yet.
type Pack struct {
	// Manifest is the manifest's Sigstore bundle JSON.
	Manifest []byte
	// Entries are in file order, names unique and valid.
	Entries []Entry
}

// Entry returns the entry named name.
func (p *Pack) Entry(name string) (Entry, bool) {
	for _, e := range p.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Parse reads a pack strictly: at most MaxBytes, exactly one JSON object
// with no repeated member names (jsonstrict) and no unknown members, the
// right media type, at most MaxEntries entries, every name valid for its
// kind and given once, every entry under its kind's cap. Errors wrap
// ErrMalformed. Parse verifies nothing: Open does.
func Parse(b []byte) (*Pack, error) {
	if len(b) > MaxBytes {
		return nil, malformed("pack of %d bytes is larger than %d", len(b), MaxBytes)
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, malformed("not a JSON document (a compressed or archived pack is not a custody pack)")
	}
	if err := jsonstrict.Check(b); err != nil {
		return nil, malformed("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d document
	if err := dec.Decode(&d); err != nil {
		return nil, malformed("%v", err)
	}
	if d.MediaType != MediaType {
		return nil, malformed("mediaType %q is not %s", d.MediaType, MediaType)
	}
	if len(d.Manifest) == 0 || len(d.Manifest) > verify.MaxBundleBytes {
		return nil, malformed("manifest is missing or larger than %d bytes", verify.MaxBundleBytes)
	}
	if len(d.Entries) > MaxEntries {
		return nil, malformed("%d entries, more than %d", len(d.Entries), MaxEntries)
	}
	seen := map[string]bool{}
	for i, e := range d.Entries {
		_, limit, ok := kindOf(e.Name)
		switch {
		case !ok:
			return nil, malformed("entry %d: name %q is not a name a pack has", i, e.Name)
		case seen[e.Name]:
			return nil, malformed("entry %q is given twice", e.Name)
		case len(e.Content) == 0:
			return nil, malformed("entry %q is empty", e.Name)
		case len(e.Content) > limit:
			return nil, malformed("entry %q of %d bytes is larger than %d", e.Name, len(e.Content), limit)
		}
		seen[e.Name] = true
	}
	return &Pack{Manifest: d.Manifest, Entries: d.Entries}, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// marshal writes the pack document.
func marshal(manifest []byte, entries []Entry) ([]byte, error) {
	b, err := json.MarshalIndent(document{MediaType: MediaType, Manifest: manifest, Entries: entries}, "", " ")
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("pack of %d bytes would be larger than %d", len(b), MaxBytes)
	}
	return append(b, '\n'), nil
}

// EntryRef is how the manifest lists an entry.
type EntryRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
}

func refOf(e Entry) EntryRef {
	sum := sha256.Sum256(e.Content)
	return EntryRef{Name: e.Name, SHA256: hex.EncodeToString(sum[:]), Size: len(e.Content)}
}

// sortEntries orders entries by kind, then by number where the name has
// one, so that packs of the same contents are the same bytes.
func sortEntries(es []Entry) {
	key := func(n string) string {
		parts := strings.Split(n, "/")
		for i, p := range parts {
			if v, err := strconv.ParseUint(p, 10, 64); err == nil {
				parts[i] = fmt.Sprintf("%020d", v)
			}
		}
		return strings.Join(parts, "/")
	}
	sort.Slice(es, func(i, j int) bool { return key(es[i].Name) < key(es[j].Name) })
}
