package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	rekorpb "github.com/sigstore/rekor-tiles/v2/pkg/generated/protobuf"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
	"github.com/custody-dev/custody/policy"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// syncBuffer collects a server's log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openLogged opens the server in dir (a start or a restart) with its log
// written to logs, serving it until stop is called.
func openLogged(t *testing.T, dir string, root []byte, logs *syncBuffer) (ts *testServer, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Dir: dir, TrustRoot: root, PublicURL: "http://" + ln.Addr().String(), BatchMaxAge: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatalf("start: %v", err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	ts = &testServer{Server: s, url: cfg.PublicURL, dir: dir, tokens: map[api.Role]string{}}
	for _, r := range api.Roles() {
		if ts.tokens[r], err = tokenfile.CreateToken(dir, r, "", ""); err != nil { // a restart: names ROLE-ID stay unique
			t.Fatal(err)
		}
	}
	return ts, func() { hs.Close(); s.Close() }
}

// forgedAudit is an audit statement as the server writes them (predicate
// type predicateType, normally api.PredicateAudit), made by an
// attacker: its JSON and the bundle of it signed with key, never logged.
func forgedAudit(t *testing.T, key *ecdsa.PrivateKey, predicateType, action string, subject attest.Subject, detail any) (stmt, bundle []byte) {
	t.Helper()
	d, err := json.Marshal(detail)
	if err != nil {
		t.Fatal(err)
	}
	pred := api.AuditPredicate{Action: action, Token: "admin", Time: time.Now().UTC(), Detail: d}
	st, err := attest.NewStatement([]attest.Subject{subject}, predicateType, pred)
	if err != nil {
		t.Fatal(err)
	}
	if stmt, err = st.Marshal(); err != nil {
		t.Fatal(err)
	}
	if bundle, err = signer.SignStatement(context.Background(), key, stmt); err != nil {
		t.Fatal(err)
	}
	return stmt, bundle
}

// attackerPolicy is policy version of prod signed only by the attacker,
// and the policy.changed detail and subject that would install it.
func attackerPolicy(t *testing.T, attacker *ecdsa.PrivateKey, version int) (attest.Subject, api.PolicyChange) {
	t.Helper()
	sp := signedPolicy(t, fmt.Sprint(version), attacker)
	env, err := sp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := trust.KeyID(attacker.Public())
	sum := sha256.Sum256(sp.Payload)
	return attest.Subject{Name: api.SubjectPolicyPrefix + "prod", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}},
		api.PolicyChange{Environment: "prod", Version: version, Previous: 1, Digest: sp.Digest(), TrustRootVersion: 1, Admins: []string{id}, Envelope: env}
}

