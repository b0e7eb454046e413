package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

func newServeCmd(s *streams) *cobra.Command {
	var (
		dataDir, listen, publicURL, db, tlsCert, tlsKey string
		logKey, tsaKey, auditKey, trustRoot             string
		maxBody                                         int64
		maxInflight, maxSearches, adminReserve          int
		maxPageBytes                                    int64
		limits                                          httplimit.Options
		checkpointInterval, batchMaxAge                 time.Duration
		builderKeys, witnesses                          []string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry: transparency log, timestamp authority, signing service and evidence index",
		Long: "serve runs custody's trusted registry on one HTTP server, creating the data directory on first start.\n" +
			"Private keys are encrypted at rest with CUSTODY_SERVER_PASSWORD when it is set. --log-key, --tsa-key,\n" +
			"--audit-key and --builder-key also take RFC 7512 pkcs11: URIs (keys in a token; PIN from the URI or CUSTODY_PKCS11_PIN).",
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageErr(errors.New("--data is required"), "custody serve --data ./custody-data")
			}
			if checkpointInterval < tlog.MinCheckpointInterval {
				return usageErr(fmt.Errorf("--checkpoint-interval %s is below the minimum of %s", checkpointInterval, tlog.MinCheckpointInterval), "")
			}
			if batchMaxAge <= 0 {
				return usageErr(fmt.Errorf("--batch-max-age %s is not positive", batchMaxAge), "")
			}
			if err := limits.Validate(); err != nil {
				return usageErr(err, "")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageErr(errors.New("--tls-cert and --tls-key go together"), "")
			}
			keys := map[string]string{}
			for _, kv := range builderKeys {
				name, path, ok := strings.Cut(kv, "=")
				if !ok || name == "" || path == "" {
					return usageErr(fmt.Errorf("--builder-key %q is not NAME=PATH or NAME=PKCS11-URI", signer.RedactKeyRef(kv)), "")
				}
				keys[name] = path
			}
			var wvs []note.Verifier
			for _, kv := range witnesses {
				name, path, ok := strings.Cut(kv, "=")
				if !ok || name == "" || path == "" {
					return usageErr(fmt.Errorf("--witness %q is not NAME=PUBLIC-KEY-FILE", kv), "")
				}
				pub, err := loadPublicKey(path)
				if err != nil {
					return err
				}
				edpub, ok := pub.(ed25519.PublicKey)
				if !ok {
					return usageErr(fmt.Errorf("witness %s: key is not Ed25519", name), "custody key generate --algorithm ed25519 --out witness")
				}
				v, err := tlog.NewCosignatureVerifier(name, edpub)
				if err != nil {
					return usageErr(fmt.Errorf("witness %s: %w", name, err), "")
				}
				wvs = append(wvs, v)
			}
			scheme := "http"
			if tlsCert != "" {
				scheme = "https"
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usageErr(fmt.Errorf("couldn't listen on %s: %w", listen, err), "choose another --listen address")
			}
			if publicURL == "" {
				publicURL = scheme + "://" + ln.Addr().String()
			}
			var rootDoc []byte
			if trustRoot != "" {
				if rootDoc, err = readLimited(trustRoot, trust.MaxDocumentBytes); err != nil {
					ln.Close()
					return usageErr(fmt.Errorf("couldn't read trust root: %w", err), "")
				}
			}
			logger := slog.New(slog.NewTextHandler(s.err, nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var index server.Index // default: SQLite in the data directory
			if db != "" {
				pg, err := store.OpenPostgres(ctx, db)
				if err != nil {
					ln.Close()
					return usageErr(fmt.Errorf("couldn't open index: %w", err), "")
				}
				defer pg.Close()
				index = pg
			}
			srv, err := server.Open(ctx, server.Config{Dir: dataDir, PublicURL: publicURL, Index: index,
				Password: []byte(os.Getenv("CUSTODY_SERVER_PASSWORD")), BuilderKeys: keys, LogKey: logKey, TSAKey: tsaKey, AuditKey: auditKey,
				MaxBody: maxBody, MaxInflight: maxInflight, MaxSearches: maxSearches, AdminReserve: adminReserve,
				MaxPageBytes: maxPageBytes, Logger: logger, Witnesses: wvs, UI: dashboard.ForServer,
				CheckpointInterval: checkpointInterval, BatchMaxAge: batchMaxAge, TrustRoot: rootDoc})
			if err != nil {
				ln.Close()
				return usageErr(err, "")
			}
			limits.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
			hs := httplimit.New(srv.Handler(), limits)
			errc := make(chan error, 1)
			go func() {
				if tlsCert != "" {
					errc <- hs.ServeTLS(ln, tlsCert, tlsKey)
				} else {
					errc <- hs.Serve(ln)
				}
			}()
			fmt.Fprintf(s.out, "custody serving on %s://%s (public URL %s)\n", scheme, ln.Addr(), publicURL)
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
				return failErr(err, "")
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data", "", "data directory (created on first start)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&publicURL, "public-url", "", "URL clients use (default: the listen address); its host name is the log's origin")
	f.StringVar(&db, "db", "", "PostgreSQL DSN for the index (default: SQLite in the data directory)")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.Int64Var(&maxBody, "max-body", server.DefaultMaxBody, "largest request body in bytes")
	f.IntVar(&maxInflight, "max-inflight", server.DefaultMaxInflight, "concurrent write requests (counted once their body is read) before answering 503")
	f.IntVar(&maxSearches, "max-searches", server.DefaultMaxSearches, "concurrent evidence searches; more wait for a slot, then get 503")
	f.IntVar(&adminReserve, "admin-reserve", 0, "write and search slots only admin tokens may take (default an eighth of each; -1: none)")
	f.Int64Var(&maxPageBytes, "max-page-bytes", server.DefaultMaxPageBytes, "bundle bytes in one page of search results; clients follow the page's continuation")
	addHTTPLimitFlags(c, &limits)
	f.DurationVar(&checkpointInterval, "checkpoint-interval", tlog.MinCheckpointInterval,
		"how often the log publishes a checkpoint while it grows; appends wait for it (minimum 100ms)")
	f.DurationVar(&batchMaxAge, "batch-max-age", tlog.DefaultBatchMaxAge, "longest an entry waits to be sequenced with others")
	f.StringArrayVar(&builderKeys, "builder-key", nil, "another builder key as NAME=PATH or NAME=pkcs11:URI (repeatable; NAME builder replaces the default)")
	f.StringVar(&logKey, "log-key", "", "the log's signing key: key file or pkcs11: URI (default DATA/keys/log.key, created on first start)")
	f.StringVar(&tsaKey, "tsa-key", "", "the timestamp authority's key: key file or pkcs11: URI (default DATA/keys/tsa.key, created on first start)")
	f.StringVar(&auditKey, "audit-key", "", "the key that signs audit entries and decisions: key file or pkcs11: URI (default DATA/keys/audit.key, created on first start)")
	f.StringVar(&trustRoot, "trust-root", "", "custody trust root whose admins approve policy changes and the next trust root (first start: signed by its own threshold)")
	f.StringArrayVar(&witnesses, "witness", nil, "accept cosignatures from this witness: NAME=ED25519-PUBLIC-KEY.pem (repeatable)")
	return c
}

// addHTTPLimitFlags adds the flags of a server's connection limits
// (package httplimit) to c.
func addHTTPLimitFlags(c *cobra.Command, o *httplimit.Options) {
	f := c.Flags()
	f.DurationVar(&o.HeaderTimeout, "header-timeout", httplimit.DefaultHeaderTimeout, "longest a client may take to send a request's headers")
	f.DurationVar(&o.BodyTimeout, "body-timeout", httplimit.DefaultBodyTimeout, "longest a client may take to send a request's body (408 after it)")
	f.DurationVar(&o.WriteTimeout, "write-timeout", httplimit.DefaultWriteTimeout, "longest an answer may take, from the end of the request's headers; slower readers are cut off")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", httplimit.DefaultIdleTimeout, "how long a keep-alive connection may wait for its next request")
	f.IntVar(&o.MaxConns, "max-conns", 0, fmt.Sprintf("open connections at most (default %d, or half the open-file limit when lower); "+
		"beyond it the oldest idle one is closed, or with none idle the new one refused", httplimit.DefaultMaxConns))
}
