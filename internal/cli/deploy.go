package cli

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/deploy"
	"github.com/custody-dev/custody/internal/store"
)

type deployFlags struct {
	policyFlags
	env, data, verifierKey, verifierID, healthCmd, actor string
	from, to                                             string
	// attach: each signed decision is attached to the oci:// image too.
	attach bool
}

const defaultVerifierID = "https://custody.dev/verifiers/deploy@v1"

func addDeployFlags(c *cobra.Command, f *deployFlags, withEnv bool) {
	fl := c.Flags()
	if withEnv {
		fl.StringVar(&f.env, "env", "", "environment")
	}
	fl.StringVar(&f.policy, "policy", "", "the environment's policy file (YAML)")
	fl.StringVar(&f.data, "data", "", "local data directory for deployment history (without a server)")
	fl.StringVar(&f.verifierKey, "verifier-key", "", "key that signs every decision (VSA); default: the server's signing service")
	fl.StringVar(&f.verifierID, "verifier-id", defaultVerifierID, "verifier.id recorded in the VSAs")
	fl.StringVar(&f.healthCmd, "health-cmd", "", `health check run with sh -c after deploying, the artifact's path as "$1" ({artifact} means "$1"); non-zero exit is unhealthy`)
	fl.StringVar(&f.actor, "actor", "", "who deploys (default $USER)")
	addEvidenceFlags(c, &f.policyFlags)
	addRegistryFlags(fl, &f.registry)
	fl.BoolVar(&f.attach, "attach", false, "attach each signed decision (VSA) to the oci:// image in its registry; with it the registry alone is enough (no --evidence or --server)")
}

func needCommand(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		at := c.ArgsLenAtDash()
		if at < 0 || at == len(args) {
			return usageErr(fmt.Errorf("%s needs the deploy command after --", c.CommandPath()),
				"custody deploy --env prod --policy prod.yaml dist/app -- ./deploy.sh {artifact}")
		}
		if want := map[string]int{"artifact": 1, "none": 0}[what]; at != want {
			return usageErr(fmt.Errorf("%s takes %d argument(s) before --, got %d", c.CommandPath(), want, at),
				fmt.Sprintf("run '%s --help' for usage", c.CommandPath()))
		}
		return nil
	}
}

const commandHelp = "The deploy command gets the artifact as {artifact} (absolute path, as one argument), {digest} (sha256:HEX)\n" +
	"and {env} in its arguments, and as $CUSTODY_ARTIFACT, $CUSTODY_DIGEST, $CUSTODY_ENV ($CUSTODY_ROLLBACK=1 for a\n" +
	"rollback). The path is never pasted into a shell string: in a health command, or a 'sh -c SCRIPT' deploy\n" +
	"command, {artifact} stands for \"$1\", and the path is passed as $1."

func newDeployCmd(s *streams) *cobra.Command {
	var f deployFlags
	c := &cobra.Command{
		Use:   "deploy --env ENV --policy FILE (--evidence DIR | --server URL | oci://IMAGE --attach) --key PUB... (--data DIR | --server URL) (ARTIFACT | oci://IMAGE) [--health-cmd CMD] -- DEPLOY_CMD...",
		Short: "Deploy an artifact only when the environment's policy allows it; roll back when it fails",
		Long: "Verifies the artifact's evidence, evaluates the policy and records the decision as a signed VSA. Denied:\n" +
			"every failure with its fix, exit 1, the command never runs. Allowed: the artifact's digest is checked\n" +
			"again, the command runs, the deployment is recorded, the health check runs; when the command or the\n" +
			"health check fails the environment is rolled back to the last artifact that was healthy there and still\n" +
			"passes the policy now (exit 1 either way).\n" + commandHelp,
		Args: needCommand("artifact"),
		RunE: func(c *cobra.Command, args []string) error {
			at := c.ArgsLenAtDash()
			return runDeploy(c.Context(), s, &f, "deploy", args[:at], args[at:])
		},
	}
	addDeployFlags(c, &f, true)
	return c
}

func newRollbackCmd(s *streams) *cobra.Command {
	var f deployFlags
	c := &cobra.Command{
		Use:   "rollback --env ENV --policy FILE ... -- DEPLOY_CMD...",
		Short: "Roll an environment back to the last artifact that was healthy and still passes its policy",
		Long:  "Does what deploy does after a failure, on demand.\n" + commandHelp,
		Args:  needCommand("none"),
		RunE: func(c *cobra.Command, args []string) error {
			return runDeploy(c.Context(), s, &f, "rollback", nil, args)
		},
	}
	addDeployFlags(c, &f, true)
	return c
}

