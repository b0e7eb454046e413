// Package redact keeps secrets out of what custody records and out of the
// processes it starts. It decides which names look secret (an environment
// variable GITHUB_PAT, a flag --token, a query parameter password=) and
// scans values for credentials whatever their name: HTTP authorization
// headers (RFC 9110 section 11.6.2), URL userinfo (RFC 3986 section
// 3.2.1), PEM private keys (RFC 7468), JWTs (RFC 7519) and the token shapes
// of common services (GitHub, GitLab, Slack, AWS, Google, npm, Stripe).
//
// A redacted value keeps its shape where it helps a reader (the URL's host,
// the flag's name) and has the secret itself replaced by Marker. Each
// redaction gives a Finding that names where the secret was and what kind
// it was, never the secret.
package redact

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/custody-dev/custody/internal/lazyre"
)

// Marker replaces every redacted secret. It equals attest.Redacted.
const Marker = "[REDACTED]"

// substringWords mark a name as secret wherever they appear in it,
// case-insensitively.
var substringWords = []string{
	"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL",
	"PRIVATE", "APIKEY", "KEY", "JWT", "COOKIE", "SESSION", "AUTHORIZATION",
}

// partWords mark a name as secret when they are one of its parts (split at
// non-alphanumerics and lower-to-upper case changes): PAT must not match
// PATH, nor PASS match BYPASS, nor AUTH match AUTHOR.
var partWords = map[string]bool{
	"PAT": true, "PASS": true, "PW": true, "PWD": true, "PIN": true, "OTP": true,
	"AUTH": true, "CRED": true, "CREDS": true, "DSN": true, "SIG": true,
}

// notSecret are whole names that contain a part word but are known not to
// hold secrets.
var notSecret = map[string]bool{"PWD": true, "OLDPWD": true}

// SecretName reports whether a variable, flag or parameter name looks like
// it holds a secret. Leading dashes (flags) are ignored.
func SecretName(name string) bool {
	name = strings.TrimLeft(name, "-")
	up := strings.ToUpper(name)
	if up == "" || notSecret[up] {
		return false
	}
	for _, w := range substringWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	for _, p := range nameParts(name) {
		if partWords[p] {
			return true
		}
	}
	return false
}

// nameParts splits name at every character that is not a letter or digit
// and before an upper-case letter that follows a lower-case one, and
// returns the parts upper-cased.
func nameParts(name string) []string {
	var parts []string
	start := 0
	prevLower := false
	for i, r := range name {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		if !alnum || (prevLower && unicode.IsUpper(r)) {
			if i > start {
				parts = append(parts, strings.ToUpper(name[start:i]))
			}
			start = i
			if !alnum {
				start = i + len(string(r))
			}
		}
		prevLower = unicode.IsLower(r)
	}
	if start < len(name) {
		parts = append(parts, strings.ToUpper(name[start:]))
	}
	return parts
}

// Kinds of secrets Value finds, as named in findings.
const (
	KindName       = "secret-looking name"
	KindPEM        = "PEM private key"
	KindAuthHeader = "authorization credentials"
	KindURLUser    = "URL credentials"
	KindParameter  = "secret-looking parameter"
	KindToken      = "token"
)

// pass is one scan of a value: when the value contains one of hints (a
// cheap test most values fail; lower-cased first when fold is set, and
// always true without hints), every match of re is rewritten by replace.
type pass struct {
	kind    string
	fold    bool
	hints   []string
	re      *lazyre.Regexp
	replace func(v string, m []int) (string, bool) // m: submatch indexes of one match
}

// redactGroup replaces submatch 1 of each match with Marker.
func redactGroup(v string, m []int) (string, bool) {
	if m[2] < 0 || v[m[2]:m[3]] == Marker {
		return v[m[0]:m[1]], false
	}
	return v[m[0]:m[2]] + Marker + v[m[3]:m[1]], true
}

// redactParameter replaces the value (submatch 2) of a NAME=VALUE or
// NAME: VALUE pair whose name (submatch 1) looks secret.
func redactParameter(v string, m []int) (string, bool) {
	name, value := v[m[2]:m[3]], v[m[4]:m[5]]
	if strings.HasPrefix(value, Marker) || authSchemes[strings.ToLower(value)] || !SecretName(lastSegment(name)) {
		return v[m[0]:m[1]], false
	}
	return v[m[0]:m[4]] + Marker + v[m[5]:m[1]], true
}

// authSchemes are the schemes of an authorization header, kept in
// "Authorization: Bearer [REDACTED]".
var authSchemes = map[string]bool{"bearer": true, "basic": true, "token": true, "digest": true, "negotiate": true}

