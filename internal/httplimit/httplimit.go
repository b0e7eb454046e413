// Package httplimit runs an http.Server that slow, idle and numerous
// clients cannot exhaust: time limits on request headers, request bodies,
// responses and idle keep-alive connections (net/http's Server timeouts,
// https://pkg.go.dev/net/http#Server, plus a per-request body deadline set
// through http.ResponseController), and a cap on open connections.
//
// Every custody listener (custody serve, custody admission) runs on it.
package httplimit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 30 * time.Second
	DefaultWriteTimeout  = 60 * time.Second
	DefaultIdleTimeout   = 120 * time.Second
	// DefaultMaxConns is the connection cap when the open file limit
	// allows it (see MaxConnsFor).
	DefaultMaxConns = 1024
)

// Options are a Server's limits. A zero field takes its default.
type Options struct {
	// HeaderTimeout bounds reading a request's headers (and a TLS
	// handshake), from the first byte. Default DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// BodyTimeout bounds reading a request's body, from the moment the
	// handler starts (the end of the headers). A body not received in time
	// makes its reads fail; the connection is closed after the answer.
	// Default DefaultBodyTimeout.
	BodyTimeout time.Duration
	// WriteTimeout bounds a whole response, from the end of the request's
	// headers: a client that does not read its answer in time is cut off.
	// It must exceed the longest a handler works before answering.
	// Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns caps open connections. Beyond it the oldest idle keep-alive
	// connection is closed to make room; with none idle, the new
	// connection is refused (plain HTTP: a 503 answer with Retry-After;
	// TLS: closed). Default MaxConnsFor(DefaultMaxConns).
	MaxConns int
	// ErrorLog receives the http.Server's errors (nil: the log package's
	// standard logger) and, at most once per 10 s, that the connection cap
	// refused connections (nil: not logged).
	ErrorLog *log.Logger
}

// Validate reports a negative limit.
func (o Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"header timeout", o.HeaderTimeout}, {"body timeout", o.BodyTimeout}, {"write timeout", o.WriteTimeout}, {"idle timeout", o.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s %s is negative", d.name, d.v)
		}
	}
	if o.MaxConns < 0 {
		return fmt.Errorf("connection cap %d is negative", o.MaxConns)
	}
	return nil
}

func (o Options) withDefaults() Options {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&o.HeaderTimeout, DefaultHeaderTimeout)
	set(&o.BodyTimeout, DefaultBodyTimeout)
	set(&o.WriteTimeout, DefaultWriteTimeout)
	set(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxConns == 0 {
		o.MaxConns = MaxConnsFor(DefaultMaxConns)
	}
	return o
}

// MaxConnsFor returns want, lowered to half the process's open file limit
// (at least 16) when that is smaller, so that the files the server itself
// opens (log tiles, index, keys) never run out.
func MaxConnsFor(want int) int {
	if n := openFileLimit(); n > 0 && n/2 < want {
		return max(16, n/2)
	}
	return want
}

// Server is an http.Server with Options' limits. Serve and ServeTLS apply
// the connection cap; use them rather than the embedded Server's.
type Server struct {
	*http.Server
	opts Options

	mu      sync.Mutex
	conns   map[*conn]bool // open connections → idle
	refused atomic.Int64
	lastLog atomic.Int64 // when a refusal was last logged, Unix ns
	// lingering counts refusals still writing their 503 (bounded, so
	// that a flood of connections cannot hold files through them).
	lingering atomic.Int32
}

// New returns a Server for h with o's limits (defaults for zero fields).
func New(h http.Handler, o Options) *Server {
	o = o.withDefaults()
	s := &Server{opts: o, conns: map[*conn]bool{}}
	s.Server = &http.Server{Handler: s.track(bodyDeadline(h, o.BodyTimeout)),
		ReadHeaderTimeout: o.HeaderTimeout, WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout,
		ErrorLog: o.ErrorLog, ConnState: s.connState,
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context { return context.WithValue(ctx, connKey{}, nc) }}
	return s
}

// Options returns the limits in force (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Serve serves plain HTTP on ln, at most Options.MaxConns connections at
// once.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(&listener{Listener: ln, s: s})
}

// ServeTLS serves HTTPS on ln, at most Options.MaxConns connections at
// once.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.Server.ServeTLS(&listener{Listener: ln, s: s, tls: true}, certFile, keyFile)
}

// Conns returns the number of open connections and of connections
// refused so far.
func (s *Server) Conns() (open int, refused int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns), s.refused.Load()
}

