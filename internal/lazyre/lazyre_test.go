package lazyre

import "testing"

func TestLazy(t *testing.T) {
	r := New(`^sha256:([0-9a-f]{64})$`)
	if r.re != nil {
		t.Fatal("compiled before first use")
	}
	h := "sha256:" + string(make([]byte, 0)) + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if !r.MatchString(h) || r.MatchString("sha256:x") || r.FindStringSubmatch(h)[1] != h[7:] || r.String() != `^sha256:([0-9a-f]{64})$` {
		t.Fatal("does not match as regexp does")
	}
}
