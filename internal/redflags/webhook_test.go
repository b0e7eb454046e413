package redflags

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custody-dev/custody/attest"
)

// TestWebhook: a notice reaches the receiver as JSON with a Slack text;
// a 5xx is tried again (at most webhookTries times), a 4xx is not; the
// URL's secret is never logged; Notify never waits on the receiver.
func TestWebhook(t *testing.T) {
	const secret = "T000/B000/s3cr3t-path"
	var mu sync.Mutex
	var bodies [][]byte
	answers := map[string][]int{} // path -> statuses to answer, in order
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, b)
		code := http.StatusOK
		if a := answers[r.URL.Path]; len(a) > 0 {
			code, answers[r.URL.Path] = a[0], a[1:]
		}
		w.WriteHeader(code)
	}))
	defer hs.Close()
	p := &attest.RedFlagsPredicate{Build: attest.RedFlagsBuild{SourceURI: "git+https://github.com/org/app"},
		Flags: []attest.RedFlag{{Kind: KindNewDependency, Message: "pkg:golang/evil was never a dependency", Subject: "pkg:golang/evil"}}}
	art := attest.Subject{Name: "app", Digest: map[string]string{"sha256": strings.Repeat("ab", 32)}}
	for _, tc := range []struct {
		name    string
		answers []int
		posts   int
		result  string
	}{
		{"accepted", nil, 1, WebhookSent},
		{"retried after 503", []int{503, 500}, 3, WebhookSent},
		{"given up after 3", []int{503, 503, 503, 503}, 3, WebhookFailed},
		{"not retried after 400", []int{400}, 1, WebhookFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/services/" + secret + "/" + strings.ReplaceAll(tc.name, " ", "-")
			mu.Lock()
			bodies, answers[path] = nil, tc.answers
			mu.Unlock()
			var logs bytes.Buffer
			results := make(chan string, 4)
			w, err := NewWebhook(hs.URL+path, slog.New(slog.NewTextHandler(&logs, nil)), func(r string) { results <- r })
			if err != nil {
				t.Fatal(err)
			}
			w.backoff = time.Millisecond
			w.Notify(NewNotice("https://custody.example", art, p, 7, 9))
			select {
			case r := <-results:
				if r != tc.result {
					t.Fatalf("result %s, want %s", r, tc.result)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no result")
			}
			w.Close()
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != tc.posts {
				t.Fatalf("%d posts, want %d", len(bodies), tc.posts)
			}
			var n Notice
			if err := json.Unmarshal(bodies[0], &n); err != nil || !strings.HasPrefix(n.Text, "custody: 1 red flag(s) on app") ||
				n.FlagCount != 1 || n.Flags[0].Kind != KindNewDependency || n.EvidenceID != 7 {
				t.Fatalf("body %s (%v)", bodies[0], err)
			}
			if strings.Contains(logs.String(), "s3cr3t") || strings.Contains(string(bodies[0]), "s3cr3t") {
				t.Fatalf("the URL's secret leaked: log %q", logs.String())
			}
		})
	}
}

// TestWebhookUnreachable: a receiver that does not answer costs a
// failure, logged without the URL; a bad URL is refused without repeating it.
func TestWebhookUnreachable(t *testing.T) {
	if _, err := NewWebhook("ftp://user:pw@example.com/x", nil, nil); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("bad URL: %v", err)
	}
	var logs bytes.Buffer
	results := make(chan string, 1)
	w, err := NewWebhook("http://user:hunter2@127.0.0.1:1/hook?token=hunter2", slog.New(slog.NewTextHandler(&logs, nil)), func(r string) { results <- r })
	if err != nil {
		t.Fatal(err)
	}
	w.backoff = time.Millisecond
	w.Notify(&Notice{Text: "x"})
	if r := <-results; r != WebhookFailed {
		t.Fatalf("result %s", r)
	}
	w.Close()
	if strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "http://127.0.0.1") {
		t.Fatalf("log %q", logs.String())
	}
}
