package oci_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/bundle"

	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/internal/oci/ocitest"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/verify"
)

// signedProvenance signs SLSA v1 provenance about img with a fresh key and
// returns the bundle and the key.
func signedProvenance(t *testing.T, img oci.Ref) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": img.Registry + "/" + img.Repository, "digest": map[string]string{"sha256": img.Hex()}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate": map[string]any{
			"buildDefinition": map[string]any{"buildType": "https://example.com/build/v1", "externalParameters": map[string]any{}},
			"runDetails":      map[string]any{"builder": map[string]any{"id": "https://example.com/builder"}},
		},
	})
	b, err := signer.SignStatement(context.Background(), key, st)
	if err != nil {
		t.Fatal(err)
	}
	return b, key
}

func verifyFound(t *testing.T, f oci.Found, img oci.Ref, key *ecdsa.PrivateKey) *verify.Report {
	t.Helper()
	tm, err := verify.PublicKeyMaterial(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), f.Bundle, verify.Artifact{Digests: map[string]string{"sha256": img.Hex()}}, tm, verify.Requirements{})
	if err != nil {
		t.Fatalf("verify %s: %v", f.Source, err)
	}
	return rep
}

// A referrer attached by custody verifies with custody's verifier, as a
// bundle file does.
func TestAttachedBundleVerifies(t *testing.T) {
	host := ocitest.InProcess(t, true)
	img := ocitest.PushImage(t, host, "app", "v1")
	b, key := signedProvenance(t, img)
	c := client(t, host)
	if _, err := c.Attach(context.Background(), img, b); err != nil {
		t.Fatal(err)
	}
	found, err := c.Evidence(context.Background(), img)
	if err != nil || len(found) != 1 {
		t.Fatalf("Evidence = %d, %v", len(found), err)
	}
	if rep := verifyFound(t, found[0], img, key); !rep.Verified {
		t.Fatalf("attached bundle did not verify: %+v", rep.Failed())
	}
}

// cosign v1/v2 kept attestations as DSSE layers of the sha256-HEX.att tag;
// custody reads them (never writes them) and verifies them as bundles.
func TestCosignAttTagVerifies(t *testing.T) {
	host := ocitest.InProcess(t, false)
	img := ocitest.PushImage(t, host, "app", "v1")
	b, key := signedProvenance(t, img)
	var bun struct {
		DSSE json.RawMessage `json:"dsseEnvelope"`
	}
	if err := json.Unmarshal(b, &bun); err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(bun.DSSE, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
	env["payload"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(payload), "example.com/builder", "example.com/evil", 1)))
	tampered, _ := json.Marshal(env)
	ocitest.PushTag(t, host, "app", "sha256-"+img.Hex()+".att", []ocitest.Layer{
		{MediaType: "application/vnd.dsse.envelope.v1+json", Blob: bun.DSSE, Annotations: map[string]string{"dev.cosignproject.cosign/signature": ""}},
		{MediaType: "application/vnd.dsse.envelope.v1+json", Blob: tampered},
		{MediaType: "application/octet-stream", Blob: []byte("ignored")},
	})
	found, err := client(t, host).Evidence(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 {
		t.Fatalf("found %d bundles in the .att tag, want 2 (the third layer is not an envelope)", len(found))
	}
	if found[0].Format != oci.FormatCosignAttestation || !strings.Contains(found[0].Source, ".att layer 1") {
		t.Errorf("found[0] = %s from %s", found[0].Format, found[0].Source)
	}
	if rep := verifyFound(t, found[0], img, key); !rep.Verified {
		t.Fatalf("cosign .att layer did not verify: %+v", rep.Failed())
	}
	if rep := verifyFound(t, found[1], img, key); rep.Verified {
		t.Fatal("a tampered .att layer verified")
	}
}

// FuzzCosignLayerBundle: whatever a registry puts in a cosign layer and its
// annotations, the conversion never panics and yields JSON or an error.
func FuzzCosignLayerBundle(f *testing.F) {
	f.Add([]byte(`{"payloadType":"x","payload":"e30=","signatures":[{"sig":"AA=="}]}`), "application/vnd.dsse.envelope.v1+json", "", "")
	f.Add([]byte(`{"critical":{}}`), "application/vnd.dev.cosign.simplesigning.v1+json", "AAAA",
		`{"SignedEntryTimestamp":"AA==","Payload":{"body":"eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiaGFzaGVkcmVrb3JkIn0=","integratedTime":1,"logIndex":2,"logID":"abcd"}}`)
	f.Fuzz(func(t *testing.T, blob []byte, mediaType, sig, rekor string) {
		ann := map[string]string{"dev.cosignproject.cosign/signature": sig, "dev.sigstore.cosign/bundle": rekor}
		got, err := oci.CosignLayerBundle(blob, mediaType, ann)
		if err != nil {
			return
		}
		if !json.Valid(got.Bundle) {
			t.Fatalf("bundle is not JSON: %s", got.Bundle)
		}
	})
}

// cosign's .sig tag: each layer is a signed simple-signing payload. It is
// read (never written) and turned into a bundle over that payload, which
// sigstore-go parses; it is not a statement about the image, so callers
// use Payload, not the image digest, as its artifact.
func TestCosignSigTag(t *testing.T) {
	host := ocitest.InProcess(t, false)
	img := ocitest.PushImage(t, host, "app", "v1")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + host + `/app"},"image":{"docker-manifest-digest":"` + img.Digest + `"},"type":"cosign container image signature"},"optional":null}`)
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	ocitest.PushTag(t, host, "app", "sha256-"+img.Hex()+".sig", []ocitest.Layer{{
		MediaType:   "application/vnd.dev.cosign.simplesigning.v1+json",
		Blob:        payload,
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)},
	}})
	found, err := client(t, host).Evidence(context.Background(), img)
	if err != nil || len(found) != 1 {
		t.Fatalf("Evidence = %d, %v; want the .sig layer", len(found), err)
	}
	f := found[0]
	if f.Format != oci.FormatCosignSignature || string(f.Payload) != string(payload) {
		t.Fatalf("found %s with payload %q", f.Format, f.Payload)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(f.Bundle); err != nil {
		t.Fatalf("the .sig bundle does not parse: %v", err)
	}
	if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], b.GetMessageSignature().GetSignature()) {
		t.Fatal("the bundle does not carry cosign's signature over the payload")
	}
}
