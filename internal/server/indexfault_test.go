//go:build linux

package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
)

// memRig is a crash rig (crash_test.go) whose server runs in this process
// on a store.Memory index: its fault hooks make the index fail at the
// store boundary, and a restart opens the server again on the records the
// index holds, as a restarted process finds its database.
type memRig struct {
	*crashRig
	mem *store.Memory
	srv *server.Server
	hs  *http.Server
}

func newMemRig(t *testing.T) *memRig {
	r := &memRig{crashRig: newCrashRig(t), mem: new(store.Memory)}
	t.Cleanup(r.close)
	return r
}

// open opens the server on r.mem and serves it on the rig's address.
func (r *memRig) open() {
	r.t.Helper()
	cfg := server.Config{Dir: r.dir, PublicURL: r.url, Index: r.mem, BatchMaxAge: 5 * time.Millisecond}
	if !r.started {
		raw, err := os.ReadFile(r.rootFile)
		if err != nil {
			r.t.Fatal(err)
		}
		cfg.TrustRoot = raw
	}
	srv, err := server.Open(context.Background(), cfg)
	if err != nil {
		r.t.Fatalf("open: %v", err)
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		srv.Close()
		r.t.Fatal(err)
	}
	r.srv, r.hs, r.started = srv, &http.Server{Handler: srv.Handler()}, true
	go r.hs.Serve(ln)
	r.fetchAuditKey()
}

// close stops serving and closes the server.
func (r *memRig) close() {
	if r.srv == nil {
		return
	}
	r.hs.Close()
	r.srv.Close()
	r.srv = nil
}

// restart closes the server and opens it again on what the index holds.
func (r *memRig) restart() {
	r.t.Helper()
	r.close()
	r.mem.Close()
	r.mem = r.mem.Reopen()
	r.open()
}

// TestIndexFaults makes the index fail at the first index write of a
// write of every kind (signed, pushed and audit bundles), and at the append
// of deployment and incident records, once before the write (nothing stored, after the log
// append) and once after it (stored, but the server is told it failed, as
// when it dies between the two). The server must refuse the write, keep
// serving, and after a restart serve exactly what its log records (the
// policy, trust root, deployment and incident records its audit entries
// record; every log entry indexed once), with `custody audit --complete`
// passing and every write it acknowledged still there.
func TestIndexFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers and runs custody audit")
	}
	ctx := context.Background()
	r := newMemRig(t)
	r.open()
	for _, kind := range writeKinds {
		if err := r.write(ctx, kind); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	injected := errors.New("injected index failure")
	type fault struct{ kind, op string } // op "": the write's first index write
	var faults []fault
	for _, kind := range writeKinds {
		faults = append(faults, fault{kind, ""})
	}
	faults = append(faults, fault{"deployment", store.OpAppendDeployment}, fault{"incident", store.OpAppendIncidents})
	for _, f := range faults {
		for _, after := range []bool{false, true} {
			when := "before"
			if after {
				when = "after"
			}
			what := fmt.Sprintf("%s with the index failing %s its first write", f.kind, when)
			if f.op != "" {
				what = fmt.Sprintf("%s with the index failing %s %s", f.kind, when, f.op)
			}
			r.srv.WaitRedFlags() // the last write's red flags must not take the fault
			var hits atomic.Int32
			r.mem.SetFault(func(op string, a bool) error {
				if a == after && (f.op == "" || op == f.op) && hits.Add(1) == 1 {
					return injected
				}
				return nil
			})
			err := r.write(ctx, f.kind)
			r.mem.SetFault(nil)
			if hits.Load() == 0 {
				t.Errorf("%s: the write never reached the index", what)
			}
			if err == nil {
				t.Errorf("%s: the server acknowledged it", what)
			} else {
				t.Logf("%s: refused: %v", what, err)
			}
			if err := r.write(ctx, f.kind); err != nil {
				t.Errorf("%s: the next write, with the index working, failed: %v", what, err)
			}
			r.srv.WaitRedFlags()
			r.restart()
			r.check(ctx, what)
			if t.Failed() {
				return
			}
		}
	}
}
