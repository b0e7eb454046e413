package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// Defaults of Watcher.
const (
	DefaultWatchInterval = time.Second
	// DefaultMaxStale is the default Watcher.MaxStale, raised to
	// DefaultStaleIntervals intervals for a longer Interval.
	DefaultMaxStale       = 10 * time.Second
	DefaultStaleIntervals = 10
)

// ErrStale means a Watcher cannot say whether an artifact is quarantined:
// it has not read the ledger yet, or not successfully within MaxStale.
// Callers must refuse the artifact (deploy.Gate and the admission webhook
// do).
var ErrStale = errors.New("the incident quarantine is stale")

// Watcher answers deploy.Quarantine from a local copy of the quarantined
// artifacts of a Ledger, kept up to date by Run: every Interval it asks
// the ledger for the quarantined records appended since the last one it
// has (store.IncidentQuery.AfterID), page by page. Quarantine records are
// append-only and are never lifted (a closed incident's quarantine
// stays), so the copy only grows.
//
// Its answers are as old as the last successful sync: a quarantine is
// seen within about Interval of being recorded. When the last successful
// sync started more than MaxStale ago, or before the first one, Quarantined
// returns an error wrapping ErrStale for every artifact (fail closed).
//
// Set the fields before the first Sync or Run and do not change them
// after. A Watcher is safe for concurrent use.
type Watcher struct {
	// Ledger is what is watched. Required.
	Ledger Ledger
	// Interval is the time between syncs (default DefaultWatchInterval).
	Interval time.Duration
	// MaxStale is how old the last successful sync may be before every
	// answer is an error (default DefaultMaxStale, or DefaultStaleIntervals
	// × Interval when that is longer). It must be longer than Interval.
	MaxStale time.Duration
	// PageSize is how many records one ledger request asks for (default
	// store.MaxLimit).
	PageSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a warning when syncing starts failing and a record
	// when it recovers; nil discards.
	Logger *slog.Logger

	mu        sync.RWMutex
	set       map[string]string // artifact digest → first incident that quarantined it
	after     int64             // ID of the last record read
	lastSync  time.Time         // start of the last successful sync
	failing   bool              // the last sync failed
	lastErr   error
	syncErrs  uint64
	syncCalls sync.Mutex // one sync at a time
}

// WatchStatus is a Watcher's state, for metrics.
type WatchStatus struct {
	// LastSync is when the last successful sync started (zero before the
	// first).
	LastSync time.Time
	// SyncErrors counts failed syncs.
	SyncErrors uint64
	// Artifacts is how many artifacts are quarantined.
	Artifacts int
	// LastError is the error of the last sync when it failed, else nil.
	LastError error
}

func (w *Watcher) interval() time.Duration {
	if w.Interval > 0 {
		return w.Interval
	}
	return DefaultWatchInterval
}

