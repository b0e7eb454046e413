// Package policy decides whether an artifact may enter an environment, from
// verified evidence only, and explains every decision.
//
// A policy is a versioned YAML document per environment (apiVersion
// custody.dev/policy/v1, see Parse) holding declarative checks (trusted
// builders, source repositories and refs, trusted signers, required evidence,
// maximum age, log and timestamp requirements, maximum vulnerability
// severity with exceptions, k-of-n approval rules over named groups, source
// review requirements over review attestations of the source commits, see
// REVIEW.md) and
// optional custom rules in Rego (https://www.openpolicyagent.org/docs/policy-language)
// that add deny reasons. Evaluate turns an Evidence (facts that were
// verified before they got here, see internal/gate) into a Decision listing
// every failed requirement with what would satisfy it; Decision.VSA records
// it as a SLSA Verification Summary Attestation v1
// (https://slsa.dev/spec/v1.0/verification_summary) in an in-toto Statement v1.
//
// Approvals are custody's own predicate https://custody.dev/approval/v1,
// documented in APPROVAL.md.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"go.yaml.in/yaml/v3"

	"github.com/custody-dev/custody/attest"
	"github.com/custody-dev/custody/internal/lazyre"
	"github.com/custody-dev/custody/keyid"
	"github.com/custody-dev/custody/verify/match"
)

// APIVersion is the only policy apiVersion Parse accepts.
const APIVersion = "custody.dev/policy/v1"

// MaxPolicyBytes is the largest policy document Parse reads.
const MaxPolicyBytes = 1 << 20

// ErrMalformed is wrapped by every error Parse returns: the document is not
// a valid policy. A CLI maps it to exit code 2.
var ErrMalformed = errors.New("malformed policy")

// Policy is one environment's policy. Build it with Parse; the zero value
// and hand-built values are not usable with Evaluate.
type Policy struct {
	APIVersion  string `yaml:"apiVersion" json:"apiVersion"`
	Environment string `yaml:"environment" json:"environment"`
	// Version numbers the environment's policy versions (1, 2, …). A
	// custody server accepts a pushed policy only with a version above its
	// current one, so an old signed policy cannot be replayed (see
	// signed.go). Zero: unversioned, for local files only.
	Version int `yaml:"version,omitempty" json:"version,omitempty"`
	// TrustedBuilders are SLSA builder IDs. An entry with '@' must equal the
	// builder ID; one without matches the builder ID up to its last '@'
	// (as verify.Requirements.BuilderID). At least one is required.
	TrustedBuilders []string `yaml:"trustedBuilders" json:"trustedBuilders"`
	// Sources are the allowed source repositories with glob refs
	// (path.Match syntax: refs/tags/v*). Empty: any source.
	Sources []Source `yaml:"sources,omitempty" json:"sources,omitempty"`
	// Signers may sign provenance: by key ID or keyless identity + issuer.
	// At least one is required.
	Signers []Principal `yaml:"signers" json:"signers"`
	// RequiredEvidence names evidence kinds (see EvidenceKinds) or
	// predicate type URIs that must be present and verified. Provenance is
	// always required.
	RequiredEvidence []string `yaml:"requiredEvidence,omitempty" json:"requiredEvidence,omitempty"`
	// MaxAge bounds the age of the build (Go duration or whole days "30d").
	// Empty: no limit.
	MaxAge string `yaml:"maxAge,omitempty" json:"maxAge,omitempty"`
	// RequireLog requires a verified transparency log inclusion for the
	// provenance and every required piece of evidence.
	RequireLog bool `yaml:"requireLog,omitempty" json:"requireLog,omitempty"`
	// RequireTimestamp requires a verified signing time (RFC 3161 timestamp
	// or log integration time) for the same.
	RequireTimestamp bool `yaml:"requireTimestamp,omitempty" json:"requireTimestamp,omitempty"`
	// MaxSeverity is the highest vulnerability severity allowed: none, low,
	// medium, high or critical. Empty: vulnerabilities are not checked.
	MaxSeverity string `yaml:"maxSeverity,omitempty" json:"maxSeverity,omitempty"`
	// Rebuilders is how many independent rebuilders must have reproduced
	// the artifact: distinct signers of matching rebuild attestations, none
	// of them a signer of the artifact's provenance. Zero: not required.
	Rebuilders int         `yaml:"rebuilders,omitempty" json:"rebuilders,omitempty"`
	Exceptions []Exception `yaml:"exceptions,omitempty" json:"exceptions,omitempty"`
	// Groups are named sets of approvers.
	Groups map[string][]Member `yaml:"groups,omitempty" json:"groups,omitempty"`
	// Approvals must all hold (AND); each is k of the group's members.
	Approvals []ApprovalRule `yaml:"approvals,omitempty" json:"approvals,omitempty"`
	// Reviews requires source review attestations (PredicateReview) of
	// the commits the artifact was built from; see REVIEW.md. Nil: not
	// required.
	Reviews *Reviews `yaml:"reviews,omitempty" json:"reviews,omitempty"`
	// RedFlags acts on the red flags a custody server found in the build
	// (see RedFlags). Nil: red flags are not checked.
	RedFlags *RedFlags `yaml:"redFlags,omitempty" json:"redFlags,omitempty"`
	// LatencyBudget is how long each step of a decision may take: fetch
	// (reading the evidence), verify (verifying it), evaluate (this
	// policy) and total, each a Go duration ("200ms"). A decision records
	// each step's time and whether it was over budget; it never changes
	// the outcome. Empty: no budget, and no times recorded.
	LatencyBudget map[string]string `yaml:"latencyBudget,omitempty" json:"latencyBudget,omitempty"`
	// Rego is an optional module in package custody whose "deny" set of
	// strings adds deny reasons. Its input is the Evidence as JSON, with
	// redFlags: the red flags of the statements signed by a redFlags
	// signer.
	Rego string `yaml:"rego,omitempty" json:"rego,omitempty"`

	digest   string
	maxAge   time.Duration
	maxSev   Severity
	kinds    []requiredKind
	members  map[string]map[string]*Member // group -> member name -> member
	budget   map[string]time.Duration      // step -> budget
	regoOnce sync.Once
	regoQ    *Rules
	regoErr  error
}

