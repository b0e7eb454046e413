package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/packer"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// serveFlags are the flags of custody serve.
type serveFlags struct {
	dataDir, listen, publicURL, db, log, tlsCert, tlsKey string
	logKey, tsaKey, auditKey, trustRoot                  string
	maxBody                                              int64
	maxInflight, maxSearches, adminReserve               int
	maxPageBytes                                         int64
	limits                                               httplimit.Options
	checkpointInterval, batchMaxAge                      time.Duration
	builderKeys, witnesses                               []string
	oidcIssuers, caKey, ctKey                            string
	oidc                                                 oidcFlags
	openWrites                                           string
	openRate                                             float64
	redFlagsWebhook                                      string
	releaseRefs                                          []string
}

func newServeCmd(s *streams) *cobra.Command {
	var f serveFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry: transparency log, timestamp authority, signing service and evidence index",
		Long: "serve runs custody's trusted registry on one HTTP server, creating the data directory on first start.\n" +
			"Private keys are encrypted at rest with CUSTODY_SERVER_PASSWORD when it is set. --log-key, --tsa-key,\n" +
			"--audit-key and --builder-key also take RFC 7512 pkcs11: URIs (keys in a token; PIN from the URI or CUSTODY_PKCS11_PIN).",
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), s, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.dataDir, "data", "", "data directory (created on first start)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.publicURL, "public-url", "", "URL clients use (default: the listen address); its host name is the log's origin")
	fl.StringVar(&f.db, "db", "", "PostgreSQL DSN for the index and all server state, shared by replicas (default: SQLite and files in the data directory)")
	fl.StringVar(&f.log, "log", "", "where the transparency log lives: mysql://USER@HOST:PORT/DATABASE for replicas sharing one log\n"+
		"(Tessera's MySQL driver on MySQL or MariaDB; password from CUSTODY_MYSQL_PASSWORD; checkpoints at least 1s apart)\n"+
		"(default: the POSIX log in DATA/log)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.Int64Var(&f.maxBody, "max-body", server.DefaultMaxBody, "largest request body in bytes")
	fl.IntVar(&f.maxInflight, "max-inflight", server.DefaultMaxInflight, "concurrent write requests (counted once their body is read) before answering 503")
	fl.IntVar(&f.maxSearches, "max-searches", server.DefaultMaxSearches, "concurrent evidence searches; more wait for a slot, then get 503")
	fl.IntVar(&f.adminReserve, "admin-reserve", 0, "write and search slots only admin tokens may take (default an eighth of each; -1: none)")
	fl.Int64Var(&f.maxPageBytes, "max-page-bytes", server.DefaultMaxPageBytes, "bundle bytes in one page of search results; clients follow the page's continuation")
	addHTTPLimitFlags(c, &f.limits)
	fl.DurationVar(&f.checkpointInterval, "checkpoint-interval", tlog.MinCheckpointInterval,
		"how often the log publishes a checkpoint while it grows; appends wait for it (minimum 100ms)")
	fl.DurationVar(&f.batchMaxAge, "batch-max-age", tlog.DefaultBatchMaxAge, "longest an entry waits to be sequenced with others")
	fl.StringArrayVar(&f.builderKeys, "builder-key", nil, "another builder key as NAME=PATH or NAME=pkcs11:URI (repeatable; NAME builder replaces the default)")
	fl.StringVar(&f.logKey, "log-key", "", "the log's signing key: key file or pkcs11: URI (default DATA/keys/log.key, created on first start)")
	fl.StringVar(&f.tsaKey, "tsa-key", "", "the timestamp authority's key: key file or pkcs11: URI (default DATA/keys/tsa.key, created on first start)")
	fl.StringVar(&f.auditKey, "audit-key", "", "the key that signs audit entries and decisions: key file or pkcs11: URI (default DATA/keys/audit.key, created on first start)")
	fl.StringVar(&f.trustRoot, "trust-root", "", "custody trust root whose admins approve policy changes and the next trust root (first start: signed by its own threshold)")
	fl.StringVar(&f.openWrites, "open-writes", "", "let clients without a token write: log (Rekor v2 appends), tsa (RFC 3161), or log,tsa;\n"+
		"for cosign and other stock Sigstore clients (default none: every write needs a token)")
	fl.Float64Var(&f.openRate, "open-rate", server.DefaultOpenRate, "open writes per second one client address may make (bursts of twice that)")
	fl.StringArrayVar(&f.witnesses, "witness", nil, "accept cosignatures from this witness: NAME=ED25519-PUBLIC-KEY.pem (repeatable)")
	fl.StringVar(&f.oidcIssuers, "oidc-issuers", "", "run the certificate authority for keyless signing, trusting the OIDC issuers of this file (docs/keyless.md)")
	fl.StringVar(&f.caKey, "ca-key", "", "the certificate authority's key: key file or pkcs11: URI (default DATA/keys/ca.key, created on first start)")
	fl.StringVar(&f.ctKey, "ct-key", "", "the key that signs the CA's certificate transparency SCTs: key file or pkcs11: URI (default DATA/keys/ct.key)")
	fl.StringVar(&f.redFlagsWebhook, "redflags-webhook", "", "POST every build's red flags as JSON (Slack-compatible) to this URL (default $"+redFlagsWebhookEnv+",\n"+
		"which keeps a URL holding a secret out of process listings; never logged)")
	fl.StringArrayVar(&f.releaseRefs, "release-ref", nil, "a ref (glob) whose builds are releases, for red flags (repeatable; default refs/tags/*, main, master, release/*, release-*)")
	addOIDCFlags(c, &f.oidc)
	return c
}

