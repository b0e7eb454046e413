package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	tesseraapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/tlog"
)

// ErrIncomplete is wrapped by the errors of CompleteAuditTrail that show
// the server hiding something: its log's entries do not hash to the
// checkpoint's root, its log holds a leaf that is not a log entry or does
// not serve an entry bundle the checkpoint covers, or its index and its
// log disagree about the audit entries (an *IncompleteError).
var ErrIncomplete = errors.New("the audit trail is not complete")

// IncompleteError is CompleteAuditTrail's error when the index's trail and
// the log disagree. It wraps ErrIncomplete.
type IncompleteError struct {
	// Hidden are the log indexes of entries signed by the audit key that
	// the index did not return (nor a copy of what they sign).
	Hidden []int64
	// NotAudit are the log indexes the index returned audit entries at
	// whose leaves the audit key did not sign.
	NotAudit []int64
}

func (e *IncompleteError) Error() string {
	var parts []string
	if len(e.Hidden) > 0 {
		parts = append(parts, fmt.Sprintf("the index hid %d audit entries the log holds: log indexes %s", len(e.Hidden), joinIndexes(e.Hidden)))
	}
	if len(e.NotAudit) > 0 {
		parts = append(parts, fmt.Sprintf("the index returned %d audit entries at log indexes the audit key did not sign: %s", len(e.NotAudit), joinIndexes(e.NotAudit)))
	}
	return strings.Join(parts, "; ")
}

func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