// attackerRoot is the next version of root (version 1 for nil) holding
// the attacker as admin and builder, signed by the attacker alone, and the
// trust.changed detail and subject that would install it.
func attackerRoot(t *testing.T, root *trust.Document, attacker *ecdsa.PrivateKey) (*trust.Document, attest.Subject, api.TrustChange) {
	t.Helper()
	var d *trust.Document
	var err error
	if root == nil {
		d, err = trust.NewDocument([]trust.Key{{PublicKey: attacker.Public(), Identity: "mallory"}}, 1, time.Now().Add(24*time.Hour).UTC().Truncate(time.Second))
	} else {
		b, _ := root.Marshal()
		if d, err = trust.ParseDocument(b); err == nil {
			err = d.AddKey(trust.Key{PublicKey: attacker.Public(), Role: trust.RoleAdmin, Identity: "mallory"})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	signRoot(t, d, attacker)
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return d, attest.Subject{Name: api.SubjectTrustRoot, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}},
		api.TrustChange{Version: d.Version, Previous: d.Version - 1, Digest: "sha256:" + hex.EncodeToString(sum[:]), Document: raw}
}

// dsseLogRequest is a Rekor v2 DSSE entry request for a bundle signed
// with key.
func dsseLogRequest(t *testing.T, bundleJSON []byte, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(bundleJSON, pb); err != nil {
		t.Fatal(err)
	}
	env := pb.GetDsseEnvelope()
	return dsseRequest(t, key, env.GetPayloadType(), env.GetPayload())
}

// dsseRequest is a Rekor v2 DSSE entry request for payload signed with key.
func dsseRequest(t *testing.T, key *ecdsa.PrivateKey, payloadType string, payload []byte) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(dsse.PAE(payloadType, payload))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	req := &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_DsseRequestV002{DsseRequestV002: &rekorpb.DSSERequestV002{
		Envelope:  &protodsse.Envelope{PayloadType: payloadType, Payload: payload, Signatures: []*protodsse.Signature{{Sig: sig}}},
		Verifiers: []*rekorpb.Verifier{{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}, KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}},
	}}}
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replayLogRequest is a hashedrekord request that logs the signature of a
// bundle the audit key signed (as the server logged it) once more.
func replayLogRequest(t *testing.T, bundleJSON []byte, auditPub any) []byte {
	t.Helper()
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(bundleJSON, pb); err != nil {
		t.Fatal(err)
	}
	env := pb.GetDsseEnvelope()
	der, err := x509.MarshalPKIXPublicKey(auditPub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(dsse.PAE(env.GetPayloadType(), env.GetPayload()))
	req := &rekorpb.CreateEntryRequest{Spec: &rekorpb.CreateEntryRequest_HashedRekordRequestV002{HashedRekordRequestV002: &rekorpb.HashedRekordRequestV002{
		Digest: sum[:],
		Signature: &rekorpb.Signature{Content: env.GetSignatures()[0].GetSig(),
			Verifier: &rekorpb.Verifier{Verifier: &rekorpb.Verifier_PublicKey{PublicKey: &rekorpb.PublicKey{RawBytes: der}}, KeyDetails: protocommon.PublicKeyDetails_PKIX_ECDSA_P256_SHA_256}},
	}}}
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForgedAuditEntriesRefused is the attack of issue 11 item 1 through
// every client path: a builder token (and an admin token, which governs
// only through the governed routes) pushes, has signed, or logs audit
// entries of its own making that would install the attacker's policy
// version 99 and a trust root version 2 naming the attacker admin. Each is
// refused with 403 and nothing is stored; after a restart the server
// serves the admins' policy and trust root, and accepts the admins' real
// version 2.
func TestForgedAuditEntriesRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	ctx := context.Background()
	dir := t.TempDir()
	root, rootRaw, admins := governedRoot(t)
	var logs syncBuffer
	ts, stop := openLogged(t, dir, rootRaw, &logs)
	v1 := signedPolicy(t, "1", admins[0], admins[1])
	if _, err := newClient(t, ts, api.RoleAdmin).PushPolicy(ctx, v1, "alice"); err != nil {
		t.Fatal(err)
	}
	attacker := newKey(t)
	polSub, polChange := attackerPolicy(t, attacker, 99)
	_, rootSub, rootChange := attackerRoot(t, root, attacker)
	type forged struct{ name, stmt, bundle []byte }
	var all []forged
	for _, pt := range []string{api.PredicateAudit, "HTTPS://Custody.dev/audit/v1", "https://custody.dev/audit/v2", "https://custody.dev/trust-root/v1"} {
		for _, f := range []struct {
			action  string
			subject attest.Subject
			detail  any
		}{{"policy.changed", polSub, polChange}, {"trust.changed", rootSub, rootChange}} {
			stmt, b := forgedAudit(t, attacker, pt, f.action, f.subject, f.detail)
			all = append(all, forged{[]byte(pt + " " + f.action), stmt, b})
		}
	}
	before := count(t, ts)
	for _, f := range all {
		for _, role := range []api.Role{api.RoleBuilder, api.RoleAdmin} {
			if a := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[role], f.bundle); a.status != http.StatusForbidden || !strings.Contains(a.body, "reserved") {
				t.Errorf("%s push of %s = %d %q; want 403 reserved", role, f.name, a.status, a.body)
			}
			req, _ := json.Marshal(map[string]json.RawMessage{"statement": f.stmt})
			if a := do(t, ts, http.MethodPost, "/api/v1/sign", ts.tokens[role], req); a.status != http.StatusForbidden || !strings.Contains(a.body, "reserved") {
				t.Errorf("%s sign of %s = %d %q; want 403 reserved", role, f.name, a.status, a.body)
			}
			if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", ts.tokens[role], dsseLogRequest(t, f.bundle, attacker)); a.status != http.StatusForbidden {
				t.Errorf("%s log append of %s = %d %q; want 403", role, f.name, a.status, a.body)
			}
		}
	}
	// A duplicate predicateType member hides nothing: every one counts.
	dup := bytes.Replace(all[0].stmt, []byte(`"predicateType":`), []byte(`"predicateType":"https://example.com/x","PredicateType":`), 1)
	req, _ := json.Marshal(map[string]json.RawMessage{"statement": dup})
	if a := do(t, ts, http.MethodPost, "/api/v1/sign", ts.tokens[api.RoleBuilder], req); a.status != http.StatusForbidden {
		t.Errorf("sign of a statement with a second, reserved predicateType member = %d %q; want 403", a.status, a.body)
	}
	// The documents that are server state go only through their routes.
	sp := signedPolicy(t, "99", attacker)
	for _, pt := range []string{policy.SignedPayloadType, trust.DocumentPayloadType, "Application/vnd.custody.policy+YAML; x=y"} {
		if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", ts.tokens[api.RoleAdmin], dsseRequest(t, attacker, pt, sp.Payload)); a.status != http.StatusForbidden {
			t.Errorf("log append of a DSSE entry of payload type %s = %d %q; want 403", pt, a.status, a.body)
		}
	}
	// Any other DSSE request is refused too, as rekor-tiles refuses it.
	if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", ts.tokens[api.RoleBuilder], dsseRequest(t, attacker, attest.PayloadType, statement(t, "b-1", "app"))); a.status != http.StatusBadRequest || !strings.Contains(a.body, "must be hashedrekord") {
		t.Errorf("log append of a DSSE entry of provenance = %d %q; want 400 naming hashedrekord", a.status, a.body)
	}
	// The audit key's own entries are logged by the server only.
	aud := newClient(t, ts, api.RoleAuditor)
	real, err := aud.Search(ctx, api.Query{PredicateType: api.PredicateAudit, Limit: 1})
	if err != nil || len(real) != 1 {
		t.Fatalf("audit entries = %d, %v", len(real), err)
	}
	if a := do(t, ts, http.MethodPost, "/api/v2/log/entries", ts.tokens[api.RoleBuilder], replayLogRequest(t, real[0].Bundle, ts.AuditPublicKey())); a.status != http.StatusForbidden {
		t.Errorf("log append of an audit entry's signature = %d %q; want 403", a.status, a.body)
	}
	if n := count(t, ts); n != before {
		t.Errorf("index holds %d records after the refused requests; want %d", n, before)
	}
	stop()

	ts, stop = openLogged(t, dir, nil, &logs)
	defer stop()
	c := newClient(t, ts, api.RoleAdmin)
	if got, err := c.Policy(ctx, "prod"); err != nil || got.Digest() != v1.Digest() {
		t.Errorf("served policy after restart = %v, %v; want the admins' version 1", got, err)
	}
	if d := ts.TrustRootDocument(); d == nil || d.Version != 1 {
		t.Errorf("trust root after restart = %v; want version 1", d)
	}
	// The admins' real version 2 is accepted.
	b, _ := root.Marshal()
	v2, err := trust.ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.AddKey(trust.Key{PublicKey: newKey(t).Public(), Role: trust.RoleAdmin, Identity: "dave"}); err != nil {
		t.Fatal(err)
	}
	signRoot(t, v2, admins[:2]...)
	if v, _, err := c.PushTrustRoot(ctx, v2, "alice"); err != nil || v != 2 {
		t.Errorf("admins' trust root version 2 = %d, %v; want accepted", v, err)
	}
}

