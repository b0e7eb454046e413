package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/trust"
)

// trustRootDir holds every accepted version of the custody trust root:
// DIR/trust-root/N.json (trust.Document JSON). The newest decides who may
// change policies (policy.go).
const trustRootDir = "trust-root"

// governance is the server's custody trust root and the lock that
// serialises trust root and policy changes.
type governance struct {
	mu   sync.Mutex
	root *trust.Document // newest accepted version; nil: none
}

var trustFile = lazyre.New(`^([1-9][0-9]{0,8})\.json$`)

// storedTrustRoots returns the stored versions, ascending.
func (s *Server) storedTrustRoots() ([]int, error) {
	names, err := s.state.List(context.Background(), trustRootDir+"/")
	if err != nil {
		return nil, fmt.Errorf("couldn't read stored trust roots: %w", err)
	}
	var out []int
	for _, name := range names {
		if m := trustFile.FindStringSubmatch(strings.TrimPrefix(name, trustRootDir+"/")); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// trustRootName is the state name of trust root version v.
func trustRootName(v int) string { return trustRootDir + "/" + strconv.Itoa(v) + ".json" }

// syncTrustRoot makes s.gov.root the newest stored version when another
// replica stored a newer one. Call with s.gov.mu held.
func (s *Server) syncTrustRoot() {
	if !s.state.Shared() {
		return
	}
	versions, err := s.storedTrustRoots()
	if err != nil || len(versions) == 0 || (s.gov.root != nil && versions[len(versions)-1] <= s.gov.root.Version) {
		return
	}
	if d, _, err := s.readTrustRoot(versions[len(versions)-1]); err == nil {
		s.gov.root = d
	} else {
		s.logger.Error("couldn't read the newest trust root", "err", err)
	}
}

// readTrustRoot reads the stored version v.
func (s *Server) readTrustRoot(v int) (*trust.Document, []byte, error) {
	b, err := s.state.Get(context.Background(), trustRootName(v))
	if err != nil {
		return nil, nil, err
	}
	d, err := trust.ParseDocument(b)
	if err != nil {
		return nil, nil, fmt.Errorf("stored trust root version %d: %w", v, err)
	}
	if d.Version != v {
		return nil, nil, fmt.Errorf("stored trust root %d.json holds version %d", v, d.Version)
	}
	return d, b, nil
}

// openTrustRoot loads the newest stored trust root and reconciles it with
// Config.TrustRoot: a version already stored must be byte-identical in its
// payload (else the server refuses to start: a fork), a newer one must
// chain from the stored newest (trust.Update) and is accepted with an
// audit entry, and with nothing stored the given root is trusted if signed
// by its own admins' threshold and not expired.
func (s *Server) openTrustRoot(ctx context.Context) error {
	versions, err := s.storedTrustRoots()
	if err != nil {
		return err
	}
	var cur *trust.Document
	if len(versions) > 0 {
		if cur, _, err = s.readTrustRoot(versions[len(versions)-1]); err != nil {
			return err
		}
	}
	s.gov.root = cur
	if len(s.cfg.TrustRoot) == 0 {
		return nil
	}
	given, err := trust.ParseDocument(s.cfg.TrustRoot)
	if err != nil {
		return fmt.Errorf("trust root: %w", err)
	}
	now := time.Now()
	switch {
	case cur == nil:
		if err := trust.VerifyDocument(given, now); err != nil {
			return fmt.Errorf("trust root version %d: %w", given.Version, err)
		}
	case given.Version <= cur.Version:
		stored, _, err := s.readTrustRoot(given.Version)
		if err != nil {
			return fmt.Errorf("trust root version %d: the server holds versions up to %d but not this one: %w", given.Version, cur.Version, err)
		}
		if !samePayload(stored, given) {
			return fmt.Errorf("%w: trust root version %d differs from the version %d the server accepted", trust.ErrFork, given.Version, given.Version)
		}
		return nil
	default:
		if err := trust.Update(cur, given, now); err != nil {
			return fmt.Errorf("trust root version %d refused over the server's version %d: %w", given.Version, cur.Version, err)
		}
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
	if err != nil {
		return err
	}
	return s.acceptTrustRoot(ctx, r, given, "custody serve --trust-root")
}

func samePayload(a, b *trust.Document) bool {
	pa, err1 := a.Payload()
	pb, err2 := b.Payload()
	return err1 == nil && err2 == nil && bytes.Equal(pa, pb)
}

// acceptTrustRoot writes the audit entry for d (already checked), stores it
// and makes it the newest. Call with s.gov.mu held (or before serving).
func (s *Server) acceptTrustRoot(ctx context.Context, r *http.Request, d *trust.Document, actor string) error {
	raw, err := d.Marshal()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	prev := 0
	if s.gov.root != nil {
		prev = s.gov.root.Version
	}
	change := api.TrustChange{Version: d.Version, Previous: prev, Digest: "sha256:" + hex.EncodeToString(sum[:]), Document: raw}
	if _, err := s.audit(ctx, r, auditEvent{action: "trust.changed", actor: actor,
		subjects: []attest.Subject{{Name: api.SubjectTrustRoot, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		detail:   change}); err != nil {
		return fmt.Errorf("%w: %w", errAudit, err)
	}
	crashpoint.Reach(crashpoint.TrustAudited)
	if err := s.state.Put(context.WithoutCancel(ctx), trustRootName(d.Version), raw); err != nil {
		return fmt.Errorf("couldn't store trust root: %w", err)
	}
	s.gov.root = d
	s.logger.InfoContext(ctx, "trust root accepted", "version", d.Version, "previous", prev)
	return nil
}

// errAudit marks a change refused because its audit entry was not written.
var errAudit = errors.New("audit entry not written")

// TrustRootDocument returns the newest custody trust root the server
// accepted, or nil.
func (s *Server) TrustRootDocument() *trust.Document {
	s.gov.mu.Lock()
	defer s.gov.mu.Unlock()
	s.syncTrustRoot()
	return s.gov.root
}

// serveTrustRoot answers GET /api/v1/trust-root and
// /api/v1/trust-root/{version}.
func (s *Server) serveTrustRoot(w http.ResponseWriter, r *http.Request) {
	s.gov.mu.Lock()
	s.syncTrustRoot()
	cur := s.gov.root
	s.gov.mu.Unlock()
	if cur == nil {
		fail(w, http.StatusNotFound, "this server has no custody trust root (start it with --trust-root)")
		return
	}
	v := cur.Version
	if p := r.PathValue("version"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > cur.Version {
			fail(w, http.StatusNotFound, fmt.Sprintf("no trust root version %q (the newest is %d)", p, cur.Version))
			return
		}
		v = n
	}
	_, raw, err := s.readTrustRoot(v)
	if errors.Is(err, os.ErrNotExist) {
		fail(w, http.StatusNotFound, fmt.Sprintf("trust root version %d is older than the one this server started with", v))
		return
	}
	if err != nil {
		s.logger.Error("couldn't read trust root", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read trust root")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

// servePushTrustRoot answers POST /api/v1/trust-root: a trust.Document
// that chains from the server's newest version (trust.Update: exactly one
// version newer, signed by the threshold of the previous version's admins
// and of its own, not expired). The same version with the same payload is
// answered 200 with existed; a refused one 403 (too few signatures) or 409
// (rollback, gap, fork, expiry) with nothing changed.
func (s *Server) servePushTrustRoot(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	next, err := trust.ParseDocument(body)
	if err != nil {
		fail(w, http.StatusBadRequest, "not a custody trust root: "+err.Error())
		return
	}
	s.gov.mu.Lock()
	defer s.gov.mu.Unlock()
	s.syncTrustRoot()
	cur := s.gov.root
	if cur == nil {
		fail(w, http.StatusConflict, "this server has no custody trust root to chain from; start it with --trust-root")
		return
	}
	if next.Version == cur.Version && samePayload(cur, next) {
		writeJSONStatus(w, http.StatusOK, api.TrustPushAnswer{Version: next.Version, Existed: true})
		return
	}
	if err := trust.Update(cur, next, time.Now()); err != nil {
		code := http.StatusConflict
		if errors.Is(err, trust.ErrThreshold) {
			code = http.StatusForbidden
		}
		if errors.Is(err, trust.ErrMalformed) {
			code = http.StatusBadRequest
		}
		fail(w, code, fmt.Sprintf("trust root version %d refused over version %d: %v", next.Version, cur.Version, err))
		return
	}
	if err := s.acceptTrustRoot(r.Context(), r, next, r.URL.Query().Get("actor")); err != nil {
		if errors.Is(err, errAudit) {
			s.failAudit(w, err)
			return
		}
		s.logger.Error("couldn't accept trust root", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't store trust root")
		return
	}
	writeJSONStatus(w, http.StatusCreated, api.TrustPushAnswer{Version: next.Version})
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
