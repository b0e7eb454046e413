package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/tokenfile"
)

// A data directory that already existed as 0755, with an index.db and
// tokens of 0644 (made by hand or by an older custody), is restricted to
// its owner when the server opens it, with a warning naming each path
// (issue 18 item 9); a new one is 0700 with a 0600 index.
func TestDataDirPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, existed := range []bool{true, false} {
		dir := filepath.Join(t.TempDir(), "data")
		if existed {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"index.db", tokenfile.File} {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		var logs bytes.Buffer
		s, err := Open(context.Background(), Config{Dir: dir, BatchMaxAge: 5 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		want := map[string]os.FileMode{".": 0o700, "index.db": 0o600, tokenfile.File: 0o600, "meta.json": 0o600}
		for name, mode := range want {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				if name == tokenfile.File && !existed {
					continue
				}
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("existed=%v: %s is %04o, want %04o", existed, name, fi.Mode().Perm(), mode)
			}
		}
		for _, f := range []string{"index.db-wal", "index.db-shm"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err == nil && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("existed=%v: %s is %04o", existed, f, fi.Mode().Perm())
			}
		}
		warned := strings.Count(logs.String(), "readable by other local users")
		if existed && (warned < 3 || !strings.Contains(logs.String(), "was=0755")) {
			t.Errorf("want a warning for the directory, index.db and tokens; log:\n%s", logs.String())
		}
		if !existed && warned != 0 {
			t.Errorf("warnings for a new data directory:\n%s", logs.String())
		}
	}
}
