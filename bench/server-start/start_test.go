// Package serverstart measures the verified reconciliation of custody
// serve's start (issue 11 item 1): every audit entry of the index read
// through auditReader (audit-key signature, inclusion proof against the
// server's own checkpoint), against the unverified read the server did
// before (search the audit rows, parse each statement and predicate), in
// the same run. The reconciliation marks are removed before each start,
// so every audit entry is read: the first start after an upgrade.
package serverstart

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

const entries = 500

var (
	once sync.Once
	dir  string
)

// setup writes a data directory holding entries deployment audit entries.
func setup(b *testing.B) string {
	once.Do(func() {
		d, err := os.MkdirTemp("", "server-start")
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		s, err := server.Open(ctx, server.Config{Dir: d, BatchMaxAge: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		tok, err := tokenfile.CreateToken(d, api.RoleDeployer, "", "")
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		defer hs.Close()
		cl, err := client.New(hs.URL, tok, client.WithCheckpointDir(filepath.Join(d, "client")))
		if err != nil {
			b.Fatal(err)
		}
		sem := make(chan struct{}, 64)
		var wg sync.WaitGroup
		for i := range entries {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, err := cl.AppendDeployment(ctx, &store.Deployment{Environment: "prod", Event: "deployed",
					Artifact: "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i%256), 32), Name: "app", Time: time.Now().UTC()}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		hs.Close()
		s.Close()
		dir = d
	})
	return dir
}

func dropMarks(b *testing.B, d string) {
	for _, p := range []string{filepath.Join(d, "policies", ".reconciled"), filepath.Join(d, "records.reconciled")} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartMarked is Open and Close with the reconciliation marks in
// place: the audit entries were read by an earlier start, so this is the
// start's fixed cost (keys, log, index, trust root).
func BenchmarkStartMarked(b *testing.B) {
	d := setup(b)
	ctx := context.Background()
	s, err := server.Open(ctx, server.Config{Dir: d, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	for b.Loop() {
		s, err := server.Open(ctx, server.Config{Dir: d, BatchMaxAge: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkStartVerified is Open (every audit entry verified) and Close.
func BenchmarkStartVerified(b *testing.B) {
	d := setup(b)
	ctx := context.Background()
	for b.Loop() {
		dropMarks(b, d)
		s, err := server.Open(ctx, server.Config{Dir: d, BatchMaxAge: 5 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(entries), "entries")
}

// BenchmarkUnverifiedRead is the read the reconciliation did before: the
// audit rows by predicate type, each statement and predicate parsed.
func BenchmarkUnverifiedRead(b *testing.B) {
	d := setup(b)
	ctx := context.Background()
	idx, err := store.OpenSQLite(filepath.Join(d, "index.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	for b.Loop() {
		n := 0
		q := store.Query{PredicateType: api.PredicateAudit, Limit: 64}
		for {
			page, err := idx.Search(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				pb := new(protobundle.Bundle)
				if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.Bundle, pb); err != nil {
					b.Fatal(err)
				}
				st, err := attest.ParseStatement(pb.GetDsseEnvelope().GetPayload())
				if err != nil {
					b.Fatal(err)
				}
				var pred api.AuditPredicate
				if err := json.Unmarshal(st.Predicate, &pred); err != nil {
					b.Fatal(err)
				}
				n++
			}
			q.AfterID = page[len(page)-1].ID
		}
		if n < entries {
			b.Fatalf("read %d audit entries; want %d", n, entries)
		}
	}
}
