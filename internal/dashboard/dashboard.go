// Package dashboard is the read-only traceability dashboard of custody serve:
// server-rendered HTML pages (html/template, embedded CSS, SVG charts drawn on
// the server, no JavaScript) under /ui/.
//
// Pages:
//
//	/ui/                      environments: what runs where, since when, by whom,
//	                          its status re-checked live, history with rollbacks
//	/ui/artifact/{digest}     the chain: source → build → artifact → evidence → deployments
//	/ui/evidence/{id}         one piece of evidence and its checks
//	/ui/search?q=&field=      search by digest, name, commit, builder, key or identity
//	/ui/incidents             incidents: what was compromised since when, found,
//	                          quarantined and rolled back, with times
//	/ui/log                   checkpoint, size, witnesses, consistency with history
//	/ui/metrics               failed verifications, reproducible builds, approval
//	                          wait, verification latency, mean time to detect
//	                          and to contain incidents
//
// Every status the dashboard shows is computed when the page is rendered, with
// the code the CLI uses: bundles are verified with gate.Gather (package verify)
// against the trust material of that moment, and environments' policies are
// evaluated with policy.Policy.Evaluate. A status is green only when that
// computation passed; an environment without a configured policy is shown as
// "not checked", never green; one running an artifact an incident
// quarantined (Config.Incidents) is "quarantined", and while the incident
// records cannot be read nothing is green. Authentication is the caller's
// job (package server mounts the handler behind an auditor or admin token).
package dashboard

import (
	"context"
	"crypto"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/mod/sumdb/note"

	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tlog"
	"github.com/custody-dev/custody/policy"
	custodytrust "github.com/custody-dev/custody/trust"
)

//go:embed templates/*.html static/*.css
var assets embed.FS

// Log is the transparency log the dashboard reports on; *tlog.Log
// implements it.
type Log interface {
	// Checkpoint returns the latest published checkpoint, cosignatures
	// appended.
	Checkpoint(ctx context.Context) (*tlog.Checkpoint, error)
	// CheckpointAt returns the published checkpoint of that size.
	CheckpointAt(size uint64) (*tlog.Checkpoint, error)
	// ConsistencyProof proves that the tree of size oldSize is a prefix of
	// the tree of size newSize.
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([][]byte, error)
}

// Index is what the dashboard reads of the registry index (store.SQLite,
// store.Postgres; a server's UIDeps.Index).
type Index interface {
	Get(ctx context.Context, id int64) (*store.Evidence, error)
	Search(ctx context.Context, q store.Query) ([]*store.Evidence, error)
	Deployments(ctx context.Context, q store.DeploymentQuery) ([]*store.Deployment, error)
}