func newPromoteCmd(s *streams) *cobra.Command {
	var f deployFlags
	c := &cobra.Command{
		Use:   "promote ARTIFACT --from ENV --to ENV --policy TO.yaml ... -- DEPLOY_CMD...",
		Short: "Deploy an artifact that runs healthy in one environment to the next",
		Long: "Requires that the artifact is what currently runs in --from and is healthy there, then deploys it to\n" +
			"--to exactly like deploy (--to's policy decides).\n" + commandHelp,
		Args: needCommand("artifact"),
		RunE: func(c *cobra.Command, args []string) error {
			at := c.ArgsLenAtDash()
			return runDeploy(c.Context(), s, &f, "promote", args[:at], args[at:])
		},
	}
	c.Flags().StringVar(&f.from, "from", "", "source environment")
	c.Flags().StringVar(&f.to, "to", "", "target environment")
	addDeployFlags(c, &f, false)
	return c
}

// history is --data, else the server (f.server, already resolved with
// sourceServer: $CUSTODY_SERVER is not consulted here).
func deployHistory(f *deployFlags) (deploy.History, error) {
	if f.data != "" {
		return deploy.FileHistory{Dir: filepath.Join(f.data, "environments")}, nil
	}
	if f.server == "" {
		return nil, usageErr(errors.New("no deployment history: give --data DIR or --server URL"), "")
	}
	cl, err := newClient(f.server)
	if err != nil {
		return nil, err
	}
	return deploy.ServerHistory{Client: cl}, nil
}

// deployOutput is deploy's JSON output.
type deployOutput struct {
	Result   *deploy.Result   `json:"result"`
	Rejected []rejectedBundle `json:"rejected"`
	// RedFlags are the red flags statements the last decision did not
	// count, as policy check lists them.
	RedFlags []redFlagsSeen `json:"redFlags"`
	Error    string         `json:"error,omitempty"`
}

func runDeploy(ctx context.Context, s *streams, f *deployFlags, mode string, args, command []string) error {
	if mode == "promote" {
		switch {
		case f.from == "" || f.to == "":
			return usageErr(errors.New("promote needs --from and --to"), "")
		case f.from == f.to:
			return usageErr(errors.New("--from and --to name the same environment"), "")
		}
		f.env = f.to
	}
	f.server = sourceServer(f.server, f.evidence, f.data)
	args, err := f.deployImage(ctx, s, args)
	if err != nil {
		return err
	}
	switch {
	case f.env == "":
		return usageErr(errors.New("--env is required"), "")
	case !store.ValidEnvironment(f.env):
		return usageErr(fmt.Errorf("--env %q is not an environment name", f.env), "")
	case f.policy == "" && f.server == "":
		return usageErr(errors.New("--policy is required"), "or --server URL --trust-root root.json for the server's current policy")
	}
	g, rej, release, err := newGate(s, f, command)
	if err != nil {
		return err
	}
	defer release()
	var res *deploy.Result
	switch mode {
	case "deploy":
		res, err = g.Deploy(ctx, deploy.Artifact{Path: args[0]})
	case "promote":
		res, err = g.Promote(ctx, deploy.Artifact{Path: args[0]}, f.from, g.History)
	case "rollback":
		res, err = g.Rollback(ctx)
	}
	rejected := rej.rejected
	if f.jsonOut {
		out := deployOutput{Result: res, Rejected: rejected, RedFlags: rej.redFlags}
		if err != nil {
			out.Error = err.Error()
		}
		if werr := writeJSON(s.out, out); werr != nil {
			return werr
		}
	} else if res != nil {
		printDeploy(s, res, rejected)
	}
	return deployErr(err, res)
}

