package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
)

// policyMarkFile (DIR/policies/.reconciled, policyMark JSON) records how
// far reconcilePolicies read the audit entries and which environments
// have a policy.changed entry, so that a start reads only the audit
// entries written since the previous one. Without it (or when it is
// unreadable) every audit entry is read once.
const policyMarkFile = ".reconciled"

type policyMark struct {
	// AfterID is the ID of the last audit entry read.
	AfterID int64 `json:"afterId"`
	// Environments have a policy.changed audit entry at or before AfterID.
	Environments []string `json:"environments"`
}

// reconcilePage is the page size of the index searches at Open: a
// policy.changed entry holds its signed policy, so pages stay small.
const reconcilePage = 64

// ErrPolicyAhead is wrapped by Open's error when an environment's stored
// signed policy (DIR/policies/ENV.envelope.json) is newer than, or differs
// at the same version from, the newest "policy.changed" audit entry for
// it, or has no audit entry at all. A crash cannot leave that state (the
// entry is written first); the file was put there by other means, and the
// server refuses to serve a policy the log does not record.
var ErrPolicyAhead = errors.New("stored policy is not the one the audit trail records")

// reconcilePolicies makes every environment's served policy the one its
// newest "policy.changed" audit entry in the index records. A push writes
// that entry first, then ENV.envelope.json, then ENV.yaml; a crash between
// them leaves the files missing or older than the entry, and they are
// written again here from the entry's signed policy. So what the server
// serves (and the dashboard reads) is never a version the log lacks, and
// the log never records a current version the server does not serve.
// Environments with only a hand-written ENV.yaml (no envelope, no audit
// entry) are left alone. Call it after the journal is reconciled (so every
// audit entry that reached the log is indexed) and before serving.
func (s *Server) reconcilePolicies(ctx context.Context) error {
	envs := map[string]bool{}
	files, err := s.state.List(ctx, policiesDir+"/")
	if err != nil {
		return err
	}
	for _, f := range files {
		if env, ok := strings.CutSuffix(path.Base(f), envelopeSuffix); ok && store.ValidEnvironment(env) {
			envs[env] = true
		}
	}
	mark := s.readPolicyMark(ctx)
	for _, env := range mark.Environments {
		if store.ValidEnvironment(env) {
			envs[env] = true
		}
	}
	ar, err := s.newAuditReader(ctx)
	if err != nil {
		return err
	}
	last, err := ar.each(ctx, store.Query{AfterID: mark.AfterID}, func(la *loggedAudit) error {
		for _, sub := range la.Statement.Subject {
			if env, ok := strings.CutPrefix(sub.Name, api.SubjectPolicyPrefix); ok && store.ValidEnvironment(env) {
				envs[env] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(envs))
	for env := range envs {
		names = append(names, env)
	}
	slices.Sort(names)
	var governed []string
	for _, env := range names {
		if err := s.reconcilePolicy(ctx, ar, env); err != nil {
			return err
		}
		if _, err := s.state.Get(ctx, policyName(env, envelopeSuffix)); err == nil {
			governed = append(governed, env)
		}
	}
	if last == mark.AfterID && slices.Equal(governed, mark.Environments) {
		return nil
	}
	b, err := json.Marshal(policyMark{AfterID: last, Environments: governed})
	if err != nil {
		return err
	}
	if err := s.state.Put(ctx, policiesDir+"/"+policyMarkFile, append(b, '\n')); err != nil {
		return fmt.Errorf("couldn't record policy reconciliation: %w", err)
	}
	return nil
}

// readPolicyMark returns the recorded mark; none, or an unreadable one,
// only costs reading every audit entry.
func (s *Server) readPolicyMark(ctx context.Context) policyMark {
	var m policyMark
	b, err := s.state.Get(ctx, policiesDir+"/"+policyMarkFile)
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	if err != nil || json.Unmarshal(b, &m) != nil || m.AfterID < 0 {
		s.logger.Warn("ignoring unreadable policy reconciliation mark; reading every audit entry", "path", policyMarkFile, "err", err)
		return policyMark{}
	}
	return m
}

// reconcilePolicy brings env's files in line with its newest (by log
// position) policy.changed audit entry that verifies.
func (s *Server) reconcilePolicy(ctx context.Context, ar *auditReader, env string) error {
	var (
		logged *policy.Signed
		at     uint64
	)
	_, err := ar.each(ctx, store.Query{SubjectName: api.SubjectPolicyPrefix + env}, func(la *loggedAudit) error {
		if logged != nil && la.LogIndex < at {
			return nil
		}
		sp, err := loggedPolicy(la, env)
		if err != nil {
			s.logger.WarnContext(ctx, "skipping a policy.changed audit entry that does not agree with itself", "env", env,
				"id", la.ID, "log_index", la.LogIndex, "reason", err)
			return nil
		}
		if sp != nil { // nil: another action about the same subject
			logged, at = sp, la.LogIndex
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("couldn't read the policy audit entries of %s: %w", env, err)
	}
	envPath, yamlPath := policyName(env, envelopeSuffix), policyName(env, ".yaml")
	stored, _, err := s.currentPolicy(ctx, env)
	if err != nil {
		// Files are renamed into place, so a torn write cannot happen;
		// an unreadable envelope is replaced by the logged one when there
		// is one.
		if logged == nil {
			return err
		}
		s.logger.Warn("stored policy unreadable; writing the logged version", "env", env, "err", err)
		stored = nil
	}
	switch {
	case logged == nil && stored == nil:
		return nil
	case logged == nil:
		return fmt.Errorf("%w: %s (version %d, %s) has no policy.changed audit entry", ErrPolicyAhead, envPath, stored.Policy().Version, stored.Digest())
	case stored != nil && stored.Digest() == logged.Digest():
		if b, err := s.state.Get(ctx, yamlPath); err == nil && bytes.Equal(b, logged.Payload) {
			return nil
		}
		s.logger.Warn("policy file missing or stale after a crash; writing the logged version", "env", env, "file", env+".yaml", "version", logged.Policy().Version)
		if err := s.state.Put(ctx, yamlPath, logged.Payload); err != nil {
			return fmt.Errorf("couldn't store the policy of %s: %w", env, err)
		}
		return nil
	case stored != nil && stored.Policy().Version >= logged.Policy().Version:
		return fmt.Errorf("%w: %s holds version %d (%s) but the newest audit entry records version %d (%s)",
			ErrPolicyAhead, envPath, stored.Policy().Version, stored.Digest(), logged.Policy().Version, logged.Digest())
	}
	prev := 0
	if stored != nil {
		prev = stored.Policy().Version
	}
	s.logger.Warn("policy files older than the audit trail after a crash; writing the logged version", "env", env,
		"version", logged.Policy().Version, "stored_version", prev, "digest", logged.Digest())
	raw, err := logged.Marshal()
	if err != nil {
		return err
	}
	if err := s.state.Put(ctx, envPath, raw); err != nil {
		return fmt.Errorf("couldn't store the policy of %s: %w", env, err)
	}
	if err := s.state.Put(ctx, yamlPath, logged.Payload); err != nil {
		return fmt.Errorf("couldn't store the policy of %s: %w", env, err)
	}
	return nil
}

// loggedPolicy reads the signed policy a verified policy.changed audit
// entry about env records, checking that the entry agrees with itself: its
// subject's digest, the change's digest and the envelope's signed bytes
// are one, and they are env's. It returns nil, nil for an audit entry of
// another action.
func loggedPolicy(la *loggedAudit, env string) (*policy.Signed, error) {
	var change api.PolicyChange
	if ok, err := loggedChange(la, "policy.changed", &change); !ok || err != nil {
		return nil, err
	}
	sp, err := policy.ParseSigned(change.Envelope)
	if err != nil {
		return nil, fmt.Errorf("signed policy: %w", err)
	}
	sum := sha256.Sum256(sp.Payload)
	var subjectOK bool
	for _, sub := range la.Statement.Subject {
		if sub.Name == api.SubjectPolicyPrefix+env && sub.Digest["sha256"] == hex.EncodeToString(sum[:]) {
			subjectOK = true
		}
	}
	switch {
	case !subjectOK:
		return nil, fmt.Errorf("its subject is not %s%s@%s", api.SubjectPolicyPrefix, env, sp.Digest())
	case change.Environment != env || sp.Policy().Environment != env:
		return nil, fmt.Errorf("it records a policy of environment %q", sp.Policy().Environment)
	case change.Digest != sp.Digest() || change.Version != sp.Policy().Version:
		return nil, fmt.Errorf("it records version %d %s but holds version %d %s", change.Version, change.Digest, sp.Policy().Version, sp.Digest())
	}
	return sp, nil
}

// loggedChange reports whether the verified audit entry la records
// action, and if so unmarshals its detail into detail.
func loggedChange(la *loggedAudit, action string, detail any) (bool, error) {
	if la.Predicate.Action != action {
		return false, nil
	}
	if err := json.Unmarshal(la.Predicate.Detail, detail); err != nil {
		return false, fmt.Errorf("%s detail: %w", action, err)
	}
	return true, nil
}