// Config configures the dashboard. Index, Log and Trust are required.
type Config struct {
	// Index is the evidence index and deployment history.
	Index Index
	// Log is the transparency log.
	Log Log
	// LogVerifier verifies the log's checkpoints; Witnesses verify witness
	// cosignatures (default none).
	LogVerifier note.Verifier
	Witnesses   []note.Verifier
	// LogHistory lists the sizes of checkpoints the log published, in any
	// order; the log page checks the latest checkpoint's consistency with
	// the newest MaxHistoryChecks of them. Nil: no history check.
	LogHistory func() ([]uint64, error)
	// Trust returns the trust material of this moment (called for every
	// page that verifies).
	Trust func() (root.TrustedMaterial, error)
	// Policies returns the environments' policies of this moment, by
	// environment name (called for every page that decides). Nil: no
	// policies, so no environment is shown green.
	Policies func() (map[string]*policy.Policy, error)
	// Incidents lists incident records in ID order, paged by q.AfterID and
	// q.Limit (store.SQLite.Incidents, incident.FileLedger.List). Nil: the
	// incidents page says incidents are not available, and artifact pages
	// say whether one is quarantined is unknown.
	Incidents func(ctx context.Context, q store.IncidentQuery) ([]*store.IncidentRecord, error)
	// Gatherer is the server's Prometheus registry; the metrics page reads
	// custody_verifications_total from it. Nil: not shown.
	Gatherer prometheus.Gatherer
	// Registerer, when set, receives the dashboard's own metrics (the
	// figures its charts show) for /metrics.
	Registerer prometheus.Registerer
	// RestrictedRegisterer receives the incident and quarantine figures,
	// which custody serve shows only to auditor and admin tokens. Nil:
	// Registerer.
	RestrictedRegisterer prometheus.Registerer
	// CSRF returns the CSRF token of the session a request belongs to
	// (server.SessionCSRF); when it returns one, every page has a sign-out
	// form posting it to /ui/logout. Nil: no sign-out form.
	CSRF func(r *http.Request) string
	// Holder returns who is signed in (server.SessionHolder), shown in
	// every page's header. Nil: nobody shown.
	Holder func(r *http.Request) string
	// DecisionSigners returns the key IDs (hex) whose admission decisions
	// (VSAs) the environments page reports: the modes namespaces were
	// decided in and the FAILED decisions warn or audit mode admitted.
	// Nil: not shown.
	DecisionSigners func() []string
	// RedFlagSigners returns the key IDs (hex) whose red flags statements
	// (attest.PredicateRedFlags) count: the server's audit key. The
	// artifact and environments pages show the flags of these; any
	// other signer's are shown as not counted. Nil: none count.
	RedFlagSigners func() []string
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// MaxHistoryChecks bounds how many historical checkpoints the log page
// checks for consistency.
const MaxHistoryChecks = 32

// maxEvidence bounds how many bundles the dashboard reads about one artifact.
const maxEvidence = 2000

// Dashboard serves the pages. Its methods are safe for concurrent use.
type Dashboard struct {
	cfg    Config
	tmpl   map[string]*template.Template
	static http.Handler
	rec    *recorder
	logger *slog.Logger
	stats  *statsCache
}

// New returns a dashboard. It registers its metrics with cfg.Registerer.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tm, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	st, _ := fs.Sub(assets, "static")
	d := &Dashboard{cfg: cfg, tmpl: tm, static: http.FileServerFS(st), rec: newRecorder(), logger: logger}
	d.stats = &statsCache{d: d}
	if cfg.Registerer != nil {
		if err := d.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Handler returns the pages, to be mounted at /ui/ (paths include the
// prefix).
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", d.static))
	mux.HandleFunc("GET /ui/{$}", d.page(d.environments))
	mux.HandleFunc("GET /ui/environment/{env}", d.page(d.environment))
	mux.HandleFunc("GET /ui/artifact/{digest}", d.page(d.artifact))
	mux.HandleFunc("GET /ui/evidence/{id}", d.page(d.evidence))
	mux.HandleFunc("GET /ui/search", d.page(d.search))
	mux.HandleFunc("GET /ui/incidents", d.page(d.incidents))
	mux.HandleFunc("GET /ui/log", d.page(d.logPage))
	mux.HandleFunc("GET /ui/metrics", d.page(d.metrics))
	return mux
}

// view is what a page handler returns: the template and its data, or an
// error status.
type view struct {
	name  string
	title string
	data  any
	code  int    // 0: 200
	msg   string // shown instead of data when code is set
}

func (d *Dashboard) page(h func(r *http.Request) view) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := h(r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		name, data := v.name, v.data
		if v.code != 0 {
			name, data = "error", v.msg
			w.WriteHeader(v.code)
		}
		t := d.tmpl[name]
		pd := pageData{Title: v.title, Nav: name, Now: d.cfg.Now().UTC(), Data: data}
		if d.cfg.CSRF != nil {
			pd.CSRF = d.cfg.CSRF(r)
		}
		if d.cfg.Holder != nil {
			pd.Holder = d.cfg.Holder(r)
		}
		err := t.ExecuteTemplate(w, "layout", pd)
		if err != nil {
			d.logger.Error("couldn't render page", "page", name, "err", err)
		}
	}
}

type pageData struct {
	Title string
	Nav   string
	Now   time.Time
	Data  any
	CSRF  string // the session's CSRF token for the sign-out form; "": none
	// Holder is who is signed in, as server.SessionHolder says.
	Holder string
}

func fail(code int, msg string) view {
	return view{name: "error", title: "Error", code: code, msg: msg}
}

// ForServer builds the dashboard of a custody server; it is what
// server.Config.UI is set to.
func ForServer(deps server.UIDeps) (http.Handler, error) {
	tr, err := root.NewTrustedRootFromJSON(deps.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the trusted root: %w", err)
	}
	// As custody deploy does with --trust-root, --trusted-root and --key:
	// the custody trust root (its keys in their windows, its logs and
	// TSAs), the server's trusted root for its log and TSA, keys found by
	// their hint.
	var cache trustRootCache
	trust := func() (root.TrustedMaterial, error) {
		var doc *custodytrust.Document
		if deps.TrustRoot != nil {
			doc = deps.TrustRoot()
		}
		tm, listed, err := cache.get(doc)
		if err != nil {
			return nil, err
		}
		pubs, err := deps.Keys()
		if err != nil {
			return nil, err
		}
		km, err := keyMaterial(pubs, listed)
		if err != nil {
			return nil, err
		}
		if tm == nil {
			return root.TrustedMaterialCollection{tr, km}, nil
		}
		return root.TrustedMaterialCollection{tm, tr, km}, nil
	}
	d, err := New(Config{Index: deps.Index, Log: deps.Log, LogVerifier: deps.Log.Verifier(), Witnesses: deps.Witnesses,
		LogHistory: deps.LogHistory, Trust: trust, Policies: deps.Policies, Incidents: deps.Incidents, Gatherer: deps.Registry,
		Registerer: deps.Registry, RestrictedRegisterer: deps.Restricted, CSRF: server.SessionCSRF, Holder: server.SessionHolder, Logger: deps.Logger,
		DecisionSigners: deps.DecisionSigners, RedFlagSigners: deps.RedFlagSigners})
	if err != nil {
		return nil, err
	}
	return d.Handler(), nil
}

// trustRootCache holds the trust material of the last custody trust root
// version seen, rebuilt when the server's newest version changes.
type trustRootCache struct {
	mu     sync.Mutex
	doc    *custodytrust.Document
	tm     root.TrustedMaterial
	listed map[string]custodytrust.Window
}

// get returns doc's trust material (Root.TrustedMaterial: its evidence
// keys in their effective windows, its logs and TSAs) and the effective
// window of every key it lists, by KeyID of the public key. A nil doc
// gives nothing.
func (c *trustRootCache) get(doc *custodytrust.Document) (root.TrustedMaterial, map[string]custodytrust.Window, error) {
	if doc == nil {
		return nil, nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doc == doc {
		return c.tm, c.listed, nil
	}
	tm, err := doc.Root.TrustedMaterial()
	if err != nil {
		return nil, nil, fmt.Errorf("custody trust root version %d: %w", doc.Version, err)
	}
	listed := map[string]custodytrust.Window{}
	for i := range doc.Root.Keys {
		k := &doc.Root.Keys[i]
		id, err := custodytrust.KeyID(k.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("custody trust root version %d: %w", doc.Version, err)
		}
		listed[id] = k.Effective()
	}
	c.doc, c.tm, c.listed = doc, tm, listed
	return tm, listed, nil
}

// keyMaterial returns trust material holding the given public keys, each
// found by its key hint (the base64 or hex SHA-256 of its PKIX encoding, as
// gate.KeyMaterial). A key the custody trust root lists is trusted only in
// its effective window there (listed, by KeyID): rotated out or revoked
// there, it is no longer trusted here either; the others have no window.
func keyMaterial(pubs []crypto.PublicKey, listed map[string]custodytrust.Window) (root.TrustedMaterial, error) {
	keys := map[string]root.TimeConstrainedVerifier{}
	for _, pub := range pubs {
		v, err := signature.LoadDefaultVerifier(pub)
		if err != nil {
			return nil, fmt.Errorf("couldn't use public key: %w", err)
		}
		id, err := custodytrust.KeyID(pub)
		if err != nil {
			return nil, err
		}
		// A window that ends when or before it starts (compromised before
		// it was valid) contains no time; its end is exclusive.
		k := listed[id].ExpiringKey(v)
		raw, err := base64.StdEncoding.DecodeString(id)
		if err != nil {
			return nil, err
		}
		keys[id] = k
		keys[hex.EncodeToString(raw)] = k
	}
	return root.NewTrustedPublicKeyMaterial(func(hint string) (root.TimeConstrainedVerifier, error) {
		if k, ok := keys[hint]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no trusted key has hint %q", hint)
	}), nil
}
