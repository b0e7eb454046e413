package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/ca"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/state"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/internal/tsa"
	"github.com/custody-dev/custody/pack"
	"github.com/custody-dev/custody/signer"
	"github.com/custody-dev/custody/trust"
)

// Defaults of Config.
const (
	DefaultPublicURL   = "http://127.0.0.1:8080"
	DefaultMaxBody     = 1 << 20
	DefaultMaxInflight = 256
	// DefaultMaxSearches bounds concurrent evidence searches.
	DefaultMaxSearches = 16
	// DefaultMaxPageBytes caps the bundles of one page of search results.
	DefaultMaxPageBytes = 8 << 20
)

// Config configures a Server. Dir is required.
type Config struct {
	// Dir is the data directory (see the package documentation); created
	// on first start.
	Dir string
	// PublicURL is where clients reach the server; it is the baseUrl of the
	// log and TSA in the trusted root, and its host name is the log's
	// origin. Default DefaultPublicURL.
	PublicURL string
	// Index is the registry index (evidence, deployment history, incident
	// records), opened by the caller, who closes it after Close:
	// store.OpenPostgres for custody serve --db, store.Memory in tests.
	// Default: SQLite in Dir/index.db, opened and closed by the server.
	Index Index
	// Password encrypts the private keys at rest. Default none: keys are
	// plain PKCS#8 files of mode 0600.
	Password []byte
	// BuilderKeys names more builder keys: name → private key file (PKCS#8
	// PEM, or Sigstore encrypted with Password) or PKCS#11 URI (see
	// LogKey). The key "builder" is always Dir/keys/builder.key unless
	// named here.
	BuilderKeys map[string]string
	// LogKey and TSAKey name the log's and the timestamp authority's
	// signing keys: a private key file as in BuilderKeys, or an RFC 7512
	// pkcs11: URI of a key pair in a token (signer.LoadPKCS11; the PIN from
	// the URI or $CUSTODY_PKCS11_PIN). Default Dir/keys/log.key and
	// Dir/keys/tsa.key, created on first start. The log's public key is
	// recorded in Dir/keys/log.pub: a log key that differs from it is
	// refused, since the key is the log's identity.
	LogKey, TSAKey string
	// AuditKey names the key that signs the server's audit entries
	// (PredicateAudit), as LogKey. Default Dir/keys/audit.key, created on
	// first start.
	AuditKey string
	// MaxBody caps request bodies, in bytes. Default DefaultMaxBody.
	MaxBody int64
	// MaxInflight caps concurrent write requests; more get 503 with
	// Retry-After. A write takes its slot once its body is read. Default
	// DefaultMaxInflight.
	MaxInflight int
	// MaxSearches caps concurrent evidence searches; more wait for a slot
	// (up to searchWait, then 503 with Retry-After). Default
	// DefaultMaxSearches.
	MaxSearches int
	// AdminReserve is how many of the MaxInflight write slots, and of the
	// MaxSearches search slots, only admin tokens may take, so that other
	// roles cannot starve incident response. Default an eighth of each
	// (at least one); negative: none.
	AdminReserve int
	// MaxPageBytes caps the bundles of one page of search results: a page
	// ends at the record that reaches it (so it holds at least one) and
	// names where the next one starts. It bounds a search's memory to
	// about MaxPageBytes plus one bundle. Default DefaultMaxPageBytes.
	MaxPageBytes int64
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// LogMySQL, a mysql://USER@HOST:PORT/DATABASE URL, keeps the
	// transparency log in that MySQL or MariaDB database (Tessera's MySQL
	// driver: tlog.Options.MySQL), so that several replicas append to one
	// log. Default: Tessera's POSIX driver in Dir/log.
	LogMySQL string
	// State keeps the server's state documents (tokens, journal,
	// policies, trust root versions, reconciliation marks: package
	// state). store.PGState puts them in PostgreSQL, shared by replicas
	// (with the index and LogMySQL there too, no replica keeps state on
	// its disk; see replicas.go). Default: files in Dir.
	State state.Store
	// CheckpointInterval and BatchMaxAge tune the log (tlog.Options).
	// Defaults are tlog's.
	CheckpointInterval time.Duration
	BatchMaxAge        time.Duration
	// Witnesses are the witnesses whose cosignatures (POST /cosignature)
	// the log accepts and serves with its checkpoint. Default none.
	Witnesses []note.Verifier
	// UI builds the read-only dashboard (package dashboard: dashboard.New
	// via dashboard.ForServer) from the server's parts; it is served under
	// /ui/ to auditor and admin tokens, as a bearer header or the cookie
	// the form at /ui/login sets (dashboard.go). Default none: no /ui/
	// routes.
	UI func(UIDeps) (http.Handler, error)
	// Packs gathers the contents of the evidence packs POST /api/v1/packs
	// makes (custody serve: packer.Loopback), reading through own, this
	// server's handler, with the caller's token. Nil: the server makes no
	// packs (501).
	Packs func(ctx context.Context, own http.Handler, token, artifact, env string, now time.Time) (*pack.Contents, error)
	// Open lets clients without a token append to the log and ask the
	// timestamp authority (OpenWrites, openwrites.go). Default closed.
	Open OpenWrites
	// TrustRoot is a custody trust root document (trust.Document JSON)
	// whose admins and threshold decide policy changes and the next trust
	// root version (trustroot.go). On first use it must be signed by its
	// own threshold; later it must equal a stored version or chain from the
	// newest one. Default none: the newest stored version, if any; with
	// none, policy and trust root pushes are refused.
	TrustRoot []byte
	// CA, when set, runs the certificate authority for keyless signing
	// (server_ca.go): Fulcio's v2 API, ID tokens of its issuers accepted
	// as builder tokens, its chain and CT key in the trusted root.
	// Default none.
	CA *CAConfig
	// SSO signs people in through an OIDC provider (server_sso.go):
	// the dashboard at /ui/sso/start and `custody login` at
	// /api/v1/sessions. Default none: tokens only.
	SSO *sso.Provider
	// Sessions keeps the dashboard's and people's sessions. Default in
	// memory (a restart signs everyone out).
	Sessions SessionStore
	// RedFlags configures the red flags computed for every provenance
	// the server indexes (redflags.go). Default: computed, signed and
	// logged, sent nowhere else.
	RedFlags RedFlagsConfig
}

