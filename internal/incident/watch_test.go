package incident

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/store"
)

// memLedger is an in-memory Ledger whose List can be made to fail, and
// that counts List calls.
type memLedger struct {
	mu    sync.Mutex
	rs    []*store.IncidentRecord
	fail  error
	lists int
}

func (l *memLedger) Append(ctx context.Context, r *store.IncidentRecord) (*store.IncidentRecord, error) {
	rs, err := l.AppendAll(ctx, []*store.IncidentRecord{r})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

func (l *memLedger) AppendAll(_ context.Context, rs []*store.IncidentRecord) ([]*store.IncidentRecord, error) {
	ns, err := checkAll(rs)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range ns {
		n.ID = int64(len(l.rs) + 1)
		l.rs = append(l.rs, n)
	}
	return ns, nil
}

func (l *memLedger) List(_ context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists++
	if l.fail != nil {
		return nil, l.fail
	}
	var out []*store.IncidentRecord
	for _, r := range l.rs {
		if r.ID <= q.AfterID || (q.Event != "" && r.Event != q.Event) || (q.Artifact != "" && r.Artifact != q.Artifact) {
			continue
		}
		c := *r
		out = append(out, &c)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (l *memLedger) setFail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

func (l *memLedger) listCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lists
}

func digest(i int) string { return fmt.Sprintf("sha256:%064x", i) }

func quarantine(t *testing.T, l Ledger, id string, artifacts ...string) {
	t.Helper()
	var rs []*store.IncidentRecord
	for _, a := range artifacts {
		rs = append(rs, &store.IncidentRecord{Incident: id, Event: store.IncidentQuarantined, Artifact: a, Time: time.Now()})
	}
	if _, err := l.AppendAll(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
}

func newIncidentID(t *testing.T) string {
	t.Helper()
	id, err := NewID(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestWatcherRun: a Watcher running over a FileLedger denies (errors)
// until its first sync, then answers from its copy; a quarantine recorded
// later is seen after a following sync; it stops when its context ends.
func TestWatcherRun(t *testing.T) {
	l := FileLedger{Dir: t.TempDir()}
	w := &Watcher{Ledger: l, Interval: 10 * time.Millisecond, MaxStale: time.Hour}
	ctx := context.Background()
	if _, err := w.Quarantined(ctx, digest(1)); !errors.Is(err, ErrStale) {
		t.Fatalf("before the first sync: err = %v, want ErrStale", err)
	}
	first := newIncidentID(t)
	quarantine(t, l, first, digest(1))

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}()

	waitQuarantined(t, w, digest(1), first)
	if id, err := w.Quarantined(ctx, digest(2)); err != nil || id != "" {
		t.Fatalf("unquarantined digest: %q, %v", id, err)
	}
	second := newIncidentID(t)
	quarantine(t, l, second, digest(2), digest(1))
	waitQuarantined(t, w, digest(2), second)
	// the first incident that quarantined a digest is the one named
	if id, err := w.Quarantined(ctx, digest(1)); err != nil || id != first {
		t.Fatalf("digest 1: %q, %v; want %s", id, err, first)
	}
	if s := w.Status(); s.Artifacts != 2 || s.SyncErrors != 0 || s.LastSync.IsZero() {
		t.Fatalf("status %+v, want 2 artifacts, no errors, synced", s)
	}
}

// waitQuarantined waits (with a deadline) until w says digest is
// quarantined by incident want.
func waitQuarantined(t *testing.T, w *Watcher, digest, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		id, err := w.Quarantined(context.Background(), digest)
		if err == nil && id == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not seen as quarantined by %s: %q, %v", digest, want, id, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatcherStale: a ledger that starts failing keeps the watcher's
// answers for MaxStale after the last successful sync, then every answer
// is an error naming the staleness and the ledger's error; a sync that
// succeeds again ends it. Driven by Sync and a fake clock.
func TestWatcherStale(t *testing.T) {
	ctx := context.Background()
	l := &memLedger{}
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	w := &Watcher{Ledger: l, Interval: time.Second, MaxStale: 10 * time.Second, Now: clock.Now}
	id := newIncidentID(t)
	quarantine(t, l, id, digest(1))

	// a first sync that fails: still nothing but errors
	l.setFail(errors.New("connection refused"))
	if err := w.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded over a failing ledger")
	}
	if _, err := w.Quarantined(ctx, digest(2)); !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("never synced: err = %v, want ErrStale naming the ledger's error", err)
	}

	l.setFail(nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	l.setFail(errors.New("server answered 503"))
	for i := 0; i < 10; i++ { // ten failed syncs, one a second: still within MaxStale
		clock.Add(time.Second)
		if err := w.Sync(ctx); err == nil {
			t.Fatal("Sync succeeded over a failing ledger")
		}
		if got, err := w.Quarantined(ctx, digest(1)); err != nil || got != id {
			t.Fatalf("%s after the last sync: %q, %v; want the copy's answer", clock.Now().Sub(w.Status().LastSync), got, err)
		}
	}
	clock.Add(time.Millisecond) // just past MaxStale
	for _, d := range []string{digest(1), digest(2)} {
		_, err := w.Quarantined(ctx, d)
		if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "server answered 503") || !strings.Contains(err.Error(), "more than the 10s allowed") {
			t.Fatalf("stale: err = %v, want ErrStale naming MaxStale and the ledger's error", err)
		}
	}
	if s := w.Status(); s.SyncErrors != 11 || s.LastError == nil {
		t.Fatalf("status %+v, want 11 sync errors and the last error", s)
	}

	// recovered
	l.setFail(nil)
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Quarantined(ctx, digest(1)); err != nil || got != id {
		t.Fatalf("after recovery: %q, %v", got, err)
	}
	if s := w.Status(); s.LastError != nil {
		t.Fatalf("status after recovery: %+v", s)
	}
}

// TestWatcherPaging: more quarantined records than a page are all read,
// in several requests, and a later sync asks only for what is new.
func TestWatcherPaging(t *testing.T) {
	ctx := context.Background()
	l := &memLedger{}
	w := &Watcher{Ledger: l, PageSize: 3}
	id := newIncidentID(t)
	var ds []string
	for i := range 7 {
		ds = append(ds, digest(i))
	}
	quarantine(t, l, id, ds...)
	// records that are not quarantines are not asked for
	if _, err := l.Append(ctx, &store.IncidentRecord{Incident: id, Event: store.IncidentClosed, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if got, err := w.Quarantined(ctx, d); err != nil || got != id {
			t.Fatalf("%s: %q, %v; want %s", d, got, err, id)
		}
	}
	if n := l.listCalls(); n != 3 {
		t.Errorf("%d list calls for 7 records in pages of 3, want 3", n)
	}
	if s := w.Status(); s.Artifacts != 7 {
		t.Errorf("%d artifacts, want 7", s.Artifacts)
	}

	// a sync with nothing new is one request; one new record is seen
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	quarantine(t, l, id, digest(100))
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.listCalls(); n != 5 {
		t.Errorf("%d list calls, want 5 (one per incremental sync)", n)
	}
	if got, err := w.Quarantined(ctx, digest(100)); err != nil || got != id {
		t.Fatalf("new record: %q, %v", got, err)
	}
}

// badLedger answers List with the records it holds, whatever the query.
type badLedger struct {
	memLedger
	answer []*store.IncidentRecord
}

func (l *badLedger) List(context.Context, store.IncidentQuery) ([]*store.IncidentRecord, error) {
	return l.answer, nil
}

// TestWatcherRefusesBadAnswers: a ledger answer out of order, of another
// event or longer than the page fails the sync (nothing of it is taken).
func TestWatcherRefusesBadAnswers(t *testing.T) {
	id := newIncidentID(t)
	q := func(n int64, a string) *store.IncidentRecord {
		return &store.IncidentRecord{ID: n, Incident: id, Event: store.IncidentQuarantined, Artifact: a}
	}
	for name, rs := range map[string][]*store.IncidentRecord{
		"out of order": {q(2, digest(1)), q(1, digest(2))},
		"zero id":      {q(0, digest(1))},
		"other event":  {{ID: 1, Incident: id, Event: store.IncidentClosed}},
		"nil":          {nil},
		"too many":     {q(1, digest(1)), q(2, digest(2)), q(3, digest(3))},
	} {
		t.Run(name, func(t *testing.T) {
			w := &Watcher{Ledger: &badLedger{answer: rs}, PageSize: 2}
			if err := w.Sync(context.Background()); err == nil {
				t.Fatal("Sync accepted a bad answer")
			}
			if _, err := w.Quarantined(context.Background(), digest(1)); !errors.Is(err, ErrStale) {
				t.Fatalf("Quarantined after a bad answer: %v, want ErrStale", err)
			}
		})
	}
}

func TestWatcherValidate(t *testing.T) {
	l := &memLedger{}
	for _, tc := range []struct {
		w  *Watcher
		ok bool
	}{
		{&Watcher{Ledger: l}, true},
		{&Watcher{Ledger: l, Interval: 5 * time.Second}, true}, // MaxStale defaults to 50s
		{&Watcher{}, false},
		{&Watcher{Ledger: l, Interval: time.Second, MaxStale: time.Second}, false},
		{&Watcher{Ledger: l, Interval: -time.Second}, false},
	} {
		if err := tc.w.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(interval %s, max stale %s) = %v", tc.w.Interval, tc.w.MaxStale, err)
		}
	}
	if got := (&Watcher{Ledger: l, Interval: 5 * time.Second}).maxStale(); got != 50*time.Second {
		t.Errorf("default max staleness at a 5s interval = %s, want 50s", got)
	}
}
