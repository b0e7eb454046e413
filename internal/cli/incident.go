package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/incident"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/verify"
)

// incidentQuarantine is the quarantine the deploy gate and the admission
// webhook consult: the incident ledger in DATA/incidents when --data is
// given, else the server's (--server or $CUSTODY_SERVER), else none. A
// quarantine that cannot be read refuses every artifact (fail closed; see
// deploy.Gate.Quarantine).
func incidentQuarantine(data, server string) (deploy.Quarantine, error) {
	if data == "" && serverURL(server) == "" {
		return nil, nil
	}
	l, err := incidentLedger(data, server)
	if err != nil {
		return nil, err
	}
	return incident.Quarantine{Ledger: l}, nil
}

func incidentLedger(data, server string) (incident.Ledger, error) {
	if data != "" {
		return incident.FileLedger{Dir: filepath.Join(data, "incidents")}, nil
	}
	if serverURL(server) == "" {
		return nil, usageErr(errors.New("no incident ledger: give --data DIR or --server URL"), "")
	}
	cl, err := newClient(serverURL(server))
	if err != nil {
		return nil, err
	}
	return incident.ServerLedger{Client: cl}, nil
}

func newIncidentCmd(s *streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "incident",
		Short: "The kill-switch: find, quarantine and roll back everything a compromised key, identity or builder signed",
	}
	c.AddCommand(newIncidentOpenCmd(s), newIncidentShowCmd(s), newIncidentListCmd(s), newIncidentCloseCmd(s))
	return c
}

type incidentFlags struct {
	key, identity, issuer, builder, since string
	data, evidence, server                string
	envs, policies, verifyKeys            []string
	trustedRoot, trustRoot                string
	rollbackRoot                          string
	adminKeys                             []string
	verifierKey, verifierID               string
	healthCmd, actor, reason              string
	jsonOut                               bool
}

