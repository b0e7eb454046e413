package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/admission"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/policy"
)

// admissionFlags are the flags of custody admission.
type admissionFlags struct {
	policy                             policyFlags
	listen, tlsCert, tlsKey, policyDir string
	data, verifierKey, verifierID      string
	modes                              string
	registry                           admissionRegistryFlags
	namespaceEnv                       []string
	timeout, allowTTL, denyTTL         time.Duration
	qInterval, qMaxStale               time.Duration
	maxImages, concurrency             int
	verbose                            bool
	limits                             httplimit.Options
}

func newAdmissionCmd(s *streams) *cobra.Command {
	var f admissionFlags
	c := &cobra.Command{
		Use:   "admission --tls-cert F --tls-key F --policies DIR (--evidence DIR | --server URL | --registry-evidence) [--namespace-env NS=ENV,...] [--modes F] [--mutate --allow-registry HOST,...] [--key PUB]... [--trusted-root F] [--data DIR] [--verifier-key KEY]",
		Short: "Serve a Kubernetes validating admission webhook that admits only images whose evidence passes policy",
		Long: "Serves POST /validate (AdmissionReview v1, over TLS), GET /healthz and GET /metrics. Every image of a\n" +
			"Pod or pod-making workload must be pinned by digest, and the digest's verified evidence must pass the\n" +
			"policy of the namespace's environment; the incident quarantine is consulted first. Every computed\n" +
			"decision is recorded as a signed VSA. Fails closed within --timeout.\n\n" +
			"--modes sets enforce, warn or audit per environment and namespace; --mutate also serves POST /mutate,\n" +
			"pinning tags to digests at the registries --allow-registry names; --registry-evidence reads the\n" +
			"evidence attached to the images there.\n\n" +
			"How it decides, caches, syncs the quarantine and records decisions: docs/admission.md.",
		Example: "  CUSTODY_TOKEN=$DEPLOYER_TOKEN custody admission --listen 0.0.0.0:8443 --tls-cert tls.crt --tls-key tls.key \\\n" +
			"    --server $URL --policies policies/ --namespace-env 'prod=prod,*=staging' \\\n" +
			"    --key builder.pub --trusted-root trusted_root.json --timeout 2s\n" +
			"  custody admission --tls-cert tls.crt --tls-key tls.key --policies policies/ --evidence ev/ \\\n" +
			"    --data deploy-data --verifier-key verifier.key --namespace-env '*=staging'\n" +
			"  custody admission --tls-cert tls.crt --tls-key tls.key --policies policies/ --server $URL --key builder.pub \\\n" +
			"    --modes modes.yaml --mutate --registry-evidence --allow-registry registry.example.com --registry-config config.json",
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAdmission(cmd.Context(), s, &f)
		},
	}
	addEvidenceFlags(c, &f.policy)
	c.Flags().Lookup("json").Usage = "log as JSON lines"
	fl := c.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8443", "address to listen on")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.StringVar(&f.data, "data", "", "local data directory: its incident ledger quarantines digests (as for custody deploy); without --server, decisions are written to DATA/decisions/admission")
	fl.StringVar(&f.verifierKey, "verifier-key", "", "key that signs every decision (VSA); default with --server: the server's signing service")
	fl.StringVar(&f.verifierID, "verifier-id", admission.DefaultVerifierID, "verifier.id recorded in the VSAs")
	fl.StringVar(&f.policyDir, "policies", "", "directory of policy files, one environment each")
	fl.StringVar(&f.modes, "modes", "", "YAML file of modes (enforce, warn, audit) by environment and namespace: what happens to a request the policy denies (default enforce: denied)")
	fl.StringSliceVar(&f.namespaceEnv, "namespace-env", nil, "NS=ENV: the environment of a namespace ('*=ENV' for all others); comma-separated or repeated")
	fl.DurationVar(&f.timeout, "timeout", admission.DefaultTimeout, "deadline for answering one request, end to end (reading it, evidence fetches, verification, policy)")
	fl.IntVar(&f.maxImages, "max-images", admission.DefaultMaxImages, "most distinct image digests one request may name; a request naming more is denied")
	fl.IntVar(&f.concurrency, "concurrency", admission.DefaultConcurrency, "most evaluations (evidence fetch, verification, policy of one digest) in progress at once")
	fl.DurationVar(&f.allowTTL, "cache-ttl", admission.DefaultAllowTTL, "longest an allow is cached (evidence aging out of maxAge ends it sooner)")
	fl.DurationVar(&f.denyTTL, "deny-ttl", admission.DefaultDenyTTL, "how long a denial is cached")
	fl.BoolVar(&f.verbose, "verbose", false, "log allowed requests too")
	addAdmissionRegistryFlags(c, &f.registry)
	addHTTPLimitFlags(c, &f.limits)
	fl.DurationVar(&f.qInterval, "quarantine-interval", incident.DefaultWatchInterval, "with --server: how often the server's incident quarantine is synced (a quarantine reaches the webhook within about this)")
	fl.DurationVar(&f.qMaxStale, "quarantine-max-stale", 0, "with --server: deny every request when the quarantine has not synced for this long (default 10s, or 10 intervals when longer)")
	return c
}

