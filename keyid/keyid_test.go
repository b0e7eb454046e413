package keyid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

func TestBothFormsParseToTheSameID(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Of(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{id.String(), strings.ToUpper(id.String()), id.Base64(), " " + id.Base64() + "\n"} {
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != id {
			t.Errorf("Parse(%q) = %s, want %s", s, got, id)
		}
		if Display(s) != id.String() {
			t.Errorf("Display(%q) = %q, want %q", s, Display(s), id.String())
		}
	}
	if len(id.String()) != 64 || strings.ToLower(id.String()) != id.String() {
		t.Errorf("printed form %q is not lowercase hex", id)
	}
}

func TestMalformedIsRefusedOnOneLine(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63),
		"AAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", strings.Repeat("A", 44), strings.Repeat("x\n", 500)} {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) accepted", s)
			continue
		}
		if strings.Contains(err.Error(), "\n") || len(err.Error()) > 200 {
			t.Errorf("Parse(%q) error is not one short line: %q", s, err)
		}
		if _, err := Normalize(s); err == nil {
			t.Errorf("Normalize(%q) accepted", s)
		}
		if Display(s) != s {
			t.Errorf("Display(%q) changed a non-ID", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("c0ffee")
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("A", 43) + "=")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		for _, f := range []string{id.String(), id.Base64()} {
			if again, err := Parse(f); err != nil || again != id {
				t.Fatalf("%q does not round-trip: %v", f, err)
			}
		}
	})
}
