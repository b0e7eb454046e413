package policy

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/custody-dev/custody/internal/envelope"
	"github.com/custody-dev/custody/trust"
)

// kofnCaller is one user of the shared k-of-n verifier: it parses an
// envelope of its payload type and counts its signatures against root's
// admins (with root's threshold replaced by threshold).
type kofnCaller struct {
	name        string
	payloadType string
	payload     []byte
	count       func(b []byte, root *trust.Document, threshold int) (trust.Tally, error)
}

// TestKofNHostileEnvelopes runs one table of hostile envelopes against both
// callers of the shared verifier, signed policies and trust root versions,
// and asserts that both refuse the same envelopes at parse and count the
// same signatures, so the two rules cannot drift apart again.
func TestKofNHostileEnvelopes(t *testing.T) {
	root, admins := adminRoot(t, 2, 2)
	now := time.Now()
	rootPayload, err := root.Payload()
	if err != nil {
		t.Fatal(err)
	}
	callers := []kofnCaller{
		{"policy", SignedPayloadType, []byte(minimal), func(b []byte, root *trust.Document, threshold int) (trust.Tally, error) {
			s, err := ParseSigned(b)
			if err != nil {
				return trust.Tally{}, err
			}
			by := *root
			by.Threshold = threshold
			t, _ := s.Verify(&by, now)
			return t, nil
		}},
		{"trust root", trust.DocumentPayloadType, rootPayload, func(b []byte, root *trust.Document, threshold int) (trust.Tally, error) {
			d, err := trust.ParseDocument(b)
			if err != nil {
				return trust.Tally{}, err
			}
			by := *root
			by.Threshold = threshold
			return d.CountSignatures(&by, now)
		}},
	}
	a, b := admins[0], admins[1]
	aID, bID := keyID(t, a), keyID(t, b)
	der, _ := trustPKIX(a)
	aHex := hex.EncodeToString(der[:])
	type sig struct {
		keyid string
		by    *ecdsa.PrivateKey // nil: sig is "c2ln"
	}
	tests := []struct {
		name      string
		sigs      []sig
		threshold int
		// edit rewrites the envelope JSON; nil leaves it.
		edit      func(env string) string
		malformed bool
		valid     int
	}{
		{name: "two admins", sigs: []sig{{aID, a}, {bID, b}}, threshold: 2, valid: 2},
		{name: "duplicate keyid", sigs: []sig{{aID, a}, {aID, a}}, threshold: 2, valid: 1},
		{name: "same key under two keyids", sigs: []sig{{aID, a}, {aHex, a}}, threshold: 2, valid: 1},
		{name: "unknown keyid", sigs: []sig{{"bm9ib2R5", a}, {bID, b}}, threshold: 2, valid: 1},
		{name: "keyid of one admin, signature of the other", sigs: []sig{{aID, b}, {bID, b}}, threshold: 2, valid: 1},
		{name: "threshold 0, unsigned", threshold: 0, valid: 0},
		{name: "threshold 0, signed", sigs: []sig{{aID, a}}, threshold: 0, valid: 1},
		{name: "empty keyid", sigs: []sig{{"", a}, {bID, b}}, threshold: 2, malformed: true},
		{name: "empty sig", sigs: []sig{{aID, a}}, threshold: 2, malformed: true,
			edit: func(env string) string { return replaceSig(env, `""`) }},
		{name: "bad base64 sig", sigs: []sig{{aID, a}}, threshold: 2, malformed: true,
			edit: func(env string) string { return replaceSig(env, `"c2ln_-"`) }},
		{name: "bad base64 payload", threshold: 2, malformed: true,
			edit: func(env string) string { return strings.Replace(env, `"payload":"`, `"payload":"*`, 1) }},
		{name: "wrong payload type", threshold: 2, malformed: true,
			edit: func(env string) string {
				return strings.Replace(env, `"payloadType":"application/vnd.custody.`, `"payloadType":"application/vnd.other.`, 1)
			}},
		{name: "extra member", threshold: 2, malformed: true,
			edit: func(env string) string { return strings.Replace(env, `{"payloadType"`, `{"extra":1,"payloadType"`, 1) }},
		{name: "extra member in a signature", sigs: []sig{{aID, a}}, threshold: 2, malformed: true,
			edit: func(env string) string { return strings.Replace(env, `{"keyid"`, `{"cert":"","keyid"`, 1) }},
		{name: "duplicate payloadType", threshold: 2, malformed: true,
			edit: func(env string) string {
				return strings.Replace(env, `{"payloadType"`, `{"payloadType":"x","payloadType"`, 1)
			}},
		{name: "duplicate keyid member", sigs: []sig{{aID, a}}, threshold: 2, malformed: true,
			edit: func(env string) string { return strings.Replace(env, `{"keyid"`, `{"keyid":"`+bID+`","keyid"`, 1) }},
		{name: "trailing data", threshold: 2, malformed: true, edit: func(env string) string { return env + "{}" }},
		{name: "too many signatures", sigs: repeatSig(sig{aID, nil}, envelope.MaxSignatures+1), threshold: 2, malformed: true},
		{name: "most signatures read", sigs: append(repeatSig(sig{aID, nil}, envelope.MaxSignatures-1), sig{bID, b}), threshold: 2, valid: 1},
	}
	for _, tt := range tests {
		for _, c := range callers {
			t.Run(tt.name+"/"+c.name, func(t *testing.T) {
				var sigs []dsse.Signature
				for _, s := range tt.sigs {
					raw := []byte("sig")
					if s.by != nil {
						var err error
						if raw, err = trust.SignMessage(s.by, dsse.PAE(c.payloadType, c.payload)); err != nil {
							t.Fatal(err)
						}
					}
					sigs = append(sigs, dsse.Signature{KeyID: s.keyid, Sig: base64.StdEncoding.EncodeToString(raw)})
				}
				env, err := json.Marshal(dsse.Envelope{PayloadType: c.payloadType,
					Payload: base64.StdEncoding.EncodeToString(c.payload), Signatures: append([]dsse.Signature{}, sigs...)})
				if err != nil {
					t.Fatal(err)
				}
				in := string(env)
				if tt.edit != nil {
					in = tt.edit(in)
				}
				tally, err := c.count([]byte(in), root, tt.threshold)
				if tt.malformed {
					if !errors.Is(err, trust.ErrMalformed) && !errors.Is(err, ErrMalformed) {
						t.Fatalf("%s accepted the envelope (err %v); want it refused as malformed", c.name, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				wantMet := tt.threshold >= 1 && tt.valid >= tt.threshold
				if len(tally.Valid) != tt.valid || tally.Met() != wantMet {
					t.Fatalf("%s counted %d signatures (met %v, ignored %q); want %d (met %v)", c.name, len(tally.Valid), tally.Met(), tally.Ignored, tt.valid, wantMet)
				}
			})
		}
	}
}

func keyID(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	id, err := trust.KeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// trustPKIX returns the SHA-256 of k's PKIX public key, the digest both
// key ID forms print.
func trustPKIX(k *ecdsa.PrivateKey) ([32]byte, error) {
	id, err := trust.KeyID(k.Public())
	if err != nil {
		return [32]byte{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(id)
	if err != nil || len(raw) != sha256.Size {
		return [32]byte{}, errors.New("key ID is not base64 of a SHA-256")
	}
	return [32]byte(raw), nil
}

func replaceSig(env, sig string) string {
	i := strings.Index(env, `"sig":`) + len(`"sig":`)
	j := i + 1 + strings.IndexByte(env[i+1:], '"') + 1
	return env[:i] + sig + env[j:]
}

func repeatSig[S any](s S, n int) []S {
	out := make([]S, n)
	for i := range out {
		out[i] = s
	}
	return out
}