func newIncidentOpenCmd(s *streams) *cobra.Command {
	var f incidentFlags
	c := &cobra.Command{
		Use: "open (--key KEYID | --identity ID --certificate-oidc-issuer URL | --builder URI) --compromised-since T (--data DIR --evidence DIR | --server URL)\n" +
			"  [--env ENV]... [--policy FILE --verify-key PUB... --verifier-key KEY -- DEPLOY_CMD...] [--trust-root root.json --admin-key K...]",
		Short: "Open an incident: list, quarantine and roll back every artifact signed by the compromised signer since T",
		Long: "Finds every artifact with evidence signed by the key, identity or builder at or after T (a signature\n" +
			"counts as before T only when an RFC 3161 timestamp or log entry that verifies against the trusted root\n" +
			"proves it), and where each runs now. Quarantines them (appended records: the deploy gate refuses them from\n" +
			"now on, so they cannot be deployed or promoted anywhere). Rolls every environment that runs one back to its\n" +
			"last good artifact that is not affected (with that environment's --policy and the deploy command after --),\n" +
			"revokes the key in --trust-root (signed with --admin-key, or written unsigned for 'custody trust sign'), and\n" +
			"writes the report. Exit 1 when an environment still runs an affected artifact.\n" + commandHelp,
		RunE: func(c *cobra.Command, args []string) error {
			var command []string
			if at := c.ArgsLenAtDash(); at >= 0 {
				if at != 0 {
					return usageErr(errors.New("incident open takes no arguments before --"), "")
				}
				command = args
			} else if len(args) > 0 {
				return usageErr(fmt.Errorf("unexpected argument %q", args[0]), "the deploy command for rollbacks goes after --")
			}
			return runIncidentOpen(c.Context(), s, &f, command)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "compromised signing key: its ID (hex SHA-256 of the public key) or its .pub file")
	fl.StringVar(&f.identity, "identity", "", "compromised keyless identity (certificate SAN), with --certificate-oidc-issuer")
	fl.StringVar(&f.issuer, "certificate-oidc-issuer", "", "the OIDC issuer of the compromised --identity (both must match)")
	fl.StringVar(&f.builder, "builder", "", "compromised builder (SLSA builder.id)")
	fl.StringVar(&f.since, "compromised-since", "", "when the compromise began (RFC 3339)")
	fl.StringVar(&f.data, "data", "", "local data directory: deployment history and incident ledger")
	fl.StringVar(&f.evidence, "evidence", "", "directory of bundles to search (with --data)")
	fl.StringVar(&f.server, "server", "", "custody server: evidence index, history and incident ledger (admin token)")
	fl.StringArrayVar(&f.envs, "env", nil, "only these environments (repeatable; default: every environment in the history)")
	fl.StringArrayVar(&f.policies, "policy", nil, "an environment's policy, for its rollback (repeatable, one per environment)")
	fl.StringArrayVar(&f.verifyKeys, "verify-key", nil, "trusted public key for rollback decisions (repeatable)")
	fl.StringVar(&f.trustedRoot, "trusted-root", "", "Sigstore trusted_root.json whose TSAs and logs prove signing times")
	fl.StringVar(&f.rollbackRoot, "verify-trusted-root", "", "Sigstore trusted_root.json for rollback decisions (as deploy --trusted-root)")
	fl.StringVar(&f.trustRoot, "trust-root", "", "custody trust root in which to revoke the key")
	fl.StringArrayVar(&f.adminKeys, "admin-key", nil, "admin key that signs the revoked trust root (repeatable)")
	fl.StringVar(&f.verifierKey, "verifier-key", "", "key that signs rollback decisions (VSAs)")
	fl.StringVar(&f.verifierID, "verifier-id", defaultVerifierID, "verifier.id recorded in the VSAs")
	fl.StringVar(&f.healthCmd, "health-cmd", "", `health check after each rollback (sh -c, the artifact's path as "$1")`)
	fl.StringVar(&f.actor, "actor", "", "who opens the incident (default $USER)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	return c
}

func runIncidentOpen(ctx context.Context, s *streams, f *incidentFlags, command []string) error {
	o, err := incidentOptions(ctx, s, f, command)
	if err != nil {
		return err
	}
	rep, err := incident.Open(ctx, o)
	if err != nil {
		return incidentOpenErr(err)
	}
	if f.jsonOut {
		if err := writeJSON(s.out, rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(s.out)
		if f.data != "" {
			fmt.Fprintf(s.out, "report: %s\n", filepath.Join(o.ReportDir, rep.ID+".json"))
		} else {
			fmt.Fprintf(s.out, "report: recorded on %s as incident record %d (custody incident show %s --server %s)\n",
				o.ServerURL, rep.Record, rep.ID, o.ServerURL)
		}
	}
	if still := rep.StillRunning(); len(still) > 0 {
		return failErr(fmt.Errorf("incident %s: %s still run(s) an affected artifact", rep.ID, strings.Join(still, ", ")),
			"deploy a known-good artifact there by hand; the quarantine already refuses the affected ones")
	}
	if t := rep.TrustRoot; t != nil && t.Push != nil && !t.Push.Accepted && t.Signed >= t.Needed {
		return failErr(fmt.Errorf("incident %s: the server does not hold the revoked trust root: %s", rep.ID, t.Push.Detail),
			"the quarantine is recorded; once the server can take it: custody trust push "+t.Path+" --server "+t.Push.Server)
	}
	return nil
}

// incidentSelector reads the compromised signer and time from the flags.
func incidentSelector(f *incidentFlags) (incident.Selector, time.Time, error) {
	sel := incident.Selector{Identity: f.identity, Issuer: f.issuer, Builder: f.builder}
	if f.key != "" {
		id, err := incidentKeyID(f.key)
		if err != nil {
			return sel, time.Time{}, err
		}
		sel.KeyID = id
	}
	if err := sel.Validate(); err != nil {
		return sel, time.Time{}, usageErr(err, "pass one of --key, --identity with --certificate-oidc-issuer, --builder")
	}
	if f.since == "" {
		return sel, time.Time{}, usageErr(errors.New("--compromised-since is required"), "")
	}
	since, err := parseTimeFlag("--compromised-since", f.since)
	if err != nil {
		return sel, time.Time{}, err
	}
	if now := time.Now(); since.After(now.Add(time.Minute)) {
		return sel, time.Time{}, usageErr(fmt.Errorf("--compromised-since %s is in the future (now %s)", since.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)),
			"give when the compromise began; if unsure, an earlier time")
	}
	return sel, since, nil
}

// checkIncidentSources checks the flags that say where to search, what to
// revoke and which environments to look at (after sourceServer).
func checkIncidentSources(f *incidentFlags, sel incident.Selector) error {
	switch {
	case f.data != "" && f.server != "":
		return usageErr(errors.New("give either --data (with --evidence) or --server, not both"), "")
	case f.data == "" && f.server == "":
		return usageErr(errors.New("give --data DIR --evidence DIR, or --server URL"), "")
	case f.data != "" && f.evidence == "":
		return usageErr(errors.New("--data needs --evidence DIR: the bundles to search"), "")
	case f.data == "" && f.evidence != "":
		return usageErr(errors.New("--evidence is searched with --data; with --server the server's index is searched"), "leave --evidence out")
	case f.trustRoot != "" && sel.KeyID == "":
		return usageErr(errors.New("--trust-root revokes keys: it needs --key"), "")
	case len(f.adminKeys) > 0 && f.trustRoot == "":
		return usageErr(errors.New("--admin-key signs the revoked --trust-root, which is missing"), "")
	}
	for _, e := range f.envs {
		if !store.ValidEnvironment(e) {
			return usageErr(fmt.Errorf("--env %q is not an environment name", e), "")
		}
	}
	return nil
}

// incidentOptions turns the flags into incident.Open's options: files
// read, keys loaded, the server's client, ledger and history opened.
func incidentOptions(ctx context.Context, s *streams, f *incidentFlags, command []string) (incident.Options, error) {
	sel, since, err := incidentSelector(f)
	if err != nil {
		return incident.Options{}, err
	}
	f.server = sourceServer(f.server, f.data, f.evidence)
	if err := checkIncidentSources(f, sel); err != nil {
		return incident.Options{}, err
	}
	policies := map[string]string{}
	for _, p := range f.policies {
		pol, err := loadPolicy(p)
		if err != nil {
			return incident.Options{}, err
		}
		if prev, dup := policies[pol.Environment]; dup {
			return incident.Options{}, usageErr(fmt.Errorf("%s and %s are both policies of %s", prev, p, pol.Environment), "")
		}
		policies[pol.Environment] = p
	}
	o := incident.Options{Selector: sel, Since: since, Actor: f.actor, Environments: f.envs}
	if o.Actor == "" {
		o.Actor = os.Getenv("USER")
	}
	var cl *client.Client
	if f.data == "" {
		if cl, err = newClient(serverURL(f.server)); err != nil {
			return o, err
		}
		o.Server, o.ServerURL = cl, serverURL(f.server)
	} else {
		o.EvidenceDir, o.ReportDir = f.evidence, filepath.Join(f.data, "incidents")
	}
	if o.TrustedMaterial, err = incidentTimeMaterial(ctx, f, cl); err != nil {
		return o, err
	}
	// The revoked trust root is made (read, revoked, signed) before anything
	// is recorded: a trust root without the key, or an admin key that
	// cannot sign, is bad input, and must not leave a half-opened incident.
	if f.trustRoot != "" {
		if o.Revocation, err = revokeInRoot(ctx, s, f, sel.KeyID, since); err != nil {
			return o, err
		}
	}
	if o.History, err = deployHistory(&deployFlags{data: f.data, policyFlags: policyFlags{server: f.server}}); err != nil {
		return o, err
	}
	if o.Ledger, err = incidentLedger(f.data, f.server); err != nil {
		return o, err
	}
	o.Rollback = incidentRollback(s, f, policies, o.Actor, command)
	return o, nil
}

// incidentRollback rolls an environment back as 'custody rollback' does,
// with its --policy and the deploy command after --.
func incidentRollback(s *streams, f *incidentFlags, policies map[string]string, actor string, command []string) incident.RollbackFunc {
	return func(ctx context.Context, env string) (*deploy.Result, error) {
		pol, ok := policies[env]
		switch {
		case !ok:
			return nil, &incident.NotAttemptedError{Reason: fmt.Sprintf("no --policy for %s given; run 'custody rollback --env %s ...'", env, env)}
		case len(command) == 0:
			return nil, &incident.NotAttemptedError{Reason: "no deploy command given after --; run 'custody rollback --env " + env + " ...'"}
		}
		df := &deployFlags{policyFlags: policyFlags{policy: pol, evidence: f.evidence, server: f.server,
			trustedRoot: f.rollbackRoot, keys: f.verifyKeys}, env: env, data: f.data, verifierKey: f.verifierKey, verifierID: f.verifierID,
			healthCmd: f.healthCmd, actor: actor}
		g, _, release, err := newGate(s, df, command)
		if err != nil {
			return nil, err
		}
		defer release()
		return g.Rollback(ctx)
	}
}

// incidentOpenErr maps incident.Open's errors to exit codes.
func incidentOpenErr(err error) error {
	var oe *incident.OpError
	switch {
	case !errors.As(err, &oe):
		return err
	case oe.Op == incident.OpSearch:
		return remoteErr(oe.Err, oe.Op)
	case oe.Op == incident.OpReadHistory:
		return deployErr(err, nil)
	}
	return incidentErr(oe.Err, oe.Op)
}

// incidentKeyID accepts a key ID (hex or base64 SHA-256) or a .pub file.
func incidentKeyID(v string) (string, error) {
	if id, err := keyid.Parse(v); err == nil {
		return id.String(), nil
	}
	if _, err := os.Stat(v); err != nil {
		return "", usageErr(fmt.Errorf("--key %q is neither a key ID (64 hex digits or base64) nor a public key file", v), "custody policy key-id KEY.pub prints a key's ID")
	}
	pub, err := loadPublicKey(v)
	if err != nil {
		return "", err
	}
	id, err := gate.KeyID(pub)
	if err != nil {
		return "", usageErr(err, "")
	}
	return id, nil
}

// incidentTimeMaterial is what proves signing times: --trusted-root, else
// the authorities of --trust-root, else the server's trusted root. Without
// any, no time is proven and every matching artifact is affected.
func incidentTimeMaterial(ctx context.Context, f *incidentFlags, cl *client.Client) (root.TrustedMaterial, error) {
	switch {
	case f.trustedRoot != "":
		tm, err := verify.LoadTrustedRoot(f.trustedRoot)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't load trusted root: %w", err), "")
		}
		return tm, nil
	case f.trustRoot != "":
		d, err := readRoot(f.trustRoot)
		if err != nil {
			return nil, err
		}
		r := d.Root
		r.Keys = nil // only its logs and TSAs prove times
		tm, err := r.TrustedMaterial()
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't use the trust root's authorities: %w", err), "")
		}
		return tm, nil
	case cl != nil:
		b, err := cl.TrustedRoot(ctx)
		if err != nil {
			return nil, remoteErr(err, "fetch the trusted root")
		}
		tm, err := root.NewTrustedRootFromJSON(b)
		if err != nil {
			return nil, remoteErr(fmt.Errorf("server's trusted root: %w", err), "read the trusted root")
		}
		return tm, nil
	}
	return nil, nil
}