// lastSegment is the part of a parameter name after its last '.' or '/'
// (main.apiToken, -X=main.token): the package path says nothing.
func lastSegment(name string) string {
	if i := strings.LastIndexAny(name, "./"); i >= 0 {
		return name[i+1:]
	}
	return name
}

var passes = []pass{
	{KindPEM, false, []string{"-----BEGIN"}, lazyre.New(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$)`),
		func(v string, m []int) (string, bool) { return Marker, true }},
	// "Authorization: Bearer X" keeps its scheme; "Bearer X" alone too.
	{KindAuthHeader, true, []string{"authorization"}, lazyre.New(`(?i)\bauthorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate)\s+)?([^\s"',;]+)`), redactGroup},
	{KindAuthHeader, true, []string{"bearer"}, lazyre.New(`(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{8,})`), redactGroup},
	{KindURLUser, false, []string{"://"}, lazyre.New(`[A-Za-z][A-Za-z0-9+.-]*://([^/?#@\s"']+)@`), redactGroup},
	{KindToken, false, tokenHints, lazyre.New(`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|` +
		`xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|npm_[A-Za-z0-9]{36}|` +
		`[sr]k_live_[A-Za-z0-9]{16,}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)`),
		func(v string, m []int) (string, bool) { return Marker, true }},
	// NAME=VALUE (query strings, -X main.token=…, --password=…) and
	// "NAME: VALUE" (headers), by redactParameters, a hand-written scan
	// equal to parameterRE (FuzzParameters).
	{KindParameter, false, nil, nil, nil},
	// name="value", 'value' and the JSON "name": "value" (redactParameters
	// stops at quotes).
	{KindParameter, false, []string{`"`, "'"}, lazyre.New(`([A-Za-z_][A-Za-z0-9_./-]*)"?[ \t]*[=:][ \t]*(?:"([^"\n]*)"|'([^'\n]*)')`),
		redactQuoted},
	// --flag value inside one string (a shell script): Args handles it
	// across arguments.
	{KindParameter, false, []string{"-"}, lazyre.New(`(?:^|[\s;&|(])(--?[A-Za-z][A-Za-z0-9_.-]*)[ \t]+("[^"\n]*"|'[^'\n]*'|[^\s"'` + "`" + `;&|)-][^\s"'` + "`" + `;&|)]*)`),
		redactFlagValue},
}

// redactQuoted redacts the quoted value (group 2 or 3) of a secret-looking
// name (group 1).
func redactQuoted(v string, m []int) (string, bool) {
	g := 4
	if m[g] < 0 {
		g = 6
	}
	if m[g] == m[g+1] || v[m[g]:m[g+1]] == Marker || !SecretName(lastSegment(v[m[2]:m[3]])) {
		return v[m[0]:m[1]], false
	}
	return v[m[0]:m[g]] + Marker + v[m[g+1]:m[1]], true
}

// redactFlagValue redacts the value (group 2, quotes kept) after a
// secret-looking flag (group 1).
func redactFlagValue(v string, m []int) (string, bool) {
	val := v[m[4]:m[5]]
	inner := strings.Trim(val, `"'`)
	if inner == "" || inner == Marker || !isSecretFlag(v[m[2]:m[3]]) {
		return v[m[0]:m[1]], false
	}
	if len(val) > len(inner) {
		return v[m[0]:m[4]+1] + Marker + v[m[5]-1:m[1]], true
	}
	return v[m[0]:m[4]] + Marker + v[m[5]:m[1]], true
}

// tokenHints start the token shapes of the token pass.
var tokenHints = []string{"gh", "github_pat_", "glpat-", "xox", "AKIA", "ASIA", "AIza", "npm_", "k_live_", "eyJ"}

func containsAny(s string, subs []string) bool {
	if subs == nil {
		return true
	}
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Value returns v with every secret it finds replaced by Marker, and the
// kinds found (each once, in scan order); v itself and nil when it holds
// none.
func Value(v string) (string, []string) {
	if v == "" {
		return v, nil
	}
	var kinds []string
	lower := "" // v lower-cased, made when a pass needs it
	for _, p := range passes {
		in := v
		if p.fold {
			if lower == "" {
				lower = strings.ToLower(v)
			}
			in = lower
		}
		if !containsAny(in, p.hints) {
			continue
		}
		var out string
		var found bool
		if p.re == nil {
			out, found = redactParameters(v)
		} else {
			out, found = replaceAll(v, p)
		}
		if found {
			v, lower = out, ""
			kinds = append(kinds, p.kind)
		}
	}
	return v, kinds
}

// replaceAll rewrites every match of p.re in v with p.replace and reports
// whether any was redacted.
func replaceAll(v string, p pass) (string, bool) {
	ms := p.re.Get().FindAllStringSubmatchIndex(v, -1)
	if ms == nil {
		return v, false
	}
	var b strings.Builder
	found := false
	last := 0
	for _, m := range ms {
		rep, ok := p.replace(v, m)
		if !ok {
			continue
		}
		found = true
		b.WriteString(v[last:m[0]])
		b.WriteString(rep)
		last = m[1]
	}
	if !found {
		return v, false
	}
	b.WriteString(v[last:])
	return b.String(), true
}

// Finding is one redaction: where the secret was and what kind it was.
// It never holds the secret.
type Finding struct {
	Where string // "environment GITHUB_PAT", "command argument 3"
	Kind  string // KindName, KindToken, …
}

func (f Finding) String() string { return "redacted " + f.Where + " (" + f.Kind + ")" }

// Env redacts env (NAME to value) in place: the whole value of a name that
// looks secret, and the secrets Value finds in the others. It returns the
// findings sorted by name.
func Env(env map[string]string) []Finding {
	var out []Finding
	for name, v := range env {
		where := "environment " + name
		if SecretName(name) {
			if v != Marker {
				env[name] = Marker
				out = append(out, Finding{where, KindName})
			}
			continue
		}
		red, kinds := Value(v)
		if kinds != nil {
			env[name] = red
			out = append(out, Finding{where, strings.Join(kinds, ", ")})
		}
	}
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.Where, b.Where) })
	return out
}

