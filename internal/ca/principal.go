package ca

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"

	"github.com/custody-dev/custody/internal/lazyre"
)

// Principal is who a verified token names, and what the certificate for
// it says.
type Principal struct {
	// Issuer is the token's iss (the issuer entry's URL).
	Issuer string
	// Subject is the token's sub.
	Subject string
	// Challenge is what the proof of possession signs: the token's email
	// when it has one, else its subject (as cosign and sigstore-go sign).
	Challenge string
	// SAN is the certificate's subject alternative name: a URI, or an
	// email address when Email is set.
	SAN   string
	Email bool
	// Repository, Workflow and Ref are what the issuer entry's patterns
	// are matched against ("" for an email identity).
	Repository, Workflow, Ref string
	// Extensions are the Fulcio extensions of the certificate.
	Extensions certificate.Extensions
	// Expiry is the token's expiry.
	Expiry time.Time
	// BuilderKey is the builder key the issuer entry maps this identity
	// to, or "".
	BuilderKey string
}

// maxClaimBytes bounds each claim the certificate carries.
const maxClaimBytes = 512

// pathSafe is what a claim that goes into a URI may hold: no spaces,
// control characters, query, fragment or backslash.
var pathSafe = lazyre.New(`^[A-Za-z0-9._~:/@%+=,!$&'()*;-]+$`)

