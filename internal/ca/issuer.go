package ca

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/custody-dev/custody/internal/sso"
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
	// MFA, for an email issuer (people): MFARequired (the default)
	// certifies only tokens that show multi-factor authentication, since a
	// person's certificate signs approvals, an action the seed reserves to
	// sign-ins with MFA; MFAOptional certifies without. Empty for CI issuers.
	MFA string `yaml:"mfa,omitempty" json:"mfa,omitempty"`
	// MFAACR lists acr values that count as multi-factor authentication,
	// besides an amr naming a second factor (sso.ShowsMFA), for an email
	// issuer.
	MFAACR []string `yaml:"mfaAcr,omitempty" json:"mfaAcr,omitempty"`
}

// Values of Issuer.MFA.
const (
	MFARequired = "required"
	MFAOptional = "optional"
)

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
		switch iss.MFA {
		case "":
			iss.MFA = MFARequired
		case MFARequired, MFAOptional:
		default:
			return fmt.Errorf("issuer %s: mfa %q is not %s or %s", iss.URL, iss.MFA, MFARequired, MFAOptional)
		}
	default:
		return fmt.Errorf("issuer %s: kind %q is not github-actions, gitlab or email", iss.URL, iss.Kind)
	}
	if iss.Kind != KindEmail && (iss.MFA != "" || len(iss.MFAACR) > 0) {
		return fmt.Errorf("issuer %s: mfa and mfaAcr are for email issuers (people); CI tokens show no second factor", iss.URL)
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

// checkMFA refuses the token (claims m) of a person p when iss requires
// multi-factor authentication and the token does not show it. An amr
// that is not a list of strings shows none.
func (iss *Issuer) checkMFA(p *Principal, m map[string]any) error {
	if iss.Kind != KindEmail || iss.MFA == MFAOptional {
		return nil
	}
	var amr []string
	if list, ok := m["amr"].([]any); ok {
		for _, v := range list {
			if s, ok := v.(string); ok && len(s) <= 64 && pathSafe.MatchString(s) {
				amr = append(amr, s)
			}
		}
	}
	acr, _ := m["acr"].(string)
	if sso.ShowsMFA(amr, acr, iss.MFAACR) {
		return nil
	}
	shown := "none"
	if len(amr) > 0 {
		shown = strings.Join(amr, ",")
	}
	return fmt.Errorf("%w: certificates for people require multi-factor authentication: %s signed in at %s without it (amr %s); "+
		"sign in again with a second factor", ErrDenied, p.SAN, iss.URL, shown)
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
