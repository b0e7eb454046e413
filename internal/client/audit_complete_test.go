package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	tesseraapi "github.com/transparency-dev/tessera/api"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// auditServer is a custody server whose answers a test may rewrite.
type auditServer struct {
	*server.Server
	url    string
	tokens map[api.Role]string
	// rewrite, when set, may change the body of a GET answer for path.
	rewrite func(path string, body []byte) []byte
}

func startAuditServer(t *testing.T) *auditServer {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	s, err := server.Open(context.Background(), server.Config{Dir: dir, PublicURL: url, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	as := &auditServer{Server: s, url: url, tokens: map[api.Role]string{}}
	h := s.Handler()
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if as.rewrite == nil || r.Method != http.MethodGet {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			body = as.rewrite(r.URL.Path, body)
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	for _, r := range api.Roles() {
		tok, err := tokenfile.CreateToken(dir, r, "", "test "+string(r))
		if err != nil {
			t.Fatal(err)
		}
		as.tokens[r] = tok
	}
	return as
}

func (as *auditServer) client(t *testing.T, r api.Role) *Client {
	t.Helper()
	c, err := New(as.url, as.tokens[r], WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fill writes n signed builds (not audit entries) and n deployments
// (audit entries) to the server.
func fill(t *testing.T, as *auditServer, n int) {
	t.Helper()
	ctx := context.Background()
	b, dep := as.client(t, api.RoleBuilder), as.client(t, api.RoleDeployer)
	for i := range n {
		st := testStatement(t, "app", i)
		sum := sha256.Sum256(fmt.Appendf(nil, "app %d", i))
		digest := hex.EncodeToString(sum[:])
		if _, err := b.Sign(ctx, st); err != nil {
			t.Fatalf("Sign: %v", err)
		}
		d := &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: "sha256:" + digest, Name: "app", Actor: "ci", Time: time.Now()}
		if _, err := dep.AppendDeployment(ctx, d); err != nil {
			t.Fatalf("AppendDeployment: %v", err)
		}
	}
	as.WaitRedFlags() // the builds' red flags: entries of the audit key too
}

// dropEvidence rewrites search answers to leave out the evidence whose
// bundle's log index is index.
func dropEvidence(index int64) func(string, []byte) []byte {
	return func(path string, body []byte) []byte {
		if path != "/api/v1/evidence" {
			return body
		}
		var resp struct {
			Evidence []api.Evidence `json:"evidence"`
		}
		if json.Unmarshal(body, &resp) != nil {
			return body
		}
		resp.Evidence = slices.DeleteFunc(resp.Evidence, func(e api.Evidence) bool { return e.LogIndex == index })
		out, _ := json.Marshal(resp)
		return out
	}
}

func auditIndexes(trail []*AuditEntry) []int64 {
	var out []int64
	for _, e := range trail {
		if e.PredicateType == api.PredicateAudit || e.PredicateType == attest.PredicateRedFlags {
			out = append(out, e.LogIndex)
		}
	}
	return out
}

func TestCompleteAuditTrail(t *testing.T) {
	as := startAuditServer(t)
	fill(t, as, 3)
	ctx := context.Background()
	aud := as.client(t, api.RoleAuditor)
	trail, walk, err := aud.CompleteAuditTrail(ctx, as.AuditPublicKey())
	if err != nil {
		t.Fatalf("CompleteAuditTrail of an honest server: %v", err)
	}
	audits := auditIndexes(trail)
	if len(audits) < 3 {
		t.Fatalf("trail holds %d audit entries, want at least the 3 deployments", len(audits))
	}
	if !slices.Equal(walk.Audit, audits) || len(walk.Copies) != 0 {
		t.Errorf("walk found audit entries at %v (copies %v), the trail at %v", walk.Audit, walk.Copies, audits)
	}
	if want := uint64(len(trail)); walk.Size != want {
		t.Errorf("walked %d entries, want %d (every entry of this log is in the trail)", walk.Size, want)
	}
	for _, e := range trail {
		if !e.Verified {
			t.Errorf("entry %d: %s", e.EvidenceID, e.Problem)
		}
	}

	// The index leaves out one audit entry: the plain trail does not
	// notice, the walk does.
	hidden := audits[1]
	as.rewrite = dropEvidence(hidden)
	plain, err := as.client(t, api.RoleAuditor).AuditTrail(ctx, AuditQuery{}, as.AuditPublicKey())
	if err != nil || len(plain) != len(trail)-1 {
		t.Fatalf("plain trail with an entry hidden: %d entries, %v; want %d", len(plain), err, len(trail)-1)
	}
	_, _, err = as.client(t, api.RoleAuditor).CompleteAuditTrail(ctx, as.AuditPublicKey())
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) || !slices.Equal(ie.Hidden, []int64{hidden}) || len(ie.NotAudit) != 0 {
		t.Fatalf("walk with audit entry %d hidden: %v; want it named hidden", hidden, err)
	}
	if want := fmt.Sprintf("the index hid 1 audit entries the log holds: log indexes %d", hidden); err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// TestCompleteAuditTrailNotAudit: the index answers, as an audit entry at
// some log index, a leaf the audit key did not sign.
func TestCompleteAuditTrailNotAudit(t *testing.T) {
	as := startAuditServer(t)
	fill(t, as, 2)
	ctx := context.Background()
	trail, _, err := as.client(t, api.RoleAuditor).CompleteAuditTrail(ctx, as.AuditPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	var signed *AuditEntry
	for _, e := range trail {
		if e.Action == ActionSign {
			signed = e
			break
		}
	}
	var victim int64 = -1
	for _, e := range trail {
		if e.PredicateType == api.PredicateAudit {
			victim = e.LogIndex
			break
		}
	}
	// The audit entry at victim is replaced by the builder's bundle, still
	// called an audit entry.
	var builderBundle json.RawMessage
	as.rewrite = func(path string, body []byte) []byte {
		if path != "/api/v1/evidence" {
			return body
		}
		var resp struct {
			Evidence []api.Evidence `json:"evidence"`
		}
		json.Unmarshal(body, &resp)
		for i, e := range resp.Evidence {
			if e.LogIndex == signed.LogIndex && builderBundle == nil {
				builderBundle = e.Bundle
			}
			if e.LogIndex == victim && builderBundle != nil {
				resp.Evidence[i].Bundle, resp.Evidence[i].LogIndex = builderBundle, signed.LogIndex
			}
		}
		out, _ := json.Marshal(resp)
		return out
	}
	// Read the builder's bundle first (the sign entries come after the
	// audit entries in the trail's queries).
	if _, err := as.client(t, api.RoleAuditor).Search(ctx, api.Query{PredicateType: "https://slsa.dev/provenance/v1"}); err != nil {
		t.Fatal(err)
	}
	if builderBundle == nil {
		t.Fatal("test did not see the builder's bundle")
	}
	_, _, err = as.client(t, api.RoleAuditor).CompleteAuditTrail(ctx, as.AuditPublicKey())
	var ie *IncompleteError
	if !errors.As(err, &ie) || !slices.Equal(ie.NotAudit, []int64{signed.LogIndex}) || !slices.Equal(ie.Hidden, []int64{victim}) {
		t.Fatalf("walk with audit entry %d swapped for the bundle at %d: %v", victim, signed.LogIndex, err)
	}
}

// TestCompleteAuditTrailLogTampered: entry bundles whose leaves do not
// hash to the checkpoint fail the walk.
func TestCompleteAuditTrailLogTampered(t *testing.T) {
	as := startAuditServer(t)
	fill(t, as, 2)
	ctx := context.Background()
	for name, rw := range map[string]func([]byte) []byte{
		"leaf dropped": func(b []byte) []byte {
			var eb tesseraapi.EntryBundle
			eb.UnmarshalText(b)
			return marshalBundle(eb.Entries[1:])
		},
		"leaves swapped": func(b []byte) []byte {
			var eb tesseraapi.EntryBundle
			eb.UnmarshalText(b)
			eb.Entries[0], eb.Entries[1] = eb.Entries[1], eb.Entries[0]
			return marshalBundle(eb.Entries)
		},
		"not a bundle": func([]byte) []byte { return []byte{0xff} },
	} {
		t.Run(name, func(t *testing.T) {
			as.rewrite = func(path string, body []byte) []byte {
				if strings.HasPrefix(path, "/tile/entries/") {
					return rw(body)
				}
				return body
			}
			_, _, err := as.client(t, api.RoleAuditor).CompleteAuditTrail(ctx, as.AuditPublicKey())
			var ie *IncompleteError
			if !errors.Is(err, ErrIncomplete) || errors.As(err, &ie) {
				t.Fatalf("walk of a tampered log: %v; want ErrIncomplete about the log", err)
			}
		})
	}
}

func marshalBundle(entries [][]byte) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, byte(len(e)>>8), byte(len(e)))
		b = append(b, e...)
	}
	return b
}

// TestCompleteAuditTrailCopy: an audit envelope logged again by a token
// holder is refused (its predicate type is reserved for the server's own
// records, issue 11 item 1), and the complete trail still passes with no
// copies. Logs written before that refusal may hold such copies; the walk
// counts them in walk.Copies rather than as hidden entries.
func TestCompleteAuditTrailCopy(t *testing.T) {
	as := startAuditServer(t)
	fill(t, as, 1)
	ctx := context.Background()
	aud := as.client(t, api.RoleAuditor)
	found, err := aud.Search(ctx, api.Query{PredicateType: api.PredicateAudit})
	if err != nil || len(found) == 0 {
		t.Fatalf("Search: %d, %v", len(found), err)
	}
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(found[0].Bundle, pb); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(as.AuditPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	req := &rekorpb.DSSERequestV002{Envelope: pb.GetDsseEnvelope(),
		Verifiers: []*rekorpb.Verifier{{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}}}}
	for _, role := range []api.Role{api.RoleBuilder, api.RoleAdmin} {
		_, err := logWriter{as.client(t, role)}.Add(ctx, req)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("%s logging the audit envelope again: %v, want 403 reserved", role, err)
		}
	}
	_, walk, err := aud.CompleteAuditTrail(ctx, as.AuditPublicKey())
	if err != nil {
		t.Fatalf("walk after a refused copy: %v", err)
	}
	if len(walk.Copies) != 0 {
		t.Errorf("copies = %v, want none", walk.Copies)
	}
}

func TestParseLeaf(t *testing.T) {
	for _, tc := range []struct {
		name, leaf string
		keys       int
		wantErr    bool
	}{
		{"dsse", `{"apiVersion":"0.0.2","kind":"dsse","spec":{"dsseV002":{"payloadHash":{"algorithm":"SHA2_256","digest":"AAAA"},"signatures":[{"content":"AQ==","verifier":{"keyDetails":"PKIX_ECDSA_P256_SHA_256","publicKey":{"rawBytes":"AgM="}}}]}}}`, 1, false},
		{"hashedrekord", `{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":{"content":"AQ==","verifier":{"keyDetails":"PKIX_ECDSA_P256_SHA_256","publicKey":{"rawBytes":"AgM="}}}}}}`, 1, false},
		{"certificate", `{"kind":"hashedrekord","spec":{"hashedRekordV002":{"data":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":{"content":"AQ==","verifier":{"x509Certificate":{"rawBytes":"AgM="}}}}}}`, 0, false},
		{"no spec", `{"kind":"dsse"}`, 0, true},
		{"not JSON", `dsse`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parseLeaf([]byte(tc.leaf))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseLeaf: %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (len(info.keys) != tc.keys || (tc.keys > 0 && !bytes.Equal(info.keys[0], []byte{2, 3}))) {
				t.Errorf("keys = %x, want %d", info.keys, tc.keys)
			}
		})
	}
}

