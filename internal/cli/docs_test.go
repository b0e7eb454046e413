package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/cobra"
)

// The docs cannot rot: TestDocsCommands checks every custody command line
// in the shell blocks of README.md and docs/*.md, and in each command's
// --help examples, against the command tree (each subcommand and flag must
// exist), TestDocsLinks that every relative
// link of those files names a file that exists, and TestReadmeTour runs
// the README's five-minute tour as written. They read the files from the
// repository; nothing is generated.

// docFiles are README.md and docs/*.md, relative to this package.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"../../README.md"}, files...)
}

// shellLine is one command line of a fenced shell block (continuations
// joined), with where it starts.
type shellLine struct {
	file string
	line int
	text string
}

// shellBlocks returns the lines of the fenced blocks of md whose info
// string is empty, sh, shell, bash or console. YAML, Rego and JSON blocks
// are skipped.
func shellBlocks(file, md string) []shellLine {
	var out []shellLine
	in, shell := false, false
	var cur *shellLine
	for i, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "```") {
			if in {
				in, cur = false, nil
				continue
			}
			info := strings.TrimSpace(strings.TrimPrefix(l, "```"))
			in, shell = true, info == "" || info == "sh" || info == "shell" || info == "bash" || info == "console"
			continue
		}
		if !in || !shell {
			continue
		}
		if cur == nil {
			out = append(out, shellLine{file: file, line: i + 1})
			cur = &out[len(out)-1]
		}
		cont := strings.HasSuffix(strings.TrimRight(l, " "), "\\")
		cur.text += strings.TrimSuffix(strings.TrimRight(l, " "), "\\") + " "
		if !cont {
			cur = nil
		}
	}
	return out
}

var commentRe = regexp.MustCompile(`(^|\s)#(\s|$).*`)

// shellWords splits s into words, keeping quoted text (single or double
// quotes) in one word without its quotes. Operators stay words of their own
// when separated by spaces; a trailing ';' is split off.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord {
			t := w.String()
			if strings.HasSuffix(t, ";") && len(t) > 1 {
				words = append(words, strings.TrimSuffix(t, ";"), ";")
			} else {
				words = append(words, t)
			}
		}
		w.Reset()
		inWord = false
	}
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			flush()
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words
}

// isOperator reports whether w ends one command of a shell line.
func isOperator(w string) bool {
	switch w {
	case "&&", "||", ";", "|", ">", ">>", "<", "2>", "&":
		return true
	}
	return false
}

// checkCommand checks the custody command whose words follow "custody":
// each subcommand exists, and each flag exists on the command it is given
// to. Placeholders are allowed: [--flag X] and (A | B) groups, NAME|NAME
// alternatives of a subcommand, "...". It stops at "--" (the command
// custody runs) and at a shell operator.
func checkCommand(root *cobra.Command, words []string) (string, error) {
	c := root
	path := "custody"
	positional := false
	depth := 0
	for _, w := range words {
		depth += strings.Count(w, "(")
		w = strings.Trim(w, "[]()")
		closing := strings.Count(w, ")")
		switch {
		case w == "--":
			return path, nil
		case w == "|" && depth > 0:
			continue
		case isOperator(w):
			return path, nil
		case w == "" || w == "..." || w == "|":
			continue
		case strings.HasPrefix(w, "--"):
			name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
			c.InitDefaultHelpFlag()
			c.InitDefaultVersionFlag()
			if c.Flag(name) == nil {
				return path, fmt.Errorf("%s has no flag --%s", path, name)
			}
		case strings.HasPrefix(w, "-") && len(w) == 2:
			c.InitDefaultHelpFlag()
			if c.Flags().ShorthandLookup(w[1:]) == nil && c.InheritedFlags().ShorthandLookup(w[1:]) == nil {
				return path, fmt.Errorf("%s has no flag %s", path, w)
			}
		case !positional && c.HasSubCommands():
			var next *cobra.Command
			for _, alt := range strings.Split(w, "|") {
				sub, _, err := c.Find([]string{alt})
				if err != nil || sub == c {
					if c.Runnable() {
						positional = true
						break
					}
					return path, fmt.Errorf("%s has no subcommand %q", path, alt)
				}
				if next == nil {
					next = sub
				}
			}
			if next != nil && !positional {
				c, path = next, path+" "+next.Name()
			}
		default:
			positional = true
		}
		depth -= closing
	}
	return path, nil
}

