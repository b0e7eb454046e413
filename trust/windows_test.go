package trust_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/internal/tsa"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
	"github.com/custody-dev/custody/verify"
)

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testTSA is an RFC 3161 authority whose clock the test sets.
type testTSA struct {
	auth *tsa.Authority
	at   time.Time
}

func newTestTSA(t *testing.T, since time.Time) *testTSA {
	t.Helper()
	key := genKey(t)
	leaf, root, _, err := tsa.GenerateChain(key, "custody test tsa", since)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testTSA{}
	ts.auth, err = tsa.NewAuthority(key, []*x509.Certificate{leaf, root}, tsa.WithClock(func() time.Time { return ts.at }))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// stamp adds an RFC 3161 timestamp made at `at` over the bundle's DSSE
// signature, as sigstore-go's signer would have.
func (ts *testTSA) stamp(t *testing.T, bundleJSON []byte, at time.Time) []byte {
	t.Helper()
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		t.Fatal(err)
	}
	sig := b.GetDsseEnvelope().GetSignatures()[0].GetSig()
	sum := sha256.Sum256(sig)
	req, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ts.at = at
	respDER, err := ts.auth.Timestamp(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := timestamp.ParseResponse(respDER); err != nil {
		t.Fatal(err)
	}
	vm := b.GetVerificationMaterial()
	if vm.TimestampVerificationData == nil {
		vm.TimestampVerificationData = &protobundle.TimestampVerificationData{}
	}
	vm.TimestampVerificationData.Rfc3161Timestamps = append(vm.TimestampVerificationData.Rfc3161Timestamps,
		&protocommon.RFC3161SignedTimestamp{SignedTimestamp: respDER})
	out, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var artifact = []byte("custody artifact for window tests\n")

func statement(t *testing.T) []byte {
	t.Helper()
	sum := sha256.Sum256(artifact)
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"` +
		hex.EncodeToString(sum[:]) + `"}}],"predicateType":"https://custody.dev/test/v1","predicate":{}}`)
}

// TestKeyWindowsWithRealBundles signs statements with signer.SignStatement,
// timestamps them with internal/tsa at chosen times, and verifies them with
// verify.Verify against the trust material of a signed, round-tripped trust
// root document in which one builder key was rotated and another revoked.
func TestKeyWindowsWithRealBundles(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	start := now.AddDate(0, 0, -30)
	rotatedAt := now.AddDate(0, 0, -10)
	compromisedAt := now.AddDate(0, 0, -5)

	stampA := newTestTSA(t, start.Add(-time.Hour))
	rogue := newTestTSA(t, start.Add(-time.Hour)) // not in the trust root

	admin := genKey(t)
	oldKey, newKey, revoked, stranger := genKey(t), genKey(t), genKey(t), genKey(t)
	stillborn := genKey(t) // revoked from the start of its window: its window is empty
	doc, err := trust.NewDocument([]trust.Key{{PublicKey: admin.Public()}}, 1, now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error {
			return doc.SetAuthorities(&trust.Root{TSAs: []trust.TimestampAuthority{{URI: "https://tsa.test", Chain: stampA.auth.Chain(), Window: trust.Window{Start: start.Add(-time.Hour)}}}})
		},
		func() error {
			return doc.AddKey(trust.Key{PublicKey: oldKey.Public(), Role: trust.RoleBuilder, Identity: "ci@example", Window: trust.Window{Start: start}})
		},
		func() error {
			return doc.AddKey(trust.Key{PublicKey: revoked.Public(), Role: trust.RoleBuilder, Identity: "laptop@example", Window: trust.Window{Start: start}})
		},
		func() error {
			id, _ := trust.KeyID(oldKey.Public())
			return doc.RotateKey(id, trust.Key{PublicKey: newKey.Public()}, rotatedAt)
		},
		func() error {
			id, _ := trust.KeyID(revoked.Public())
			return doc.RevokeKey(id, compromisedAt)
		},
		func() error {
			return doc.AddKey(trust.Key{PublicKey: stillborn.Public(), Role: trust.RoleBuilder, Identity: "old-laptop@example", Window: trust.Window{Start: start}})
		},
		func() error {
			id, _ := trust.KeyID(stillborn.Public())
			return doc.RevokeKey(id, start)
		},
		func() error { return doc.Sign(context.Background(), admin) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := trust.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.VerifyDocument(parsed, now); err != nil {
		t.Fatal(err)
	}
	tm, err := parsed.Root.TrustedMaterial()
	if err != nil {
		t.Fatal(err)
	}

	day := 24 * time.Hour
	tests := []struct {
		name    string
		key     crypto.Signer
		stamp   *testTSA
		at      time.Time // zero: no timestamp
		wantErr string    // "" means verified
	}{
		{name: "old key, timestamped inside its window", key: oldKey, stamp: stampA, at: rotatedAt.Add(-day)},
		{name: "old key, timestamped after rotation", key: oldKey, stamp: stampA, at: rotatedAt.Add(day), wantErr: "validity window"},
		// The window end is exclusive: genTime has one-second precision
		// (internal/tsa truncates), so an inclusive end would let the old
		// key sign for up to a second after `trust rotate --at R`.
		{name: "old key, timestamped a second before rotation", key: oldKey, stamp: stampA, at: rotatedAt.Add(-time.Second)},
		{name: "old key, timestamped at rotation", key: oldKey, stamp: stampA, at: rotatedAt, wantErr: "validity window"},
		{name: "old key, timestamped within the second after rotation", key: oldKey, stamp: stampA, at: rotatedAt.Add(900 * time.Millisecond), wantErr: "validity window"},
		{name: "new key, timestamped at rotation", key: newKey, stamp: stampA, at: rotatedAt},
		{name: "old key, no timestamp (current time)", key: oldKey, wantErr: "validity window"},
		{name: "old key, timestamped before its window", key: oldKey, stamp: stampA, at: start.Add(-30 * time.Minute), wantErr: "validity window"},
		{name: "new key, timestamped after rotation", key: newKey, stamp: stampA, at: rotatedAt.Add(day)},
		{name: "new key, timestamped before rotation", key: newKey, stamp: stampA, at: rotatedAt.Add(-day), wantErr: "validity window"},
		{name: "new key, no timestamp", key: newKey},
		{name: "revoked key, timestamped before compromise", key: revoked, stamp: stampA, at: compromisedAt.Add(-day)},
		{name: "revoked key, timestamped after compromise", key: revoked, stamp: stampA, at: compromisedAt.Add(day), wantErr: "validity window"},
		{name: "revoked key, timestamped at compromise", key: revoked, stamp: stampA, at: compromisedAt, wantErr: "validity window"},
		{name: "revoked key, no timestamp (fails closed)", key: revoked, wantErr: "validity window"},
		// An empty effective window refuses every signature; the reason
		// must name the window, not claim another key signed.
		{name: "key revoked at its start, timestamped inside its window", key: stillborn, stamp: stampA, at: start.Add(day), wantErr: "validity window"},
		{name: "key revoked at its start, no timestamp", key: stillborn, wantErr: "validity window"},
		{name: "revoked key, backdated by an untrusted TSA", key: revoked, stamp: rogue, at: compromisedAt.Add(-day), wantErr: "timestamp"},
		// sigstore-go reports an unknown key hint as a key outside its
		// window; verify names it.
		{name: "key not in the root", key: stranger, stamp: stampA, at: rotatedAt.Add(day), wantErr: "no trusted key has the bundle's key hint"},
		{name: "admin key signs no artifacts", key: admin, stamp: stampA, at: rotatedAt.Add(day), wantErr: "no trusted key has the bundle's key hint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := signer.SignStatement(context.Background(), tt.key, statement(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.stamp != nil {
				b = tt.stamp.stamp(t, b, tt.at)
			}
			rep, err := verify.Verify(context.Background(), b, verify.Artifact{Digests: map[string]string{"sha256": digestHex()}}, tm,
				verify.Requirements{PredicateType: "https://custody.dev/test/v1"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == "" {
				if !rep.Verified {
					t.Fatalf("not verified: %+v", rep.Failed())
				}
				return
			}
			if rep.Verified {
				t.Fatalf("verified, want a failure mentioning %q: %+v", tt.wantErr, rep.Checks)
			}
			var reasons []string
			for _, c := range rep.Failed() {
				reasons = append(reasons, c.Name+": "+c.Reason)
			}
			if got := strings.Join(reasons, "; "); !strings.Contains(got, tt.wantErr) {
				t.Fatalf("failed with %q, want a reason mentioning %q", got, tt.wantErr)
			}
		})
	}
}

func digestHex() string {
	sum := sha256.Sum256(artifact)
	return hex.EncodeToString(sum[:])
}
