package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
)

const interopArtifact = "hello, custody\n"

// signedByUs is a custody statement signed with sigstore-go's own signer
// into a bundle v0.3 with a public key as verification material.
type signedByUs struct {
	bundle []byte
	tm     root.TrustedMaterial
	art    Artifact
	req    Requirements
}

func signInterop(t testing.TB) signedByUs {
	t.Helper()
	sum := sha256.Sum256([]byte(interopArtifact))
	finished := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	st, err := attest.NewStatement(
		[]attest.Subject{{Name: "hello.txt", Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		attest.PredicateSLSAv1,
		attest.ProvenanceV1{
			BuildDefinition: attest.BuildDefinition{
				BuildType: attest.BuildTypeCustody,
				ExternalParameters: attest.CustodyExternalParameters{
					Command: []string{"make"},
					Source:  attest.CustodySource{URI: "git+https://github.com/custody-dev/custody", Ref: "refs/tags/v0.1.0", Commit: strings.Repeat("c", 40)},
				},
			},
			RunDetails: attest.RunDetails{
				Builder:  attest.Builder{ID: "https://custody.dev/builder/ci@v1"},
				Metadata: &attest.BuildMetadata{InvocationID: "b-1", FinishedOn: &finished},
			},
		})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.Bundle(&sign.DSSEData{Data: payload, PayloadType: attest.PayloadType}, kp, sign.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := PublicKeyMaterial(kp.GetPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return signedByUs{
		bundle: b,
		tm:     tm,
		art:    Artifact{Digests: map[string]string{"sha256": hex.EncodeToString(sum[:])}},
		req: Requirements{
			SourceURI: "github.com/custody-dev/custody",
			SourceRef: "refs/tags/v0.1.0",
			BuilderID: "https://custody.dev/builder/ci",
			MaxAge:    24 * time.Hour,
			Now:       finished.Add(time.Hour),
		},
	}
}

func TestInteropKeySigned(t *testing.T) {
	s := signInterop(t)
	for _, mt := range []string{
		"application/vnd.dev.sigstore.bundle.v0.3+json",
		"application/vnd.dev.sigstore.bundle+json;version=0.3",
		"application/vnd.dev.sigstore.bundle+json;version=0.2",
		"application/vnd.dev.sigstore.bundle+json;version=0.1",
	} {
		t.Run(mt, func(t *testing.T) {
			b := editBundle(t, s.bundle, func(m map[string]any) { m["mediaType"] = mt })
			rep, err := Verify(context.Background(), b, s.art, s.tm, s.req)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Verified {
				t.Fatalf("not verified:\n%s", dump(rep))
			}
			if rep.Provenance == nil || rep.Provenance.BuildID != "b-1" || rep.Signer == "" {
				t.Fatalf("report incomplete: %+v", rep)
			}
		})
	}
}

func TestInteropOtherKeyFails(t *testing.T) {
	s, other := signInterop(t), signInterop(t)
	rep, err := Verify(context.Background(), s.bundle, s.art, other.tm, s.req)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := failedCheck(rep, CheckSignature)
	if !ok || rep.Verified {
		t.Fatalf("verified with another key:\n%s", dump(rep))
	}
	// Say what it means, not sigstore-go's "accepted signatures do not
	// match threshold, Found: 0, Expected 1".
	if !strings.Contains(c.Reason, "not signed by the given key") || strings.Contains(c.Reason, "threshold") {
		t.Fatalf("signature reason = %q", c.Reason)
	}
}

func TestInteropCertBundleWithKeyFails(t *testing.T) {
	s := signInterop(t)
	c := genuineCases()[0]
	rep, err := Verify(context.Background(), readCorpus(t, c.bundle), c.art, s.tm, c.req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verified {
		t.Fatalf("certificate bundle verified with a bare key:\n%s", dump(rep))
	}
}

// TestInteropEveryByte flips every byte of the DSSE payload and signature, one
// at a time: each copy must fail (malformed or not verified).
func TestInteropEveryByte(t *testing.T) {
	s := signInterop(t)
	var m map[string]any
	if err := json.Unmarshal(s.bundle, &m); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(m)
	sigObj := env["signatures"].([]any)[0].(map[string]any)
	for _, field := range []string{"payload", "sig"} {
		get := func() string { return env[field].(string) }
		set := func(v string) { env[field] = v }
		if field == "sig" {
			get = func() string { return sigObj["sig"].(string) }
			set = func(v string) { sigObj["sig"] = v }
		}
		orig := get()
		raw, err := base64.StdEncoding.DecodeString(orig)
		if err != nil {
			t.Fatal(err)
		}
		var malformedN, failedN int
		for i := range raw {
			for _, bit := range []byte{0x01, 0x80} {
				mod := append([]byte(nil), raw...)
				mod[i] ^= bit
				set(base64.StdEncoding.EncodeToString(mod))
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := Verify(context.Background(), b, s.art, s.tm, s.req)
				switch {
				case err != nil:
					malformedN++
				case rep.Verified:
					t.Fatalf("%s byte %d ^ %#x verified", field, i, bit)
				default:
					failedN++
				}
			}
		}
		set(orig)
		t.Logf("%s: %d bytes, %d copies malformed, %d failed verification", field, len(raw), malformedN, failedN)
	}
}

// TestKeySignedWithTlogEntryAndBareKey documents the decision for a
// key-signed bundle that carries transparency log entries but is verified
// with a bare key: the entries are reported as not checked and not used, and
// the key is checked at the current time. With trust material that has the
// log, the entries must verify.
func TestKeySignedWithTlogEntryAndBareKey(t *testing.T) {
	s := signInterop(t)
	var donor map[string]any
	if err := json.Unmarshal(readCorpus(t, "delegator-v2.0.0-push-v13.0.30.sigstore.json"), &donor); err != nil {
		t.Fatal(err)
	}
	entries := donor["verificationMaterial"].(map[string]any)["tlogEntries"]
	b := editBundle(t, s.bundle, func(m map[string]any) {
		m["verificationMaterial"].(map[string]any)["tlogEntries"] = entries
	})

	rep, err := Verify(context.Background(), b, s.art, s.tm, s.req)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Fatalf("not verified with bare key:\n%s", dump(rep))
	}
	var tl Check
	for _, c := range rep.Checks {
		if c.Name == CheckTlog {
			tl = c
		}
	}
	if !strings.HasPrefix(tl.Reason, "not checked") || !tl.NotChecked || rep.Passed(CheckTlog) {
		t.Fatalf("tlog check = %+v, want not checked (and not passed)", tl)
	}

	withLog := root.TrustedMaterialCollection{publicGood(t), s.tm}
	rep, err = Verify(context.Background(), b, s.art, withLog, s.req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := failedCheck(rep, CheckTlog); !ok || rep.Verified {
		t.Fatalf("foreign tlog entry accepted with the log's key:\n%s", dump(rep))
	}
}