// revokeInRoot marks keyID compromised in --trust-root and signs the new
// version with every --admin-key; incident.Open writes it.
func revokeInRoot(ctx context.Context, s *streams, f *incidentFlags, keyID string, since time.Time) (*incident.Revocation, error) {
	d, err := readRoot(f.trustRoot)
	if err != nil {
		return nil, err
	}
	if err := d.RevokeKey(keyID, since.UTC()); err != nil {
		return nil, usageErr(fmt.Errorf("couldn't revoke %s in %s: %w", keyID, f.trustRoot, err), "add the key to the trust root first, or leave --trust-root out")
	}
	for _, k := range f.adminKeys {
		sg, release, err := loadSigner(s, k)
		if err != nil {
			return nil, err
		}
		err = d.Sign(ctx, sg)
		release()
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't sign the trust root with %s: %w", k, err), "")
		}
	}
	return &incident.Revocation{Path: f.trustRoot, Document: d}, nil
}

// incidentErr maps ledger errors to exit codes.
func incidentErr(err error, what string) error {
	var apiErr *client.APIError
	switch {
	case errors.Is(err, client.ErrUnreachable), errors.As(err, &apiErr):
		return remoteErr(err, what)
	case errors.Is(err, incident.ErrCorrupt):
		return usageErr(fmt.Errorf("couldn't %s: %w", what, err), "")
	}
	return usageErr(fmt.Errorf("couldn't %s: %w", what, err), "")
}

