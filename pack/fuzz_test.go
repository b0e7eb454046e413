package pack_test

import (
	"context"
	"testing"
	"time"

	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
)

// FuzzParse: Parse never panics, and whatever it accepts Open handles
// without panicking (refusing it: nothing random is signed).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.custody.pack.v1+json","manifest":{},"entries":[{"name":"bundle/0000","content":"e30="}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.custody.pack.v1+json","manifest":{},"entries":[{"name":"../x","content":"e30="}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.custody.pack.v1+json","manifest":{},"entries":[{"name":"consistency/0/12","content":"e30="},{"name":"consistency/0/12","content":"e30="}]}`))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := pack.Parse(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range p.Entries {
			if seen[e.Name] || e.Kind() == "" {
				t.Fatalf("Parse accepted a bad or repeated name %q", e.Name)
			}
			seen[e.Name] = true
		}
		fx := packtest.New(t)
		o := fx.Options()
		o.Now = time.Now()
		if _, err := pack.Open(context.Background(), b, o); err == nil {
			t.Fatal("an unsigned pack opened")
		}
	})
}