// Server is a running custody registry. Its methods are safe for concurrent
// use.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	created  time.Time
	log      *tlog.Log
	tsa      *tsa.Authority
	index    Index
	ownIndex *store.SQLite // the default index, closed by Close
	builders map[string]crypto.Signer
	auditKey crypto.Signer
	tokens   *tokenStore
	journal  string      // prefix of this server's journal documents in state
	state    state.Store // Config.State, or the data directory
	replica  replica     // this replica, when state is shared (replicas.go)

	sessions      *sessions                   // dashboard sessions (session.go)
	sessionSweep  *sessionSweeper             // ends shared sessions never read again (replicas_sessions.go)
	origin        *http.CrossOriginProtection // checks the origin of dashboard forms
	secureCookies bool

	trustedRoot []byte
	writes      *pool     // write requests (Config.MaxInflight)
	open        *openGate // writes without a token (Config.Open)
	searches    *pool     // evidence searches (Config.MaxSearches)
	metrics     *metrics
	ui          http.Handler

	buildMu  sync.Mutex
	building map[string]bool // build IDs being signed or pushed right now

	keyClosers []io.Closer // keys in tokens, closed by Close

	gov governance // custody trust root and policy changes

	ca       *ca.Authority      // Config.CA; nil when off
	caIssued prometheus.Counter // certificates issued

	ownOnce sync.Once
	own     http.Handler // this server's handler for loopback reads (pack.go)

	redFlags *redFlagger // red flags of indexed provenance (redflags.go)
}

var keyName = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Open opens (creating on first start) the data directory, the log, the
// timestamp authority and the index, reconciles the index with the log
// (see Crash safety in the package documentation) and returns the server.
// Call Close to stop it.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	u, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't create data directory: %w", err)
	}
	if err := tightenDataDir(cfg.Dir, cfg.Index == nil, cfg.Logger); err != nil {
		return nil, err
	}
	st := cfg.State
	if st == nil {
		st = state.Dir(cfg.Dir)
	} else if st.Shared() {
		if err := importDataDir(ctx, cfg.Dir, st); err != nil {
			return nil, fmt.Errorf("couldn't import the data directory's state: %w", err)
		}
	}
	m, err := loadMeta(ctx, st)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, created: m.Created, builders: map[string]crypto.Signer{}, state: st,
		tokens: newTokenStore(st, cfg.Logger), journal: journalDir + "/",
		sessions: newSessions(cfg.Sessions), origin: crossOrigin(cfg.PublicURL), secureCookies: u.Scheme == "https",
		writes:   newPool(cfg.MaxInflight, reserveFor(cfg.AdminReserve, cfg.MaxInflight)),
		searches: newPool(cfg.MaxSearches, reserveFor(cfg.AdminReserve, cfg.MaxSearches)), building: map[string]bool{},
		metrics: newMetrics(), open: newOpenGate(cfg.Open)}
	logKey, chain, err := s.openKeys()
	if err != nil {
		s.closeKeys()
		return nil, err
	}
	if err := s.openCA(); err != nil {
		s.closeKeys()
		return nil, err
	}
	if err := s.openLogAndIndex(ctx, u.Hostname(), logKey); err != nil {
		s.closeKeys()
		return nil, err
	}
	if err := s.start(ctx, chain); err != nil {
		s.Close()
		return nil, err
	}
	s.logger.Info("custody server open", "dir", cfg.Dir, "public_url", cfg.PublicURL, "origin", u.Hostname())
	return s, nil
}