type incidentReadFlags struct {
	data, server, reason, actor string
	jsonOut                     bool
}

func addIncidentReadFlags(c *cobra.Command, f *incidentReadFlags) {
	c.Flags().StringVar(&f.data, "data", "", "local data directory")
	c.Flags().StringVar(&f.server, "server", "", "custody server (default $CUSTODY_SERVER)")
	c.Flags().BoolVar(&f.jsonOut, "json", false, "print as JSON")
}

func newIncidentShowCmd(s *streams) *cobra.Command {
	var f incidentReadFlags
	c := &cobra.Command{
		Use:   "show ID (--data DIR | --server URL)",
		Short: "Print an incident's report and whether it is closed",
		Args:  argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			return runIncidentShow(c.Context(), s, &f, args[0])
		},
	}
	addIncidentReadFlags(c, &f)
	return c
}

// incidentView is an incident as show and list print it.
type incidentView struct {
	ID       string                  `json:"id"`
	Opened   *store.IncidentRecord   `json:"opened"`
	Closed   *store.IncidentRecord   `json:"closed,omitempty"`
	Report   *incident.Report        `json:"report,omitempty"`
	Records  []*store.IncidentRecord `json:"records,omitempty"`
	Affected int                     `json:"quarantined"`
}

func loadIncident(ctx context.Context, l incident.Ledger, id string) (*incidentView, error) {
	if !store.ValidIncidentID(id) {
		return nil, usageErr(fmt.Errorf("%q is not an incident ID", id), "custody incident list shows them")
	}
	rs, err := l.List(ctx, store.IncidentQuery{Incident: id})
	if err != nil {
		return nil, incidentErr(err, "read the incident ledger")
	}
	v := &incidentView{ID: id, Records: rs}
	for _, r := range rs {
		switch r.Event {
		case store.IncidentOpened:
			v.Opened = r
		case store.IncidentClosed:
			v.Closed = r
		case store.IncidentQuarantined:
			v.Affected++
		case store.IncidentReported:
			var rep incident.Report
			if err := json.Unmarshal(r.Report, &rep); err != nil {
				return nil, usageErr(fmt.Errorf("incident %s: report record %d does not parse: %w", id, r.ID, err), "")
			}
			v.Report = &rep
		}
	}
	if v.Opened == nil {
		return nil, failErr(fmt.Errorf("no incident %s", id), "custody incident list shows them")
	}
	return v, nil
}

