package ca

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind is the shape of an issuer's tokens: which claims name the identity
// and fill the certificate's extensions.
type Kind string

// Kinds of issuers.
const (
	// KindGitHubActions: GitHub Actions' tokens (job_workflow_ref,
	// repository, ref, sha, run_id, ...). SAN: BaseURL/job_workflow_ref.
	KindGitHubActions Kind = "github-actions"
	// KindGitLab: GitLab CI's tokens (project_path, ci_config_ref_uri,
	// ref, ref_type, sha, job_id, ...). SAN: https://ci_config_ref_uri.
	KindGitLab Kind = "gitlab"
	// KindEmail: a person's token with a verified email claim. SAN: the
	// email address.
	KindEmail Kind = "email"
)

// DefaultAudience is the audience Sigstore clients ask their CI for
// (cosign and sigstore-go request tokens for "sigstore").
const DefaultAudience = "sigstore"

// Issuer is one OIDC issuer the authority trusts, and whom of its subjects
// it certifies. Patterns are path.Match globs ('*' does not cross '/'); a
// token is allowed when every non-empty list has a matching pattern, and
// an entry must list at least one of Identities, Repositories and
// Workflows.
type Issuer struct {
	// URL is the issuer, compared byte for byte with the token's iss
	// claim (no case folding, no trailing-slash tolerance). Required.
	URL string `yaml:"url" json:"url"`
	// Kind is the shape of its tokens. Required.
	Kind Kind `yaml:"kind" json:"kind"`
	// Audience the token's aud must contain. Default DefaultAudience.
	Audience string `yaml:"audience,omitempty" json:"audience,omitempty"`
	// JWKSFile is a JSON Web Key Set file holding the issuer's keys, for
	// air-gapped setups. Default: the jwks_uri of the issuer's discovery
	// document (URL/.well-known/openid-configuration), fetched without
	// following redirects.
	JWKSFile string `yaml:"jwksFile,omitempty" json:"jwksFile,omitempty"`
	// BaseURL prefixes repository and workflow names in URIs: default
	// https://github.com for github-actions, the issuer URL for gitlab.
	BaseURL string `yaml:"baseURL,omitempty" json:"baseURL,omitempty"`
	// Identities are patterns of the certificate's SAN (the workflow URI,
	// or the email address).
	Identities []string `yaml:"identities,omitempty" json:"identities,omitempty"`
	// Repositories are patterns of the repository ("octo-org/app"; GitLab's
	// project_path).
	Repositories []string `yaml:"repositories,omitempty" json:"repositories,omitempty"`
	// Workflows are patterns of the workflow that signs, with its ref
	// (GitHub's job_workflow_ref "octo-org/app/.github/workflows/release.yml@refs/heads/main";
	// GitLab's ci_config_ref_uri).
	Workflows []string `yaml:"workflows,omitempty" json:"workflows,omitempty"`
	// Refs are patterns of the git ref built ("refs/heads/main", "refs/tags/v*").
	Refs []string `yaml:"refs,omitempty" json:"refs,omitempty"`
	// BuilderKey, when set, lets the identities this entry allows use the
	// signing service (POST /api/v1/sign) with that builder key, as a
	// builder token scoped to it would.
	BuilderKey string `yaml:"builderKey,omitempty" json:"builderKey,omitempty"`
}

// IssuersFile is the file `custody serve --oidc-issuers` reads.
type IssuersFile struct {
	Issuers []Issuer `yaml:"issuers" json:"issuers"`
}

// MaxIssuersFileBytes bounds the issuers file.
const MaxIssuersFileBytes = 1 << 20

// ParseIssuers reads an issuers file (YAML or JSON; unknown fields are
// refused) and checks every entry (Issuer.validate).
func ParseIssuers(b []byte) ([]Issuer, error) {
	if len(b) > MaxIssuersFileBytes {
		return nil, fmt.Errorf("issuers file is over %d bytes", MaxIssuersFileBytes)
	}
	var f IssuersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("couldn't parse issuers file: %w", err)
	}
	if len(f.Issuers) == 0 {
		return nil, errors.New("issuers file lists no issuer")
	}
	seen := map[string]bool{}
	for i := range f.Issuers {
		if err := f.Issuers[i].validate(); err != nil {
			return nil, err
		}
		if seen[f.Issuers[i].URL] {
			return nil, fmt.Errorf("issuer %s is listed twice", f.Issuers[i].URL)
		}
		seen[f.Issuers[i].URL] = true
	}
	return f.Issuers, nil
}

// validate checks iss and fills in its defaults.
func (iss *Issuer) validate() error {
	u, err := url.Parse(iss.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q is not an http(s) URL", iss.URL)
	}
	if iss.Audience == "" {
		iss.Audience = DefaultAudience
	}
	switch iss.Kind {
	case KindGitHubActions:
		if iss.BaseURL == "" {
			iss.BaseURL = "https://github.com"
		}
	case KindGitLab:
		if iss.BaseURL == "" {
			iss.BaseURL = iss.URL
		}
	case KindEmail:
		if len(iss.Repositories) > 0 || len(iss.Workflows) > 0 || len(iss.Refs) > 0 {
			return fmt.Errorf("issuer %s: an email issuer allows identities, not repositories, workflows or refs", iss.URL)
		}
	default:
		return fmt.Errorf("issuer %s: kind %q is not github-actions, gitlab or email", iss.URL, iss.Kind)
	}
	iss.BaseURL = strings.TrimRight(iss.BaseURL, "/")
	if len(iss.Identities) == 0 && len(iss.Repositories) == 0 && len(iss.Workflows) == 0 {
		return fmt.Errorf("issuer %s allows every subject: list identities, repositories or workflows", iss.URL)
	}
	for _, list := range [][]string{iss.Identities, iss.Repositories, iss.Workflows, iss.Refs} {
		for _, p := range list {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return fmt.Errorf("issuer %s: pattern %q is malformed", iss.URL, p)
			}
		}
	}
	return nil
}

// allows reports whether p is inside what iss allows, or names the first
// list it is outside of.
func (iss *Issuer) allows(p *Principal) error {
	for _, c := range []struct {
		what     string
		patterns []string
		value    string
	}{
		{"identity", iss.Identities, p.SAN},
		{"repository", iss.Repositories, p.Repository},
		{"workflow", iss.Workflows, p.Workflow},
		{"ref", iss.Refs, p.Ref},
	} {
		if len(c.patterns) == 0 {
			continue
		}
		if !matchAny(c.patterns, c.value) {
			return fmt.Errorf("%w: %s %q is not allowed by issuer %s", ErrDenied, c.what, c.value, iss.URL)
		}
	}
	return nil
}

func matchAny(patterns []string, v string) bool {
	if v == "" {
		return false
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}
