package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/crashpoint"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
)

// policyName is the state name of env's policy document with suffix
// (envelopeSuffix or ".yaml").
func policyName(env, suffix string) string { return policiesDir + "/" + env + suffix }

// envelopeSuffix names an environment's current signed policy:
// DIR/policies/ENV.envelope.json beside DIR/policies/ENV.yaml (the policy
// bytes, which the dashboard reads).
const envelopeSuffix = ".envelope.json"

// currentPolicy reads env's current signed policy; nil when there is none.
func (s *Server) currentPolicy(ctx context.Context, env string) (*policy.Signed, []byte, error) {
	b, err := s.state.Get(ctx, policyName(env, envelopeSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sp, err := policy.ParseSigned(b)
	if err != nil {
		return nil, nil, fmt.Errorf("stored policy of %s: %w", env, err)
	}
	return sp, b, nil
}

// servePushPolicy answers POST /api/v1/policies: a signed policy
// (policy.Signed) becomes its environment's current policy when at least
// the threshold of the newest trust root's current admins signed it and
// its version is above the current one (an older or equal version is a
// replay: 409). Pushing the current policy again is answered 200 with
// existed. Too few signatures: 403; no trust root: 409; nothing changes
// on any refusal. The audit entry "policy.changed" is written before the
// change takes effect.
func (s *Server) servePushPolicy(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	sp, err := policy.ParseSigned(body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	p := sp.Policy()
	env := p.Environment
	if !store.ValidEnvironment(env) {
		fail(w, http.StatusBadRequest, fmt.Sprintf("environment %q is not an environment name", env))
		return
	}
	if p.Version < 1 {
		fail(w, http.StatusBadRequest, "a policy pushed to the server needs a version (version: 1, 2, …) above the current one")
		return
	}
	s.gov.mu.Lock()
	defer s.gov.mu.Unlock()
	s.syncTrustRoot()
	root := s.gov.root
	now := time.Now()
	switch {
	case root == nil:
		fail(w, http.StatusConflict, "this server has no custody trust root to check admin signatures against; start it with --trust-root")
		return
	case !now.Before(root.Expires):
		fail(w, http.StatusConflict, fmt.Sprintf("the server's trust root version %d expired; push a newer version first", root.Version))
		return
	}
	tally, err := sp.Verify(root, now)
	if err != nil {
		fail(w, http.StatusForbidden, err.Error())
		return
	}
	cur, _, err := s.currentPolicy(r.Context(), env)
	if err != nil {
		s.logger.Error("couldn't read current policy", "env", env, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read the current policy")
		return
	}
	change := api.PolicyChange{Environment: env, Version: p.Version, Digest: sp.Digest(), TrustRootVersion: root.Version, Admins: tally.Valid}
	if cur != nil {
		if cur.Digest() == sp.Digest() {
			writeJSONStatus(w, http.StatusOK, api.PolicyPushAnswer{Environment: env, Version: p.Version, Digest: sp.Digest(), Existed: true})
			return
		}
		if p.Version <= cur.Policy().Version {
			fail(w, http.StatusConflict, fmt.Sprintf("policy version %d of %s is not above the current version %d: a stale or replayed policy is refused",
				p.Version, env, cur.Policy().Version))
			return
		}
		change.Previous, change.PreviousDigest = cur.Policy().Version, cur.Digest()
	}
	env2, err := sp.Marshal()
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	change.Envelope = env2
	sum := sha256.Sum256(sp.Payload)
	if _, err := s.audit(r.Context(), r, auditEvent{action: "policy.changed", actor: r.URL.Query().Get("actor"),
		subjects: []attest.Subject{{Name: api.SubjectPolicyPrefix + env, Digest: map[string]string{"sha256": hex.EncodeToString(sum[:])}}},
		detail:   change}); err != nil {
		s.failAudit(w, err)
		return
	}
	crashpoint.Reach(crashpoint.PolicyAudited)
	ctx := context.WithoutCancel(r.Context())
	err = s.state.Put(ctx, policyName(env, envelopeSuffix), env2)
	if err == nil {
		crashpoint.Reach(crashpoint.PolicyEnvelope)
		err = s.state.Put(ctx, policyName(env, ".yaml"), sp.Payload)
	}
	if err != nil {
		s.logger.Error("couldn't store policy", "env", env, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't store the policy")
		return
	}
	s.logger.InfoContext(r.Context(), "policy changed", "env", env, "version", p.Version, "digest", sp.Digest())
	writeJSONStatus(w, http.StatusCreated, api.PolicyPushAnswer{Environment: env, Version: p.Version, Digest: sp.Digest()})
}

// servePolicy answers GET /api/v1/policies/{env}: the current signed
// policy envelope, as pushed. Clients verify its signatures themselves.
func (s *Server) servePolicy(w http.ResponseWriter, r *http.Request) {
	env := r.PathValue("env")
	if !store.ValidEnvironment(env) {
		fail(w, http.StatusBadRequest, "not an environment name")
		return
	}
	sp, raw, err := s.currentPolicy(r.Context(), env)
	if err != nil {
		s.logger.Error("couldn't read current policy", "env", env, "err", err)
		fail(w, http.StatusInternalServerError, "couldn't read the current policy")
		return
	}
	if sp == nil {
		fail(w, http.StatusNotFound, fmt.Sprintf("no signed policy was pushed for environment %s", env))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

// dashboardPolicy parses the policy file DIR/policies/ENV.yaml (bytes b)
// for the dashboard. When ENV.envelope.json is beside it (a policy pushed
// to the server) the policy is the signed one, as the server serves it:
// its Version and its Digest, the SHA-256 of the signed bytes, are what
// decisions under it record. (The YAML is written after the envelope and
// is the same bytes; a page read between the two writes sees the new
// version.)
func (s *Server) dashboardPolicy(path string, b []byte) (*policy.Policy, error) {
	env := strings.TrimSuffix(filepath.Base(path), ".yaml")
	if !store.ValidEnvironment(env) {
		return policy.Parse(b)
	}
	sp, _, err := s.currentPolicy(context.Background(), env)
	if err != nil {
		return nil, err
	}
	if sp == nil {
		return policy.Parse(b)
	}
	if !bytes.Equal(sp.Payload, b) {
		s.logger.Warn("policy file differs from the signed policy; the dashboard shows the signed one", "file", filepath.Base(path),
			"version", sp.Policy().Version, "digest", sp.Digest())
	}
	return sp.Policy(), nil
}