func runIncidentShow(ctx context.Context, s *streams, f *incidentReadFlags, id string) error {
	l, err := incidentLedger(f.data, f.server)
	if err != nil {
		return err
	}
	v, err := loadIncident(ctx, l, id)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(s.out, v)
	}
	if v.Report != nil {
		v.Report.WriteText(s.out)
	} else {
		fmt.Fprintf(s.out, "incident %s opened %s: %s (no report recorded: opening was interrupted)\n", id,
			v.Opened.Time.Format(time.RFC3339Nano), v.Opened.Detail)
		fmt.Fprintf(s.out, "%d artifact(s) quarantined\n", v.Affected)
	}
	if v.Closed != nil {
		fmt.Fprintf(s.out, "CLOSED %s by %s: %s (the quarantine stays)\n", v.Closed.Time.Format(time.RFC3339Nano), v.Closed.Actor, v.Closed.Detail)
	} else {
		fmt.Fprintln(s.out, "OPEN")
	}
	return nil
}

func newIncidentListCmd(s *streams) *cobra.Command {
	var f incidentReadFlags
	c := &cobra.Command{
		Use:   "list (--data DIR | --server URL)",
		Short: "List incidents: open or closed, what was compromised, how many artifacts are quarantined",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, args []string) error {
			l, err := incidentLedger(f.data, f.server)
			if err != nil {
				return err
			}
			rs, err := l.List(c.Context(), store.IncidentQuery{})
			if err != nil {
				return incidentErr(err, "read the incident ledger")
			}
			byID := map[string]*incidentView{}
			var order []string
			for _, r := range rs {
				v := byID[r.Incident]
				if v == nil {
					v = &incidentView{ID: r.Incident}
					byID[r.Incident] = v
					order = append(order, r.Incident)
				}
				switch r.Event {
				case store.IncidentOpened:
					v.Opened = r
				case store.IncidentClosed:
					v.Closed = r
				case store.IncidentQuarantined:
					v.Affected++
				}
			}
			views := []*incidentView{}
			for _, id := range order {
				if byID[id].Opened != nil {
					views = append(views, byID[id])
				}
			}
			if f.jsonOut {
				return writeJSON(s.out, struct {
					Incidents []*incidentView `json:"incidents"`
				}{views})
			}
			if len(views) == 0 {
				fmt.Fprintln(s.out, "no incidents")
			}
			for _, v := range views {
				state := "OPEN  "
				if v.Closed != nil {
					state = "CLOSED"
				}
				fmt.Fprintf(s.out, "%s %s %s %d quarantined: %s\n", v.ID, state, v.Opened.Time.Format(time.RFC3339), v.Affected, v.Opened.Detail)
			}
			return nil
		},
	}
	addIncidentReadFlags(c, &f)
	return c
}

