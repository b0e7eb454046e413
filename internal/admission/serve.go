package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/incident"
)

// ErrServe is wrapped by Serve's error when the webhook stopped serving
// for another reason than ctx: a TLS certificate or key that does not
// load, most often.
var ErrServe = errors.New("couldn't serve")

// ServeOptions says how Serve runs the webhook.
type ServeOptions struct {
	// Listen is the TCP address to listen on. Required.
	Listen string
	// TLSCert and TLSKey are the PEM files of the webhook's certificate
	// and key: the API server calls webhooks over TLS only. Required.
	TLSCert, TLSKey string
	// Limits are the connection limits (package httplimit). Its
	// WriteTimeout is raised to the decision deadline (Config.Timeout)
	// plus 5s, so an answer may take the whole deadline.
	Limits httplimit.Options
	// Watcher, when set, is the quarantine synced from a server (it should
	// be Config.Quarantine): synced once before serving, so the first
	// requests are not denied for want of it, then in the background.
	Watcher *incident.Watcher
	// Listening, when set, is told the address once the webhook listens.
	Listening func(addr net.Addr)
}

// Serve serves the webhook cfg describes (POST /validate, GET /healthz,
// GET /metrics) over TLS until ctx is done, then shuts down and writes
// the decisions still queued.
//
// Errors: those of New and of the limits, a *httplimit.ListenError, and
// ErrServe (wrapped) when serving failed.
func Serve(ctx context.Context, cfg Config, opts ServeOptions) error {
	if opts.TLSCert == "" || opts.TLSKey == "" {
		return errors.New("a TLS certificate and key are required: the API server calls webhooks over TLS only")
	}
	if err := opts.Limits.Validate(); err != nil {
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if w := opts.Watcher; w != nil {
		w.Logger = logger
		// A failure is logged and retried (until then everything is denied).
		sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_ = w.Sync(sctx)
		cancel()
	}
	wh, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := httplimit.Listen(opts.Listen)
	if err != nil {
		return err
	}
	if w := opts.Watcher; w != nil {
		wctx, cancelWatch := context.WithCancel(ctx)
		watchDone := make(chan struct{})
		go func() { defer close(watchDone); _ = w.Run(wctx) }()
		defer func() { cancelWatch(); <-watchDone }()
	}
	limits := opts.Limits
	limits.WriteTimeout = max(limits.WriteTimeout, cfg.Timeout+5*time.Second)
	limits.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	hs := httplimit.New(wh.Handler(), limits)
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, opts.TLSCert, opts.TLSKey) }()
	if opts.Listening != nil {
		opts.Listening(ln.Addr())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	// Write the decisions still queued before returning.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if cerr := wh.Close(cctx); cerr != nil {
		logger.Warn("decisions not recorded at shutdown", "err", cerr.Error())
	}
	cancel()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%w: %w", ErrServe, err)
	}
	return nil
}