// withDefaults checks cfg, fills in its defaults and returns the parsed
// public URL.
func (cfg *Config) withDefaults() (*url.URL, error) {
	if cfg.Dir == "" {
		return nil, errors.New("data directory not set")
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = DefaultPublicURL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("public URL %q is not an http(s) URL", cfg.PublicURL)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxSearches <= 0 {
		cfg.MaxSearches = DefaultMaxSearches
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Open.withDefaults(cfg.MaxInflight); err != nil {
		return nil, err
	}
	return u, nil
}

// openKeys opens (creating on first start) the log, TSA, audit and builder
// keys, starts the timestamp authority and returns the log key and the
// TSA's certificate chain. On error the caller closes the keys opened.
func (s *Server) openKeys() (logKey crypto.Signer, chain []*x509.Certificate, err error) {
	keys := filepath.Join(s.cfg.Dir, "keys")
	if logKey, err = s.openKey(s.cfg.LogKey, filepath.Join(keys, "log.key")); err != nil {
		return nil, nil, fmt.Errorf("log key: %w", err)
	}
	if err := checkLogPublicKey(context.Background(), s.state, "keys/log.pub", logKey.Public()); err != nil {
		return nil, nil, err
	}
	tsaKey, err := s.openKey(s.cfg.TSAKey, filepath.Join(keys, "tsa.key"))
	if err != nil {
		return nil, nil, fmt.Errorf("TSA key: %w", err)
	}
	if chain, err = loadOrCreateChain(context.Background(), s.state, "keys/tsa-chain.pem", tsaKey, s.created); err != nil {
		return nil, nil, err
	}
	if s.tsa, err = tsa.NewAuthority(tsaKey, chain, tsa.WithLogger(s.logger)); err != nil {
		return nil, nil, fmt.Errorf("couldn't start timestamp authority: %w", err)
	}
	if s.auditKey, err = s.openKey(s.cfg.AuditKey, filepath.Join(keys, "audit.key")); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if _, err := signer.NewKeypair(s.auditKey); err != nil {
		return nil, nil, fmt.Errorf("audit key: %w", err)
	}
	if err := s.openBuilderKeys(filepath.Join(keys, "builder.key")); err != nil {
		return nil, nil, err
	}
	return logKey, chain, nil
}

// openBuilderKeys opens the builder keys of Config.BuilderKeys, and the
// default one at defaultPath (created on first start) unless it names one.
func (s *Server) openBuilderKeys(defaultPath string) error {
	var err error
	if _, ok := s.cfg.BuilderKeys[api.DefaultBuilderKey]; !ok {
		if s.builders[api.DefaultBuilderKey], err = loadOrCreateKey(defaultPath, s.cfg.Password, s.state.Shared()); err != nil {
			return err
		}
	}
	for name, ref := range s.cfg.BuilderKeys {
		if !keyName.MatchString(name) {
			return fmt.Errorf("builder key name %q is not a simple name", name)
		}
		if name == api.AuditKeyName {
			return fmt.Errorf("builder key name %q is the audit key's", name)
		}
		if s.builders[name], err = s.openKey(ref, ""); err != nil {
			return fmt.Errorf("builder key %s: %w", name, err)
		}
	}
	for name, k := range s.builders {
		if _, err := signer.NewKeypair(k); err != nil {
			return fmt.Errorf("builder key %s: %w", name, err)
		}
	}
	return nil
}

// openLogAndIndex opens the transparency log (origin: the public URL's
// host name) and, unless Config.Index names one, the default index.
func (s *Server) openLogAndIndex(ctx context.Context, origin string, logKey crypto.Signer) error {
	var err error
	logDir := filepath.Join(s.cfg.Dir, "log")
	if s.cfg.LogMySQL != "" {
		logDir = ""
	}
	s.log, err = tlog.Open(ctx, tlog.Options{Dir: logDir, MySQL: s.cfg.LogMySQL, Origin: origin, Signer: logKey,
		Logger: s.logger, ValidFrom: s.created, MaxEntryBytes: int(s.cfg.MaxBody),
		CheckpointInterval: s.cfg.CheckpointInterval, BatchMaxAge: s.cfg.BatchMaxAge, Witnesses: s.cfg.Witnesses})
	if err != nil {
		return err
	}
	s.index = s.cfg.Index
	if s.index == nil {
		if s.ownIndex, err = store.OpenSQLite(filepath.Join(s.cfg.Dir, "index.db")); err != nil {
			s.log.Close()
			return fmt.Errorf("couldn't open index: %w", err)
		}
		s.index = s.ownIndex
	}
	return nil
}

// start builds the trusted root and the dashboard, reconciles the index,
// the records, the policies and the trust roots with the log (see Crash
// safety in the package documentation) and starts the token store.
func (s *Server) start(ctx context.Context, chain []*x509.Certificate) error {
	var err error
	// The CA stays in the trusted root once it ran, so that what it
	// certified still verifies when it is turned off (as ExportTrustedRoot
	// reads it from the data directory; replicas from their shared state).
	cat, err := readCATrust(ctx, s.state)
	if err != nil {
		return err
	}
	if s.ca != nil {
		cat = &caTrust{chain: s.ca.Chain(), ctPub: s.ca.CTPublicKey()}
	}
	if s.trustedRoot, err = trustedRootJSON(s.cfg.PublicURL, s.created, s.log.PublicKey(), s.log.LogID(), chain, cat); err != nil {
		return err
	}
	s.metrics.register(s)
	if s.redFlags, err = newRedFlagger(s, s.cfg.RedFlags); err != nil {
		return err
	}
	if s.cfg.UI != nil {
		if s.ui, err = s.cfg.UI(s.uiDeps()); err != nil {
			return fmt.Errorf("couldn't start the dashboard: %w", err)
		}
	}
	if err := s.reconcileAll(ctx, true); err != nil {
		return err
	}
	if err := s.redFlags.catchUp(ctx); err != nil {
		s.logger.Error("red flags catch-up failed; builds may be left without red flags", "err", err)
	}
	s.redFlags.start()
	s.tokens.start()
	s.startReplica()
	return nil
}

// trustedRootJSON is the Sigstore trusted_root.json of a server at
// publicURL: its log and its TSA (and its CA with its CT key, when cat is
// set), valid from the data directory's creation.
func trustedRootJSON(publicURL string, created time.Time, logPub crypto.PublicKey, logID []byte, chain []*x509.Certificate, cat *caTrust) ([]byte, error) {
	root := &trust.Root{
		Tlogs: []trust.TransparencyLog{{BaseURL: publicURL, PublicKey: logPub, LogID: logID,
			Window: trust.Window{Start: created}}},
		TSAs: []trust.TimestampAuthority{{URI: publicURL + tsa.Path, Chain: chain,
			Window: trust.Window{Start: created}}},
	}
	cat.addTo(root, publicURL, created)
	b, err := root.MarshalTrustedRootJSON()
	if err != nil {
		return nil, fmt.Errorf("couldn't export trusted root: %w", err)
	}
	return b, nil
}

// ExportTrustedRoot reads the data directory of a server (running or not)
// and returns the trusted_root.json it serves at publicURL (default
// DefaultPublicURL), without opening its log or index. password decrypts
// the log key when it is encrypted at rest.
func ExportTrustedRoot(dir, publicURL string, password []byte) ([]byte, error) {
	if publicURL == "" {
		publicURL = DefaultPublicURL
	}
	publicURL = strings.TrimRight(publicURL, "/")
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("public URL %q is not an http(s) URL", publicURL)
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a custody data directory: %w", dir, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || m.Created.IsZero() {
		return nil, fmt.Errorf("%s/meta.json is malformed", dir)
	}
	logPub, err := readLogPublicKey(dir, password)
	if err != nil {
		return nil, err
	}
	chainPEM, err := os.ReadFile(filepath.Join(dir, "keys", "tsa-chain.pem"))
	if err != nil {
		return nil, fmt.Errorf("couldn't read TSA chain: %w", err)
	}
	var chain []*x509.Certificate
	for rest := chainPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TSA chain: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("TSA chain holds no certificate")
	}
	logID, err := tlog.LogID(u.Hostname(), logPub)
	if err != nil {
		return nil, err
	}
	cat, err := readCATrust(context.Background(), state.Dir(dir))
	if err != nil {
		return nil, err
	}
	return trustedRootJSON(publicURL, m.Created, logPub, logID, chain, cat)
}

