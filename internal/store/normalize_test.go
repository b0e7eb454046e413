package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizeQuery(t *testing.T) {
	hexd := strings.Repeat("Ab", 32)
	tests := []struct {
		name      string
		q         Query
		limit     int
		alg, val  string
		wantError bool
	}{
		{name: "default limit", q: Query{}, limit: DefaultLimit},
		{name: "limit kept", q: Query{Limit: 7}, limit: 7},
		{name: "limit at max", q: Query{Limit: MaxLimit}, limit: MaxLimit},
		{name: "limit lowered", q: Query{Limit: MaxLimit + 1}, limit: MaxLimit},
		{name: "negative limit", q: Query{Limit: -1}, wantError: true},
		{name: "hex digest lowercased", q: Query{Digest: "sha256:" + hexd}, limit: DefaultLimit, alg: "sha256", val: strings.ToLower(hexd)},
		{name: "non-hex digest kept", q: Query{Digest: "goModuleH1:h1:AbC="}, limit: DefaultLimit, alg: "goModuleH1", val: "h1:AbC="},
		{name: "no colon", q: Query{Digest: hexd}, wantError: true},
		{name: "space in value", q: Query{Digest: "sha256:a b"}, wantError: true},
		{name: "since after until", q: Query{Since: time.Unix(10, 0), Until: time.Unix(9, 0)}, wantError: true},
		{name: "since equals until", q: Query{Since: time.Unix(10, 0), Until: time.Unix(10, 0)}, limit: DefaultLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := normalizeQuery(tt.q)
			if tt.wantError {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("normalizeQuery(%+v) = %v, want ErrInvalidQuery", tt.q, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalizeQuery(%+v): %v", tt.q, err)
			}
			if n.Limit != tt.limit || n.alg != tt.alg || n.value != tt.val {
				t.Errorf("normalizeQuery(%+v) = limit %d, %q:%q; want %d, %q:%q", tt.q, n.Limit, n.alg, n.value, tt.limit, tt.alg, tt.val)
			}
		})
	}
}

func TestCeilMicros(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want int64
	}{
		{base, base.UnixMicro()},
		{base.Add(time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(999 * time.Nanosecond), base.UnixMicro() + 1},
		{base.Add(time.Microsecond), base.UnixMicro() + 1},
		{base.Add(-time.Nanosecond), base.UnixMicro()},
	}
	for _, tt := range tests {
		t.Run(tt.t.Format(time.RFC3339Nano), func(t *testing.T) {
			if got := ceilMicros(tt.t); got != tt.want {
				t.Errorf("ceilMicros = %d, want %d", got, tt.want)
			}
		})
	}
}

// FuzzNormalizeQueryDigest checks that query digests either fail with
// ErrInvalidQuery or normalise to a digest that normalises to itself.
func FuzzNormalizeQueryDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + strings.Repeat("AB", 32), "gitCommit:abc", ":", "a:", ":b", "x:y:z", "sha256:\x00", "a\xff:b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		n, err := normalizeQuery(Query{Digest: d})
		if d == "" {
			if err != nil || n.alg != "" {
				t.Fatalf("empty digest: %q, %v; want no condition", n.alg, err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("error %v does not wrap ErrInvalidQuery", err)
			}
			return
		}
		alg, v, err := normalizeDigest(n.alg, n.value)
		if err != nil || alg != n.alg || v != n.value {
			t.Fatalf("normalized digest %q:%q normalizes to %q:%q, %v", n.alg, n.value, alg, v, err)
		}
	})
}

// FuzzNormalize checks that evidence built from arbitrary strings is either
// rejected with ErrInvalid or accepted in a form that is accepted unchanged.
func FuzzNormalize(f *testing.F) {
	f.Add([]byte(`{}`), "app", "sha256", strings.Repeat("ab", 32), "https://builder", strings.Repeat("CD", 32))
	f.Add([]byte(`[`), "", "", "", "\x00", "k")
	f.Fuzz(func(t *testing.T, bundle []byte, name, alg, digest, builder, key string) {
		e := &Evidence{Bundle: bundle, Subjects: []Subject{{Name: name, Digests: map[string]string{alg: digest}}},
			BuilderID: builder, SignerKeyID: key, LogIndex: -1}
		r, err := normalize(e)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		r2, err := normalize(&r.e)
		if err != nil {
			t.Fatalf("normalized evidence rejected: %v", err)
		}
		if r2.e.BundleSHA256 != r.e.BundleSHA256 || r2.e.SignerKeyID != r.e.SignerKeyID || len(r2.digests) != len(r.digests) {
			t.Fatalf("normalize is not idempotent: %+v then %+v", r.e, r2.e)
		}
	})
}