func runAdmission(ctx context.Context, s *streams, f *admissionFlags) error {
	if f.tlsCert == "" || f.tlsKey == "" {
		return usageErr(errors.New("--tls-cert and --tls-key are required: the API server calls webhooks over TLS only"), "")
	}
	if f.policyDir == "" {
		return usageErr(errors.New("--policies is required"), "a directory with one policy file per environment")
	}
	if !f.registry.evidence || f.policy.evidence != "" || f.policy.server != "" {
		if err := checkSource(&f.policy); err != nil {
			return err
		}
	}
	if f.maxImages < 1 || f.concurrency < 1 || f.timeout <= 0 {
		return usageErr(errors.New("--max-images, --concurrency and --timeout must be positive"), "")
	}
	cfg, watcher, release, err := admissionConfig(s, f)
	if err != nil {
		return err
	}
	defer release()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = admission.Serve(ctx, *cfg, admission.ServeOptions{Listen: f.listen, TLSCert: f.tlsCert, TLSKey: f.tlsKey, Limits: f.limits, Watcher: watcher,
		Listening: func(addr net.Addr) {
			paths := "/validate"
			if cfg.Resolver != nil {
				paths = "/validate and /mutate"
			}
			fmt.Fprintf(s.out, "custody admission serving on https://%s%s (environments %s)\n", addr, paths, describeModes(cfg))
		}})
	var le *httplimit.ListenError
	switch {
	case errors.As(err, &le):
		return usageErr(err, "choose another --listen address")
	case errors.Is(err, admission.ErrServe):
		return usageErr(err, "check --tls-cert and --tls-key")
	case err != nil:
		return usageErr(err, "")
	}
	return nil
}

// admissionConfig is the webhook's configuration from the flags: its
// policies, trust, evidence source, quarantine (watcher, when synced from
// a server), decision recorder and logger. Call release when done.
func admissionConfig(s *streams, f *admissionFlags) (*admission.Config, *incident.Watcher, func(), error) {
	policies, err := loadPolicyDir(f.policyDir)
	if err != nil {
		return nil, nil, nil, err
	}
	namespaces, err := parseNamespaceEnv(f.namespaceEnv)
	if err != nil {
		return nil, nil, nil, err
	}
	tm, err := policyTrust(&f.policy)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := &admission.Config{Policies: policies, Namespaces: namespaces, Trust: tm, Timeout: f.timeout, MaxImages: f.maxImages,
		Concurrency: f.concurrency, AllowTTL: f.allowTTL, DenyTTL: f.denyTTL, VerifierID: f.verifierID}
	if cfg.Modes, err = loadModes(f.modes, policies); err != nil {
		return nil, nil, nil, err
	}
	if f.data != "" {
		if st, err := os.Stat(f.data); err != nil || !st.IsDir() {
			return nil, nil, nil, usageErr(fmt.Errorf("--data %s is not a directory", f.data), "")
		}
	}
	watcher, err := admissionQuarantine(f, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	var cl *client.Client
	if f.policy.server != "" {
		if cl, err = newClient(serverURL(f.policy.server)); err != nil {
			return nil, nil, nil, err
		}
	}
	switch {
	case f.policy.evidence != "":
		if st, err := os.Stat(f.policy.evidence); err != nil || !st.IsDir() {
			return nil, nil, nil, usageErr(fmt.Errorf("--evidence %s is not a directory", f.policy.evidence), "")
		}
		cfg.Source = admission.DirSource(f.policy.evidence)
	case cl != nil:
		cfg.Source = admission.ServerSource(cl)
	}
	if err := f.registry.configure(cfg, f.timeout); err != nil {
		return nil, nil, nil, err
	}
	dw, release, err := admissionDecisions(s, cl, f.data, f.verifierKey)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.Decisions = admission.RecorderFunc(func(ctx context.Context, env, digest string, vsa []byte) error {
		_, err := dw.write(ctx, vsa, func(sha string) string {
			return fmt.Sprintf("vsa-%s-%s-%s.json", env, strings.TrimPrefix(digest, "sha256:")[:12], sha[:12])
		})
		return err
	})
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(s.err, opts)
	if f.policy.jsonOut {
		h = slog.NewJSONHandler(s.err, opts)
	}
	cfg.Logger = slog.New(h)
	return cfg, watcher, release, nil
}

// admissionQuarantine sets cfg's incident quarantine: DATA/incidents, else
// the server's, through a local copy synced in the background (the
// watcher returned; a request to the server per decision would cost every
// cached answer a round trip).
func admissionQuarantine(f *admissionFlags, cfg *admission.Config) (*incident.Watcher, error) {
	if f.data == "" && serverURL(f.policy.server) != "" {
		l, err := incidentLedger("", f.policy.server)
		if err != nil {
			return nil, err
		}
		watcher := &incident.Watcher{Ledger: l, Interval: f.qInterval, MaxStale: f.qMaxStale}
		if err := watcher.Validate(); err != nil {
			return nil, usageErr(err, "--quarantine-max-stale must be longer than --quarantine-interval")
		}
		cfg.Quarantine = watcher
		return watcher, nil
	}
	q, err := incidentQuarantine(f.data, f.policy.server)
	if err != nil {
		return nil, err
	}
	cfg.Quarantine = q
	return nil, nil
}

// admissionDecisions is where the webhook records its decisions: signed by
// verifierKey, else by the server's signing service; pushed to the server
// when there is one, else written under data. Call release when done.
func admissionDecisions(s *streams, cl *client.Client, data, verifierKey string) (*decisionWriter, func(), error) {
	dw := &decisionWriter{cl: cl}
	if cl == nil {
		if data == "" {
			return nil, nil, usageErr(errors.New("nowhere to record admission decisions"),
				"give --server URL (a deployer token in CUSTODY_TOKEN), or --data DIR with --verifier-key KEY")
		}
		if verifierKey == "" {
			return nil, nil, usageErr(errors.New("no way to sign admission decisions"),
				"pass --verifier-key KEY, or --server URL with a deployer token to use its signing service")
		}
		dw.dir = filepath.Join(data, "decisions", "admission")
	}
	release := func() {}
	if verifierKey != "" {
		var err error
		if dw.key, release, err = loadSigner(s, verifierKey); err != nil {
			return nil, nil, err
		}
	}
	return dw, release, nil
}

// loadPolicyDir reads every *.yaml and *.yml file in dir as a policy, by
// environment.
func loadPolicyDir(dir string) (map[string]*policy.Policy, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't list policies: %w", err), "")
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, usageErr(fmt.Errorf("couldn't read policies: %w", err), "")
		}
		return nil, usageErr(fmt.Errorf("no policy files (*.yaml, *.yml) in %s", dir), "")
	}
	sort.Strings(files)
	out := map[string]*policy.Policy{}
	from := map[string]string{}
	for _, fn := range files {
		p, err := loadPolicy(fn)
		if err != nil {
			return nil, err
		}
		if prev, ok := from[p.Environment]; ok {
			return nil, usageErr(fmt.Errorf("%s and %s are both policies of environment %s", prev, fn, p.Environment), "keep one policy file per environment")
		}
		out[p.Environment], from[p.Environment] = p, fn
	}
	return out, nil
}

