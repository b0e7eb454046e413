package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptHookServer (hookserver FILE) starts a webhook receiver on loopback
// for the script: each POST body is appended to FILE as one line. It sets
// $HOOK_URL to its URL, whose path holds a secret as Slack's do, and
// $HOOK_SECRET to that secret, so a script can check it is never logged.
func scriptHookServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: hookserver FILE")
	}
	path := ts.MkAbs(args[0])
	ts.Check(os.WriteFile(path, nil, 0o644))
	var raw [12]byte
	rand.Read(raw[:])
	secret := hex.EncodeToString(raw[:])
	var mu sync.Mutex
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/services/"+secret {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		f.Write(append(bytes.ReplaceAll(b, []byte("\n"), nil), '\n'))
	}))
	ts.Defer(hs.Close)
	ts.Setenv("HOOK_URL", hs.URL+"/services/"+secret)
	ts.Setenv("HOOK_SECRET", secret)
}

// scriptWaitLines (waitlines FILE N) waits up to 60 s until FILE holds at
// least N lines (a webhook that is sent after the write it is about).
func scriptWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitlines FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	got := 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		ts.Check(err)
		if got = strings.Count(string(b), "\n"); got >= n {
			return
		}
	}
	ts.Fatalf("%s: %d lines after 60 s, want %d", args[0], got, n)
}
