package redflags

import (
	"testing"

	"github.com/custody-dev/custody/internal/store"
)

// FuzzFromEvidence: reading a build from untrusted bundle bytes never
// panics, and what it reads stays within the caps.
func FuzzFromEvidence(f *testing.F) {
	f.Add(spec{n: 1}.evidence(f).Bundle)
	f.Add([]byte(`{"dsseEnvelope":{"payload":"e30="}}`))
	f.Add([]byte(`{"dsseEnvelope":{"payload":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bld, err := FromEvidence(&store.Evidence{ID: 1, Bundle: b}, "app")
		if err != nil {
			return
		}
		if len(bld.Deps) > MaxDependencies {
			t.Fatalf("%d dependencies read", len(bld.Deps))
		}
	})
}

// FuzzAddSBOM: a malformed SBOM is an error, never a panic, and adds
// nothing past the cap.
func FuzzAddSBOM(f *testing.F) {
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","version":"v1","purl":"pkg:golang/x@v1"}]}`))
	f.Add([]byte(`{"bomFormat":"CycloneDX","components":[{"purl":"pkg:/@"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bld := &Build{Deps: map[string]Dep{}}
		if err := bld.AddSBOM(b); err != nil && len(bld.Deps) > 0 {
			t.Fatal("a refused SBOM added dependencies")
		}
		if len(bld.Deps) > MaxDependencies {
			t.Fatalf("%d dependencies", len(bld.Deps))
		}
	})
}
