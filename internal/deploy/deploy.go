package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/digest"
	"github.com/custody-dev/custody/internal/oci"
	"github.com/custody-dev/custody/policy"
)

// Errors Deploy, Rollback and Promote return; check them with errors.Is.
var (
	// ErrDenied: the policy denied the artifact; the command never ran.
	ErrDenied = errors.New("denied by policy")
	// ErrSwapped: the artifact's file changed between verification and
	// the deploy command; the command never ran.
	ErrSwapped = errors.New("artifact changed after verification")
	// ErrDeployFailed: the deploy command failed.
	ErrDeployFailed = errors.New("deploy command failed")
	// ErrUnhealthy: the health check failed after deploying.
	ErrUnhealthy = errors.New("health check failed")
	// ErrNoRollback: no earlier artifact was healthy in the environment
	// and still passes its policy (and is still on disk unchanged).
	ErrNoRollback = errors.New("no artifact to roll back to")
	// ErrNotHealthyInSource: promote's artifact is not what runs, healthy,
	// in the source environment.
	ErrNotHealthyInSource = errors.New("artifact is not running healthy in the source environment")
	// ErrQuarantined: an incident quarantined the artifact (or whether it
	// is quarantined could not be found out); the command never ran.
	ErrQuarantined = errors.New("artifact is quarantined")
)

// Quarantine says whether incidents quarantined an artifact.
type Quarantine interface {
	// Quarantined returns the ID of an incident that quarantined artifact
	// ("sha256:HEX"), or "" when none did. An error means the answer is
	// unknown, and the gate refuses the artifact.
	Quarantined(ctx context.Context, artifact string) (incident string, err error)
}

// Environment variables the deploy and health commands get.
const (
	EnvArtifact = "CUSTODY_ARTIFACT" // path of the artifact file
	EnvDigest   = "CUSTODY_DIGEST"   // sha256:HEX
	EnvName     = "CUSTODY_ENV"      // environment name
	EnvRollback = "CUSTODY_ROLLBACK" // "1" when the command runs for a rollback
)

// Verdict is a decision that was recorded: the policy's decision and the
// SHA-256 of the signed VSA bundle that records it.
type Verdict struct {
	Decision  *policy.Decision
	VSABundle string
}

// Decider decides whether the artifact with digest ("sha256:HEX") may
// enter the environment now, from verified evidence, and records the
// decision (a signed VSA), allowed or not. An error means no recorded
// decision: nothing is deployed.
type Decider func(ctx context.Context, digest string) (*Verdict, error)

// Artifact is an artifact to deploy: a file, or a container image named by
// a pinned reference (oci://HOST/REPO@sha256:HEX).
type Artifact struct {
	// Path is the file (commands get it absolute) or the pinned image
	// reference (commands get it as it is).
	Path string
	// Digest is its "sha256:HEX"; Deploy computes it when empty (an
	// image's is the one its reference pins).
	Digest string
}

// isImage reports whether a names an image. An image reference is content
// addressed: what it names cannot change, so it is never hashed again.
func (a Artifact) isImage() bool { return oci.IsRef(a.Path) }

// resolve makes a's path absolute (a file) or checks its reference is
// pinned (an image), and fills in its digest.
func (a *Artifact) resolve() error {
	if a.isImage() {
		ref, err := oci.ParseRef(a.Path)
		switch {
		case err != nil:
			return err
		case !ref.Pinned():
			return fmt.Errorf("image %s is not pinned to a digest", a.Path)
		case a.Digest != "" && a.Digest != ref.Digest:
			return fmt.Errorf("image %s is not %s", a.Path, a.Digest)
		}
		a.Digest = ref.Digest
		return nil
	}
	abs, err := filepath.Abs(a.Path)
	if err != nil {
		return fmt.Errorf("couldn't resolve artifact path: %w", err)
	}
	if a.Digest == "" {
		d, err := digest.File(abs)
		if err != nil {
			return fmt.Errorf("couldn't hash artifact: %w", err)
		}
		a.Digest = d.String()
	}
	a.Path = abs
	return nil
}