// newGate is the deploy gate f describes: f.env's policy deciding on
// verified evidence, decisions signed and stored, the history of --data or
// the server, and the quarantine of incidents kept there. The bundles the
// last decision rejected, and the red flags statements it did not count,
// are in *seen. Call release when done with the
// gate: it closes the --verifier-key it signs decisions with. f.server is
// already resolved with sourceServer.
func newGate(s *streams, f *deployFlags, command []string) (*deploy.Gate, *gateSeen, func(), error) {
	if err := checkSource(&f.policyFlags); err != nil {
		return nil, nil, nil, err
	}
	p, err := policyFor(context.Background(), &f.policyFlags, f.env)
	if err != nil {
		return nil, nil, nil, err
	}
	if p.Environment != f.env {
		return nil, nil, nil, usageErr(fmt.Errorf("%s is the policy of %s, not %s", f.policy, p.Environment, f.env), "")
	}
	tm, err := policyTrust(&f.policyFlags)
	if err != nil {
		return nil, nil, nil, err
	}
	hist, err := deployHistory(f)
	if err != nil {
		return nil, nil, nil, err
	}
	var cl *client.Client
	if f.server != "" {
		if cl, err = newClientTrusting(f.server, f.trustRoot); err != nil {
			return nil, nil, nil, err
		}
	}
	var vk crypto.Signer
	release := func() {}
	switch {
	case f.verifierKey != "":
		if vk, release, err = loadSigner(s, f.verifierKey); err != nil {
			return nil, nil, nil, err
		}
	case cl == nil:
		return nil, nil, nil, usageErr(errors.New("no way to sign decisions"), "pass --verifier-key KEY, or --server URL with a deployer token to use its signing service")
	}
	actor := f.actor
	if actor == "" {
		actor = os.Getenv("USER")
	}
	dw := &decisionWriter{key: vk, cl: cl}
	if f.evidence != "" {
		dw.dir = filepath.Join(f.evidence, "decisions")
	}
	seen := &gateSeen{rejected: []rejectedBundle{}, redFlags: []redFlagsSeen{}}
	decide := func(ctx context.Context, dg string) (*deploy.Verdict, error) {
		start := time.Now()
		bundles, err := evidenceBundles(ctx, &f.policyFlags, dg)
		if err != nil {
			return nil, err
		}
		d, rej, err := decide(ctx, p, dg, bundles, tm, start)
		if err != nil {
			return nil, err
		}
		if seen.rejected, seen.redFlags, err = f.redFlagsApart(ctx, dg, bundles, rej); err != nil {
			return nil, err
		}
		vsa, err := d.VSA(f.verifierID)
		if err != nil {
			return nil, fmt.Errorf("couldn't build VSA: %w", err)
		}
		w := *dw
		if f.attach {
			w.attach = func(ctx context.Context, b []byte) error { return attachDecision(ctx, f.image, dg, b) }
		}
		sha, err := w.write(ctx, vsa, func(sha string) string {
			return fmt.Sprintf("vsa-%s-%s-%s.json", f.env, strings.TrimPrefix(dg, "sha256:")[:12], sha[:12])
		})
		if err != nil {
			return nil, err
		}
		return &deploy.Verdict{Decision: d, VSABundle: sha}, nil
	}
	q, err := incidentQuarantine(f.data, f.server)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	g := &deploy.Gate{Environment: f.env, History: hist, Decide: decide, Command: command, HealthCommand: f.healthCmd,
		Actor: actor, Stdout: s.err, Stderr: s.err, Quarantine: q}
	return g, seen, release, nil
}

// gateSeen is what the deploy gate's last decision did not count.
type gateSeen struct {
	rejected []rejectedBundle
	redFlags []redFlagsSeen
}

func printDeploy(s *streams, res *deploy.Result, rej []rejectedBundle) {
	if v := res.Verdict; v != nil {
		printDecision(s.out, v.Decision, nil)
		fmt.Fprintf(s.out, "decision recorded as a signed VSA (bundle sha256 %s)\n", v.VSABundle)
	}
	for _, r := range res.Records {
		line := fmt.Sprintf("%s: %s %s", r.Environment, r.Event, r.Artifact)
		if r.RollbackFrom != "" {
			line += " (rollback from " + r.RollbackFrom + ")"
		}
		if r.Detail != "" {
			line += ": " + r.Detail
		}
		fmt.Fprintln(s.out, line)
	}
	for _, sk := range res.Skipped {
		if sk.Tried {
			fmt.Fprintf(s.out, "  rollback to %s (%s) failed: %s\n", sk.Artifact, sk.Name, sk.Reason)
			continue
		}
		fmt.Fprintf(s.out, "  not rolled back to %s (%s): %s\n", sk.Artifact, sk.Name, sk.Reason)
	}
	if res.RolledBackTo != nil {
		fmt.Fprintf(s.out, "ROLLED BACK: %s runs %s again\n", res.Environment, res.RolledBackTo.Artifact)
	}
}

