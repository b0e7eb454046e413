package incident

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/custody-dev/custody/internal/tsa"
)

// responses returns timestamp responses of custody's TSA at the given
// times (with and without fractions of a second).
func responses(t testing.TB, at ...time.Time) [][]byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, when := range at {
		leaf, root, _, err := tsa.GenerateChain(key, "claim test tsa", when)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tsa.NewAuthority(key, []*x509.Certificate{leaf, root}, tsa.WithClock(func() time.Time { return when }))
		if err != nil {
			t.Fatal(err)
		}
		req, err := timestamp.CreateRequest(bytes.NewReader([]byte("artifact")), &timestamp.RequestOptions{Certificates: true})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Timestamp(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp)
	}
	return out
}

// claimedTime reads the time digitorus/timestamp parses, without the rest.
func TestClaimedTime(t *testing.T) {
	// digitorus checks the signature against the current time: the TSA's
	// chain must be valid now.
	now := time.Now().UTC().Truncate(time.Second)
	at := []time.Time{now, now.Add(-time.Minute + 123456789), now.Add(-time.Hour + 500000000)}
	for i, resp := range responses(t, at...) {
		want, err := timestamp.ParseResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := claimedTime(resp)
		if err != nil {
			t.Fatalf("claimedTime: %v", err)
		}
		if !got.Equal(want.Time) || !got.Truncate(time.Second).Equal(at[i].Truncate(time.Second)) {
			t.Errorf("claimedTime = %v; digitorus %v, issued at %v", got, want.Time, at[i])
		}
		// Every truncation is refused (the caller then verifies).
		for n := range len(resp) {
			if _, err := claimedTime(resp[:n]); err == nil {
				t.Fatalf("truncated to %d of %d bytes: read", n, len(resp))
			}
		}
	}
	for _, bad := range [][]byte{nil, {0x30, 0x00}, {0x30, 0x03, 0x30, 0x01, 0x02}, []byte("not der")} {
		if _, err := claimedTime(bad); err == nil {
			t.Errorf("claimedTime(%x) read a time", bad)
		}
	}
	// A rejection (status 2) carries no time.
	if _, err := claimedTime([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02}); err == nil {
		t.Error("a rejection read as a time")
	}
}

// FuzzClaimedTime: never panics, and whenever digitorus/timestamp reads a
// response too, both read the same time.
func FuzzClaimedTime(f *testing.F) {
	for _, r := range responses(f, time.Now().Add(-time.Minute).Truncate(time.Second).Add(250000000)) {
		f.Add(r)
	}
	f.Add([]byte{0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := claimedTime(b)
		if err != nil {
			return
		}
		if want, err := timestamp.ParseResponse(b); err == nil && !got.Equal(want.Time) {
			t.Errorf("claimedTime = %v, digitorus %v", got, want.Time)
		}
	})
}
