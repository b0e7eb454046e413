package admission

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Mode is what the webhook does with a request its environment's policy
// denies: ModeEnforce denies it (the default), ModeWarn admits it with the
// reasons as AdmissionReview warnings, ModeAudit admits it silently. In
// every mode the decision is made, cached and recorded (its VSA names the
// mode) the same way, and the requests a warn or audit mode admitted are
// counted in custody_admission_would_deny_total, so that a policy can be
// rolled out audit -> warn -> enforce, as Kyverno users do.
//
// Some denials hold in every mode: a review that cannot be read, a
// namespace without an environment, and an image an incident quarantined
// (an incident is an emergency stop, not a policy being rolled out).
type Mode string

// The modes.
const (
	ModeEnforce Mode = "enforce"
	ModeWarn    Mode = "warn"
	ModeAudit   Mode = "audit"
)

// ParseMode returns the mode named s, or an error naming the modes.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeEnforce, ModeWarn, ModeAudit:
		return m, nil
	}
	return "", fmt.Errorf("unknown admission mode %q: want enforce, warn or audit", s)
}

// Modes says which mode applies to a request: that of its namespace when
// Namespaces names it, else that of its environment when Environments
// names it, else Default. Only the webhook's configuration sets them: the
// labels and annotations of an object (or of its namespace, which an
// AdmissionReview does not carry) never do.
type Modes struct {
	// Default is the mode of every environment and namespace not named
	// (empty: ModeEnforce).
	Default Mode `yaml:"default"`
	// Environments are modes by environment name; each must have a policy.
	Environments map[string]Mode `yaml:"environments"`
	// Namespaces are modes by namespace name.
	Namespaces map[string]Mode `yaml:"namespaces"`
}

// maxModesBytes bounds a modes file: a ConfigMap holds at most 1 MiB.
const maxModesBytes = 1 << 20

// ParseModes reads a modes file (YAML, the fields of Modes; a ConfigMap's
// key mounted as a file):
//
//	default: enforce
//	environments:
//	  staging: warn
//	namespaces:
//	  shop-canary: audit
//
// An unknown field or mode, a duplicate key, or more than one document is
// an error.
func ParseModes(b []byte) (Modes, error) {
	var m Modes
	if len(b) > maxModesBytes {
		return m, fmt.Errorf("modes file over %d bytes", maxModesBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return Modes{}, fmt.Errorf("couldn't read modes: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Modes{}, errors.New("couldn't read modes: more than one YAML document")
	}
	if err := m.check(); err != nil {
		return Modes{}, err
	}
	return m, nil
}

// check refuses an unknown mode or an empty name.
func (m Modes) check() error {
	if m.Default != "" {
		if _, err := ParseMode(string(m.Default)); err != nil {
			return fmt.Errorf("default: %w", err)
		}
	}
	for _, scope := range []struct {
		what string
		m    map[string]Mode
	}{{"environment", m.Environments}, {"namespace", m.Namespaces}} {
		for _, name := range slices.Sorted(maps.Keys(scope.m)) {
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("an empty %s name has a mode", scope.what)
			}
			if _, err := ParseMode(string(scope.m[name])); err != nil {
				return fmt.Errorf("%s %s: %w", scope.what, name, err)
			}
		}
	}
	return nil
}

// validate is check, and every environment named must have a policy.
func (m Modes) validate(envs func(string) bool) error {
	if err := m.check(); err != nil {
		return err
	}
	for _, env := range slices.Sorted(maps.Keys(m.Environments)) {
		if !envs(env) {
			return fmt.Errorf("environment %s has a mode but no policy", env)
		}
	}
	return nil
}

// Of returns the mode of a request in namespace ns and environment env.
func (m Modes) Of(ns, env string) Mode {
	if mode, ok := m.Namespaces[ns]; ok {
		return mode
	}
	if mode, ok := m.Environments[env]; ok {
		return mode
	}
	if m.Default != "" {
		return m.Default
	}
	return ModeEnforce
}

// Limits of the warnings of a warn mode answer: the API server drops a
// warning with control characters and cuts long ones, and kubectl prints
// each on a line of its own.
const (
	maxWarnings     = MaxMessageLines
	maxWarningBytes = 256
)

// relaxed admits the request q.req, which j denies, because q.mode is warn
// or audit: the reasons become warnings (warn), the audit annotations say
// what enforce mode would have done, the policy's denials are recorded as
// VSAs naming the mode, and the request is counted.
func (w *Webhook) relaxed(ctx context.Context, q query, j judgement) *admissionv1.AdmissionResponse {
	w.metrics.wouldDeny.WithLabelValues(string(q.mode), q.env, j.reason).Inc()
	req := q.req
	w.log.InfoContext(ctx, "admission would deny; admitted", "mode", string(q.mode), "uid", clip(req.UID), "namespace", clip(req.Namespace),
		"kind", clip(req.Kind.Kind), "name", clip(req.Name), "environment", q.env, "policy", w.cfg.Policies[q.env].Digest(),
		"reasons", len(j.lines), "first", clip(j.lines[0]))
	resp := allow(types.UID(req.UID))
	ann := maps.Clone(w.annotations[q.env])
	ann["mode"] = string(q.mode)
	ann["would-deny"] = truncate(strings.Join(strings.Fields(j.lines[0]), " "), MaxLineBytes)
	resp.AuditAnnotations = ann
	if q.mode == ModeWarn {
		resp.Warnings = warnings(q.env, j.lines)
	}
	if w.rec != nil && len(j.failed) > 0 {
		res := resourceOf(req)
		res.Mode = q.mode
		for _, d := range j.failed {
			// Usually queued already by the evaluation that made it (a
			// cached denial is not): not counted as a duplicate.
			w.rec.enqueue(d, res, false)
		}
	}
	return resp
}

// warnings turns denial reasons into AdmissionReview warnings: one line
// each, printable, cut to maxWarningBytes, at most maxWarnings with a
// last one counting what was left out.
func warnings(env string, lines []string) []string {
	out := make([]string, 0, min(len(lines), maxWarnings)+1)
	for i, l := range lines {
		if i == maxWarnings {
			out = append(out, fmt.Sprintf("custody: … and %d more reason(s)", len(lines)-i))
			break
		}
		l = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r == utf8.RuneError {
				return ' '
			}
			return r
		}, l)
		l = "custody (warn mode in " + env + ", would deny): " + strings.Join(strings.Fields(l), " ")
		out = append(out, truncate(l, maxWarningBytes))
	}
	return out
}
