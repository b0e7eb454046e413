package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// Replicas. With Config.State shared (store.PGState), Config.Index in the
// same PostgreSQL and Config.LogMySQL, any number of servers serve one
// registry: no replica keeps state on its disk. What must happen once is
// done under PostgreSQL advisory locks (state.Store.Lock), which die with
// the connection of a replica that dies:
//
//   - Each replica journals under journal/ID/, ID random per start, and
//     holds the lock replica/ID while it runs. A journal whose lock is free
//     belongs to a replica that stopped or died: another replica replays it
//     (reconcileJournal), as a restart would, since the log, the index and
//     the journal are shared.
//   - Writes that append records after their audit entry (deployments,
//     incidents, policy and trust root pushes) hold the lock
//     audited-writes from before their audit entry until their records are
//     stored; reconciliation (at start, and every replicaSweep) holds it
//     too, so it never mistakes a write in flight for one a crash cut
//     short, and two replicas never reconcile at once.
//
// With the data directory as state (one server), none of this applies:
// the journal is journal/ and the server reconciles once, at start.

const (
	journalDir         = "journal"
	lockAuditedWrites  = "audited-writes"
	replicaSweep       = 5 * time.Second
	replicaLockTimeout = 15 * time.Second
)

// replica is this server's identity and background work among replicas.
type replica struct {
	id      string
	release func() // the lock replica/ID
	lost    atomic.Bool
	stop    chan struct{}
	done    sync.WaitGroup
}

// replicaLockCheck is how often a replica checks that it still holds its
// lock replica/ID (a database restart or a network cut ends the session
// that holds it).
const replicaLockCheck = time.Second

// lockHolder is a state store whose locks end with a session
// (store.PGState).
type lockHolder interface {
	Held(ctx context.Context, name string) error
}

// keepLock takes the lock replica/ID again when the session that held it
// ended: until then the replica is not ready (/readyz), since another
// replica may take it for gone and replay its journal.
func (s *Server) keepLock() {
	h, ok := s.state.(lockHolder)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicaLockCheck)
	defer cancel()
	name := "replica/" + s.replica.id
	if err := h.Held(ctx, name); err == nil {
		return
	} else if !s.replica.lost.Load() {
		s.logger.Warn("this replica lost its lock with its database session; taking it again", "replica", s.replica.id, "err", err)
		s.replica.lost.Store(true)
	}
	if s.replica.release != nil {
		s.replica.release() // the old session's: a no-op on a dead connection
		s.replica.release = nil
	}
	release, ok, err := s.state.TryLock(ctx, name)
	if err != nil || !ok {
		return // the database is away, or another replica is replaying: next time
	}
	s.replica.release = release
	s.replica.lost.Store(false)
	s.logger.Info("this replica holds its lock again", "replica", s.replica.id)
}

// openReplica takes this replica's identity and lock when state is shared.
func (s *Server) openReplica(ctx context.Context) error {
	if !s.state.Shared() {
		return nil
	}
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, strings.ToLower(host))
	if len(host) > 32 {
		host = host[:32]
	}
	s.replica.id = host + "-" + strings.ToLower(rand.Text()[:10])
	release, ok, err := s.state.TryLock(ctx, "replica/"+s.replica.id)
	if err != nil || !ok {
		return fmt.Errorf("couldn't take this replica's lock: %v", err)
	}
	s.replica.release = release
	s.journal = journalDir + "/" + s.replica.id + "/"
	s.logger.Info("replica started", "replica", s.replica.id)
	return nil
}