func newIncidentCloseCmd(s *streams) *cobra.Command {
	var f incidentReadFlags
	c := &cobra.Command{
		Use:   "close ID (--data DIR | --server URL) [--reason TEXT]",
		Short: "Close an incident (a new record; its quarantine stays)",
		Args:  argsBetween(1, 1),
		RunE: func(c *cobra.Command, args []string) error {
			l, err := incidentLedger(f.data, f.server)
			if err != nil {
				return err
			}
			v, err := loadIncident(c.Context(), l, args[0])
			if err != nil {
				return err
			}
			if v.Closed != nil {
				return failErr(fmt.Errorf("incident %s was closed at %s", v.ID, v.Closed.Time.Format(time.RFC3339)), "")
			}
			actor := f.actor
			if actor == "" {
				actor = os.Getenv("USER")
			}
			r, err := l.Append(c.Context(), &store.IncidentRecord{Incident: v.ID, Event: store.IncidentClosed, Actor: actor,
				Time: time.Now().UTC(), Detail: f.reason})
			if err != nil {
				return incidentErr(err, "close the incident")
			}
			if f.jsonOut {
				return writeJSON(s.out, r)
			}
			fmt.Fprintf(s.out, "incident %s closed at %s; its %d quarantined artifact(s) stay quarantined\n", v.ID, r.Time.Format(time.RFC3339Nano), v.Affected)
			return nil
		},
	}
	addIncidentReadFlags(c, &f)
	c.Flags().StringVar(&f.reason, "reason", "", "why it is closed")
	c.Flags().StringVar(&f.actor, "actor", "", "who closes it (default $USER)")
	return c
}