// Gate deploys to one environment. Command and HealthCommand run with
// the variables above set; "{digest}" and "{env}" in them are replaced,
// and the artifact's path is passed as an argument, never pasted into a
// shell string (see command.go: a {artifact} in a shell script becomes
// "$1").
type Gate struct {
	// Environment is the environment's name (required).
	Environment string
	// History keeps the environment's records (required).
	History History
	// Decide is the environment's policy (required).
	Decide Decider
	// Command is the deploy command and its arguments (required).
	Command []string
	// HealthCommand, when set, runs as sh -c HealthCommand custody-health
	// PATH after every successful deploy, so "$1" is the artifact's path
	// (a {artifact} in it is rewritten to "$1"); a non-zero exit is
	// unhealthy. Without it a successful deploy
	// command counts as healthy.
	HealthCommand string
	// Actor is recorded as who deployed.
	Actor string
	// Stdout and Stderr receive the commands' output (nil: discarded).
	Stdout, Stderr io.Writer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Quarantine, when set, is asked about every artifact before it is
	// decided on and again right before the deploy command runs; a
	// quarantined artifact is refused with ErrQuarantined.
	Quarantine Quarantine

	// afterDecision runs between the decision and the digest re-check
	// (tests use it to swap the file).
	afterDecision func()
}

// Skipped is a rollback candidate that was not used, and why.
type Skipped struct {
	Artifact string `json:"artifact"`
	Name     string `json:"name"`
	Reason   string `json:"reason"`
	// Tried: the candidate was deployed, and its deploy command or health
	// check failed. Otherwise it was refused before its command ran.
	Tried bool `json:"tried,omitempty"`
	// Restore: the candidate was refused only because its file is no
	// longer at Name with its bytes (gone, or overwritten by a later
	// build); putting the artifact back there makes it a candidate again.
	Restore bool `json:"restore,omitempty"`
}

// deniedError is ErrDenied with the decision that denied.
type deniedError struct {
	msg      string
	decision *policy.Decision
}

func (e *deniedError) Error() string { return e.msg }
func (e *deniedError) Unwrap() error { return ErrDenied }

// denialReason says why d refused artifact in env: its first failing
// requirement, and how many more failed.
func denialReason(d *policy.Decision, artifact, env string) string {
	switch {
	case d == nil:
		return "its policy denies it now"
	case d.Allowed:
		return fmt.Sprintf("the decision was about %s in %s, not %s in %s", d.Artifact, d.Environment, artifact, env)
	case len(d.Failures) == 0:
		return "its policy denies it now"
	}
	f := d.Failures[0]
	reason := fmt.Sprintf("its policy denies it now: %s: %s", f.Requirement, f.Message)
	if n := len(d.Failures) - 1; n > 0 {
		more := make([]string, 0, n)
		for _, f := range d.Failures[1:] {
			more = append(more, f.Requirement)
		}
		reason += fmt.Sprintf(" (and %d more: %s)", n, strings.Join(more, ", "))
	}
	return reason
}

// Result is what Deploy, Rollback or Promote did.
type Result struct {
	Environment string   `json:"environment"`
	Verdict     *Verdict `json:"verdict,omitempty"`
	// Records are the history records written, in order.
	Records []*Record `json:"records"`
	// RolledBackTo is the record of the rollback deploy, set only when the
	// rollback succeeded: the deploy command and the health check passed.
	RolledBackTo *Record `json:"rolledBackTo,omitempty"`
	// Skipped are rollback candidates passed over.
	Skipped []Skipped `json:"skipped,omitempty"`
	// Problem says what went wrong with the requested deploy, if anything.
	Problem string `json:"problem,omitempty"`
}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gate) check() error {
	switch {
	case g.Environment == "":
		return errors.New("no environment")
	case g.History == nil:
		return errors.New("no deployment history")
	case g.Decide == nil:
		return errors.New("no policy decider")
	case len(g.Command) == 0:
		return errors.New("no deploy command")
	}
	return checkCommand(g.Command)
}