// TestReconcileSkipsForgedAuditRows: rows of the audit predicate type that
// the server did not write (as a server before the fix stored them from a
// push, or anyone with a copy of another server's entries) are named in a
// warning and skipped at start: the served policy and trust root stay the
// ones the server's own, logged audit entries record, variants that made
// the server refuse to start no longer do, and the admins' real next
// versions are accepted.
func TestReconcileSkipsForgedAuditRows(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	ctx := context.Background()
	dir := t.TempDir()
	root, rootRaw, admins := governedRoot(t)
	var logs syncBuffer
	ts, stop := openLogged(t, dir, rootRaw, &logs)
	v1 := signedPolicy(t, "1", admins[0], admins[1])
	if _, err := newClient(t, ts, api.RoleAdmin).PushPolicy(ctx, v1, "alice"); err != nil {
		t.Fatal(err)
	}
	attacker := newKey(t)
	polSub, polChange := attackerPolicy(t, attacker, 99)
	_, rootSub, rootChange := attackerRoot(t, root, attacker)
	_, rootSub1, rootChange1 := attackerRoot(t, nil, attacker)
	// Logged in this server's log, but under the attacker's key.
	stmt, _ := forgedAudit(t, attacker, api.PredicateAudit, "policy.changed", polSub, polChange)
	logged, err := signer.SignStatement(ctx, attacker, stmt, signer.WithTransparencyLog(newClient(t, ts, api.RoleBuilder).Transparency()))
	if err != nil {
		t.Fatal(err)
	}
	// One of the server's own entries with the audit key's envelope but a
	// bundle claiming another log position.
	real, err := ts.Index().Search(ctx, store.Query{PredicateType: api.PredicateAudit, SubjectName: "policy/prod"})
	if err != nil || len(real) != 1 {
		t.Fatalf("policy audit entries = %d, %v", len(real), err)
	}
	other := 0
	if real[0].LogIndex == 0 {
		other = 1
	}
	moved := bytes.ReplaceAll(real[0].Bundle, []byte(fmt.Sprintf(`"logIndex":"%d"`, real[0].LogIndex)), []byte(fmt.Sprintf(`"logIndex":"%d"`, other)))
	stop()

	forgedRows := map[string][]byte{"logged under the attacker's key": logged, "moved": moved}
	_, forgedRows["policy v99"] = forgedAudit(t, attacker, api.PredicateAudit, "policy.changed", polSub, polChange)
	_, forgedRows["trust root v2"] = forgedAudit(t, attacker, api.PredicateAudit, "trust.changed", rootSub, rootChange)
	// Before the fix this one made Open fail (a fork of version 1) ...
	_, forgedRows["trust root v1 fork"] = forgedAudit(t, attacker, api.PredicateAudit, "trust.changed", rootSub1, rootChange1)
	// ... and so did this one (a policy.changed whose detail is not one).
	_, forgedRows["malformed"] = forgedAudit(t, attacker, api.PredicateAudit, "policy.changed", polSub, map[string]int{"envelope": 1})
	// A quarantine of a victim's artifact, which the records reconciliation
	// would append as an incident record.
	victim := "sha256:" + strings.Repeat("ab", 32)
	quarantine := []map[string]any{{"incident": "INC-20260101T000000Z-0badc0de", "event": "quarantined",
		"time": time.Now().UTC(), "artifacts": []string{victim}}}
	_, forgedRows["quarantine"] = forgedAudit(t, attacker, api.PredicateAudit, "incident.quarantined",
		attest.Subject{Name: "INC-20260101T000000Z-0badc0de", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}, quarantine)
	// Signed by the audit key itself (a copy of the key, a restored backup
	// of another server's index) but never in this server's log.
	auditKey := readAuditKey(t, dir)
	forgedRows["audit key, not logged"], err = signer.SignStatement(ctx, auditKey, stmt)
	if err != nil {
		t.Fatal(err)
	}
	ids := putRows(t, dir, forgedRows)

	ts, stop = openLogged(t, dir, nil, &logs)
	defer stop()
	out := logs.String()
	for name, id := range ids {
		if !strings.Contains(out, fmt.Sprintf("id=%d ", id)) || !strings.Contains(out, "not this server's audit entry") {
			t.Errorf("no warning names the forged row %q (id %d); log:\n%s", name, id, out)
		}
	}
	if a := do(t, ts, http.MethodGet, "/api/v1/incidents?artifact="+victim, ts.tokens[api.RoleAuditor], nil); a.status != http.StatusOK || strings.Contains(a.body, victim) {
		t.Errorf("incident records of the victim's artifact after restart = %d %q; want none", a.status, a.body)
	}
	c := newClient(t, ts, api.RoleAdmin)
	if got, err := c.Policy(ctx, "prod"); err != nil || got.Digest() != v1.Digest() {
		t.Errorf("served policy after restart = %v, %v; want the admins' version 1", got, err)
	}
	if d := ts.TrustRootDocument(); d == nil || d.Version != 1 || !bytes.Equal(mustPayload(t, d), mustPayload(t, root)) {
		t.Errorf("trust root after restart = %v; want the admins' version 1", d)
	}
	b, _ := root.Marshal()
	v2, err := trust.ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.AddKey(trust.Key{PublicKey: newKey(t).Public(), Role: trust.RoleAdmin, Identity: "dave"}); err != nil {
		t.Fatal(err)
	}
	signRoot(t, v2, admins[:2]...)
	if v, _, err := c.PushTrustRoot(ctx, v2, "alice"); err != nil || v != 2 {
		t.Errorf("admins' trust root version 2 = %d, %v; want accepted", v, err)
	}
	if _, err := c.PushPolicy(ctx, signedPolicy(t, "2", admins[1], admins[2]), "bob"); err != nil {
		t.Errorf("admins' policy version 2: %v", err)
	}
}