// TestCompareTrailPastWalk: an audit entry appended after the walked
// checkpoint (the trail proved it against a newer one) is neither hidden
// nor "not an audit entry": auditing a server that is deploying while the
// walk runs must not fail for it.
func TestCompareTrailPastWalk(t *testing.T) {
	walk := &LogWalk{Size: 3, Audit: []int64{1}}
	leaves := []auditLeaf{{index: 1, info: &leafInfo{}}}
	key := []byte("audit key DER")
	entry := func(i int64) *AuditEntry {
		return &AuditEntry{PredicateType: api.PredicateAudit, LogIndex: i, logged: &loggedEnvelope{logIndex: i, key: key}}
	}
	trail := []*AuditEntry{entry(1), entry(3)} // 3: past the walk
	if err := compareTrail(trail, leaves, key, walk); err != nil {
		t.Fatalf("entry past the walked checkpoint: %v", err)
	}
	trail = append(trail, entry(2))
	var ie *IncompleteError
	if err := compareTrail(trail, leaves, key, walk); !errors.As(err, &ie) || !slices.Equal(ie.NotAudit, []int64{2}) {
		t.Fatalf("audit entry at a walked leaf the audit key did not sign: %v; want NotAudit [2]", err)
	}
}

// TestAuditTrailWhileWriting: entries the server appends after the
// trail's checkpoint was read (red flags, deployments of other clients)
// are proved to extend that checkpoint, not reported as a log rollback.
func TestAuditTrailWhileWriting(t *testing.T) {
	as := startAuditServer(t)
	fill(t, as, 2)
	ctx := context.Background()
	aud := as.client(t, api.RoleAuditor)
	lc, err := aud.logClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := aud.sync(ctx, lc)
	if err != nil {
		t.Fatal(err)
	}
	dep := as.client(t, api.RoleDeployer)
	for i := range 2 { // appended after the trail's checkpoint
		d := &store.Deployment{Environment: "prod", Event: store.EventDeployed, Artifact: fmt.Sprintf("sha256:%064x", i), Name: "app", Actor: "ci", Time: time.Now()}
		if _, err := dep.AppendDeployment(ctx, d); err != nil {
			t.Fatalf("AppendDeployment: %v", err)
		}
	}
	auditDER, err := x509.MarshalPKIXPublicKey(as.AuditPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	trail, err := aud.auditTrail(ctx, AuditQuery{}, auditDER, lc, latest)
	if err != nil {
		t.Fatalf("trail read while the log grew: %v", err)
	}
	past := 0
	for _, e := range trail {
		if !e.Verified {
			t.Errorf("entry %d: %s", e.EvidenceID, e.Problem)
		}
		if e.logged != nil && uint64(e.logged.logIndex) >= latest.Size {
			past++
		}
	}
	if past == 0 {
		t.Errorf("no entry of the trail is past the checkpoint of size %d; the test did not test", latest.Size)
	}
}