// Source is an allowed source repository and its allowed refs.
type Source struct {
	// Repo matches the provenance source URI ignoring scheme, "git+", ".git",
	// a trailing "/", any "@ref" and ASCII case: github.com/org/app.
	Repo string `yaml:"repo" json:"repo"`
	// Refs are path.Match globs over the recorded ref; empty: any ref.
	Refs []string `yaml:"refs,omitempty" json:"refs,omitempty"`
}

// Principal is a signer: a key (KeyID, the lowercase hex SHA-256 of its PKIX
// public key) or a keyless certificate identity with its OIDC issuer (both
// required, compared exactly).
//
// In a policy's signers, a keyless signer may instead (or as well) be
// named by its issuer and its certificate's Fulcio extensions (see
// CertificateFacts): SourceRepository must equal the source repository
// URI ("https://github.com/octo-org/app"); Ref and Workflow are path.Match
// globs over the source ref ("refs/heads/main", "refs/tags/v*") and over
// the workflow that signed (".github/workflows/release.yml"). Signers of
// evidence carry KeyID, or Identity and Issuer, only.
type Principal struct {
	KeyID            string `yaml:"keyId,omitempty" json:"keyId,omitempty"`
	Identity         string `yaml:"identity,omitempty" json:"identity,omitempty"`
	Issuer           string `yaml:"issuer,omitempty" json:"issuer,omitempty"`
	SourceRepository string `yaml:"sourceRepository,omitempty" json:"sourceRepository,omitempty"`
	Ref              string `yaml:"ref,omitempty" json:"ref,omitempty"`
	Workflow         string `yaml:"workflow,omitempty" json:"workflow,omitempty"`
}

// byExtensions reports whether p names a keyless signer by certificate
// extensions.
func (p Principal) byExtensions() bool {
	return p.SourceRepository != "" || p.Ref != "" || p.Workflow != ""
}

