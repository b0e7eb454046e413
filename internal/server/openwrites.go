package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// OpenWrites lets clients without a token write to the log and the
// timestamp authority (custody serve --open-writes): what the stock
// Sigstore clients (cosign, sigstore-go's Rekor v2 writer) send, since
// they have no way to send a bearer token. Both are self-authenticating:
// a log entry is a signature that must verify with the key or certificate
// it carries (and reserved types and the audit key's signatures are still
// refused), a timestamp is a countersignature of a digest the caller
// chose. Nothing else opens: the signing service, the index and every
// other route keep their tokens, and a request that carries a token is
// checked as before.
//
// Open writes are rate-limited per client address (the TCP peer address,
// IPv6 by /64, the /64s of a /48 together at openNetFactor times that;
// never a forwarded header), run in write slots of their own
// so that they cannot take those of token holders, and are counted in
// /metrics (custody_open_writes_total).
type OpenWrites struct {
	// Log opens POST /api/v2/log/entries, TSA opens POST /api/v1/timestamp.
	Log, TSA bool
	// Rate is how many open writes per second one client address may
	// make, on average; Burst how many at once. Defaults DefaultOpenRate
	// and twice the rate (at least 1).
	Rate  float64
	Burst int
	// MaxInflight caps concurrent open writes from all addresses; more get
	// 503. Default a quarter of Config.MaxInflight (at least 1).
	MaxInflight int
	// MaxClients caps the client addresses tracked at once; a new address
	// beyond it gets 503 until idle ones are forgotten. Default
	// DefaultOpenClients.
	MaxClients int
}

// Defaults of OpenWrites.
const (
	DefaultOpenRate    = 5
	DefaultOpenClients = 100_000
)

// openNetFactor is how many clients' worth of rate and burst the /64s of
// one IPv6 /48 share: one holder of a /48 (often free) must not count as
// 65,536 clients.
const openNetFactor = 16

// ParseOpenWrites parses the --open-writes list: "log", "tsa", both
// comma-separated, or "" / "none" for none.
func ParseOpenWrites(s string) (OpenWrites, error) {
	var o OpenWrites
	if s == "" || s == "none" {
		return o, nil
	}
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "log":
			o.Log = true
		case "tsa":
			o.TSA = true
		default:
			return o, fmt.Errorf("open writes %q: want log, tsa or log,tsa", part)
		}
	}
	return o, nil
}

func (o *OpenWrites) withDefaults(maxInflight int) error {
	if math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0 {
		return fmt.Errorf("open write rate %v is not a positive number", o.Rate)
	}
	if o.Rate == 0 {
		o.Rate = DefaultOpenRate
	}
	if o.Burst <= 0 {
		o.Burst = max(1, int(math.Ceil(2*o.Rate)))
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = max(1, maxInflight/4)
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultOpenClients
	}
	return nil
}

// openGate admits open writes: a token bucket per client address and a
// pool of slots of their own.
type openGate struct {
	cfg   OpenWrites
	slots chan struct{}

	mu      sync.Mutex
	clients map[netip.Prefix]*rate.Limiter
	swept   time.Time
	now     func() time.Time
}

func newOpenGate(cfg OpenWrites) *openGate {
	return &openGate{cfg: cfg, slots: make(chan struct{}, cfg.MaxInflight), clients: map[netip.Prefix]*rate.Limiter{}, now: time.Now}
}

// errTooManyClients is admit's error when the table of client addresses
// is full of active ones.
var errTooManyClients = errors.New("too many clients are writing without a token; retry later")

// admit takes one token of the client's bucket. It returns how long to
// wait before the next one when there is none, and errTooManyClients when
// the address is new and the table is full.
// An IPv6 client's /64 also takes a token of its /48's bucket
// (openNetFactor times a client's), first, so that the /64s of one /48
// can neither write faster together nor fill the table.
func (g *openGate) admit(addr netip.Prefix) (wait time.Duration, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var nr *rate.Reservation
	if addr.Addr().Is6() && addr.Bits() > 48 {
		p, _ := addr.Addr().Prefix(48)
		r, err := g.reserve(p, openNetFactor, now)
		if r == nil || err != nil {
			return 0, err
		}
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			return d, nil
		}
		nr = r
	}
	r, err := g.reserve(addr, 1, now)
	if r == nil || err != nil {
		if nr != nil {
			nr.CancelAt(now)
		}
		return 0, err
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		if nr != nil {
			nr.CancelAt(now)
		}
		return d, nil
	}
	return 0, nil
}

// reserve takes one token of addr's bucket (factor times a client's rate
// and burst), making the bucket when addr is new and the table has room.
func (g *openGate) reserve(addr netip.Prefix, factor int, now time.Time) (*rate.Reservation, error) {
	lim := g.clients[addr]
	if lim == nil {
		if len(g.clients) >= g.cfg.MaxClients || now.Sub(g.swept) > time.Minute {
			g.sweep(now)
		}
		if len(g.clients) >= g.cfg.MaxClients {
			return nil, errTooManyClients
		}
		lim = rate.NewLimiter(rate.Limit(g.cfg.Rate*float64(factor)), g.cfg.Burst*factor)
		g.clients[addr] = lim
	}
	return lim.ReserveN(now, 1), nil
}

// sweep forgets the clients whose bucket is full again: they are where a
// new one would start.
func (g *openGate) sweep(now time.Time) {
	g.swept = now
	for a, lim := range g.clients {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(g.clients, a)
		}
	}
}

// clientPrefix is the rate-limited unit of a request: its TCP peer's
// address, an IPv6 one by its /64 (one host usually holds a whole /64).
func clientPrefix(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{} // one bucket for whatever this is
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, 32)
}

// openOr routes a request to authed when it carries a token or the route
// is not open, else to the open path of h, named service ("log", "tsa")
// in metrics and logs.
func (s *Server) openOr(open bool, service string, authed, h http.HandlerFunc) http.HandlerFunc {
	if !open {
		return authed
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			authed(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		s.serveOpen(sw, r, service, h)
		s.metrics.openWrites.WithLabelValues(service, openResult(sw.code)).Inc()
	}
}

// serveOpen is the open path: the client's rate, its body (as write reads
// it), an open write slot, then h.
func (s *Server) serveOpen(w http.ResponseWriter, r *http.Request, service string, h http.HandlerFunc) {
	addr := clientPrefix(r)
	wait, err := s.open.admit(addr)
	if err != nil {
		w.Header().Set("Retry-After", "10")
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		fail(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit of writes without a token is %g per second per client address; retry later", s.open.cfg.Rate))
		return
	}
	body, ok := s.readWriteBody(w, r)
	if !ok {
		return
	}
	select {
	case s.open.slots <- struct{}{}:
		defer func() { <-s.open.slots }()
	default:
		s.overloaded(w)
		return
	}
	s.logger.DebugContext(r.Context(), "open write", "service", service, "client", addr.String())
	r.Body = readerOf(body)
	r.ContentLength = int64(len(body))
	h(w, r)
}

// openResult is the result label of an answer's status code.
func openResult(code int) string {
	switch {
	case code == 0 || code < 300:
		return "accepted"
	case code == http.StatusTooManyRequests:
		return "rate_limited"
	case code == http.StatusServiceUnavailable:
		return "overloaded"
	case code == http.StatusConflict:
		return "duplicate"
	case code < 500:
		return "refused"
	}
	return "failed"
}