// Deploy decides on a, deploys it when allowed, checks its health, and on
// a failed deploy or health check rolls the environment back (see
// Rollback). The returned Result lists every record written. Errors:
// ErrDenied (with the Verdict in the Result), ErrSwapped, and ErrDeployFailed
// or ErrUnhealthy, joined with ErrNoRollback when no rollback was possible.
func (g *Gate) Deploy(ctx context.Context, a Artifact) (*Result, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	res := &Result{Environment: g.Environment}
	if err := a.resolve(); err != nil {
		return nil, err
	}
	if err := g.install(ctx, a, res, ""); err != nil {
		if errors.Is(err, ErrDenied) || errors.Is(err, ErrSwapped) || !isRunFailure(err) {
			return res, err
		}
		res.Problem = err.Error()
		rerr := g.rollback(ctx, res, a.Digest)
		return res, errors.Join(err, rerr)
	}
	return res, nil
}

// Rollback deploys the last artifact that was healthy in the environment
// and still passes its policy now (re-evaluated), other than what runs
// now, running Command with it and recording "rolled-back". Candidates that
// fail are recorded and the next one is tried. ErrNoRollback when none
// remains.
func (g *Gate) Rollback(ctx context.Context) (*Result, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	recs, err := g.History.List(ctx, g.Environment)
	if err != nil {
		return nil, fmt.Errorf("couldn't read history of %s: %w", g.Environment, err)
	}
	cur := Current(g.Environment, recs)
	from := ""
	if cur.Running != nil {
		from = cur.Running.Artifact
	}
	res := &Result{Environment: g.Environment}
	return res, g.rollback(ctx, res, from)
}

// Promote deploys a to this gate's environment only when it is what runs,
// healthy, in the source environment (whose history is source).
func (g *Gate) Promote(ctx context.Context, a Artifact, sourceEnv string, source History) (*Result, error) {
	if err := g.check(); err != nil {
		return nil, err
	}
	if err := a.resolve(); err != nil {
		return nil, err
	}
	// Promotion of a quarantined artifact is halted before anything else,
	// so the refusal names the incident even when the artifact no longer
	// runs in the source (the incident rolled it back there).
	if err := g.checkQuarantine(ctx, a.Digest); err != nil {
		return nil, err
	}
	recs, err := source.List(ctx, sourceEnv)
	if err != nil {
		return nil, fmt.Errorf("couldn't read history of %s: %w", sourceEnv, err)
	}
	st := Current(sourceEnv, recs)
	switch {
	case st.Running == nil:
		return nil, fmt.Errorf("%w: nothing was ever deployed to %s", ErrNotHealthyInSource, sourceEnv)
	case st.Running.Artifact != a.Digest:
		return nil, fmt.Errorf("%w: %s runs %s, not %s", ErrNotHealthyInSource, sourceEnv, st.Running.Artifact, a.Digest)
	case st.Health != HealthHealthy:
		return nil, fmt.Errorf("%w: %s in %s is %s", ErrNotHealthyInSource, a.Digest, sourceEnv, st.Health)
	}
	return g.Deploy(ctx, a)
}

// runFailure marks errors of the deploy or health command.
type runFailure struct{ err error }

func (e *runFailure) Error() string { return e.err.Error() }
func (e *runFailure) Unwrap() error { return e.err }

func isRunFailure(err error) bool {
	var rf *runFailure
	return errors.As(err, &rf)
}

