package incident

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/verify"
)

// FuzzFromBundle: FromBundle reads untrusted bundles (a directory of them,
// or a server's search results); it never panics, refuses with a one-line
// error, and what it accepts keeps the bundle's bytes. since exercises the
// unverified claimed-time path (RFC 3161 genTime and log entries).
func FuzzFromBundle(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(corpus, "*.sigstore.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, int64(0))
		f.Add(b, int64(1700000000))
	}
	tm, err := verify.LoadTrustedRoot(filepath.Join(corpus, "public-good-trusted_root.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, since int64) {
		var s time.Time
		if since != 0 {
			s = time.Unix(since%(1<<40), 0)
		}
		e, err := FromBundle("fuzz", b, tm, s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if !bytes.Equal(e.Bundle, b) {
			t.Fatal("evidence does not hold the bundle read")
		}
		if e.SignerKeyID != "" && len(e.SignerKeyID) != 64 {
			t.Fatalf("signer key ID %q is not a SHA-256", e.SignerKeyID)
		}
		if !e.ProvenAt.IsZero() && e.Proof == "" {
			t.Fatal("a proven time with no proof named")
		}
	})
}
