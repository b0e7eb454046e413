package pack

import (
	"bytes"
	"testing"
)

// FuzzDecodeProof: decodeProof never panics, holds to 64 hashes of 32
// bytes, and what it accepts encodeProof writes back byte for byte
// (with the final newline).
func FuzzDecodeProof(f *testing.F) {
	f.Add(encodeProof([][]byte{make([]byte, 32), bytes.Repeat([]byte{1}, 32)}))
	f.Add([]byte("AAAA\n"))
	f.Add([]byte("\n\n"))
	f.Add(bytes.Repeat([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 65))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodeProof(b)
		if err != nil {
			return
		}
		if len(hs) > 64 {
			t.Fatalf("%d hashes", len(hs))
		}
		for _, h := range hs {
			if len(h) != 32 {
				t.Fatalf("a hash of %d bytes", len(h))
			}
		}
		if out := encodeProof(hs); !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), bytes.TrimSuffix(out, []byte("\n"))) {
			t.Fatalf("decodeProof(%q) reads as %q", b, out)
		}
	})
}