// Exception waives one vulnerability until a date (inclusive, UTC).
type Exception struct {
	ID         string `yaml:"id" json:"id"`
	Until      string `yaml:"until" json:"until"` // YYYY-MM-DD
	ApprovedBy string `yaml:"approvedBy" json:"approvedBy"`

	until time.Time
}

// Member is one approver: a person who counts once however many keys or
// identities they sign with.
type Member struct {
	Name       string     `yaml:"name" json:"name"`
	KeyIDs     []string   `yaml:"keyIds,omitempty" json:"keyIds,omitempty"`
	Identities []Identity `yaml:"identities,omitempty" json:"identities,omitempty"`
	// Emails are the member's git author emails (and reviewer names a
	// review bot gives), so that reviews can tell a commit's author from
	// its reviewers. They never let anyone sign as the member.
	Emails []string `yaml:"emails,omitempty" json:"emails,omitempty"`
}

// Identity is a keyless certificate identity and its OIDC issuer.
type Identity struct {
	Identity string `yaml:"identity" json:"identity"`
	Issuer   string `yaml:"issuer" json:"issuer"`
}

// ApprovalRule needs Count distinct members of Group to approve.
type ApprovalRule struct {
	Group string `yaml:"group" json:"group"`
	Count int    `yaml:"count" json:"count"`
}

// Severity is a vulnerability severity, ordered.
type Severity int

// Severities, lowest first.
const (
	SeverityNone Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"none", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText encodes s as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a name ParseSeverity accepts.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses a severity name case-insensitively (also
// "negligible" and "informational" as none, "moderate" as medium, "important"
// as high).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "negligible", "informational", "info":
		return SeverityNone, nil
	case "low":
		return SeverityLow, nil
	case "medium", "moderate":
		return SeverityMedium, nil
	case "high", "important":
		return SeverityHigh, nil
	case "critical":
		return SeverityCritical, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want none, low, medium, high or critical)", s)
}

// Predicate types of the evidence kinds RequiredEvidence may name.
const (
	EvidenceProvenance   = "provenance"
	EvidenceSBOM         = "sbom"
	EvidenceVulnScan     = "vuln-scan"
	EvidenceRebuild      = "rebuild"
	EvidenceTestResults  = "test-results"
	spdxVersionedPrefix  = attest.PredicateSPDX + "/"
	maxNameLen           = 1024
	maxListLen           = 1000
	maxApprovalThreshold = 1000
)

// EvidenceKinds maps the names RequiredEvidence accepts to the predicate
// types that satisfy them. Any other entry must be a predicate type URI
// (containing "://"), satisfied by exactly that type. SPDX also matches
// versioned types (https://spdx.dev/Document/v2.3).
var EvidenceKinds = map[string][]string{
	EvidenceProvenance:  {attest.PredicateSLSAv1, attest.PredicateSLSAv02},
	EvidenceSBOM:        {attest.PredicateCycloneDX, attest.PredicateSPDX},
	EvidenceVulnScan:    {attest.PredicateVulnsV01, attest.PredicateVulnsV02, attest.PredicateCosignVuln},
	EvidenceRebuild:     {attest.PredicateRebuild},
	EvidenceTestResults: {attest.PredicateTestResult},
}

type requiredKind struct {
	name  string
	types []string
}

func (k requiredKind) matches(predicateType string) bool {
	for _, t := range k.types {
		if predicateType == t || (t == attest.PredicateSPDX && strings.HasPrefix(predicateType, spdxVersionedPrefix)) {
			return true
		}
	}
	return false
}

var (
	dateRe = lazyre.New(`^\d{4}-\d{2}-\d{2}$`)
)