// parseNamespaceEnv parses NS=ENV pairs.
func parseNamespaceEnv(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range pairs {
		ns, env, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || ns == "" || env == "" {
			return nil, usageErr(fmt.Errorf("--namespace-env %q is not NS=ENV", kv), "e.g. --namespace-env shop=prod,*=staging")
		}
		if prev, ok := out[ns]; ok && prev != env {
			return nil, usageErr(fmt.Errorf("--namespace-env maps namespace %s to both %s and %s", ns, prev, env), "")
		}
		out[ns] = env
	}
	return out, nil
}

// loadModes reads the --modes file, refusing an unknown mode and a mode
// for an environment without a policy; none: every request is enforced.
func loadModes(file string, policies map[string]*policy.Policy) (admission.Modes, error) {
	if file == "" {
		return admission.Modes{}, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return admission.Modes{}, usageErr(fmt.Errorf("couldn't read --modes: %w", err), "")
	}
	m, err := admission.ParseModes(b)
	if err != nil {
		return admission.Modes{}, usageErr(fmt.Errorf("--modes %s: %w", file, err), "modes are enforce, warn and audit (docs/admission.md)")
	}
	for env := range m.Environments {
		if policies[env] == nil {
			return admission.Modes{}, usageErr(fmt.Errorf("--modes %s: environment %s has a mode but no policy", file, env), "")
		}
	}
	return m, nil
}

// describeModes lists the environments with their modes, and the
// namespaces whose mode differs from their environment's.
func describeModes(cfg *admission.Config) string {
	var parts []string
	for _, env := range slices.Sorted(maps.Keys(cfg.Policies)) {
		parts = append(parts, env+" "+string(cfg.Modes.Of("", env)))
	}
	out := strings.Join(parts, ", ")
	if ns := slices.Sorted(maps.Keys(cfg.Modes.Namespaces)); len(ns) > 0 {
		var nparts []string
		for _, n := range ns {
			nparts = append(nparts, n+" "+string(cfg.Modes.Namespaces[n]))
		}
		out += "; namespaces " + strings.Join(nparts, ", ")
	}
	return out
}