// emailAddr is an email address a certificate may name.
var emailAddr = lazyre.New(`^[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// claims reads string claims, refusing missing, oversized and unprintable
// values: a certificate must not carry what the issuer did not state
// plainly.
type claims struct {
	m   map[string]any
	err error
}

// str returns claim name; required claims must be present and non-empty.
// With uri set it must also be safe inside a URI path (no ".." segment,
// spaces, query or fragment), so that a claim cannot steer the URI the
// certificate names elsewhere.
func (c *claims) str(name string, required, uri bool) string {
	if c.err != nil {
		return ""
	}
	var s string
	switch v := c.m[name].(type) {
	case string:
		s = v
	case float64: // numeric IDs in some issuers' tokens
		s = fmt.Sprintf("%.0f", v)
	case nil:
	default:
		c.err = fmt.Errorf("%w: claim %s is not a string", ErrToken, name)
		return ""
	}
	switch {
	case s == "" && required:
		c.err = fmt.Errorf("%w: token has no %s claim", ErrToken, name)
	case len(s) > maxClaimBytes:
		c.err = fmt.Errorf("%w: claim %s is over %d bytes", ErrToken, name, maxClaimBytes)
	case strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		c.err = fmt.Errorf("%w: claim %s holds control characters", ErrToken, name)
	case uri && s != "" && (!pathSafe.MatchString(s) || hasDotSegment(s)):
		c.err = fmt.Errorf("%w: claim %s %q cannot be part of a URI", ErrToken, name, s)
	}
	return s
}

// hasDotSegment reports whether s has a "." or ".." segment, also when
// percent-encoded ("%2e%2e" is ".." to anyone who normalizes the URI,
// RFC 3986 6.2.2.2), an escaped slash or backslash, or an escape that
// does not decode.
func hasDotSegment(s string) bool {
	for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '/' || r == '@' }) {
		dec, err := url.PathUnescape(seg)
		if err != nil || dec == "." || dec == ".." || strings.ContainsAny(dec, "/\\") {
			return true
		}
	}
	return false
}

// joinURI is base + "/" + p, refused unless it parses back to itself.
func joinURI(base, p string) (string, error) {
	s := base + "/" + strings.TrimPrefix(p, "/")
	u, err := url.Parse(s)
	if err != nil || u.String() != s || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: %q is not a plain URI", ErrToken, s)
	}
	return s, nil
}

// uriField is a URI to set to base/path.
type uriField struct {
	dst  *string
	path string
}

// joinURIs sets each field to joinURI(base, path).
func joinURIs(base string, fields []uriField) error {
	for _, f := range fields {
		u, err := joinURI(base, f.path)
		if err != nil {
			return err
		}
		*f.dst = u
	}
	return nil
}

// principal reads the claims of a verified token of iss.
func principal(iss *Issuer, sub string, exp time.Time, m map[string]any) (*Principal, error) {
	c := &claims{m: m}
	p := &Principal{Issuer: iss.URL, Subject: sub, Challenge: sub, Expiry: exp, BuilderKey: iss.BuilderKey}
	p.Extensions.Issuer = iss.URL
	var err error
	switch iss.Kind {
	case KindGitHubActions:
		err = p.github(iss, c)
	case KindGitLab:
		err = p.gitlab(iss, c)
	case KindEmail:
		err = p.email(c)
	}
	if err != nil {
		return nil, err
	}
	if c.err != nil {
		return nil, c.err
	}
	if email := c.str("email", false, false); email != "" {
		p.Challenge = email
	}
	if c.err != nil {
		return nil, c.err
	}
	return p, nil
}

// github fills p from a GitHub Actions token as Fulcio's
// github-workflow issuer type does.
func (p *Principal) github(iss *Issuer, c *claims) error {
	jobWorkflowRef := c.str("job_workflow_ref", true, true)
	repo := c.str("repository", true, true)
	owner := c.str("repository_owner", true, true)
	workflowRef := c.str("workflow_ref", true, true)
	runID := c.str("run_id", true, true)
	attempt := c.str("run_attempt", true, true)
	e := &p.Extensions
	e.GithubWorkflowTrigger = c.str("event_name", true, false)
	e.GithubWorkflowSHA = c.str("sha", true, false)
	e.GithubWorkflowName = c.str("workflow", true, false)
	e.GithubWorkflowRepository = repo
	e.GithubWorkflowRef = c.str("ref", true, false)
	e.BuildSignerDigest = c.str("job_workflow_sha", true, false)
	e.RunnerEnvironment = c.str("runner_environment", true, false)
	e.SourceRepositoryDigest = e.GithubWorkflowSHA
	e.SourceRepositoryRef = e.GithubWorkflowRef
	e.SourceRepositoryIdentifier = c.str("repository_id", true, false)
	e.SourceRepositoryOwnerIdentifier = c.str("repository_owner_id", true, false)
	e.SourceRepositoryVisibilityAtSigning = c.str("repository_visibility", true, false)
	e.BuildConfigDigest = c.str("workflow_sha", true, false)
	e.BuildTrigger = e.GithubWorkflowTrigger
	if c.err != nil {
		return c.err
	}
	if err := joinURIs(iss.BaseURL, []uriField{{&e.BuildSignerURI, jobWorkflowRef}, {&e.SourceRepositoryURI, repo},
		{&e.SourceRepositoryOwnerURI, owner}, {&e.BuildConfigURI, workflowRef},
		{&e.RunInvocationURI, repo + "/actions/runs/" + runID + "/attempts/" + attempt}}); err != nil {
		return err
	}
	p.SAN = e.BuildSignerURI
	p.Repository, p.Workflow, p.Ref = repo, jobWorkflowRef, e.SourceRepositoryRef
	return nil
}

// gitlab fills p from a GitLab CI token as Fulcio's gitlab-pipeline
// issuer type does.
func (p *Principal) gitlab(iss *Issuer, c *claims) error {
	project := c.str("project_path", true, true)
	configRef := c.str("ci_config_ref_uri", true, true)
	namespace := c.str("namespace_path", true, true)
	jobID := c.str("job_id", true, true)
	ref := c.str("ref", true, true)
	refType := c.str("ref_type", true, false)
	e := &p.Extensions
	e.BuildSignerDigest = c.str("ci_config_sha", true, false)
	e.RunnerEnvironment = c.str("runner_environment", true, false)
	e.SourceRepositoryDigest = c.str("sha", true, false)
	e.SourceRepositoryIdentifier = c.str("project_id", true, false)
	e.SourceRepositoryOwnerIdentifier = c.str("namespace_id", true, false)
	e.BuildConfigDigest = e.BuildSignerDigest
	e.BuildTrigger = c.str("pipeline_source", true, false)
	if c.err != nil {
		return c.err
	}
	switch refType {
	case "branch":
		e.SourceRepositoryRef = "refs/heads/" + ref
	case "tag":
		e.SourceRepositoryRef = "refs/tags/" + ref
	default:
		return fmt.Errorf("%w: ref_type %q is not branch or tag", ErrToken, refType)
	}
	if err := joinURIs("https:/", []uriField{{&e.BuildSignerURI, configRef}}); err != nil {
		return err
	}
	if err := joinURIs(iss.BaseURL, []uriField{{&e.SourceRepositoryURI, project}, {&e.SourceRepositoryOwnerURI, namespace},
		{&e.RunInvocationURI, project + "/-/jobs/" + jobID}}); err != nil {
		return err
	}
	e.BuildConfigURI = e.BuildSignerURI
	p.SAN = e.BuildSignerURI
	p.Repository, p.Workflow, p.Ref = project, configRef, e.SourceRepositoryRef
	return nil
}

// email fills p from a person's token: a verified email address.
func (p *Principal) email(c *claims) error {
	addr := c.str("email", true, false)
	if c.err != nil {
		return c.err
	}
	if v, _ := c.m["email_verified"].(bool); !v {
		return fmt.Errorf("%w: email %q is not verified by the issuer", ErrToken, addr)
	}
	if !emailAddr.MatchString(addr) {
		return fmt.Errorf("%w: email claim %q is not an address", ErrToken, addr)
	}
	p.SAN, p.Email = addr, true
	return nil
}