// Parse parses and validates a policy from untrusted bytes. It refuses
// documents larger than MaxPolicyBytes, more than one YAML document, unknown
// fields, a wrong apiVersion, an empty environment, no trusted builders or
// signers, malformed key IDs, refs, durations, severities, dates or evidence
// names, approval rules naming unknown groups or needing more approvers than
// the group has, members listed twice, review requirements that require
// nothing or name unknown groups or bad path patterns, and Rego that does
// not compile. All
// errors wrap ErrMalformed.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxPolicyBytes {
		return nil, malformed("policy is %d bytes, more than the limit of %d", len(b), MaxPolicyBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	p := &Policy{}
	if err := dec.Decode(p); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, malformed("policy is empty")
		}
		return nil, malformed("couldn't parse policy YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, malformed("policy holds more than one YAML document")
	}
	if err := p.validate(); err != nil {
		return nil, malformed("%w", err)
	}
	canon, err := p.canonical()
	if err != nil {
		return nil, malformed("%w", err)
	}
	sum := sha256.Sum256(canon)
	p.digest = "sha256:" + hex.EncodeToString(sum[:])
	if p.Rego != "" {
		if _, err := p.prepared(); err != nil {
			return nil, malformed("%w", err)
		}
	}
	return p, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrMalformed, fmt.Errorf(format, args...))
}

// Digest returns "sha256:HEX", the SHA-256 of the policy's canonical bytes
// (Canonical). Every Decision records it: it names the policy version.
func (p *Policy) Digest() string { return p.digest }

// Canonical returns the policy's canonical bytes: its fields as JSON (the
// json tags above, empty optional fields omitted) canonicalised with RFC
// 8785 (JCS). Comments, key order and YAML style do not change them.
func (p *Policy) Canonical() ([]byte, error) { return p.canonical() }

func (p *Policy) canonical() ([]byte, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode policy: %w", err)
	}
	out, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("couldn't canonicalise policy: %w", err)
	}
	return out, nil
}