// install decides on a, re-checks its digest, runs the deploy command and
// the health check, and records each step. rollbackFrom is set for a
// rollback.
func (g *Gate) install(ctx context.Context, a Artifact, res *Result, rollbackFrom string) error {
	if err := g.checkQuarantine(ctx, a.Digest); err != nil {
		return err
	}
	v, err := g.Decide(ctx, a.Digest)
	if err != nil {
		return fmt.Errorf("couldn't decide on %s: %w", a.Digest, err)
	}
	if v == nil || v.Decision == nil {
		return fmt.Errorf("couldn't decide on %s: no decision", a.Digest)
	}
	if rollbackFrom == "" {
		res.Verdict = v
	}
	d := v.Decision
	if !d.Allowed || d.Artifact != a.Digest || d.Environment != g.Environment {
		return &deniedError{msg: fmt.Sprintf("%v: %s in %s", ErrDenied, a.Digest, g.Environment), decision: d}
	}
	if g.afterDecision != nil {
		g.afterDecision()
	}
	// Right before the command: the file must still be what was decided on.
	if err := checkUnchanged(a); err != nil {
		return err
	}
	// An incident opened while deciding counts too.
	if err := g.checkQuarantine(ctx, a.Digest); err != nil {
		return err
	}
	base := Record{Environment: g.Environment, Artifact: a.Digest, Name: a.Path, Actor: g.Actor,
		PolicyDigest: d.PolicyDigest, Decision: "allowed", DecisionBundle: v.VSABundle, RollbackFrom: rollbackFrom}
	event := EventDeployed
	if rollbackFrom != "" {
		event = EventRolledBack
	}
	argv, err := commandArgv(g.Command, a, g.Environment)
	if err != nil {
		return err
	}
	if err := g.run(ctx, argv, a, rollbackFrom != ""); err != nil {
		r := base
		r.Event, r.Detail = EventFailed, "deploy command: "+err.Error()
		if aerr := g.append(ctx, res, &r); aerr != nil {
			return aerr
		}
		return &runFailure{fmt.Errorf("%w: %v", ErrDeployFailed, err)}
	}
	r := base
	r.Event = event
	rec, err := g.appendRec(ctx, res, &r)
	if err != nil {
		return err
	}
	h := base
	h.Event = EventHealthy
	h.Detail = "no health check: the deploy command succeeded"
	var herr error
	if g.HealthCommand != "" {
		h.Detail = "health check passed"
		if herr = g.run(ctx, healthArgv(g.HealthCommand, a, g.Environment), a, rollbackFrom != ""); herr != nil {
			h.Event, h.Detail = EventUnhealthy, "health check: "+herr.Error()
		}
	}
	if err := g.append(ctx, res, &h); err != nil {
		return err
	}
	if herr != nil {
		return &runFailure{fmt.Errorf("%w: %v", ErrUnhealthy, herr)}
	}
	if rollbackFrom != "" {
		res.RolledBackTo = rec
	}
	return nil
}

// rollback tries each candidate in turn; from is the artifact replaced.
func (g *Gate) rollback(ctx context.Context, res *Result, from string) error {
	recs, err := g.History.List(ctx, g.Environment)
	if err != nil {
		return fmt.Errorf("%w: couldn't read history of %s: %v", ErrNoRollback, g.Environment, err)
	}
	rbFrom := from
	if rbFrom == "" {
		// Nothing known runs; record the rollback as from itself.
		rbFrom = "sha256:" + strings.Repeat("0", 64)
	}
	for _, c := range GoodCandidates(g.Environment, recs, from) {
		a := Artifact{Path: c.Record.Name, Digest: c.Record.Artifact}
		skip := func(reason string) {
			res.Skipped = append(res.Skipped, Skipped{Artifact: a.Digest, Name: a.Path, Reason: reason})
		}
		var de *deniedError
		if !filepath.IsAbs(a.Path) && !a.isImage() {
			skip("its recorded name is not a file path")
			continue
		}
		if reason := fileMissing(a); reason != "" {
			skip(reason)
			res.Skipped[len(res.Skipped)-1].Restore = true
			continue
		}
		err := g.install(ctx, a, res, rbFrom)
		switch {
		case err == nil:
			return nil
		case errors.As(err, &de):
			skip(denialReason(de.decision, a.Digest, g.Environment))
		case errors.Is(err, ErrDenied):
			skip("its policy denies it now")
		case errors.Is(err, ErrSwapped):
			skip("its file changed since it was deployed")
		case errors.Is(err, ErrQuarantined):
			skip(err.Error())
		case isRunFailure(err):
			skip(err.Error())
			res.Skipped[len(res.Skipped)-1].Tried = true
		default:
			return err
		}
	}
	if len(res.Skipped) > 0 {
		tried := 0
		for _, sk := range res.Skipped {
			if sk.Tried {
				tried++
			}
		}
		return fmt.Errorf("%w: %d earlier artifact(s) considered, none usable (%d rolled back to and failed, %d refused)",
			ErrNoRollback, len(res.Skipped), tried, len(res.Skipped)-tried)
	}
	return fmt.Errorf("%w: no earlier artifact was healthy in %s", ErrNoRollback, g.Environment)
}

