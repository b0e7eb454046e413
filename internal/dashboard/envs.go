package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/custody-dev/custody/internal/gate"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/policy"
)

// maxDeployments bounds how many deployment records the dashboard reads.
const maxDeployments = 100000

// historyRows is how many history rows the environments page shows per
// environment.
const historyRows = 20

// allDeployments reads every deployment record (of env, "" for all), in
// ID order.
func (d *Dashboard) allDeployments(ctx context.Context, env string) ([]*store.Deployment, error) {
	var out []*store.Deployment
	var after int64
	for len(out) < maxDeployments {
		page, err := d.cfg.Index.Deployments(ctx, store.DeploymentQuery{Environment: env, AfterID: after, Limit: store.MaxLimit})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < store.MaxLimit {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// Status is a live verification result.
type Status struct {
	// Class is "pass", "fail" or "unknown" (not checked).
	Class  string
	Label  string
	Reason []string
}

func (s Status) OK() bool { return s.Class == "pass" }

// envView is one environment on the environments page.
type envView struct {
	Name       string
	State      store.EnvState
	Status     Status
	History    []*store.Deployment // newest first, at most historyRows
	Total      int
	Rollbacks  int
	PolicyName string
	// PolicyVersion is the policy's version (0: none); with PolicyName,
	// the digest every decision under it records (for a policy pushed to
	// the server, the SHA-256 of the signed bytes), it names the version
	// that decides.
	PolicyVersion int
	// Admission is what the admission webhook's recorded decisions say
	// about the environment (nil: none, or not shown).
	Admission *admissionView
	// RedFlags are the running artifact's red flags (nil: nothing runs,
	// or its evidence could not be read).
	RedFlags *envRedFlags
}

// check re-verifies digest's evidence now and evaluates env's policy.
func (d *Dashboard) check(ctx context.Context, env, digest string, policies map[string]*policy.Policy, ck *checked) Status {
	q := ck.quarantine(ctx, d, digest)
	switch {
	case q.Checked && len(q.Records) > 0:
		var rs []string
		for _, r := range q.Records {
			rs = append(rs, fmt.Sprintf("quarantined by incident %s since %s: the deploy gate refuses it", r.Incident, r.Time.UTC().Format(time.RFC3339)))
		}
		return Status{Class: "fail", Label: "quarantined", Reason: rs}
	case !q.Checked && d.cfg.Incidents != nil:
		return Status{Class: "unknown", Label: "not checked", Reason: []string{q.Problem}}
	}
	p := policies[env]
	if p == nil {
		return Status{Class: "unknown", Label: "not checked", Reason: []string{fmt.Sprintf("no policy is configured for environment %s", env)}}
	}
	a, err := ck.get(ctx, d, digest)
	if err != nil {
		return Status{Class: "unknown", Label: "not checked", Reason: []string{"couldn't verify: " + err.Error()}}
	}
	dec, err := p.Evaluate(ctx, a.ev, d.cfg.Now())
	if err != nil {
		return Status{Class: "unknown", Label: "not checked", Reason: []string{"couldn't evaluate policy: " + err.Error()}}
	}
	if dec.Allowed {
		rs := dec.Passed
		if !q.Checked {
			rs = append(rs[:len(rs):len(rs)], "quarantine not checked: "+q.Problem)
		}
		return Status{Class: "pass", Label: "verified", Reason: rs}
	}
	var rs []string
	for _, f := range dec.Failures {
		rs = append(rs, fmt.Sprintf("%s: %s (fix: %s)", f.Requirement, f.Message, f.Fix))
	}
	return Status{Class: "fail", Label: "fails policy", Reason: rs}
}

// verified is the outcome of verifying every bundle about one artifact.
type verified struct {
	records   []*store.Evidence
	ev        *policy.Evidence
	rejected  map[string]string // bundle sha256 → reason
	truncated bool
}

// checked memoizes verification and quarantine per artifact within one
// request.
type checked struct {
	m map[string]*verified
	q map[string]quarantineView
}

func (c *checked) quarantine(ctx context.Context, d *Dashboard, digest string) quarantineView {
	if c.q == nil {
		c.q = map[string]quarantineView{}
	}
	if q, ok := c.q[digest]; ok {
		return q
	}
	q := d.quarantineOf(ctx, digest)
	c.q[digest] = q
	return q
}

func (c *checked) get(ctx context.Context, d *Dashboard, digest string) (*verified, error) {
	if c.m == nil {
		c.m = map[string]*verified{}
	}
	if v, ok := c.m[digest]; ok {
		return v, nil
	}
	v, err := d.verify(ctx, digest)
	if err != nil {
		return nil, err
	}
	c.m[digest] = v
	return v, nil
}

// verify reads every bundle the index holds about digest and verifies them
// with gate.Gather against the trust material of this moment.
func (d *Dashboard) verify(ctx context.Context, digest string) (*verified, error) {
	v := &verified{rejected: map[string]string{}}
	var after int64
	for {
		page, err := d.cfg.Index.Search(ctx, store.Query{Digest: digest, AfterID: after, Limit: store.MaxLimit})
		if err != nil {
			return nil, err
		}
		v.records = append(v.records, page...)
		if len(page) < store.MaxLimit {
			break
		}
		if len(v.records) >= maxEvidence {
			v.truncated = true
			break
		}
		after = page[len(page)-1].ID
	}
	tm, err := d.cfg.Trust()
	if err != nil {
		return nil, fmt.Errorf("couldn't load trust material: %w", err)
	}
	bundles := make([][]byte, len(v.records))
	for i, r := range v.records {
		bundles[i] = r.Bundle
	}
	start := time.Now()
	ev, rej, err := gate.Gather(ctx, digest, bundles, tm)
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	for _, r := range rej {
		v.rejected[v.records[r.Index].BundleSHA256] = r.Reason
		d.rec.failure(d.cfg.Now(), r.Reason)
	}
	if len(bundles) > 0 {
		d.rec.latency(elapsed / time.Duration(len(bundles)))
	}
	v.ev = ev
	return v, nil
}

func (d *Dashboard) policies() (map[string]*policy.Policy, error) {
	if d.cfg.Policies == nil {
		return nil, nil
	}
	return d.cfg.Policies()
}

// environmentViews builds the environment rows from every deployment record.
func (d *Dashboard) environmentViews(ctx context.Context, recs []*store.Deployment, rows int) ([]envView, error) {
	byEnv := map[string][]*store.Deployment{}
	for _, r := range recs {
		byEnv[r.Environment] = append(byEnv[r.Environment], r)
	}
	pols, err := d.policies()
	if err != nil {
		return nil, fmt.Errorf("couldn't load policies: %w", err)
	}
	var names []string
	for n := range byEnv {
		names = append(names, n)
	}
	for n := range pols {
		if _, ok := byEnv[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	adm, err := d.admissionModes(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read admission decisions: %w", err)
	}
	var ck checked
	var out []envView
	for _, n := range names {
		hist := byEnv[n]
		ev := envView{Name: n, State: store.CurrentState(n, hist), Total: len(hist), Admission: adm[n]}
		if p := pols[n]; p != nil {
			ev.PolicyName, ev.PolicyVersion = p.Digest(), p.Version
		}
		for i := len(hist) - 1; i >= 0; i-- {
			if hist[i].Event == store.EventRolledBack {
				ev.Rollbacks++
			}
			if len(ev.History) < rows {
				ev.History = append(ev.History, hist[i])
			}
		}
		if ev.State.Running != nil {
			ev.Status = d.check(ctx, n, ev.State.Running.Artifact, pols, &ck)
			if a, err := ck.get(ctx, d, ev.State.Running.Artifact); err == nil {
				ev.RedFlags = d.envRedFlagsOf(a.ev)
			}
		} else {
			ev.Status = Status{Class: "unknown", Label: "nothing deployed"}
		}
		out = append(out, ev)
	}
	return out, nil
}

func (d *Dashboard) environments(r *http.Request) view {
	recs, err := d.allDeployments(r.Context(), "")
	if err != nil {
		return fail(http.StatusInternalServerError, "couldn't read deployments: "+err.Error())
	}
	envs, err := d.environmentViews(r.Context(), recs, historyRows)
	if err != nil {
		return fail(http.StatusInternalServerError, err.Error())
	}
	return view{name: "environments", title: "Environments", data: envs}
}

func (d *Dashboard) environment(r *http.Request) view {
	env := r.PathValue("env")
	if !store.ValidEnvironment(env) {
		return fail(http.StatusBadRequest, "not an environment name")
	}
	recs, err := d.allDeployments(r.Context(), env)
	if err != nil {
		return fail(http.StatusInternalServerError, "couldn't read deployments: "+err.Error())
	}
	envs, err := d.environmentViews(r.Context(), recs, maxDeployments)
	if err != nil {
		return fail(http.StatusInternalServerError, err.Error())
	}
	for _, e := range envs {
		if e.Name == env {
			return view{name: "environments", title: "Environment " + env, data: []envView{e}}
		}
	}
	return fail(http.StatusNotFound, "no environment of that name")
}