// admit counts c in, closing the oldest idle connection when the cap is
// reached, or else the oldest one still waiting for a request to reach the
// handler (headers or TLS handshake not done: nobody has been authenticated
// on it, so anyone able to connect could otherwise fill the cap with silent
// or trickling sockets and lock out every client, admins included); false
// when every connection is running a handler.
func (s *Server) admit(c *conn) bool {
	s.mu.Lock()
	var victim *conn
	if len(s.conns) >= s.opts.MaxConns {
		victim = s.victim()
		if victim == nil {
			s.mu.Unlock()
			return false
		}
		delete(s.conns, victim)
	}
	s.conns[c] = false
	c.waitingSince = time.Now()
	s.mu.Unlock()
	if victim != nil {
		victim.Conn.Close() // its server goroutine sees the error and ends
	}
	return true
}

// victim returns the connection admit closes to make room, or nil: the
// oldest idle one, else the one that has waited longest for a request that
// never reached the handler. s.mu is held.
func (s *Server) victim() *conn {
	var idle, waiting *conn
	for o, isIdle := range s.conns {
		switch {
		case isIdle:
			if idle == nil || o.idleSince.Before(idle.idleSince) {
				idle = o
			}
		case o.handling == 0:
			if waiting == nil || o.waitingSince.Before(waiting.waitingSince) {
				waiting = o
			}
		}
	}
	if idle != nil {
		return idle
	}
	return waiting
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// connKey is the request context key of the request's net.Conn.
type connKey struct{}

// ownConn returns the admitted connection under nc (a TLS connection's
// underlying one), or nil.
func ownConn(nc net.Conn) *conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

// track counts each request into its connection's handling while h runs:
// admit never closes a connection to make room while it is handling one.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _ := r.Context().Value(connKey{}).(net.Conn)
		if c := ownConn(nc); c != nil {
			s.mu.Lock()
			c.handling++
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				c.handling--
				s.mu.Unlock()
			}()
		}
		h.ServeHTTP(w, r)
	})
}

// connState tracks which connections are idle (between requests), the ones
// admit closes first.
func (s *Server) connState(nc net.Conn, st http.ConnState) {
	c := ownConn(nc)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, open := s.conns[c]; !open {
		return
	}
	switch st {
	case http.StateIdle:
		s.conns[c] = true
		c.idleSince = time.Now()
	case http.StateHijacked, http.StateClosed:
		delete(s.conns, c)
	default:
		if s.conns[c] {
			c.waitingSince = time.Now() // a new request starts arriving
		}
		s.conns[c] = false
	}
}

// tooMany is the answer to a plain HTTP connection beyond the cap.
const tooMany = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\nConnection: close\r\nContent-Length: 42\r\n\r\ntoo many connections to the server, retry\n"

// maxLingering bounds the refused connections being answered at once.
const maxLingering = 64

// refuse answers a connection beyond the cap and closes it.
func (s *Server) refuse(c net.Conn, isTLS bool) {
	n := s.refused.Add(1)
	if last, now := s.lastLog.Load(), time.Now().UnixNano(); s.opts.ErrorLog != nil && now-last > int64(10*time.Second) &&
		s.lastLog.CompareAndSwap(last, now) {
		s.opts.ErrorLog.Printf("connection cap of %d reached, every connection busy: refusing new ones (%d so far)", s.opts.MaxConns, n)
	}
	if isTLS || s.lingering.Add(1) > maxLingering {
		if !isTLS {
			s.lingering.Add(-1)
		}
		c.Close()
		return
	}
	go func() {
		defer s.lingering.Add(-1)
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c, tooMany); err != nil {
			return
		}
		// Read what the client sent, so that closing does not reset the
		// connection before it reads the answer.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// listener applies the connection cap.
type listener struct {
	net.Listener
	s   *Server
	tls bool
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, s: l.s}
		if l.s.admit(c) {
			return c, nil
		}
		l.s.refuse(nc, l.tls)
	}
}

// conn is an admitted connection; closing it frees its place.
type conn struct {
	net.Conn
	s         *Server
	idleSince time.Time // guarded by s.mu
	// waitingSince is when the connection was admitted or its current
	// request started arriving; handling counts its requests inside the
	// handler (HTTP/2 runs several at once). Both guarded by s.mu.
	waitingSince time.Time
	handling     int
	once         sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.s.forget(c) })
	return c.Conn.Close()
}

// bodyDeadline gives each request d to deliver its body: reads after that
// fail with a timeout. The deadline is lifted once the body is read to its
// end, so that a handler working longer than d after that keeps its
// request's context (net/http cancels it when a read of the connection
// fails).
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// IsTimeout reports whether err (from reading a request body) is the body
// deadline passing.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ListenError is returned by Listen when the address cannot be listened on.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return fmt.Sprintf("couldn't listen on %s: %v", e.Addr, e.Err) }
func (e *ListenError) Unwrap() error { return e.Err }

// Listen listens on the TCP address addr; its error is a *ListenError.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Addr: addr, Err: err}
	}
	return ln, nil
}
