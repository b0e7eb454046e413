package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/httplimit"
)

// pool bounds concurrent requests of one kind (writes, searches): at most
// shared of them from tokens below admin, and reserved more for admin
// tokens, so that no other role can starve incident response.
type pool struct {
	shared, reserved chan struct{}
}

// newPool returns a pool of n slots of which reserve are admins' alone
// (reserve is lowered to leave at least one shared slot).
func newPool(n, reserve int) *pool {
	reserve = min(reserve, n-1)
	return &pool{shared: make(chan struct{}, n-reserve), reserved: make(chan struct{}, max(reserve, 0))}
}

// adminReserve is Config.AdminReserve's default for a pool of n.
func adminReserve(n int) int {
	if n < 2 {
		return 0
	}
	return max(1, n/8)
}

// acquire takes a slot for a token of role, waiting at most wait (0: not
// at all) or until ctx ends; release gives it back. ok is false when no
// slot came free.
func (p *pool) acquire(ctx context.Context, role api.Role, wait time.Duration) (release func(), ok bool) {
	reserved := p.reserved
	if role != api.RoleAdmin {
		reserved = nil // a nil channel never receives the slot
	}
	take := func(c chan struct{}) func() { return func() { <-c } }
	select {
	case reserved <- struct{}{}:
		return take(reserved), true
	case p.shared <- struct{}{}:
		return take(p.shared), true
	default:
	}
	if wait <= 0 {
		return nil, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case reserved <- struct{}{}:
		return take(reserved), true
	case p.shared <- struct{}{}:
		return take(p.shared), true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

// overloaded answers a request that found no slot.
func (s *Server) overloaded(w http.ResponseWriter) {
	s.metrics.rejected.Inc()
	w.Header().Set("Retry-After", "1")
	fail(w, http.StatusServiceUnavailable, "server is overloaded, retry later")
}

// write reads a write request's body (capped at Config.MaxBody, within the
// body deadline of the http.Server, see package httplimit) and only then
// takes a write slot: a client that sends its headers and then nothing
// holds no slot. The handler gets the body read.
func (s *Server) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readWriteBody(w, r)
		if !ok {
			return
		}
		release, ok := s.writes.acquire(r.Context(), tokenFrom(r).Role, 0)
		if !ok {
			s.overloaded(w)
			return
		}
		defer release()
		if !s.recheckToken(w, r) {
			return
		}
		r.Body = readerOf(body)
		r.ContentLength = int64(len(body))
		h(w, r)
	}
}

// readWriteBody reads a write request's body, capped at Config.MaxBody
// (413) within the body deadline (408); it answers the failures itself.
func (s *Server) readWriteBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > s.cfg.MaxBody {
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", s.cfg.MaxBody))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", mbe.Limit))
		return nil, false
	case httplimit.IsTimeout(err):
		fail(w, http.StatusRequestTimeout, "request body was not received in time")
		return nil, false
	case err != nil:
		fail(w, http.StatusBadRequest, "couldn't read request body")
		return nil, false
	}
	return body, true
}

// readerOf is a request body of b, read already.
func readerOf(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// reserveFor is the admin reserve of a pool of n for Config.AdminReserve
// r: r itself, the default when zero, none when negative.
func reserveFor(r, n int) int {
	switch {
	case r < 0:
		return 0
	case r == 0:
		return adminReserve(n)
	}
	return r
}

// recheckToken checks the request's token again once its body is read and
// it holds a write slot, both of which may take long: a token revoked,
// expired or given another role or key meanwhile changes nothing (401 with
// the reason, or 403). It answers the refusals itself.
func (s *Server) recheckToken(w http.ResponseWriter, r *http.Request) bool {
	was := tokenFrom(r)
	if was.Person != nil {
		return s.recheckSession(w, r, was)
	}
	if was.keyless {
		if !time.Now().Before(was.expires) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
			fail(w, http.StatusUnauthorized, "identity token expired during the request")
			return false
		}
		return true
	}
	now, err := s.tokens.lookupHash(&was.hash)
	switch {
	case tokenRefused(err):
		w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, err.Error())
		return false
	case err != nil:
		s.logger.Error("couldn't authenticate", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't check token")
		return false
	case now.Role != was.Role || now.Key != was.Key:
		fail(w, http.StatusForbidden, "the token's role changed during the request")
		return false
	}
	return true
}
