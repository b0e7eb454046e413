package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// editBundle applies fn to the bundle's JSON object and re-encodes it.
func editBundle(t *testing.T, b []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func envelopeOf(m map[string]any) map[string]any { return m["dsseEnvelope"].(map[string]any) }

func editPayload(t *testing.T, fn func([]byte) []byte) func(map[string]any) {
	return func(m map[string]any) {
		env := envelopeOf(m)
		p, err := base64.StdEncoding.DecodeString(env["payload"].(string))
		if err != nil {
			t.Fatal(err)
		}
		env["payload"] = base64.StdEncoding.EncodeToString(fn(p))
	}
}

func flipSignatureBit(t *testing.T) func(map[string]any) {
	return func(m map[string]any) {
		sig := envelopeOf(m)["signatures"].([]any)[0].(map[string]any)
		s, err := base64.StdEncoding.DecodeString(sig["sig"].(string))
		if err != nil {
			t.Fatal(err)
		}
		s[len(s)-3] ^= 0x01
		sig["sig"] = base64.StdEncoding.EncodeToString(s)
	}
}

func failedCheck(r *Report, name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name && !c.OK {
			return c, true
		}
	}
	return Check{}, false
}

func TestTampered(t *testing.T) {
	base := genuineCases()[2] // delegator v2.0.0 push, bundle v0.2
	genuine := readCorpus(t, base.bundle)

	changedArtifact := filepath.Join(t.TempDir(), "changed.bin")
	bin := readCorpus(t, "delegator-v2.0.0-push-v13.0.30.bin")
	bin = append([]byte(nil), bin...)
	bin[0] ^= 0x01
	if err := os.WriteFile(changedArtifact, bin, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		bundle    []byte
		art       *Artifact
		req       func(*Requirements)
		wantCheck string // failing check; "" with wantMalformed
		reason    string // substring of the failing check's reason
		malformed bool
		also      string // a second check expected to fail
	}{
		{name: "payload changed", bundle: editBundle(t, genuine, editPayload(t, func(p []byte) []byte {
			return bytes.Replace(p, []byte("gha_delegator"), []byte("ghx_delegator"), 1)
		})), wantCheck: CheckSignature, reason: "signature does not verify", also: CheckTlog},
		{name: "signature bit flipped", bundle: editBundle(t, genuine, flipSignatureBit(t)), wantCheck: CheckSignature, reason: "signature does not verify", also: CheckTlog},
		{name: "artifact changed", bundle: genuine, art: &Artifact{Path: changedArtifact}, wantCheck: CheckSubject, reason: "is not a subject"},
		{name: "artifact digest given, file differs", bundle: genuine, art: &Artifact{Path: changedArtifact, Digests: map[string]string{"sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}}, wantCheck: CheckSubject, reason: "not the given"},
		{name: "no artifact", bundle: genuine, art: &Artifact{}, wantCheck: CheckSubject, reason: "no artifact"},
		{name: "wrong identity", bundle: genuine, req: func(r *Requirements) { r.CertificateIdentity = delegatorW + "v1.10.0" }, wantCheck: CheckIdentity, reason: `is not "` + delegatorW + `v1.10.0"`},
		{name: "wrong identity regexp", bundle: genuine, req: func(r *Requirements) { r.CertificateIdentity = ""; r.CertificateIdentityRegexp = "^https://evil/" }, wantCheck: CheckIdentity, reason: "does not match"},
		{name: "wrong issuer", bundle: genuine, req: func(r *Requirements) { r.CertificateOIDCIssuer = "https://accounts.google.com" }, wantCheck: CheckIdentity, reason: "issuer"},
		{name: "no identity required", bundle: genuine, req: func(r *Requirements) { r.CertificateIdentity = "" }, wantCheck: CheckIdentity, reason: "no identity required"},
		{name: "wrong source ref", bundle: genuine, req: func(r *Requirements) { r.SourceRef = "refs/tags/v13.0.31" }, wantCheck: CheckSourceRef, reason: `source ref "refs/tags/v13.0.30" is not "refs/tags/v13.0.31"`},
		{name: "wrong source uri", bundle: genuine, req: func(r *Requirements) { r.SourceURI = "github.com/slsa-framework/example-package-fork" }, wantCheck: CheckSourceURI, reason: "is not"},
		{name: "wrong builder", bundle: genuine, req: func(r *Requirements) { r.BuilderID = trwBuilder + "@refs/tags/v1.10.0" }, wantCheck: CheckBuilderID, reason: `is not "` + trwBuilder + `@refs/tags/v1.10.0"`},
		{name: "wrong builder prefix", bundle: genuine, req: func(r *Requirements) { r.BuilderID = "https://github.com/slsa-framework/example-trw" }, wantCheck: CheckBuilderID, reason: "is not"},
		{name: "wrong predicate type", bundle: genuine, req: func(r *Requirements) { r.PredicateType = "https://cyclonedx.org/bom" }, wantCheck: CheckPredicateType, reason: `is not "https://cyclonedx.org/bom"`},
		{name: "too old", bundle: genuine, req: func(r *Requirements) { r.MaxAge = time.Hour; r.Now = time.Date(2024, 4, 23, 0, 0, 0, 0, time.UTC) }, wantCheck: CheckMaxAge, reason: "more than max age 1h0m0s"},
		{name: "untrusted root", bundle: genuine, req: func(r *Requirements) {}, wantCheck: CheckTlog, reason: "not enough verified log entries", also: CheckSignature},
		{name: "keyless without tlog entry or timestamp", bundle: editBundle(t, genuine, func(m map[string]any) {
			delete(m["verificationMaterial"].(map[string]any), "tlogEntries")
		}), wantCheck: CheckTimestamp, reason: "no transparency log entry or RFC 3161 timestamp"},
		{name: "keyless tlog entry without integrated time", bundle: editBundle(t, genuine, func(m map[string]any) {
			m["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)["integratedTime"] = "0"
		}), wantCheck: CheckTimestamp, reason: "carry no integrated time"},
		{name: "truncated JSON", bundle: genuine[:len(genuine)/2], malformed: true},
		{name: "empty", bundle: nil, malformed: true},
		{name: "wrong media type", bundle: editBundle(t, genuine, func(m map[string]any) {
			m["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=9.9"
		}), malformed: true},
		{name: "future media type", bundle: editBundle(t, genuine, func(m map[string]any) {
			m["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json"
		}), malformed: true},
		{name: "oversized", bundle: append(append([]byte(nil), genuine...), bytes.Repeat([]byte(" "), MaxBundleBytes)...), malformed: true},
		{name: "payload not a statement", bundle: editBundle(t, genuine, editPayload(t, func([]byte) []byte { return []byte(`{"hello":1}`) })), malformed: true},
		{name: "payload type not in-toto", bundle: editBundle(t, genuine, func(m map[string]any) {
			envelopeOf(m)["payloadType"] = "text/plain"
		}), malformed: true},
		{name: "bad identity regexp", bundle: genuine, req: func(r *Requirements) { r.CertificateIdentity = ""; r.CertificateIdentityRegexp = "(" }, malformed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art, req, tm := base.art, base.req, publicGood(t)
			if tt.art != nil {
				art = *tt.art
			}
			if tt.req != nil {
				tt.req(&req)
			}
			if tt.name == "untrusted root" {
				tm = scaffolding(t)
			}
			rep, err := Verify(context.Background(), tt.bundle, art, tm, req)
			if tt.malformed {
				if !errors.Is(err, ErrMalformed) || rep != nil {
					t.Fatalf("Verify = %v, %v; want ErrMalformed", rep, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.Verified {
				t.Fatalf("tampered bundle verified:\n%s", dump(rep))
			}
			c, ok := failedCheck(rep, tt.wantCheck)
			if !ok {
				t.Fatalf("check %q did not fail:\n%s", tt.wantCheck, dump(rep))
			}
			if !strings.Contains(c.Reason, tt.reason) {
				t.Fatalf("reason %q does not contain %q", c.Reason, tt.reason)
			}
			wantFailed := 1
			if tt.also != "" {
				wantFailed++
				if _, ok := failedCheck(rep, tt.also); !ok {
					t.Errorf("check %q did not fail", tt.also)
				}
			}
			if len(rep.Failed()) != wantFailed {
				t.Errorf("more than the expected check failed:\n%s", dump(rep))
			}
		})
	}
}

func TestDSSETwoSignaturesRejected(t *testing.T) {
	c := genuineCases()[5] // dsse.sigstore.json
	if c.bundle != "dsse.sigstore.json" {
		t.Fatalf("case order changed: %s", c.bundle)
	}
	rep := mustVerify(t, c, readCorpus(t, "dsse-2sigs.sigstore.json"))
	if rep.Verified {
		t.Fatal("bundle with two DSSE signatures verified")
	}
	chk, ok := failedCheck(rep, CheckSignature)
	if !ok || !strings.Contains(chk.Reason, "2 signatures") {
		t.Fatalf("want signature check failing on 2 signatures:\n%s", dump(rep))
	}
}

func TestMaxAgeWithinLimit(t *testing.T) {
	c := genuineCases()[2]
	c.req.MaxAge = time.Hour
	c.req.Now = time.Date(2024, 4, 22, 22, 0, 0, 0, time.UTC) // signed 21:36:13
	rep := mustVerify(t, c, readCorpus(t, c.bundle))
	if !rep.Verified {
		t.Fatalf("not verified:\n%s", dump(rep))
	}
	if _, ok := failedCheck(rep, CheckMaxAge); ok {
		t.Fatal("max-age failed")
	}
}

func TestPublicKeyValidity(t *testing.T) {
	c := genuineCases()[len(genuineCases())-1]
	b := readCorpus(t, c.bundle)

	t.Run("key only: timestamp not checked, key valid now", func(t *testing.T) {
		km, err := PublicKeyMaterial(publicKeyValidityKey(t))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(context.Background(), b, c.art, km, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Verified {
			t.Fatalf("not verified:\n%s", dump(rep))
		}
		var ts Check
		for _, x := range rep.Checks {
			if x.Name == CheckTimestamp {
				ts = x
			}
		}
		if !strings.HasPrefix(ts.Reason, "not checked") {
			t.Fatalf("timestamp check = %+v, want not checked", ts)
		}
	})
	t.Run("wrong artifact", func(t *testing.T) {
		c := c
		c.art = Artifact{Digests: map[string]string{"sha256": strings.Repeat("0", 64)}}
		rep := mustVerify(t, c, b)
		if rep.Verified {
			t.Fatal("verified with the wrong artifact")
		}
		if _, ok := failedCheck(rep, CheckSubject); !ok {
			t.Fatalf("subject did not fail:\n%s", dump(rep))
		}
	})
	t.Run("provenance requirement on message signature", func(t *testing.T) {
		c := c
		c.req.SourceURI = "github.com/org/repo"
		rep := mustVerify(t, c, b)
		if _, ok := failedCheck(rep, CheckSourceURI); !ok || rep.Verified {
			t.Fatalf("source-uri did not fail:\n%s", dump(rep))
		}
	})
}

func TestReportJSON(t *testing.T) {
	c := genuineCases()[4] // npm, digest only
	rep := mustVerify(t, c, readCorpus(t, c.bundle))
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Verified   bool    `json:"verified"`
		Checks     []Check `json:"checks"`
		Signer     string  `json:"signer"`
		Provenance struct {
			SourceRef string
		} `json:"provenance"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Verified || back.Signer == "" || back.Provenance.SourceRef != "refs/heads/main" || len(back.Checks) == 0 {
		t.Fatalf("report JSON lost data: %s", b)
	}
}