// checkUnchanged fails with ErrSwapped when a's file no longer holds
// a.Digest. An image reference pins its content: nothing to check.
func checkUnchanged(a Artifact) error {
	if a.isImage() {
		return nil
	}
	got, err := digest.File(a.Path)
	if err != nil {
		return fmt.Errorf("%w: couldn't hash %s again: %v", ErrSwapped, a.Path, err)
	}
	if got.String() != a.Digest {
		return fmt.Errorf("%w: %s is now %s, the policy allowed %s", ErrSwapped, a.Path, got.String(), a.Digest)
	}
	return nil
}

// fileMissing says why a's bytes are not at a.Path any more, and what to do,
// or "" when they are. A rollback can run only the file that was deployed.
func fileMissing(a Artifact) string {
	if a.isImage() {
		return "" // a registry keeps an image by digest; a deploy command that cannot pull it fails
	}
	restore := fmt.Sprintf("put %s back at %s (copy or rebuild it), or build each release to a path of its own", a.Digest, a.Path)
	got, err := digest.File(a.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("its file is gone: %s", restore)
	case err != nil:
		return fmt.Sprintf("its file cannot be read (%v): %s", err, restore)
	case got.String() != a.Digest:
		return fmt.Sprintf("its file was overwritten: %s now holds %s; %s", a.Path, got.String(), restore)
	}
	return ""
}

// checkQuarantine refuses a quarantined artifact, and any artifact when
// the quarantine cannot be read (fail closed).
func (g *Gate) checkQuarantine(ctx context.Context, artifact string) error {
	if g.Quarantine == nil {
		return nil
	}
	id, err := g.Quarantine.Quarantined(ctx, artifact)
	if err != nil {
		return fmt.Errorf("%w: couldn't read the quarantine, so %s is refused: %v", ErrQuarantined, artifact, err)
	}
	if id != "" {
		return fmt.Errorf("%w: %s is quarantined by incident %s", ErrQuarantined, artifact, id)
	}
	return nil
}

func (g *Gate) append(ctx context.Context, res *Result, r *Record) error {
	_, err := g.appendRec(ctx, res, r)
	return err
}

func (g *Gate) appendRec(ctx context.Context, res *Result, r *Record) (*Record, error) {
	r.Time = g.now()
	rec, err := g.History.Append(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("couldn't record %s of %s in %s: %w", r.Event, r.Artifact, r.Environment, err)
	}
	res.Records = append(res.Records, rec)
	return rec, nil
}

// run runs args (from commandArgv or healthArgv) with the artifact's
// variables.
func (g *Gate) run(ctx context.Context, args []string, a Artifact, rollback bool) error {
	cmd := childenv.Command(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = g.Stdout, g.Stderr
	rb := "0"
	if rollback {
		rb = "1"
	}
	cmd.Env = append(cmd.Env, EnvArtifact+"="+a.Path, EnvDigest+"="+a.Digest, EnvName+"="+g.Environment, EnvRollback+"="+rb)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}