// joinIndexes lists indexes, the first 20 of them.
func joinIndexes(idx []int64) string {
	var b strings.Builder
	for i, n := range idx {
		if i == 20 {
			fmt.Fprintf(&b, " … (%d more)", len(idx)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}

// LogWalk is what CompleteAuditTrail read from the server's log.
type LogWalk struct {
	// Size is the size of the checkpoint walked to: the log's entries 0
	// to Size-1 were read, and hash to the checkpoint's root.
	Size uint64
	// Audit are the log indexes of the entries signed by the audit key
	// (the server's audit entries and the decisions it signed), ascending.
	Audit []int64
	// Copies are the log indexes among Audit that hold again what an entry
	// of the trail at another index signs: an envelope logged a second
	// time (anyone with a token may log what they have read). They hide
	// nothing.
	Copies []int64
}

// leafRanges makes the compact ranges of the walk (ranges merge only
// with ranges of the same factory).
var leafRanges = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// walkWorkers bounds the entry bundles fetched at once.
const walkWorkers = 4

// CompleteAuditTrail is AuditTrail of the whole trail (no query) that
// also proves the index left no audit entry out. It reads every entry of
// the server's log up to the latest checkpoint (verified, and consistent
// with the one this client remembers) from its entry bundles
// (https://c2sp.org/tlog-tiles), checks that they hash to the
// checkpoint's root, so none was skipped, and checks that every entry
// signed by auditKey is an entry of the trail (or logs again what one of
// them signs) and that every audit entry of the trail is such an entry.
//
// Errors wrap ErrIncomplete when the log or the index hides something
// (*IncompleteError when they disagree; the trail and walk are returned
// with it), tlog.ErrInconsistent or tlog.ErrRollback when the log is not
// consistent with the remembered checkpoint, ErrUnreachable or are an
// *APIError when the server could not answer.
func (c *Client) CompleteAuditTrail(ctx context.Context, auditKey crypto.PublicKey) ([]*AuditEntry, *LogWalk, error) {
	auditDER, err := x509.MarshalPKIXPublicKey(auditKey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	lc, err := c.logClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	latest, err := c.sync(ctx, lc)
	if err != nil {
		return nil, nil, err
	}
	trail, err := c.auditTrail(ctx, AuditQuery{}, auditDER, lc, latest)
	if err != nil {
		return nil, nil, err
	}
	leaves, err := c.walkLog(ctx, latest, auditKey)
	if err != nil {
		return trail, nil, err
	}
	walk := &LogWalk{Size: latest.Size, Audit: make([]int64, len(leaves))}
	for i, l := range leaves {
		walk.Audit[i] = l.index
	}
	err = compareTrail(trail, leaves, auditDER, walk)
	var ie *IncompleteError
	if errors.As(err, &ie) && len(ie.Hidden) > 0 {
		// The server appends an audit entry to the log, then indexes it:
		// an entry that was between the two while the trail was read is
		// in a second read. What is still missing then was hidden.
		again, rerr := c.auditTrail(ctx, AuditQuery{}, auditDER, lc, latest)
		if rerr != nil {
			return trail, walk, rerr
		}
		trail, walk.Copies = again, nil
		err = compareTrail(trail, leaves, auditDER, walk)
	}
	return trail, walk, err
}

// compareTrail checks trail against the audit-key leaves of the log and
// fills in walk.Copies.
func compareTrail(trail []*AuditEntry, leaves []auditLeaf, auditDER []byte, walk *LogWalk) error {
	isAudit := make(map[int64]bool, len(leaves))
	for _, l := range leaves {
		isAudit[l.index] = true
	}
	inTrail := map[int64]bool{}
	var signed []*loggedEnvelope // what the trail's audit-key entries sign
	ie := &IncompleteError{}
	for _, e := range trail {
		byAuditKey := e.PredicateType == api.PredicateAudit
		if e.logged != nil {
			byAuditKey = bytes.Equal(e.logged.key, auditDER)
			inTrail[e.logged.logIndex] = true
			if byAuditKey {
				signed = append(signed, e.logged)
			}
		}
		// An entry past the walked checkpoint was appended after it (its
		// inclusion was proved against a newer one): the walk says nothing
		// about it.
		walked := e.LogIndex >= 0 && uint64(e.LogIndex) < walk.Size
		if byAuditKey && walked && !isAudit[e.LogIndex] && !slices.Contains(ie.NotAudit, e.LogIndex) {
			ie.NotAudit = append(ie.NotAudit, e.LogIndex)
		}
	}
	for _, l := range leaves {
		if inTrail[l.index] {
			continue
		}
		if slices.ContainsFunc(signed, l.signs) {
			walk.Copies = append(walk.Copies, l.index)
			continue
		}
		ie.Hidden = append(ie.Hidden, l.index)
	}
	if len(ie.Hidden) > 0 || len(ie.NotAudit) > 0 {
		slices.Sort(ie.NotAudit)
		return ie
	}
	return nil
}

// auditLeaf is a log entry signed by the audit key.
type auditLeaf struct {
	index int64
	info  *leafInfo
}

// signs reports whether the leaf records a signature over what le signs.
func (l auditLeaf) signs(le *loggedEnvelope) bool {
	if l.info.payloadSHA256 != nil {
		sum := sha256.Sum256(le.payload)
		return bytes.Equal(l.info.payloadSHA256, sum[:])
	}
	if !l.info.digestAlg.Available() {
		return false
	}
	h := l.info.digestAlg.New()
	h.Write(le.pae)
	return bytes.Equal(l.info.digest, h.Sum(nil))
}

// walkLog reads the entries 0 to cp.Size-1 of the log from its entry
// bundles, walkWorkers at a time, checks that they hash to cp's root and
// returns those signed by auditKey, in log order.
func (c *Client) walkLog(ctx context.Context, cp *tlog.Checkpoint, auditKey crypto.PublicKey) ([]auditLeaf, error) {
	n := (cp.Size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	type result struct {
		rng   *compact.Range
		audit []auditLeaf
	}
	results := make([]result, n)
	keys := &keyMatcher{want: auditKey, seen: map[string]bool{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(walkWorkers)
	for i := range n {
		g.Go(func() error {
			if err := gctx.Err(); err != nil { // canceled, or another bundle failed
				return err
			}
			rng, audit, err := c.walkBundle(gctx, i, cp.Size, keys)
			if err != nil {
				return err
			}
			results[i] = result{rng, audit}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	all := leafRanges.NewEmptyRange(0)
	var out []auditLeaf
	for _, r := range results {
		if err := all.AppendRange(r.rng, nil); err != nil {
			return nil, fmt.Errorf("couldn't hash the log: %w", err)
		}
		out = append(out, r.audit...)
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if cp.Size > 0 {
		var err error
		if root, err = all.GetRootHash(nil); err != nil {
			return nil, fmt.Errorf("couldn't hash the log: %w", err)
		}
	}
	if !bytes.Equal(root, cp.Hash) {
		return nil, fmt.Errorf("%w: the log's %d entries hash to %s, not to its checkpoint's root %s",
			ErrIncomplete, cp.Size, hex.EncodeToString(root), hex.EncodeToString(cp.Hash))
	}
	return out, nil
}

// walkBundle reads entry bundle i of the tree of size size and returns
// the compact range of its leaves and its entries signed by the audit key.
func (c *Client) walkBundle(ctx context.Context, i, size uint64, keys *keyMatcher) (*compact.Range, []auditLeaf, error) {
	p := layout.PartialTileSize(0, i, size)
	want := int(p)
	if p == 0 {
		want = layout.EntryBundleWidth
	}
	raw, err := c.do(ctx, http.MethodGet, "/"+layout.EntriesPath(i, p), "", nil)
	var apiErr *APIError
	if p > 0 && errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		// A partial bundle may be gone once the full one is written.
		raw, err = c.do(ctx, http.MethodGet, "/"+layout.EntriesPath(i, 0), "", nil)
	}
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		return nil, nil, fmt.Errorf("%w: the log does not serve entry bundle %d, which its checkpoint of size %d covers", ErrIncomplete, i, size)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read entry bundle %d: %w", i, err)
	}
	var b tesseraapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, nil, fmt.Errorf("%w: entry bundle %d is malformed: %v", ErrIncomplete, i, err)
	}
	if len(b.Entries) < want || (p > 0 && len(b.Entries) > layout.EntryBundleWidth) || (p == 0 && len(b.Entries) != want) {
		return nil, nil, fmt.Errorf("%w: entry bundle %d holds %d entries, not the %d its checkpoint covers", ErrIncomplete, i, len(b.Entries), want)
	}
	first := i * layout.EntryBundleWidth
	rng := leafRanges.NewEmptyRange(first)
	var audit []auditLeaf
	for k, leaf := range b.Entries[:want] {
		if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
			return nil, nil, err
		}
		index := int64(first) + int64(k)
		info, err := parseLeaf(leaf)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: log entry %d: %v", ErrIncomplete, index, err)
		}
		if slices.ContainsFunc(info.keys, keys.match) {
			audit = append(audit, auditLeaf{index: index, info: info})
		}
	}
	return rng, audit, nil
}

// keyMatcher tells whether a logged key (PKIX DER) is the audit key,
// remembering its answers: a log is signed by few keys. It is safe for
// concurrent use.
type keyMatcher struct {
	want crypto.PublicKey
	mu   sync.Mutex
	seen map[string]bool
}

func (m *keyMatcher) match(der []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok, found := m.seen[string(der)]; found {
		return ok
	}
	// The same key in another encoding is the same key.
	pub, err := x509.ParsePKIXPublicKey(der)
	eq, isKey := pub.(interface{ Equal(crypto.PublicKey) bool })
	ok := err == nil && isKey && eq.Equal(m.want)
	if len(m.seen) < 4096 {
		m.seen[string(der)] = ok
	}
	return ok
}

// leafInfo is what a log entry records: the keys of its signatures and
// what they sign.
type leafInfo struct {
	// keys are the logged public keys (PKIX DER, as logged; a certificate
	// verifier contributes none).
	keys [][]byte
	// payloadSHA256 is a DSSE entry's payload hash.
	payloadSHA256 []byte
	// digestAlg and digest are a hashedrekord entry's digest of what was
	// signed.
	digestAlg crypto.Hash
	digest    []byte
}

// parseLeaf parses a log entry: a Rekor v2 hashedrekord or DSSE v0.0.2
// entry in JSON (the log writes them canonicalized, see
// tlog.CanonicalEntry; it is read as loggedSignature reads it, unknown
// fields ignored). The bytes are the server's, untrusted.
func parseLeaf(leaf []byte) (*leafInfo, error) {
	var e rekorpb.Entry
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(leaf, &e); err != nil {
		return nil, errors.New("not a Rekor v2 log entry")
	}
	info := &leafInfo{}
	var sigs []*rekorpb.Signature
	switch {
	case e.GetSpec().GetHashedRekordV002() != nil:
		hr := e.GetSpec().GetHashedRekordV002()
		info.digestAlg, _ = tlog.HashFunc(hr.GetData().GetAlgorithm())
		info.digest = hr.GetData().GetDigest()
		sigs = []*rekorpb.Signature{hr.GetSignature()}
	case e.GetSpec().GetDsseV002() != nil:
		d := e.GetSpec().GetDsseV002()
		info.payloadSHA256 = d.GetPayloadHash().GetDigest()
		if info.payloadSHA256 == nil {
			info.payloadSHA256 = []byte{}
		}
		sigs = d.GetSignatures()
	default:
		return nil, errors.New("neither a hashedrekord nor a dsse v0.0.2 entry")
	}
	for _, s := range sigs {
		if der := s.GetVerifier().GetPublicKey().GetRawBytes(); len(der) > 0 {
			info.keys = append(info.keys, der)
		}
	}
	return info, nil
}
