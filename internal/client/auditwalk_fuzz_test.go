package client

import (
	"bytes"
	"testing"
)

// FuzzParseLeaf: parseLeaf reads the server's untrusted log entries; it
// must not panic, and a leaf it accepts names keys it really holds.
// Seeds are in testdata/fuzz/FuzzParseLeaf (a dsse and a hashedrekord
// entry as the log writes them).
func FuzzParseLeaf(f *testing.F) {
	f.Fuzz(func(t *testing.T, leaf []byte) {
		info, err := parseLeaf(leaf)
		if err != nil {
			return
		}
		for _, k := range info.keys {
			if len(k) == 0 || !bytes.Contains(leaf, []byte(`rawBytes`)) && !bytes.Contains(leaf, []byte(`raw_bytes`)) {
				t.Fatalf("key %x read from a leaf that names none: %q", k, leaf)
			}
		}
	})
}