// maxStale is MaxStale with its default applied.
func (w *Watcher) maxStale() time.Duration {
	if w.MaxStale > 0 {
		return w.MaxStale
	}
	return max(DefaultMaxStale, DefaultStaleIntervals*w.interval())
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Validate reports a Watcher that Run would not keep useful: no ledger, or
// a MaxStale no longer than Interval (every answer between two syncs would
// be an error).
func (w *Watcher) Validate() error {
	if w.Ledger == nil {
		return errors.New("quarantine watcher: no ledger")
	}
	if w.Interval < 0 || w.MaxStale < 0 || w.PageSize < 0 {
		return errors.New("quarantine watcher: negative interval, max staleness or page size")
	}
	if w.maxStale() <= w.interval() {
		return fmt.Errorf("quarantine watcher: max staleness %s must be longer than the sync interval %s", w.maxStale(), w.interval())
	}
	return nil
}

// Quarantined implements deploy.Quarantine from the local copy. It returns
// an error wrapping ErrStale before the first successful sync and when the
// last one started more than MaxStale ago.
func (w *Watcher) Quarantined(_ context.Context, artifact string) (string, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.lastSync.IsZero() {
		if w.lastErr != nil {
			return "", fmt.Errorf("%w: it has not been read yet (%v)", ErrStale, w.lastErr)
		}
		return "", fmt.Errorf("%w: it has not been read yet", ErrStale)
	}
	if age := w.now().Sub(w.lastSync); age > w.maxStale() {
		detail := ""
		if w.lastErr != nil {
			detail = fmt.Sprintf(" (last error: %v)", w.lastErr)
		}
		return "", fmt.Errorf("%w: last read %s ago, more than the %s allowed%s", ErrStale, age.Round(time.Millisecond), w.maxStale(), detail)
	}
	return w.set[artifact], nil
}

// Status returns the watcher's state.
func (w *Watcher) Status() WatchStatus {
	w.mu.RLock()
	defer w.mu.RUnlock()
	s := WatchStatus{LastSync: w.lastSync, SyncErrors: w.syncErrs, Artifacts: len(w.set)}
	if w.failing {
		s.LastError = w.lastErr
	}
	return s
}

// Sync reads the quarantined records appended since the last sync, page
// by page until a page comes back short. Records of pages read before an
// error are kept (they are append-only), but only a sync that reads to
// the end counts as successful. A record that is not a quarantine, or
// whose ID does not follow the last one, is an error.
func (w *Watcher) Sync(ctx context.Context) error {
	w.syncCalls.Lock()
	defer w.syncCalls.Unlock()
	start := w.now()
	err := w.sync(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.syncErrs++
		if !w.failing {
			w.logger().Warn("couldn't read the incident quarantine; every admission is denied if this lasts",
				"max_stale", w.maxStale().String(), "err", err.Error())
		}
		w.failing, w.lastErr = true, err
		return err
	}
	if w.failing {
		w.logger().Info("incident quarantine read again", "artifacts", len(w.set))
	}
	w.failing, w.lastErr, w.lastSync = false, nil, start
	return nil
}

func (w *Watcher) sync(ctx context.Context) error {
	page := w.PageSize
	if page <= 0 {
		page = store.MaxLimit
	}
	w.mu.RLock()
	after := w.after
	w.mu.RUnlock()
	for {
		rs, err := w.Ledger.List(ctx, store.IncidentQuery{Event: store.IncidentQuarantined, AfterID: after, Limit: page})
		if err != nil {
			return fmt.Errorf("couldn't list quarantined artifacts: %w", err)
		}
		if len(rs) > page {
			return fmt.Errorf("ledger answered %d quarantine records, more than the %d asked for", len(rs), page)
		}
		for _, r := range rs {
			if r == nil || r.ID <= after || r.Event != store.IncidentQuarantined || r.Artifact == "" {
				return errors.New("ledger answered a malformed or out-of-order quarantine record")
			}
			after = r.ID
		}
		w.mu.Lock()
		if w.set == nil {
			w.set = map[string]string{}
		}
		for _, r := range rs {
			if _, ok := w.set[r.Artifact]; !ok {
				w.set[r.Artifact] = r.Incident
			}
		}
		w.after = after
		w.mu.Unlock()
		if len(rs) < page {
			return nil
		}
	}
}

// Run syncs at once (unless a sync succeeded within Interval) and then
// every Interval until ctx ends, and returns ctx's error. Each sync is
// bounded by MaxStale: a ledger that hangs counts as failing.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.Validate(); err != nil {
		return err
	}
	t := time.NewTicker(w.interval())
	defer t.Stop()
	last := w.Status().LastSync
	skip := !last.IsZero() && w.now().Sub(last) < w.interval()
	for {
		if !skip {
			sctx, cancel := context.WithTimeout(ctx, w.maxStale())
			_ = w.Sync(sctx) // counted, logged and kept in Status
			cancel()
		}
		skip = false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