// Close stops the log (after publishing every accepted entry) and closes
// the index it opened (none when Config.Index was given).
func (s *Server) Close() error {
	if s.redFlags != nil {
		s.redFlags.close()
	}
	s.stopReplica()
	s.tokens.stop()
	err := s.log.Close()
	if s.ownIndex != nil {
		err = errors.Join(err, s.ownIndex.Close())
	}
	return errors.Join(err, s.closeKeys())
}

// TrustedRoot returns the Sigstore trusted_root.json holding this server's
// log and timestamp authority.
func (s *Server) TrustedRoot() []byte { return append([]byte(nil), s.trustedRoot...) }

// BuilderPublicKey returns the public key of the builder key named name.
func (s *Server) BuilderPublicKey(name string) (crypto.PublicKey, bool) {
	k, ok := s.builders[name]
	if !ok {
		return nil, false
	}
	return k.Public(), true
}

// AuditPublicKey returns the public key of the audit key, which signs the
// server's audit entries (PredicateAudit).
func (s *Server) AuditPublicKey() crypto.PublicKey { return s.auditKey.Public() }

// TrustedMaterial returns trust material for verifying bundles this server
// signed: the trusted root plus every builder key, valid since the data
// directory was created.
func (s *Server) TrustedMaterial() (root.TrustedMaterial, error) {
	tr, err := trust.LoadTrustedRoot(s.trustedRoot)
	if err != nil {
		return nil, err
	}
	for _, k := range s.builders {
		tr.Keys = append(tr.Keys, trust.Key{PublicKey: k.Public(), Window: trust.Window{Start: s.created}})
	}
	return tr.TrustedMaterial()
}

