package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/tlog/mysqltest"
)

// TestMySQLTwoFrontends opens two Logs on one MariaDB database, as two
// replicas would, appends through both at once, and checks that every
// acknowledged entry is in the log with an inclusion proof against a
// checkpoint the history holds, that every checkpoint either saw extends
// the one before, and that each serves what the other wrote.
func TestMySQLTwoFrontends(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	key := newECDSAKey(t)
	open := func() *Log {
		l, err := Open(context.Background(), Options{MySQL: db, Origin: testOrigin, Signer: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	logs := []*Log{open(), open()}
	ctx := context.Background()
	type acked struct {
		index uint64
		body  []byte
		cp    *Checkpoint
	}
	var mu sync.Mutex
	var got []acked
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 5 {
				l := logs[(w+i)%2]
				tle, err := l.AddEntry(ctx, hashedRekord(t, fmt.Sprintf("entry %d/%d", w, i)))
				if err != nil {
					t.Errorf("AddEntry: %v", err)
					return
				}
				cp, err := ParseCheckpoint([]byte(tle.InclusionProof.Checkpoint.Envelope), l.Verifier())
				if err != nil {
					t.Errorf("checkpoint of the answer: %v", err)
					return
				}
				leaf := rfc6962.DefaultHasher.HashLeaf(tle.CanonicalizedBody)
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(tle.LogIndex), cp.Size, leaf, tle.InclusionProof.Hashes, cp.Hash); err != nil {
					t.Errorf("inclusion of entry %d: %v", tle.LogIndex, err)
				}
				mu.Lock()
				got = append(got, acked{uint64(tle.LogIndex), tle.CanonicalizedBody, cp})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[uint64]bool{}
	for _, a := range got {
		if seen[a.index] {
			t.Fatalf("index %d acknowledged twice", a.index)
		}
		seen[a.index] = true
	}
	// Both frontends serve the same, complete log.
	final := latest(t, logs[1])
	for _, l := range logs {
		for _, a := range got {
			hashes, err := l.InclusionProof(ctx, a.index, final.Size)
			if err != nil {
				t.Fatalf("inclusion proof of %d: %v", a.index, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, final.Size, rfc6962.DefaultHasher.HashLeaf(a.body), hashes, final.Hash); err != nil {
				t.Fatalf("entry %d not in the final tree: %v", a.index, err)
			}
			// The checkpoint each client was given is in the history and
			// consistent with the final one.
			if _, err := l.CheckpointAt(a.cp.Size); err != nil {
				t.Fatalf("history lacks size %d: %v", a.cp.Size, err)
			}
			p, err := l.ConsistencyProof(ctx, a.cp.Size, final.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(a.cp, final, p); err != nil {
				t.Fatalf("checkpoint %d vs final %d: %v", a.cp.Size, final.Size, err)
			}
		}
	}
	sizes, err := logs[0].CheckpointSizes(ctx)
	if err != nil || len(sizes) == 0 {
		t.Fatalf("checkpoint history: %v %v", sizes, err)
	}
}

func TestParseMySQLURL(t *testing.T) {
	t.Setenv(MySQLPasswordEnv, "from-env")
	for _, tc := range []struct{ in, want, err string }{
		{in: "mysql://u:p@db:3307/log", want: "u:p@tcp(db:3307)/log"},
		{in: "mysql://u@db/log", want: "u:from-env@tcp(db:3306)/log"},
		{in: "mysql://u@x/log?socket=/run/m.sock", want: "u:from-env@unix(/run/m.sock)/log"},
		{in: "postgres://u@db/log", err: "not mysql://"},
		{in: "mysql://db/log", err: "must name a user"},
		{in: "mysql://u:secret@db/", err: "must name a user and a database"},
	} {
		got, err := ParseMySQLURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "secret") {
				t.Errorf("%s: error %v, want one saying %q without the password", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, %v; want prefix %q", tc.in, got, err, tc.want)
		}
	}
}

// TestMySQLOpenTogether starts four frontends at once on an empty
// database, as replicas of a new registry do: every one opens and they
// serve one tree. (Tessera's own tree initialisation deadlocked when
// custody serve processes started together, TestReplicasKillLoop; in one
// process the race is rarely hit, so this is a guard, not the proof.)
func TestMySQLOpenTogether(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	key := newECDSAKey(t)
	logs := make([]*Log, 4)
	var wg sync.WaitGroup
	for i := range logs {
		wg.Go(func() {
			l, err := Open(context.Background(), Options{MySQL: db, Origin: testOrigin, Signer: key})
			if err != nil {
				t.Errorf("frontend %d: %v", i, err)
				return
			}
			logs[i] = l
		})
	}
	wg.Wait()
	for _, l := range logs {
		if l != nil {
			t.Cleanup(func() { l.Close() })
		}
	}
	if t.Failed() {
		return
	}
	idx := add(t, logs[3], "after a crowded start")
	if cp := latest(t, logs[0]); cp.Size <= idx {
		t.Fatalf("frontend 0 serves size %d, frontend 3 appended index %d", cp.Size, idx)
	}
}

// TestMySQLWitnessedCheckpoint: GET /checkpoint?witnessed=K on a MySQL log
// selects from the cosignatures table, so a replica serves the newest
// checkpoint another replica stored a cosignature of.
func TestMySQLWitnessedCheckpoint(t *testing.T) {
	db := mysqltest.NewDatabase(t)
	key := newECDSAKey(t)
	_, wk, _ := ed25519.GenerateKey(rand.Reader)
	w, err := NewWitness("w1.example", wk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var logs []*Log
	for range 2 {
		l, err := Open(ctx, Options{MySQL: db, Origin: testOrigin, Signer: key, Witnesses: []note.Verifier{w.Verifier()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		logs = append(logs, l)
	}
	cosign := func() *Checkpoint {
		t.Helper()
		cp := latest(t, logs[0])
		_, line, err := w.Cosign(logs[0].Verifier(), cp.Note, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := logs[0].AddCosignature(ctx, append(bytes.Clone(cp.Note), line...)); err != nil {
			t.Fatal(err)
		}
		return cp
	}
	add(t, logs[0], "one")
	first := cosign()
	add(t, logs[0], "two")
	if got, err := logs[1].WitnessedCheckpoint(ctx, 1); err != nil || got.Size != first.Size {
		t.Fatalf("WitnessedCheckpoint(1) = %v, %v; want size %d", got, err, first.Size)
	}
	if got, err := logs[1].WitnessedCheckpoint(ctx, 2); err != nil || got.Size != latest(t, logs[1]).Size {
		t.Fatalf("WitnessedCheckpoint(2) with none = %v, %v; want the latest", got, err)
	}
	second := cosign()
	if got, err := logs[1].WitnessedCheckpoint(ctx, 1); err != nil || got.Size != second.Size || got.Size == first.Size {
		t.Fatalf("WitnessedCheckpoint(1) after cosigning = %v, %v; want size %d", got, err, second.Size)
	}
}
