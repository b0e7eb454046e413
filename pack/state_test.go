package pack_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/pack/packtest"
	"github.com/custody-dev/custody/trust"
)

// logKey is the name the device's state gives the log of origin signed
// with key: its origin and the note key hash.
func logKey(t *testing.T, origin string, key crypto.Signer) string {
	t.Helper()
	s, err := tlog.NewNoteSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s+%08x", origin, s.KeyHash())
}

// checkState loads the state at path and checks a pack carrying the
// checkpoint of size n signed by key (origin log.test) against it.
func checkState(t *testing.T, f *packtest.Fixture, path string, key crypto.Signer, n uint64) error {
	t.Helper()
	st, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Contents(t)
	c.Checkpoints = [][]byte{packtest.Checkpoint(t, "log.test", key, n)}
	_, err = pack.Check(context.Background(), f.Build(t, c, f.Packer), f.Options(), st, nil)
	return err
}

// twoLogs adds a second log on the fixture's log host (another port,
// another key: the same origin) to its trust root and returns its key.
func twoLogs(t *testing.T, f *packtest.Fixture) crypto.Signer {
	t.Helper()
	_, lk, _ := ed25519.GenerateKey(rand.Reader)
	f.Root.Root.Tlogs = append(f.Root.Root.Tlogs, trust.TransparencyLog{BaseURL: "https://log.test:8443", PublicKey: lk.Public(), Window: f.Root.Root.Tlogs[0].Window})
	if err := f.Root.Sign(context.Background(), f.Admin); err != nil {
		t.Fatal(err)
	}
	return lk
}

// TestStateTwoLogsOneHost: two logs on one host (one origin, two keys)
// are remembered apart: packs of each are accepted in turn, and each log
// is still protected against rollback by its own newest checkpoint.
func TestStateTwoLogsOneHost(t *testing.T) {
	f := packtest.New(t)
	other := twoLogs(t, f)
	path := filepath.Join(t.TempDir(), "state.json")
	for _, step := range []struct {
		key      crypto.Signer
		n        uint64
		rollback bool
	}{
		{f.LogKey, 30, false},
		{other, 5, false}, // smaller than the first log's 30: another log
		{f.LogKey, 20, true},
		{other, 3, true},
		{other, 6, false},
		{f.LogKey, 31, false},
		{other, 5, true},
		{f.LogKey, 30, true},
	} {
		err := checkState(t, f, path, step.key, step.n)
		if step.rollback != errors.Is(err, pack.ErrRollback) || !step.rollback && err != nil {
			t.Fatalf("log %s at size %d: %v (want a rollback: %v)", logKey(t, "log.test", step.key), step.n, err, step.rollback)
		}
	}
	st, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := st.Checkpoints[logKey(t, "log.test", f.LogKey)].Size, st.Checkpoints[logKey(t, "log.test", other)].Size; a != 31 || b != 6 {
		t.Fatalf("state holds sizes %d and %d; want 31 and 6", a, b)
	}
}

// TestStateOldFormat: a state file an older device wrote (checkpoints
// keyed by origin alone) still protects it after the upgrade: what it
// saw is held against every log of that origin until the log has an
// entry of its own, and the old entry is kept as it was.
func TestStateOldFormat(t *testing.T) {
	f := packtest.New(t)
	other := twoLogs(t, f)
	path := filepath.Join(t.TempDir(), "state.json")
	h := sha256.Sum256([]byte("30")) // packtest's root hash at size 30
	old, _ := json.Marshal(map[string]any{"logs": map[string]any{"log.test": map[string]any{"size": 30, "hash": h[:]}}, "trustRootVersion": 1})
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkState(t, f, path, f.LogKey, 20); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("a pack older than the old state's checkpoint: %v", err)
	}
	if err := checkState(t, f, path, other, 20); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("another log of the origin, older than the old state's checkpoint: %v", err)
	}
	if err := checkState(t, f, path, f.LogKey, 30); err != nil {
		t.Fatalf("the checkpoint the old state holds: %v", err)
	}
	if err := checkState(t, f, path, f.LogKey, 40); err != nil {
		t.Fatal(err)
	}
	if err := checkState(t, f, path, f.LogKey, 35); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("a pack older than the one recorded after the upgrade: %v", err)
	}
	if err := checkState(t, f, path, other, 25); !errors.Is(err, pack.ErrRollback) {
		t.Fatalf("the other log is still held against the old entry: %v", err)
	}
	st, err := pack.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Logs["log.test"].Size != 30 || st.Checkpoints[logKey(t, "log.test", f.LogKey)].Size != 40 {
		t.Fatalf("state %+v; want the old entry (30) kept and the log's own (40)", st)
	}
}
