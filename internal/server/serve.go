package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/custody-dev/custody/internal/httplimit"
)

// ServeError is ListenAndServe's error when the server stopped serving
// for another reason than ctx, or did not close cleanly.
type ServeError struct{ Err error }

func (e *ServeError) Error() string { return e.Err.Error() }
func (e *ServeError) Unwrap() error { return e.Err }

// ServeOptions says how ListenAndServe serves a Server.
type ServeOptions struct {
	// Listen is the TCP address to listen on. Required.
	Listen string
	// TLSCert and TLSKey, both or neither, are PEM files: with them the
	// server speaks HTTPS.
	TLSCert, TLSKey string
	// Limits are the connection limits (package httplimit).
	Limits httplimit.Options
	// Listening, when set, is told the address listened on, the scheme
	// ("http" or "https") and the public URL once the server is open.
	Listening func(addr net.Addr, scheme, publicURL string)
}

// ListenAndServe listens, opens the server of cfg (its PublicURL, when
// empty, is the address listened on) and serves it until ctx is done; it
// then shuts down (waiting up to 30s for requests in progress) and closes
// the server.
//
// Errors: a *httplimit.ListenError, those of the limits and of Open, and
// a *ServeError when serving or closing failed.
func ListenAndServe(ctx context.Context, cfg Config, opts ServeOptions) error {
	if err := opts.Limits.Validate(); err != nil {
		return err
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return errors.New("a TLS certificate and key go together")
	}
	scheme := "http"
	if opts.TLSCert != "" {
		scheme = "https"
	}
	ln, err := httplimit.Listen(opts.Listen)
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = scheme + "://" + ln.Addr().String()
	}
	srv, err := Open(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	limits := opts.Limits
	limits.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	hs := httplimit.New(srv.Handler(), limits)
	errc := make(chan error, 1)
	go func() {
		if opts.TLSCert != "" {
			errc <- hs.ServeTLS(ln, opts.TLSCert, opts.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	if opts.Listening != nil {
		opts.Listening(ln.Addr(), scheme, cfg.PublicURL)
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	if cerr := srv.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return &ServeError{err}
	}
	return nil
}