func (p *Policy) validate() error {
	for _, step := range []func() error{
		p.validateHeader,
		p.validateBuilders,
		p.validateSources,
		p.validateSigners,
		p.validateRequiredEvidence,
		p.validateLimits,
		p.validateExceptions,
		p.validateGroups,
		p.validateApprovalRules,
		p.validateReviews,
		p.validateRedFlags,
		p.validateLatencyBudget,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// validateHeader checks apiVersion, environment and version.
func (p *Policy) validateHeader() error {
	if p.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion is %q, want %q", p.APIVersion, APIVersion)
	}
	if strings.TrimSpace(p.Environment) == "" {
		return errors.New("environment is empty")
	}
	if p.Version < 0 {
		return fmt.Errorf("version %d is negative", p.Version)
	}
	return checkName("environment", p.Environment)
}

func (p *Policy) validateBuilders() error {
	if len(p.TrustedBuilders) == 0 {
		return errors.New("trustedBuilders is empty: name at least one builder ID")
	}
	for i, b := range p.TrustedBuilders {
		if err := checkName(fmt.Sprintf("trustedBuilders[%d]", i), b); err != nil {
			return err
		}
	}
	return nil
}

func (p *Policy) validateSources() error {
	for i, s := range p.Sources {
		if err := checkName(fmt.Sprintf("sources[%d].repo", i), s.Repo); err != nil {
			return err
		}
		if match.NormalizeSource(s.Repo) == "" {
			return fmt.Errorf("sources[%d].repo %q names no repository", i, s.Repo)
		}
		for j, r := range s.Refs {
			if r == "" {
				return fmt.Errorf("sources[%d].refs[%d] is empty", i, j)
			}
			if _, err := path.Match(r, ""); err != nil {
				return fmt.Errorf("sources[%d].refs[%d] %q is not a valid glob: %w", i, j, r, err)
			}
		}
	}
	return nil
}

func (p *Policy) validateSigners() error {
	if len(p.Signers) == 0 {
		return errors.New("signers is empty: name at least one keyId, or identity and issuer")
	}
	for i := range p.Signers {
		if err := checkPrincipal(fmt.Sprintf("signers[%d]", i), &p.Signers[i]); err != nil {
			return err
		}
	}
	return nil
}

// validateRequiredEvidence checks requiredEvidence and records the kinds
// the policy requires besides provenance.
func (p *Policy) validateRequiredEvidence() error {
	seenKind := map[string]bool{}
	for i, e := range p.RequiredEvidence {
		if seenKind[e] {
			return fmt.Errorf("requiredEvidence[%d] %q is listed twice", i, e)
		}
		seenKind[e] = true
		if types, ok := EvidenceKinds[e]; ok {
			if e != EvidenceProvenance {
				p.kinds = append(p.kinds, requiredKind{name: e, types: types})
			}
			continue
		}
		if !strings.Contains(e, "://") {
			return fmt.Errorf("requiredEvidence[%d] %q is neither a known kind (%s) nor a predicate type URI", i, e, strings.Join(kindNames(), ", "))
		}
		if err := checkName(fmt.Sprintf("requiredEvidence[%d]", i), e); err != nil {
			return err
		}
		p.kinds = append(p.kinds, requiredKind{name: e, types: []string{e}})
	}
	return nil
}

// validateLimits checks maxAge, rebuilders and maxSeverity and records the
// parsed age and severity limits.
func (p *Policy) validateLimits() error {
	if p.MaxAge != "" {
		d, err := ParseDuration(p.MaxAge)
		if err != nil || d <= 0 {
			return fmt.Errorf("maxAge %q is not a positive duration such as 720h or 30d", p.MaxAge)
		}
		p.maxAge = d
	}
	p.maxSev = SeverityCritical
	if p.Rebuilders < 0 {
		return fmt.Errorf("rebuilders is %d; it counts rebuilders and cannot be negative", p.Rebuilders)
	}
	if p.MaxSeverity != "" {
		s, err := ParseSeverity(p.MaxSeverity)
		if err != nil {
			return fmt.Errorf("maxSeverity: %w", err)
		}
		p.maxSev = s
	}
	return nil
}

// validateExceptions checks the vulnerability exceptions and records each
// one's exclusive end (the day after until, UTC).
func (p *Policy) validateExceptions() error {
	seenExc := map[string]bool{}
	for i := range p.Exceptions {
		e := &p.Exceptions[i]
		if e.ID == "" || e.ApprovedBy == "" {
			return fmt.Errorf("exceptions[%d] needs id, until and approvedBy", i)
		}
		if seenExc[e.ID] {
			return fmt.Errorf("exceptions[%d]: %s is listed twice", i, e.ID)
		}
		seenExc[e.ID] = true
		if !dateRe.MatchString(e.Until) {
			return fmt.Errorf("exceptions[%d].until %q is not a date YYYY-MM-DD", i, e.Until)
		}
		t, err := time.Parse(time.DateOnly, e.Until)
		if err != nil {
			return fmt.Errorf("exceptions[%d].until %q is not a date YYYY-MM-DD", i, e.Until)
		}
		e.until = t.AddDate(0, 0, 1) // inclusive: valid through that day, UTC
	}
	return nil
}

// groupOwners tracks which member owns each key ID and identity across all
// groups: one key or identity may not stand for two people.
type groupOwners struct {
	keys map[string]string
	ids  map[Identity]string
}

// validateGroups checks the approval groups and indexes their members by
// group and name.
func (p *Policy) validateGroups() error {
	if len(p.Groups) > maxListLen {
		return fmt.Errorf("more than %d groups", maxListLen)
	}
	p.members = map[string]map[string]*Member{}
	owners := groupOwners{keys: map[string]string{}, ids: map[Identity]string{}}
	for g, ms := range p.Groups {
		if err := checkName("group name", g); err != nil {
			return err
		}
		if len(ms) == 0 {
			return fmt.Errorf("group %q has no members", g)
		}
		byName := map[string]*Member{}
		for i := range ms {
			m := &ms[i]
			if err := checkName(fmt.Sprintf("groups.%s[%d].name", g, i), m.Name); err != nil {
				return err
			}
			if byName[m.Name] != nil {
				return fmt.Errorf("group %q lists %q twice", g, m.Name)
			}
			if err := owners.checkMember(g, m); err != nil {
				return err
			}
			byName[m.Name] = m
		}
		p.members[g] = byName
	}
	return nil
}

// checkMember checks one member of group g: it has keys or identities,
// each well formed and not owned by another member, and its emails.
func (o groupOwners) checkMember(g string, m *Member) error {
	if len(m.KeyIDs) == 0 && len(m.Identities) == 0 {
		return fmt.Errorf("member %q of group %q has no keyIds or identities", m.Name, g)
	}
	for i, k := range m.KeyIDs {
		k, err := keyid.Normalize(k)
		if err != nil {
			return fmt.Errorf("member %q of group %q: %w", m.Name, g, err)
		}
		m.KeyIDs[i] = k
		if owner, ok := o.keys[k]; ok && owner != m.Name {
			return fmt.Errorf("keyId %s belongs to both %q and %q", k, owner, m.Name)
		}
		o.keys[k] = m.Name
	}
	for _, id := range m.Identities {
		if id.Identity == "" || id.Issuer == "" {
			return fmt.Errorf("member %q of group %q: an identity needs both identity and issuer", m.Name, g)
		}
		if owner, ok := o.ids[id]; ok && owner != m.Name {
			return fmt.Errorf("identity %s (%s) belongs to both %q and %q", id.Identity, id.Issuer, owner, m.Name)
		}
		o.ids[id] = m.Name
	}
	if len(m.Emails) > maxListLen {
		return fmt.Errorf("member %q of group %q lists more than %d emails", m.Name, g, maxListLen)
	}
	for _, e := range m.Emails {
		if err := checkName(fmt.Sprintf("member %q of group %q: email", m.Name, g), strings.TrimSpace(e)); err != nil {
			return err
		}
	}
	return nil
}

// validateApprovalRules checks each approval rule against the groups
// validateGroups indexed.
func (p *Policy) validateApprovalRules() error {
	seenRule := map[string]bool{}
	for i, r := range p.Approvals {
		ms, ok := p.members[r.Group]
		if !ok {
			return fmt.Errorf("approvals[%d] names group %q, which is not in groups", i, r.Group)
		}
		if seenRule[r.Group] {
			return fmt.Errorf("approvals[%d]: group %q has two rules; use one with the larger count", i, r.Group)
		}
		seenRule[r.Group] = true
		if r.Count < 1 || r.Count > maxApprovalThreshold {
			return fmt.Errorf("approvals[%d].count %d must be at least 1", i, r.Count)
		}
		if r.Count > len(ms) {
			return fmt.Errorf("approvals[%d] needs %d of group %q, which has only %d member(s)", i, r.Count, r.Group, len(ms))
		}
	}
	return nil
}

func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(v) > maxNameLen {
		return fmt.Errorf("%s is longer than %d bytes", what, maxNameLen)
	}
	return nil
}