// reconcileAll brings the index, the records, the policies and the trust
// roots in line with the log (see Crash safety in the package
// documentation); at start it also opens the configured trust root.
// Replicas do it under the lock audited-writes, and replay the journals
// of replicas that are gone.
func (s *Server) reconcileAll(ctx context.Context, starting bool) error {
	steps := []func(context.Context) error{s.reconcile, s.reconcileRecords, s.reconcilePolicies, s.reconcileTrustRoots}
	if starting {
		steps = append(steps, s.openTrustRoot)
	}
	if s.state.Shared() {
		if starting {
			if err := s.openReplica(ctx); err != nil {
				return err
			}
			if err := s.shareSessions(ctx); err != nil {
				return err
			}
		}
		lctx, cancel := context.WithTimeout(ctx, replicaLockTimeout)
		release, err := s.state.Lock(lctx, lockAuditedWrites)
		cancel()
		if err != nil {
			return fmt.Errorf("couldn't take the reconciliation lock: %w", err)
		}
		defer release()
		steps[0] = s.reconcileGone
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// reconcileGone replays the journals of replicas that are gone (those
// whose lock replica/ID is free) and deletes their claims.
func (s *Server) reconcileGone(ctx context.Context) error {
	names, err := s.state.List(ctx, journalDir+"/")
	if err != nil {
		return err
	}
	claims, err := s.claimsByOwner(ctx)
	if err != nil {
		return err
	}
	owners := map[string]bool{}
	for owner := range claims {
		owners[owner] = true
	}
	for _, n := range names {
		if owner, _, ok := strings.Cut(strings.TrimPrefix(n, journalDir+"/"), "/"); ok && owner != s.replica.id {
			owners[owner] = true
		}
	}
	for owner := range owners {
		if err := s.replayGone(ctx, owner, claims[owner]); err != nil {
			return fmt.Errorf("journal of replica %s: %w", owner, err)
		}
	}
	return nil
}

// replayGone replays the journal of replica owner if it is gone, then
// deletes its claims (a retry of what it was writing then finds its
// record).
func (s *Server) replayGone(ctx context.Context, owner string, claims []string) error {
	release, ok, err := s.state.TryLock(ctx, "replica/"+owner)
	if err != nil || !ok {
		return err // or alive
	}
	defer release()
	s.logger.Info("replaying the journal of a replica that is gone", "replica", owner)
	if err := s.reconcileJournal(ctx, journalDir+"/"+owner+"/"); err != nil {
		return err
	}
	for _, n := range claims {
		if err := s.state.Delete(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// startReplica starts the sweep: every replicaSweep, when no other
// replica holds the lock, reconcile what replicas that died left behind.
func (s *Server) startReplica() {
	if !s.state.Shared() {
		return
	}
	s.replica.stop = make(chan struct{})
	s.replica.done.Go(func() {
		t := time.NewTicker(replicaLockCheck)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-s.replica.stop:
				return
			case <-t.C:
			}
			s.keepLock()
			if i%int(sessionSweepEvery/replicaLockCheck) == 0 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				s.sweepSessions(ctx, s.sessions.now())
				cancel()
			}
			if i%int(replicaSweep/replicaLockCheck) != 0 || s.replica.lost.Load() {
				continue
			}
			if err := s.sweep(); err != nil {
				s.logger.Warn("replica sweep failed; retrying", "err", err)
			}
		}
	})
}

func (s *Server) sweep() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	release, ok, err := s.state.TryLock(ctx, lockAuditedWrites)
	if err != nil || !ok {
		return err
	}
	defer release()
	for _, step := range []func(context.Context) error{s.reconcileGone, s.reconcileRecords, s.reconcilePolicies, s.reconcileTrustRoots} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stopReplica stops the sweep and gives up this replica's lock (its
// journal, empty after a clean stop, is then anyone's to replay).
func (s *Server) stopReplica() {
	if s.replica.stop != nil {
		close(s.replica.stop)
		s.replica.done.Wait()
		s.replica.stop = nil
	}
	if s.replica.release != nil {
		s.replica.release()
		s.replica.release = nil
	}
}

// serialized runs an audited write that appends records under the lock
// audited-writes when replicas share the state (503 when it cannot be
// taken in time).
func (s *Server) serialized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.state.Shared() {
			h(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), replicaLockTimeout)
		release, err := s.state.Lock(ctx, lockAuditedWrites)
		cancel()
		if err != nil {
			s.logger.Warn("couldn't take the audited-writes lock", "err", err)
			w.Header().Set("Retry-After", "1")
			fail(w, http.StatusServiceUnavailable, "the registry is busy reconciling; retry")
			return
		}
		defer release()
		h(w, r)
	}
}