// TSAChain returns the timestamp authority's certificate chain.
func (s *Server) TSAChain() []*x509.Certificate { return s.tsa.Chain() }

// Log returns the transparency log.
func (s *Server) Log() *tlog.Log { return s.log }

// Index returns the registry index (Config.Index or the default one).
func (s *Server) Index() Index { return s.index }

// Handler returns the HTTP API; routes are listed in the package
// documentation.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	lh := s.log.Handler()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.metrics.instrument(pattern, h))
	}
	handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	handle("GET /readyz", s.serveReady)
	for _, p := range []string{"GET /checkpoint", "GET /checkpoints/{size}", "GET /tile/", "GET /proof/inclusion", "GET /proof/consistency"} {
		handle(p, lh.ServeHTTP)
	}
	writers := []api.Role{api.RoleBuilder, api.RoleAdmin, api.RoleApprover, api.RoleDeployer}
	handle("POST /api/v2/log/entries", s.openOr(s.cfg.Open.Log, "log", s.auth(s.write(s.serveLogAppend(lh)), writers...), s.serveLogAppend(lh)))
	handle("POST /cosignature", s.auth(lh.ServeHTTP, api.RoleAdmin))
	stamp := s.tsa.Handler().ServeHTTP
	handle("POST "+tsa.Path, s.openOr(s.cfg.Open.TSA, "tsa", s.auth(s.write(stamp), writers...), stamp))
	handle("GET /api/v1/trusted-root", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.trustedRoot)
	})
	handle("GET /api/v1/keys/{name}", s.serveKey)
	handle("POST /api/v1/sign", s.auth(s.write(s.serveSign), api.RoleBuilder, api.RoleAdmin, api.RoleDeployer))
	handle("POST /api/v1/evidence", s.auth(s.write(s.servePush), api.RoleBuilder, api.RoleAdmin, api.RoleApprover, api.RoleDeployer))
	handle("GET /api/v1/evidence", s.auth(s.serveSearch, api.Roles()...))
	handle("POST /api/v1/packs", s.auth(s.write(s.servePack), api.RoleDeployer, api.RoleAdmin))
	handle("POST /api/v1/deployments", s.auth(s.write(s.serialized(s.serveAppendDeployment)), api.RoleDeployer, api.RoleAdmin))
	handle("GET /api/v1/deployments", s.auth(s.serveDeployments, api.Roles()...))
	handle("GET /api/v1/trust-root", s.serveTrustRoot)
	handle("GET /api/v1/trust-root/{version}", s.serveTrustRoot)
	handle("POST /api/v1/trust-root", s.auth(s.write(s.serialized(s.servePushTrustRoot)), api.RoleAdmin))
	handle("GET /api/v1/policies/{env}", s.auth(s.servePolicy, api.Roles()...))
	handle("POST /api/v1/policies", s.auth(s.write(s.serialized(s.servePushPolicy)), api.RoleAdmin))
	handle("POST /api/v1/incidents", s.auth(s.write(s.serialized(s.serveAppendIncidents)), api.RoleAdmin))
	handle("GET /api/v1/incidents", s.auth(s.serveIncidents, api.Roles()...))
	handle("GET /api/v1/tokens", s.auth(s.serveTokens, api.RoleAdmin))
	handle("POST /api/v1/tokens/revoke", s.auth(s.write(s.serveRevokeToken), api.RoleAdmin))
	if s.ca != nil {
		handle("POST /api/v2/signingCert", s.serveSigningCert)
		handle("GET /api/v2/trustBundle", s.serveTrustBundle)
	}
	if s.ui != nil {
		handle("GET /ui/static/", s.ui.ServeHTTP)
		handle("GET "+uiLoginPath, s.serveLogin)
		handle("POST "+uiLoginPath, s.serveLogin)
		handle("POST "+uiLogoutPath, s.serveLogout)
		handle("GET /ui/", s.uiAuth(s.ui).ServeHTTP)
	}
	s.ssoRoutes(handle)
	return mux
}

