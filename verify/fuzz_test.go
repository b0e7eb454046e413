package verify

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
)

// FuzzVerifyBundle feeds arbitrary bytes through the whole bundle → Report
// path, seeded with every bundle of the corpus and one signed by the test.
// Verify must never panic, never return (nil, nil), only return errors
// wrapping ErrMalformed for bundle bytes, and never report Verified without
// the signature and subject checks passing.
//
// The seeds are 1–24 KB and each execution touches much instrumented code, so
// minimising a new input takes long with the default -fuzzminimizetime=60s;
// run it as
//
//	go test -run=^$ -fuzz=FuzzVerifyBundle -fuzztime=30s -fuzzminimizetime=50x ./verify
func FuzzVerifyBundle(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(corpus, "*.sigstore.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus: %v", err)
	}
	for _, file := range files {
		f.Add(readCorpus(f, filepath.Base(file)))
	}
	s := signInterop(f)
	f.Add(s.bundle)
	tm := root.TrustedMaterialCollection{publicGood(f), scaffolding(f), s.tm}
	art := Artifact{Digests: map[string]string{
		"sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
		"sha512": npmSHA512,
	}}
	req := Requirements{CertificateIdentityRegexp: ".", CertificateOIDCIssuerRegexp: "."}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := Verify(context.Background(), b, art, tm, req)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if rep != nil {
				t.Fatal("report returned with an error")
			}
			return
		}
		if rep == nil {
			t.Fatal("nil report and nil error")
		}
		if !rep.Verified {
			return
		}
		passed := map[string]bool{}
		for _, c := range rep.Checks {
			if !c.OK {
				t.Fatalf("verified with failing check %+v", c)
			}
			passed[c.Name] = true
		}
		if !passed[CheckSignature] || !passed[CheckSubject] {
			t.Fatalf("verified without signature and subject checks: %+v", rep.Checks)
		}
	})
}