// redFlagsWebhookEnv names the variable that may hold --redflags-webhook.
const redFlagsWebhookEnv = "CUSTODY_REDFLAGS_WEBHOOK"

func runServe(ctx context.Context, s *streams, f *serveFlags) error {
	cfg, err := serveConfig(s, f)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.db != "" { // default: SQLite in the data directory, opened by the server
		pg, err := store.OpenPostgres(ctx, f.db)
		if err != nil {
			return usageErr(fmt.Errorf("couldn't open index: %w", err), "")
		}
		defer pg.Close() // after the server closed
		cfg.Index = pg
		if cfg.State, err = pg.State(ctx); err != nil {
			return usageErr(fmt.Errorf("couldn't open server state: %w", err), "")
		}
	}
	err = server.ListenAndServe(ctx, *cfg, server.ServeOptions{Listen: f.listen, TLSCert: f.tlsCert, TLSKey: f.tlsKey, Limits: f.limits,
		Listening: func(addr net.Addr, scheme, publicURL string) {
			fmt.Fprintf(s.out, "custody serving on %s://%s (public URL %s)\n", scheme, addr, publicURL)
		}})
	var le *httplimit.ListenError
	var se *server.ServeError
	switch {
	case errors.As(err, &le):
		return usageErr(err, "choose another --listen address")
	case errors.As(err, &se):
		return failErr(err, "")
	case err != nil:
		return usageErr(err, "")
	}
	return nil
}

// serveConfig checks the flags and turns them into the server's Config.
func serveConfig(s *streams, f *serveFlags) (*server.Config, error) {
	switch {
	case f.dataDir == "":
		return nil, usageErr(errors.New("--data is required"), "custody serve --data ./custody-data")
	case f.checkpointInterval < tlog.MinCheckpointInterval:
		return nil, usageErr(fmt.Errorf("--checkpoint-interval %s is below the minimum of %s", f.checkpointInterval, tlog.MinCheckpointInterval), "")
	case f.batchMaxAge <= 0:
		return nil, usageErr(fmt.Errorf("--batch-max-age %s is not positive", f.batchMaxAge), "")
	}
	if err := f.limits.Validate(); err != nil {
		return nil, usageErr(err, "")
	}
	if f.log != "" {
		if _, err := tlog.ParseMySQLURL(f.log); err != nil {
			return nil, usageErr(fmt.Errorf("--log: %w", err), "custody serve --log mysql://custody@db.internal:3306/custody_log")
		}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usageErr(errors.New("--tls-cert and --tls-key go together"), "")
	}
	keys := map[string]string{}
	for _, kv := range f.builderKeys {
		name, path, ok := strings.Cut(kv, "=")
		if !ok || name == "" || path == "" {
			return nil, usageErr(fmt.Errorf("--builder-key %q is not NAME=PATH or NAME=PKCS11-URI", signer.RedactKeyRef(kv)), "")
		}
		keys[name] = path
	}
	wvs, err := witnessVerifiers(f.witnesses)
	if err != nil {
		return nil, err
	}
	open, err := server.ParseOpenWrites(f.openWrites)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--open-writes: %w", err), "custody serve --open-writes log,tsa")
	}
	if !(f.openRate > 0) || f.openRate > 1e6 {
		return nil, usageErr(fmt.Errorf("--open-rate %v is not a positive number of requests per second", f.openRate), "")
	}
	open.Rate = f.openRate
	var rootDoc []byte
	if f.trustRoot != "" {
		if rootDoc, err = readLimited(f.trustRoot, trust.MaxDocumentBytes); err != nil {
			return nil, usageErr(fmt.Errorf("couldn't read trust root: %w", err), "")
		}
		if w := witnessGap(rootDoc, wvs); w != "" {
			fmt.Fprintf(s.err, "custody: warning: %s\n", w)
		}
	}
	caCfg, err := serveCAConfig(f)
	if err != nil {
		return nil, err
	}
	provider, err := f.oidc.provider()
	if err != nil {
		return nil, err
	}
	redFlags, err := serveRedFlagsConfig(f)
	if err != nil {
		return nil, err
	}
	return &server.Config{CA: caCfg, Dir: f.dataDir, SSO: provider, PublicURL: f.publicURL,
		Password: []byte(os.Getenv("CUSTODY_SERVER_PASSWORD")), BuilderKeys: keys, LogKey: f.logKey, TSAKey: f.tsaKey, AuditKey: f.auditKey,
		MaxBody: f.maxBody, MaxInflight: f.maxInflight, MaxSearches: f.maxSearches, AdminReserve: f.adminReserve,
		MaxPageBytes: f.maxPageBytes, Logger: slog.New(slog.NewTextHandler(s.err, nil)), Witnesses: wvs, UI: dashboard.ForServer,
		CheckpointInterval: f.checkpointInterval, BatchMaxAge: f.batchMaxAge, TrustRoot: rootDoc, LogMySQL: f.log, Open: open, Packs: packer.Loopback,
		RedFlags: redFlags}, nil
}