func (s *Server) serveKey(w http.ResponseWriter, r *http.Request) {
	pub, ok := s.BuilderPublicKey(r.PathValue("name"))
	if r.PathValue("name") == api.AuditKeyName {
		pub, ok = s.AuditPublicKey(), true
	}
	if !ok {
		fail(w, http.StatusNotFound, "no builder key of that name")
		return
	}
	pemBytes, err := signer.MarshalPublicKey(pub)
	if err != nil {
		s.logger.Error("couldn't encode builder key", "err", err)
		fail(w, http.StatusInternalServerError, "couldn't encode key")
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(pemBytes)
}

// fail writes a one-line text error.
func fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	msg = strings.ReplaceAll(strings.ReplaceAll(msg, "\r", " "), "\n", "; ")
	fmt.Fprintln(w, msg)
}

type tokenKey struct{}

// tokenFrom returns the authenticated token holder of r.
func tokenFrom(r *http.Request) *TokenInfo {
	t, _ := r.Context().Value(tokenKey{}).(*TokenInfo)
	return t
}

// auth admits requests with a valid bearer token of one of roles.
func (s *Server) auth(h http.HandlerFunc, roles ...api.Role) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="custody"`)
			fail(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		if sid, ok := strings.CutPrefix(strings.TrimSpace(tok), SessionPrefix); ok && s.cfg.SSO != nil {
			if r2, ok := s.personAuth(w, r, sid, roles); ok {
				h(w, r2)
			}
			return
		}
		info, err := s.lookupBearer(r.Context(), strings.TrimSpace(tok))
		switch {
		case errors.Is(err, ca.ErrDenied):
			fail(w, http.StatusForbidden, err.Error())
			return
		case tokenRefused(err):
			w.Header().Set("WWW-Authenticate", `Bearer realm="custody", error="invalid_token"`)
			fail(w, http.StatusUnauthorized, err.Error())
			return
		case err != nil:
			s.logger.Error("couldn't authenticate", "err", err)
			fail(w, http.StatusInternalServerError, "couldn't check token")
			return
		}
		for _, role := range roles {
			if info.Role == role {
				h(w, r.WithContext(withToken(r.Context(), info)))
				return
			}
		}
		fail(w, http.StatusForbidden, roleToken(info.Role)+" may not do this")
	}
}

// roleToken names a token of role r with its article: "an auditor token",
// "a builder token".
func roleToken(r api.Role) string {
	if r != "" && strings.ContainsRune("aeiou", rune(r[0])) {
		return "an " + string(r) + " token"
	}
	return "a " + string(r) + " token"
}