// TestForgedTrustRootOnServerWithout: a server started without a trust
// root gets none from a forged trust.changed row.
func TestForgedTrustRootOnServerWithout(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers")
	}
	dir := t.TempDir()
	var logs syncBuffer
	ts, stop := openLogged(t, dir, nil, &logs)
	attacker := newKey(t)
	_, sub, change := attackerRoot(t, nil, attacker)
	_, b := forgedAudit(t, attacker, api.PredicateAudit, "trust.changed", sub, change)
	if a := do(t, ts, http.MethodPost, "/api/v1/evidence", ts.tokens[api.RoleBuilder], b); a.status != http.StatusForbidden {
		t.Errorf("push of a forged trust.changed = %d %q; want 403", a.status, a.body)
	}
	stop()
	ids := putRows(t, dir, map[string][]byte{"trust root v1": b})
	ts, stop = openLogged(t, dir, nil, &logs)
	defer stop()
	if d := ts.TrustRootDocument(); d != nil {
		t.Errorf("trust root after restart = version %d; want none", d.Version)
	}
	if a := do(t, ts, http.MethodGet, "/api/v1/trust-root", "", nil); a.status != http.StatusNotFound {
		t.Errorf("GET /api/v1/trust-root = %d %q; want 404", a.status, a.body)
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("id=%d ", ids["trust root v1"])) {
		t.Errorf("no warning names the forged row; log:\n%s", logs.String())
	}
}

// putRows stores bundles in the index of the stopped server in dir as a
// server before the fix indexed pushed audit entries, returning their IDs.
func putRows(t *testing.T, dir string, bundles map[string][]byte) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	idx, err := store.OpenSQLite(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	ids := map[string]int64{}
	for name, b := range bundles {
		pb := new(protobundle.Bundle)
		if err := protojson.Unmarshal(b, pb); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, err := attest.ParseStatement(pb.GetDsseEnvelope().GetPayload())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev := &store.Evidence{Bundle: b, PredicateType: st.PredicateType, LogIndex: -1}
		for _, s := range st.Subject {
			ev.Subjects = append(ev.Subjects, store.Subject{Name: s.Name, Digests: s.Digest})
		}
		if tles := pb.GetVerificationMaterial().GetTlogEntries(); len(tles) > 0 {
			ev.LogIndex = tles[0].GetLogIndex()
		}
		if ids[name], _, err = idx.Put(ctx, ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return ids
}

// readAuditKey reads the audit key of the data directory dir (a plain
// PKCS#8 file: the test servers have no password).
func readAuditKey(t *testing.T, dir string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "keys", "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("audit.key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func mustPayload(t *testing.T, d *trust.Document) []byte {
	t.Helper()
	p, err := d.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