// Args returns argv with its secrets redacted: the argument that follows a
// flag whose name looks secret ("--token X"), and the secrets Value finds
// in every argument. argv itself is not modified. Arguments are numbered
// from 0 (the program) in the findings.
func Args(argv []string) ([]string, []Finding) {
	var out []string
	var found []Finding
	set := func(i int, v, kind string) {
		if out == nil {
			out = slices.Clone(argv)
		}
		out[i] = v
		found = append(found, Finding{"command argument " + strconv.Itoa(i), kind})
	}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if i > 0 && isSecretFlag(argv[i-1]) && a != Marker {
			set(i, Marker, KindParameter)
			continue
		}
		if red, kinds := Value(a); kinds != nil {
			set(i, red, strings.Join(kinds, ", "))
		}
	}
	if out == nil {
		return argv, nil
	}
	return out, found
}

// isSecretFlag reports whether a is a flag without a value ("--token",
// "-password") whose name looks secret, so the next argument is its value.
func isSecretFlag(a string) bool {
	return strings.HasPrefix(a, "-") && len(a) > 1 && !strings.ContainsAny(a, "= ") && SecretName(a)
}

// parameterRE is what redactParameters finds, written as a regular
// expression: NAME=VALUE or "NAME: VALUE", VALUE stopping at '=' so that in
// -ldflags=-X=main.token=S the pair main.token=S is seen. It is the
// reference of FuzzParameters; redactParameters is 5-10x faster on a large
// environment (bench/build).
var parameterRE = lazyre.New(`([A-Za-z_][A-Za-z0-9_./-]*)(?:=|:[ \t]+)([^\s\v&;,="'` + "`" + `]+)`)

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '/' || c == '-'
}

func isValueByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', '&', ';', ',', '=', '"', '\'', '`':
		return false
	}
	return true
}

// redactParameters redacts the value of every parameter of v whose name
// looks secret (redactParameter), finding the pairs parameterRE finds.
func redactParameters(v string) (string, bool) {
	var b strings.Builder
	found := false
	last := 0 // v[:last] is consumed by earlier pairs
	for i := 0; i < len(v); i++ {
		vstart := i + 1
		switch {
		case v[i] == '=':
		case v[i] == ':' && i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t'):
			for vstart < len(v) && (v[vstart] == ' ' || v[vstart] == '\t') {
				vstart++
			}
		default:
			continue
		}
		start := i
		for start > last && isNameByte(v[start-1]) {
			start--
		}
		for start < i && !(v[start] == '_' || v[start] >= 'a' && v[start] <= 'z' || v[start] >= 'A' && v[start] <= 'Z') {
			start++
		}
		end := vstart
		for end < len(v) && isValueByte(v[end]) {
			end++
		}
		if start == i || end == vstart {
			continue
		}
		m := []int{start, end, start, i, vstart, end}
		if rep, ok := redactParameter(v, m); ok {
			found = true
			b.WriteString(v[last:start])
			b.WriteString(rep)
		} else {
			b.WriteString(v[last:end])
		}
		last = end
		i = end - 1
	}
	if !found {
		return v, false
	}
	b.WriteString(v[last:])
	return b.String(), true
}
