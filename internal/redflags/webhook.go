package redflags

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/custody-dev/custody/attest"
)

// Webhook limits. A notice is tried at most webhookTries times, each
// within webhookTimeout, webhookBackoff apart (doubling); at most
// webhookQueue notices wait, and a notice that finds the queue full is
// dropped (and counted), so a slow or dead receiver never holds up the
// server.
const (
	webhookTries   = 3
	webhookTimeout = 5 * time.Second
	webhookBackoff = time.Second
	webhookQueue   = 256
	// maxNoticeFlags bounds the flags a notice lists (the signed
	// statement has them all).
	maxNoticeFlags = 20
)

// Webhook results, passed to the result callback of NewWebhook.
const (
	WebhookSent    = "sent"
	WebhookFailed  = "failed"
	WebhookDropped = "dropped"
)

// Notice is the JSON body a Webhook posts for one build with red flags.
// Text is a one-paragraph summary in Slack's incoming-webhook format (a
// Slack URL shows it as the message); the other members are for generic
// receivers. It carries what the signed statement says, nothing secret.
type Notice struct {
	Text string `json:"text"`
	// Server is the public URL of the server that computed the flags.
	Server string `json:"server"`
	// Artifact is the subject of the red flags statement.
	Artifact attest.Subject `json:"artifact"`
	// Build is the provenance the flags are about.
	Build attest.RedFlagsBuild `json:"build"`
	// Lineage is what it was compared with.
	Lineage attest.RedFlagsLineage `json:"lineage"`
	// Flags are the first flags (at most 20); FlagCount counts them all.
	Flags     []attest.RedFlag `json:"flags"`
	FlagCount int              `json:"flagCount"`
	// EvidenceID and LogIndex locate the signed red flags statement.
	EvidenceID int64 `json:"evidenceId"`
	LogIndex   int64 `json:"logIndex"`
}

// NewNotice makes the notice of a signed red flags statement about
// artifact.
func NewNotice(server string, artifact attest.Subject, p *attest.RedFlagsPredicate, evidenceID, logIndex int64) *Notice {
	n := &Notice{Server: server, Artifact: artifact, Build: p.Build, Lineage: p.Lineage,
		Flags: p.Flags[:min(len(p.Flags), maxNoticeFlags)], FlagCount: len(p.Flags), EvidenceID: evidenceID, LogIndex: logIndex}
	kinds := map[string]int{}
	var order []string
	for _, f := range p.Flags {
		if kinds[f.Kind] == 0 {
			order = append(order, f.Kind)
		}
		kinds[f.Kind]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, kinds[k]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "custody: %d red flag(s) on %s (sha256:%s) built from %s: %s.",
		len(p.Flags), artifact.Name, shortHex(artifact.Digest["sha256"]), orNone(p.Build.SourceURI), strings.Join(parts, ", "))
	if len(p.Flags) > 0 {
		fmt.Fprintf(&b, " First: %s.", p.Flags[0].Message)
	}
	fmt.Fprintf(&b, " See `custody redflags --server %s --digest sha256:%s`.", server, artifact.Digest["sha256"])
	n.Text = b.String()
	return n
}

func shortHex(h string) string { return h[:min(len(h), 12)] }

// Webhook posts notices to one URL from a goroutine of its own. Its
// methods are safe for concurrent use.
type Webhook struct {
	url    string
	host   string // what logs name the receiver by: scheme and host only
	client *http.Client
	logger *slog.Logger
	result func(string)
	queue  chan []byte
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	// backoff is webhookBackoff (tests shorten it).
	backoff time.Duration
}

// NewWebhook checks rawURL (http or https, a host) and starts the sender.
// result, when not nil, is called with WebhookSent, WebhookFailed or
// WebhookDropped for every notice. The URL may hold a secret (Slack's
// do): it is never logged nor put in an error; logs name the receiver
// by scheme and host. Close stops it.
func NewWebhook(rawURL string, logger *slog.Logger, result func(string)) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("red flags webhook is not an http(s) URL with a host")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if result == nil {
		result = func(string) {}
	}
	w := &Webhook{url: rawURL, host: u.Scheme + "://" + u.Hostname(), logger: logger, result: result,
		queue: make(chan []byte, webhookQueue), stop: make(chan struct{}), backoff: webhookBackoff,
		client: &http.Client{Timeout: webhookTimeout,
			// A redirect could carry the notice elsewhere: refused.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// Host is the receiver's scheme and host, as logs name it.
func (w *Webhook) Host() string { return w.host }

// Notify queues n without waiting; when the queue is full n is dropped.
func (w *Webhook) Notify(n *Notice) {
	b, err := json.Marshal(n)
	if err != nil {
		w.result(WebhookDropped)
		return
	}
	select {
	case w.queue <- b:
	default:
		w.result(WebhookDropped)
		w.logger.Warn("red flags webhook queue full; notice dropped", "receiver", w.host)
	}
}

// Close stops the sender: the notice being sent gets its current try,
// queued ones are dropped.
func (w *Webhook) Close() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
	for {
		select {
		case <-w.queue:
			w.result(WebhookDropped)
		default:
			return
		}
	}
}

func (w *Webhook) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case b := <-w.queue:
			w.send(b)
		}
	}
}

// send tries to post b, retrying network errors, 429 and 5xx answers.
func (w *Webhook) send(b []byte) {
	wait := w.backoff
	var why string
	for try := 1; try <= webhookTries; try++ {
		retry := false
		retry, why = w.post(b)
		if why == "" {
			w.result(WebhookSent)
			return
		}
		if !retry || try == webhookTries {
			break
		}
		select {
		case <-w.stop:
			try = webhookTries
		case <-time.After(wait):
		}
		wait *= 2
	}
	w.result(WebhookFailed)
	w.logger.Warn("red flags webhook failed", "receiver", w.host, "err", why)
}

// post makes one try; why is "" on success, else says why without the
// URL, and retry says whether another try may help.
func (w *Webhook) post(b []byte) (retry bool, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(b))
	if err != nil {
		return false, "couldn't make the request"
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		// *url.Error names the URL: only its cause is told.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, err.Error()
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, ""
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, resp.Status
	}
	return false, resp.Status
}
