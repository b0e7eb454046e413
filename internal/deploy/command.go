package deploy

import (
	"errors"
	"path/filepath"
	"strings"
)

// The artifact's path is chosen by whoever named the file (a builder), so
// it is never pasted into a shell string: "app;env>HEALTH-ENV;true;#" would
// run commands. Commands get it as an argument instead:
//
//   - The health command is a shell string run as
//     sh -c HEALTH custody-health PATH, so the path is "$1". A {artifact}
//     in it is rewritten to a quoted "$1" (in single quotes, in double
//     quotes or unquoted alike), never to the path.
//   - The deploy command is an argv: {artifact} in an argument is replaced
//     by the path, which the program gets as that argument. When the
//     program is a shell (sh, bash, dash, zsh, ksh, mksh, ash) run with -c,
//     its script is a shell string: {artifact} there is rewritten to "$1"
//     and the path passed after the script; a script followed by its own
//     arguments is refused (pass {artifact} as one of them instead).
//
// {digest} (sha256:HEX, re-checked before the command runs) and {env} (the
// deployer's own environment name) are replaced everywhere as before.

// placeholder is what commands name the artifact's path by.
const placeholder = "{artifact}"

// shells run their -c argument as a shell script.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true}

// errShellArtifact is returned for a deploy command whose shell script
// holds {artifact} and is followed by arguments of its own.
var errShellArtifact = errors.New(`the deploy command's shell script holds {artifact} and is followed by its own arguments: ` +
	`custody never pastes the artifact's path into a shell string; pass {artifact} as an argument after the script ` +
	`(sh -c 'cp "$1" /srv/app' sh {artifact}) or use "$CUSTODY_ARTIFACT"`)

// shellScript returns the index in argv of the script of a shell run with
// -c, or -1.
func shellScript(argv []string) int {
	if len(argv) == 0 || !shells[filepath.Base(argv[0])] {
		return -1
	}
	dashC := false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || a == "-" {
			continue
		}
		if len(a) > 1 && (a[0] == '-' || a[0] == '+') && !strings.HasPrefix(a, "--") {
			if a[0] == '-' && strings.ContainsRune(a[1:], 'c') {
				dashC = true
			}
			if a == "-o" || a == "+o" { // takes an option name
				i++
			}
			continue
		}
		if dashC {
			return i
		}
		return -1
	}
	return -1
}

// checkCommand refuses a deploy command custody would have to paste the
// artifact's path into a shell string for.
func checkCommand(argv []string) error {
	if i := shellScript(argv); i >= 0 && strings.Contains(argv[i], placeholder) && i != len(argv)-1 {
		return errShellArtifact
	}
	return nil
}

// commandArgv returns the deploy command's argv for the artifact: see the
// comment above.
func commandArgv(argv []string, a Artifact, env string) ([]string, error) {
	if err := checkCommand(argv); err != nil {
		return nil, err
	}
	r := strings.NewReplacer("{digest}", a.Digest, "{env}", env)
	script := shellScript(argv)
	out := make([]string, 0, len(argv)+2)
	for i, s := range argv {
		if i == script && strings.Contains(s, placeholder) {
			out = append(out, r.Replace(shellArtifact(s)))
			continue
		}
		out = append(out, r.Replace(strings.ReplaceAll(s, placeholder, a.Path)))
	}
	if script >= 0 && strings.Contains(argv[script], placeholder) {
		out = append(out, "custody-deploy", a.Path) // $0, $1
	}
	return out, nil
}

// healthArgv returns the argv that runs the health command for the
// artifact: sh -c HEALTH custody-health PATH.
func healthArgv(health string, a Artifact, env string) []string {
	r := strings.NewReplacer("{digest}", a.Digest, "{env}", env)
	return []string{"sh", "-c", r.Replace(shellArtifact(health)), "custody-health", a.Path}
}

// shellArtifact rewrites every {artifact} in the shell script s to a
// reference to "$1" that the shell expands to exactly one word whatever
// quotes it stands in: "$1" unquoted, $1 inside double quotes, '"$1"'
// inside single quotes (closing and reopening them). A command
// substitution ($(...) or `...`) starts a new unquoted context even inside
// double quotes, and a comment ends at the line's end, so both are followed.
// Expanding a parameter never runs its value, so even a misjudged quote
// context yields at worst a wrong word, never a command.
func shellArtifact(s string) string {
	if !strings.Contains(s, placeholder) {
		return s
	}
	var b strings.Builder
	q := quoteScan{}
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], placeholder) {
			switch q.state {
			case unquoted:
				b.WriteString(`"$1"`)
			case single:
				b.WriteString(`'"$1"'`)
			case double:
				b.WriteString(`$1`)
			}
			i += len(placeholder) - 1
			continue
		}
		i = q.step(s, i, &b)
	}
	return b.String()
}

// Quote contexts of a shell script.
const (
	unquoted = iota
	single
	double
)

// quoteScan follows a shell script's quote context: state is the current
// one, outer the contexts command substitutions were opened in (with '`' or
// '(' for how each ends) and depth the parentheses open in the current one.
type quoteScan struct {
	state int
	outer []subst
	depth int
}

type subst struct {
	state, depth int
	end          byte
}

// step copies the script's byte s[i] (with what it escapes, or a whole
// comment) to b, updates the context and returns the last index copied.
func (q *quoteScan) step(s string, i int, b *strings.Builder) int {
	c := s[i]
	b.WriteByte(c)
	switch {
	case c == '\\' && q.state != single && i+1 < len(s):
		i++
		b.WriteByte(s[i])
	case q.state == single:
		if c == '\'' {
			q.state = unquoted
		}
	case c == '$' && i+1 < len(s) && s[i+1] == '(':
		b.WriteByte('(')
		q.outer = append(q.outer, subst{q.state, q.depth, '('})
		q.state, q.depth = unquoted, 0
		return i + 1
	case c == '`':
		if n := len(q.outer); n > 0 && q.outer[n-1].end == '`' && q.state == unquoted {
			q.pop()
		} else {
			q.outer = append(q.outer, subst{q.state, q.depth, '`'})
			q.state, q.depth = unquoted, 0
		}
	case q.state == double:
		if c == '"' {
			q.state = unquoted
		}
	case c == '\'':
		q.state = single
	case c == '"':
		q.state = double
	case c == '(':
		q.depth++
	case c == ')':
		if q.depth > 0 {
			q.depth--
		} else if n := len(q.outer); n > 0 && q.outer[n-1].end == '(' {
			q.pop()
		}
	case c == '#' && (i == 0 || strings.IndexByte(" \t\n;&|()<>", s[i-1]) >= 0):
		end := strings.IndexByte(s[i:], '\n')
		if end < 0 {
			end = len(s) - i
		}
		b.WriteString(s[i+1 : i+end])
		return i + end - 1
	}
	return i
}

func (q *quoteScan) pop() {
	n := len(q.outer) - 1
	q.state, q.depth = q.outer[n].state, q.outer[n].depth
	q.outer = q.outer[:n]
}
