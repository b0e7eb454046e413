package tlog

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two logs of one origin (two servers on one host) with their own keys
// are remembered apart: syncing one never checks the other's checkpoint.
// A checkpoint an older client kept under the origin alone is taken for
// the log whose key verifies it, and ignored by the other. A remembered
// checkpoint that does not verify is refused with an error naming the log,
// its key, the file and what to do.
func TestCheckpointStoreKeysLogsByOriginAndKey(t *testing.T) {
	ctx := context.Background()
	keyA, keyB := newECDSAKey(t).(*ecdsa.PrivateKey), newECDSAKey(t).(*ecdsa.PrivateKey)
	_, srvA := logWith(t, keyA, "a", 2)
	_, srvB := logWith(t, keyB, "b", 5)
	store := NewCheckpointStore(filepath.Join(t.TempDir(), "logs"))
	a, _ := NewClient(srvA.URL, testOrigin, keyA.Public(), nil)
	b, _ := NewClient(srvB.URL, testOrigin, keyB.Public(), nil)
	for range 2 { // A, B, A, B: each against its own memory
		if cp, err := a.Sync(ctx, store); err != nil || cp.Size != 2 {
			t.Fatalf("sync of log A: %v", err)
		}
		if cp, err := b.Sync(ctx, store); err != nil || cp.Size != 5 {
			t.Fatalf("sync of log B after A, same origin: %v", err)
		}
	}
	if store.path(a.Verifier()) == store.path(b.Verifier()) {
		t.Fatal("two logs of one origin share a file")
	}

	// An older client's file, named by the origin only, holding A's checkpoint.
	legacy := NewCheckpointStore(filepath.Join(t.TempDir(), "logs"))
	cpA, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(legacy.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy.legacyPath(testOrigin), cpA.Note, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := legacy.Load(a.Verifier()); err != nil || got == nil || got.Size != 2 {
		t.Errorf("log A's checkpoint from the old file: %v, %v", got, err)
	}
	if got, err := legacy.Load(b.Verifier()); err != nil || got != nil {
		t.Errorf("log B read log A's old file: %v, %v; want nothing remembered", got, err)
	}
	if _, err := b.Sync(ctx, legacy); err != nil {
		t.Errorf("sync of log B beside log A's old file: %v", err)
	}

	// A damaged memory: the error says which log, which key, where, and what to do.
	file := store.path(a.Verifier())
	if err := os.WriteFile(file, []byte(strings.Replace(string(cpA.Note), "\n2\n", "\n7\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = a.Sync(ctx, store)
	for _, want := range []string{`log "` + testOrigin + `"`, fmt.Sprintf("key %08x", a.Verifier().KeyHash()), file, "remove it"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("sync with a damaged memory: %v; want it to say %q", err, want)
		}
	}
	if _, err := b.Sync(ctx, store); err != nil {
		t.Errorf("log B with log A's memory damaged: %v", err)
	}
}