// checkPrincipal checks s and turns its keyId, which a policy may give in
// either form (see package keyid), into the printed form.
func checkPrincipal(what string, s *Principal) error {
	for _, g := range []string{s.Ref, s.Workflow} {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%s: pattern %q is malformed", what, g)
		}
	}
	switch {
	case s.KeyID != "" && (s.Identity != "" || s.Issuer != "" || s.byExtensions()):
		return fmt.Errorf("%s: give either keyId, or identity and issuer, not both", what)
	case s.KeyID == "" && s.byExtensions() && (s.Issuer == "" || (s.SourceRepository == "" && s.Identity == "")):
		return fmt.Errorf("%s: a keyless signer named by certificate extensions needs its issuer and sourceRepository (or identity)", what)
	case s.KeyID == "" && s.byExtensions():
		return nil
	case s.KeyID != "":
		k, err := keyid.Normalize(s.KeyID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.KeyID = k
	case s.Identity == "" || s.Issuer == "":
		return fmt.Errorf("%s: a keyless signer needs both identity and issuer", what)
	}
	return nil
}

func kindNames() []string {
	var out []string
	for k := range EvidenceKinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseDuration parses a Go duration, also accepting whole days ("30d").
func ParseDuration(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days < 0 || fmt.Sprint(days) != n || days > 100000 {
			return 0, fmt.Errorf("invalid duration %q", v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}