// deployErr maps deploy's errors to exit codes: refusals and failures 1,
// an unreachable server 3, damaged history and bad input 2.
func deployErr(err error, res *deploy.Result) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	switch {
	case errors.Is(err, deploy.ErrDenied) && res != nil && res.Verdict != nil && len(res.Verdict.Decision.Failures) > 0:
		first := res.Verdict.Decision.Failures[0]
		return failErr(fmt.Errorf("%w: %s: %s", err, first.Requirement, first.Message), first.Fix)
	case errors.Is(err, deploy.ErrNoRollback) && res != nil && slices.ContainsFunc(res.Skipped, func(sk deploy.Skipped) bool { return sk.Restore }):
		return failErr(err, "a rollback runs the file that was deployed, at the path it was deployed from: put the earlier artifact back there "+
			"(each is listed with its digest), or build each release to a path of its own (go build -o dist/app-v1.2.0)")
	case errors.Is(err, deploy.ErrNoRollback) && res != nil && len(res.Skipped) > 0:
		return failErr(err, "no earlier artifact could be rolled back to (each is listed with why): fix the environment by hand, or deploy a known-good artifact")
	case errors.Is(err, deploy.ErrNoRollback) && (errors.Is(err, deploy.ErrUnhealthy) || errors.Is(err, deploy.ErrDeployFailed)):
		return failErr(err, "nothing earlier was healthy and still passes the policy: fix the environment by hand, or deploy a known-good artifact")
	case errors.Is(err, deploy.ErrNoRollback):
		return failErr(err, "an artifact counts once it was deployed, found healthy and still passes the policy")
	case errors.Is(err, deploy.ErrQuarantined):
		return failErr(err, "an incident quarantined this artifact: 'custody incident list' shows which, and what to deploy instead")
	case errors.Is(err, deploy.ErrSwapped):
		return failErr(err, "something changed the artifact after it was verified; find out what before deploying")
	case errors.Is(err, deploy.ErrDenied), errors.Is(err, deploy.ErrUnhealthy), errors.Is(err, deploy.ErrDeployFailed),
		errors.Is(err, deploy.ErrNotHealthyInSource):
		return failErr(err, "")
	case errors.As(err, &ee):
		return err
	case errors.Is(err, client.ErrUnreachable):
		return remoteErr(err, "deploy")
	case errors.Is(err, deploy.ErrCorrupt):
		return usageErr(err, "")
	}
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		return remoteErr(err, "deploy")
	}
	return usageErr(err, "")
}

type statusFlags struct {
	env, data, server string
	jsonOut           bool
}

func newStatusCmd(s *streams) *cobra.Command {
	var f statusFlags
	c := &cobra.Command{
		Use:   "status [--env ENV] (--data DIR | --server URL)",
		Short: "What runs where, since when, deployed by whom",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, args []string) error {
			return runStatus(c.Context(), s, &f)
		},
	}
	c.Flags().StringVar(&f.env, "env", "", "only this environment")
	c.Flags().StringVar(&f.data, "data", "", "local data directory")
	c.Flags().StringVar(&f.server, "server", "", "custody server (default $CUSTODY_SERVER)")
	c.Flags().BoolVar(&f.jsonOut, "json", false, "print as JSON")
	return c
}

func runStatus(ctx context.Context, s *streams, f *statusFlags) error {
	if f.env != "" && !store.ValidEnvironment(f.env) {
		return usageErr(fmt.Errorf("--env %q is not an environment name", f.env), "")
	}
	hist, err := deployHistory(&deployFlags{data: f.data, policyFlags: policyFlags{server: sourceServer(f.server, f.data)}})
	if err != nil {
		return err
	}
	recs, err := hist.List(ctx, f.env)
	if err != nil {
		return deployErr(fmt.Errorf("couldn't read deployment history: %w", err), nil)
	}
	envs := map[string]bool{}
	for _, r := range recs {
		envs[r.Environment] = true
	}
	if f.env != "" {
		envs[f.env] = true
	}
	var names []string
	for e := range envs {
		names = append(names, e)
	}
	sort.Strings(names)
	states := []deploy.State{}
	for _, e := range names {
		states = append(states, deploy.Current(e, recs))
	}
	if f.jsonOut {
		return writeJSON(s.out, struct {
			Environments []deploy.State `json:"environments"`
		}{states})
	}
	if len(states) == 0 {
		fmt.Fprintln(s.out, "nothing deployed")
	}
	for _, st := range states {
		if st.Running == nil {
			fmt.Fprintf(s.out, "%-10s nothing deployed\n", st.Environment)
			continue
		}
		r := st.Running
		fmt.Fprintf(s.out, "%-10s %s  %s  %s since %s", st.Environment, r.Artifact, r.Name, st.Health,
			st.Since.UTC().Format(time.RFC3339))
		if by := cmp.Or(r.Actor, r.RecordedBy); by != "" {
			fmt.Fprintf(s.out, " by %s", by)
		}
		if st.RolledBack {
			fmt.Fprintf(s.out, "  ROLLED BACK from %s", r.RollbackFrom)
		}
		if st.LastFailed != nil {
			fmt.Fprintf(s.out, "  (deploy of %s failed since)", st.LastFailed.Artifact)
		}
		fmt.Fprintln(s.out)
	}
	return nil
}
