package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// Open writes cannot starve token holders: with every open write slot
// held by slow open writes, another open write gets 503, and a builder's
// write through the same route is served from the token holders' slots.
func TestOpenWritesKeepTokenSlots(t *testing.T) {
	dir := t.TempDir()
	open := OpenWrites{Log: true, Rate: 1000}
	if err := open.withDefaults(8); err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{MaxBody: 1 << 10, Open: open}, logger: slog.New(slog.DiscardHandler), metrics: newMetrics(),
		writes: newPool(8, 1), open: newOpenGate(open), tokens: newTokenStore(state.Dir(dir), slog.New(slog.DiscardHandler))}
	tok, err := tokenfile.CreateToken(dir, api.RoleBuilder, "", "")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	var started, done sync.WaitGroup
	h := func(w http.ResponseWriter, r *http.Request) {
		if tokenFrom(r) == nil {
			started.Done()
			<-hold
		}
		w.WriteHeader(http.StatusCreated)
	}
	route := s.openOr(true, "log", s.auth(s.write(h), api.RoleBuilder), h)
	send := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v2/log/entries", strings.NewReader("{}"))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		route(rec, r)
		return rec
	}
	for range open.MaxInflight {
		started.Add(1)
		done.Add(1)
		go func() { defer done.Done(); send("") }()
	}
	started.Wait()
	if rec := send(""); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("open write with the open slots taken: %d %q", rec.Code, rec.Body)
	}
	if rec := send(tok); rec.Code != http.StatusCreated {
		t.Errorf("builder write with the open slots taken: %d %q", rec.Code, rec.Body)
	}
	close(hold)
	done.Wait()
}

// The table of client addresses is bounded: when it is full of active
// clients a new address gets errTooManyClients, while known addresses go
// on; once a client's bucket is full again it is forgotten and makes room.
func TestOpenGateClientTable(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newOpenGate(OpenWrites{Rate: 1, Burst: 2, MaxInflight: 1, MaxClients: 2})
	g.now = func() time.Time { return now }
	a, b, c := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("2001:db8::/64")
	for _, p := range []netip.Prefix{a, b} {
		if wait, err := g.admit(p); wait != 0 || err != nil {
			t.Fatalf("%s: %v %v", p, wait, err)
		}
	}
	if _, err := g.admit(c); err != errTooManyClients {
		t.Errorf("third address with the table full: %v, want errTooManyClients", err)
	}
	if wait, err := g.admit(a); wait != 0 || err != nil {
		t.Errorf("known address: %v %v", wait, err)
	}
	if wait, err := g.admit(a); wait <= 0 || err != nil {
		t.Errorf("known address over its burst: wait %v %v, want a wait", wait, err)
	}
	now = now.Add(3 * time.Second) // every bucket full again
	if wait, err := g.admit(c); wait != 0 || err != nil {
		t.Errorf("new address after the others went idle: %v %v", wait, err)
	}
}

// clientPrefix rate-limits an IPv6 client by its /64 and an IPv4 one by
// its address, with IPv4-mapped IPv6 as IPv4.
func TestClientPrefix(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:4000":                 "192.0.2.7/32",
		"[::ffff:192.0.2.7]:4000":        "192.0.2.7/32",
		"[2001:db8:1:2:3:4:5:6]:4000":    "2001:db8:1:2::/64",
		"[2001:db8:1:2::9%eth0]:4000":    "2001:db8:1:2::/64",
		"not an address":                 "invalid Prefix",
		"[2001:db8:1:2:ffff::1]:1":       "2001:db8:1:2::/64",
		"198.51.100.200:65535":           "198.51.100.200/32",
		"[fe80::1%lo]:80":                "fe80::/64",
		"[::1]:80":                       "::/64",
		"127.0.0.2:1":                    "127.0.0.2/32",
		"[::ffff:127.0.0.1]:1":           "127.0.0.1/32",
		"[2001:db8:ffff:ffff:1::]:65535": "2001:db8:ffff:ffff::/64",
	} {
		r := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/", nil)
		r.RemoteAddr = remote
		if got := clientPrefix(r).String(); got != want {
			t.Errorf("%s: %s, want %s", remote, got, want)
		}
	}
}

// Whoever holds an IPv6 /48 (tunnel brokers and many hosts hand one out
// for free) holds 65,536 /64s: one bucket per /64 alone let them write at
// 65,536 times the rate and fill the table of client addresses, so that
// every new client (IPv4 ones too) got 503. The /64s of one /48 share a
// bucket of openNetFactor times a client's.
func TestOpenGateIPv6Network(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	g := newOpenGate(OpenWrites{Rate: 1, Burst: 2, MaxInflight: 1, MaxClients: 1000})
	g.now = func() time.Time { return now }
	admitted := 0
	for i := range 1000 {
		p := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i)}), 64)
		if wait, err := g.admit(p); wait == 0 && err == nil {
			admitted++
		}
	}
	if max := openNetFactor * 2; admitted > max {
		t.Errorf("one /48 made %d writes at once through distinct /64s; want at most %d", admitted, max)
	}
	if wait, err := g.admit(netip.MustParsePrefix("192.0.2.1/32")); wait != 0 || err != nil {
		t.Errorf("a new IPv4 client after a /48 flooded: %v %v", wait, err)
	}
	if wait, err := g.admit(netip.MustParsePrefix("2001:db8:2::/64")); wait != 0 || err != nil {
		t.Errorf("a /64 of another /48: %v %v", wait, err)
	}
	now = now.Add(time.Minute) // every bucket full again: the /48 writes again
	if wait, err := g.admit(netip.MustParsePrefix("2001:db8:1:ffff::/64")); wait != 0 || err != nil {
		t.Errorf("the /48 after it went idle: %v %v", wait, err)
	}
}