// journalFiles lists the journal documents directly under prefix
// (NONCE.json, NONCE.push.json; not reports, not other replicas').
func (s *Server) journalFiles(ctx context.Context, prefix string) ([]string, error) {
	names, err := s.state.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if rest := strings.TrimPrefix(n, prefix); !strings.Contains(rest, "/") && strings.HasSuffix(rest, ".json") {
			out = append(out, n)
		}
	}
	return out, nil
}

// reportFiles lists the stashed incident reports of every journal whose
// name starts with namePrefix (SHA-256-NONCE).
func (s *Server) reportFiles(ctx context.Context, namePrefix string) ([]string, error) {
	names, err := s.state.List(ctx, journalDir+"/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if path.Base(path.Dir(n)) == reportsDir && strings.HasPrefix(path.Base(n), namePrefix) {
			out = append(out, n)
		}
	}
	return out, nil
}

// importDataDir copies the state of a data directory into a shared state
// that holds none yet (a server that ran with its state in files, now
// started with its state in PostgreSQL): meta.json, tokens, keys/log.pub,
// keys/tsa-chain.pem, policies, trust root versions, reconciliation
// marks, and its journal (as the journal of a replica named "imported",
// which the first replica to start replays). Private keys stay files.
func importDataDir(ctx context.Context, dir string, to state.Store) error {
	release, err := to.Lock(ctx, "import")
	if err != nil {
		return err
	}
	defer release()
	if _, err := to.Get(ctx, "meta.json"); !errors.Is(err, fs.ErrNotExist) {
		return err // already has state (or could not be read)
	}
	from := state.Dir(dir)
	if _, err := from.Get(ctx, "meta.json"); errors.Is(err, fs.ErrNotExist) {
		return nil // a new registry
	}
	names, err := from.List(ctx, "")
	if err != nil {
		return err
	}
	n := 0
	for _, name := range names {
		to2 := importName(name)
		if to2 == "" {
			continue
		}
		b, err := from.Get(ctx, name)
		if err != nil {
			return err
		}
		if err := to.Put(ctx, to2, b); err != nil {
			return fmt.Errorf("couldn't import %s: %w", name, err)
		}
		n++
	}
	// meta.json last: its presence means the import is complete.
	b, err := from.Get(ctx, "meta.json")
	if err == nil {
		err = to.Put(ctx, "meta.json", b)
	}
	return err
}

// importName is where a data directory file goes in shared state; "" for
// files that are not state (private keys, the index, the log, locks).
func importName(name string) string {
	switch {
	case name == tokenfile.File, name == tokenfile.UsedFile, name == recordMarkFile,
		name == "keys/log.pub", name == "keys/tsa-chain.pem", name == "keys/"+caChainFile, name == "keys/"+ctPubFile,
		strings.HasPrefix(name, policiesDir+"/"), strings.HasPrefix(name, trustRootDir+"/"):
		return name
	case strings.HasPrefix(name, journalDir+"/"):
		return journalDir + "/imported/" + strings.TrimPrefix(name, journalDir+"/")
	}
	return ""
}

// serveReady answers GET /readyz: 200 when this server can write (its
// log storage, its state and its index answer within two seconds), else
// 503 naming what does not. A load balancer's readiness probe: a replica
// cut off from a database stops getting requests.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	check := func() (string, error) {
		if s.replica.lost.Load() {
			return "lock replica/" + s.replica.id, errors.New("lost with its database session")
		}
		if err := s.log.Ready(ctx); err != nil {
			return "log", err
		}
		if _, err := s.state.Version(ctx, "meta.json"); err != nil {
			return "state", err
		}
		if _, err := s.index.Search(ctx, store.Query{Limit: 1}); err != nil {
			return "index", err
		}
		return "", nil
	}
	if what, err := check(); err != nil {
		s.logger.Warn("not ready", "what", what, "err", err)
		fail(w, http.StatusServiceUnavailable, "not ready: the "+what+" does not answer")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}