// serveRedFlagsConfig checks the red flags flags.
func serveRedFlagsConfig(f *serveFlags) (server.RedFlagsConfig, error) {
	hook := f.redFlagsWebhook
	if hook == "" {
		hook = os.Getenv(redFlagsWebhookEnv)
	}
	if hook != "" {
		u, err := url.Parse(hook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may hold a secret: not repeated.
			return server.RedFlagsConfig{}, usageErr(errors.New("--redflags-webhook is not an http(s) URL with a host"), "")
		}
	}
	for _, g := range f.releaseRefs {
		if _, err := path.Match(g, ""); err != nil {
			return server.RedFlagsConfig{}, usageErr(fmt.Errorf("--release-ref %q is not a glob: %w", g, err), "")
		}
	}
	return server.RedFlagsConfig{Webhook: hook, ReleaseRefs: f.releaseRefs}, nil
}

// witnessGap says what is wrong when the trust root sets a witness
// threshold that the witnesses this server accepts cosignatures from
// (--witness) cannot meet: clients and devices requiring it would refuse
// every checkpoint. "" when they can, or the root does not parse (the
// server refuses it later with its reason).
func witnessGap(rootDoc []byte, wvs []note.Verifier) string {
	d, err := trust.ParseDocument(rootDoc)
	if err != nil || d.WitnessThreshold == 0 {
		return ""
	}
	p, err := d.WitnessPolicy(time.Now())
	if err != nil {
		return ""
	}
	names := map[string]bool{}
	for _, v := range p.Witnesses {
		for _, a := range wvs {
			if v.Name() == a.Name() && v.KeyHash() == a.KeyHash() {
				names[v.Name()] = true
			}
		}
	}
	if len(names) >= d.WitnessThreshold {
		return ""
	}
	return fmt.Sprintf("trust root version %d requires cosignatures of %d witnesses, but --witness accepts them from only %d of its witnesses: "+
		"clients and devices that require them will refuse this log's checkpoints (add --witness NAME=KEY.pub for each)", d.Version, d.WitnessThreshold, len(names))
}

// witnessVerifiers loads the --witness NAME=PUBLIC-KEY-FILE pairs.
func witnessVerifiers(witnesses []string) ([]note.Verifier, error) {
	var wvs []note.Verifier
	for _, kv := range witnesses {
		name, path, ok := strings.Cut(kv, "=")
		if !ok || name == "" || path == "" {
			return nil, usageErr(fmt.Errorf("--witness %q is not NAME=PUBLIC-KEY-FILE", kv), "")
		}
		pub, err := loadPublicKey(path)
		if err != nil {
			return nil, err
		}
		edpub, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, usageErr(fmt.Errorf("witness %s: key is not Ed25519", name), "custody key generate --algorithm ed25519 --out witness")
		}
		v, err := tlog.NewCosignatureVerifier(name, edpub)
		if err != nil {
			return nil, usageErr(fmt.Errorf("witness %s: %w", name, err), "")
		}
		wvs = append(wvs, v)
	}
	return wvs, nil
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

// serveCAConfig reads --oidc-issuers; nil when the CA is off.
func serveCAConfig(f *serveFlags) (*server.CAConfig, error) {
	if f.oidcIssuers == "" {
		if f.caKey != "" || f.ctKey != "" {
			return nil, usageErr(errors.New("--ca-key and --ct-key need --oidc-issuers"), "custody serve --oidc-issuers issuers.yaml")
		}
		return nil, nil
	}
	b, err := readLimited(f.oidcIssuers, ca.MaxIssuersFileBytes)
	if err != nil {
		return nil, usageErr(fmt.Errorf("couldn't read issuers file: %w", err), "")
	}
	issuers, err := ca.ParseIssuers(b)
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", f.oidcIssuers, err), "see docs/keyless.md for the issuers file")
	}
	return &server.CAConfig{Issuers: issuers, Key: f.caKey, CTKey: f.ctKey}, nil
}