// commandsIn returns the word lists that follow each "custody" that starts
// a command on the line: first on the line, after a shell operator, "!",
// "$(" or environment assignments.
func commandsIn(text string) [][]string {
	words := shellWords(commentRe.ReplaceAllString(text, ""))
	var out [][]string
	start := true
	for i, w := range words {
		switch {
		case (w == "custody" || strings.HasSuffix(w, "/custody") || w == "$(custody") && start:
			out = append(out, words[i+1:])
			start = false
		case isOperator(w) || w == "!" || w == "$(":
			start = true
		case start && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(w):
		default:
			start = false
		}
	}
	return out
}

func TestDocsCommands(t *testing.T) {
	root := newRoot(&streams{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	seen := 0
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range shellBlocks(f, string(b)) {
			for _, words := range commandsIn(l.text) {
				seen++
				if path, err := checkCommand(root, words); err != nil {
					t.Errorf("%s:%d: %v (in %q)", strings.TrimPrefix(l.file, "../../"), l.line, err, strings.TrimSpace(l.text))
				} else if path == "custody" && len(words) > 0 && !strings.HasPrefix(words[0], "-") {
					t.Errorf("%s:%d: no subcommand in %q", l.file, l.line, strings.TrimSpace(l.text))
				}
			}
		}
	}
	// The examples of --help are held to the same tree.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range strings.Split(strings.ReplaceAll(c.Example, "\\\n", " "), "\n") {
			for _, words := range commandsIn(l) {
				seen++
				if _, err := checkCommand(root, words); err != nil {
					t.Errorf("%s --help example: %v (in %q)", c.CommandPath(), err, strings.TrimSpace(l))
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 80 {
		t.Errorf("found only %d custody commands in the docs; the extraction is broken", seen)
	}
}

// The checker itself: a command that does not exist, a flag of another
// command, and placeholders.
func TestCheckCommand(t *testing.T) {
	root := newRoot(&streams{out: &bytes.Buffer{}, err: &bytes.Buffer{}})
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"custody verify --key release.pub dist/app   # comment --nope", true},
		{"custody build --key k --out-dir dist -- go build -trimpath -o dist/app .", true},
		{"custody status [--env prod] (--data deploy-data | --server $URL)", true},
		{"custody incident show|close ID --data d;  custody incident list --data d", true},
		{"CUSTODY_TOKEN=x custody trust push root.json --server $URL", true},
		{"custody verify --frobnicate x", false},
		{"custody verifyy x", false},
		{"custody trust sign --root r --threshold 2", false},
		{"custody incident show|reopen ID", false},
		{"make && custody deploy --nope", false},
	} {
		var err error
		for _, words := range commandsIn(tc.line) {
			if _, e := checkCommand(root, words); e != nil {
				err = e
			}
		}
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.line, err, tc.ok)
		}
	}
}

var linkRe = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestDocsLinks(t *testing.T) {
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRe.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s: link to %s: %v", strings.TrimPrefix(f, "../../"), m[1], err)
			}
		}
	}
}

var goEnvOnce sync.Once

// loadGoEnv fills goEnv with the Go toolchain's cache locations.
func loadGoEnv() {
	goEnvOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOCACHE", "GOPATH", "GOMODCACHE", "GOROOT").Output()
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for i, k := range []string{"GOCACHE", "GOPATH", "GOMODCACHE", "GOROOT"} {
			if i < len(lines) && lines[i] != "" {
				goEnv[k] = lines[i]
			}
		}
	})
}

// TestReadmeTour runs the README's five-minute tour (its ```sh block) with
// sh -e in a script work directory that holds the sample project at the
// path the tour copies it from. Every line runs as written except the
// first, which builds custody: the test's own custody is on PATH.
func TestReadmeTour(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go on PATH")
	}
	loadGoEnv()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Five-minute tour.*?```sh\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no five-minute tour in a ```sh block")
	}
	lines := strings.SplitN(string(m[1]), "\n", 2)
	if !strings.HasPrefix(lines[0], "go build -o custody ./cmd/custody") {
		t.Fatalf("the tour's first line builds custody, got %q", lines[0])
	}
	var a strings.Builder
	a.WriteString("# generated from README.md's five-minute tour\nexec sh -e tour.sh\n" +
		"stdout 'Verified OK'\nstdout 'refused: another builder'\nstdout 'refused: tampered'\n")
	fmt.Fprintf(&a, "-- tour.sh --\n%s", lines[1])
	const proj = "../../testdata/projects/reproducible-go"
	files, err := os.ReadDir(proj)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		c, err := os.ReadFile(filepath.Join(proj, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&a, "-- testdata/projects/reproducible-go/%s --\n%s", f.Name(), c)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tour.txtar"), []byte(a.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{Dir: dir, Setup: scriptSetup("")})
}
