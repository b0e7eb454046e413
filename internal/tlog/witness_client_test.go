package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/trust"
)

// TestClientRequiresWitnesses: a client that requires 2 of 3 witnesses
// refuses the served checkpoint until two witnesses cosigned it through
// POST /cosignature, and never remembers a checkpoint that fell short: the
// checkpoint store keeps the last one that met the threshold.
func TestClientRequiresWitnesses(t *testing.T) {
	ctx := context.Background()
	var ws []*Witness
	var vs []note.Verifier
	for _, name := range []string{"w1.example", "w2.example", "w3.example"} {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		w, err := NewWitness(name, k)
		if err != nil {
			t.Fatal(err)
		}
		ws, vs = append(ws, w), append(vs, w.Verifier())
	}
	signer := newECDSAKey(t)
	l, err := Open(ctx, Options{Dir: t.TempDir(), Origin: testOrigin, Signer: signer, Witnesses: vs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c, err := NewClient(srv.URL, testOrigin, signer.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.RequireWitnesses(&trust.WitnessPolicy{Witnesses: vs, Threshold: 2, Explicit: true})
	store := NewCheckpointStore(filepath.Join(t.TempDir(), "checkpoints"))
	cosign := func(w *Witness, prev *Checkpoint) {
		t.Helper()
		cp := latest(t, l)
		var p [][]byte
		if prev != nil {
			if p, err = l.ConsistencyProof(ctx, prev.Size, cp.Size); err != nil {
				t.Fatal(err)
			}
		}
		_, line, err := w.Cosign(l.Verifier(), cp.Note, prev, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddCosignature(ctx, append(bytes.Clone(cp.Note), line...)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(want string) {
		t.Helper()
		before, _ := store.Load(c.Verifier())
		_, err := c.Sync(ctx, store)
		if !errors.Is(err, trust.ErrWitnesses) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Sync = %v; want %q", err, want)
		}
		after, _ := store.Load(c.Verifier())
		if (before == nil) != (after == nil) || (before != nil && before.Size != after.Size) {
			t.Fatalf("a refused checkpoint was remembered: %v -> %v", before, after)
		}
	}

	add(t, l, "one")
	refused("has valid cosignatures of 0 witness(es), the trust root requires 2")
	cosign(ws[0], nil)
	refused("has valid cosignatures of 1 witness(es), the trust root requires 2 (of the 3")
	cosign(ws[0], nil) // again: one witness counts once
	refused("of 1 witness(es)")
	cosign(ws[1], nil)
	first, err := c.Sync(ctx, store)
	if err != nil {
		t.Fatalf("two of three witnesses cosigned: %v", err)
	}

	add(t, l, "two")
	refused("of 0 witness(es)")
	if got, _ := store.Load(c.Verifier()); got.Size != first.Size {
		t.Fatalf("store holds size %d, want %d", got.Size, first.Size)
	}
	cosign(ws[0], first)
	cosign(ws[2], first)
	second, err := c.Sync(ctx, store)
	if err != nil || second.Size != first.Size+1 {
		t.Fatalf("Sync = %v, %v", second, err)
	}

	// Without a policy (the default for clients) nothing is required.
	add(t, l, "three")
	plain, _ := NewClient(srv.URL, testOrigin, signer.Public(), nil)
	if _, err := plain.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
}
