package childenv

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "CUSTODY_PASSWORD=pw", "CUSTODY_PKCS11_PIN=1234", "CUSTODY_TOKEN=tok",
		"CUSTODY_SERVER_PASSWORD=spw", "CUSTODY_NEW_API_KEY=k", "custody_token=lower", "CUSTODY_SERVER=http://h",
		"CUSTODY_ARTIFACT=/a", "GITHUB_TOKEN=gh", "HOME=/root",
	}
	got := Filter(env)
	want := []string{"PATH=/usr/bin", "CUSTODY_SERVER=http://h", "CUSTODY_ARTIFACT=/a", "GITHUB_TOKEN=gh", "HOME=/root"}
	if !slices.Equal(got, want) {
		t.Errorf("Filter = %q, want %q", got, want)
	}
	for _, s := range Secrets {
		if !IsSecret(s) {
			t.Errorf("IsSecret(%s) = false", s)
		}
	}
}

func TestCommandEnvironment(t *testing.T) {
	t.Setenv("CUSTODY_TOKEN", "tok")
	t.Setenv("CUSTODY_PASSWORD", "pw")
	t.Setenv("CUSTODY_CHILDENV_KEEP", "1")
	out, err := Command(context.Background(), "env").Output()
	if err != nil {
		t.Skipf("env(1): %v", err)
	}
	s := string(out)
	if strings.Contains(s, "CUSTODY_TOKEN") || strings.Contains(s, "CUSTODY_PASSWORD") {
		t.Errorf("child saw custody's secrets:\n%s", s)
	}
	if !strings.Contains(s, "CUSTODY_CHILDENV_KEEP=1") {
		t.Errorf("child lost an ordinary variable:\n%s", s)
	}
}

// TestEveryChildGoesThroughChildenv scans custody's source (bench/ and
// tests excluded: they start custody itself, with tokens on purpose) and
// fails on a process started without this package: a call of
// exec.Command, exec.CommandContext, os.StartProcess or syscall's exec
// functions outside it, an exec.Cmd literal, or an Env assigned from
// anything but a childenv call or an append to the same Env.
func TestEveryChildGoesThroughChildenv(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	var bad []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "bench" || rel == "testdata" || strings.HasSuffix(rel, "/testdata") || rel == filepath.Join("internal", "childenv") ||
				(rel != "." && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		bad = append(bad, bypasses(fset, f)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("%s (start child processes with childenv.Command, set Env with childenv.Filter)", b)
	}
}

// forbidden are the calls, by import path, that start a process without
// childenv.
var forbidden = map[string][]string{
	"os/exec":               {"Command", "CommandContext"},
	"os":                    {"StartProcess"},
	"syscall":               {"ForkExec", "StartProcess", "Exec"},
	"golang.org/x/sys/unix": {"Exec"},
}

const childenvPath = "github.com/custody-dev/custody/internal/childenv"

func bypasses(fset *token.FileSet, f *ast.File) []string {
	var bad []string
	// The import path of each name the file imports under.
	imports := map[string]string{}
	for _, im := range f.Imports {
		path := strings.Trim(im.Path.Value, `"`)
		name := path[strings.LastIndex(path, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = path
	}
	selector := func(e ast.Expr) (pkg, name string, ok bool) {
		pkg, name, ok = selectorOf(e)
		return imports[pkg], name, ok
	}
	report := func(n ast.Node, what string) {
		bad = append(bad, fset.Position(n.Pos()).String()+": "+what)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if pkg, name, ok := selector(n.Fun); ok && slices.Contains(forbidden[pkg], name) {
				report(n, pkg+"."+name)
			}
		case *ast.CompositeLit:
			if pkg, name, ok := selector(n.Type); ok && pkg == "os/exec" && name == "Cmd" {
				report(n, "exec.Cmd literal")
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				sel, ok := lhs.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Env" || i >= len(n.Rhs) {
					continue
				}
				if !filteredEnv(n.Rhs[i], sel, selector) {
					report(n, "Env set without childenv.Filter")
				}
			}
		}
		return true
	})
	return bad
}

// filteredEnv reports whether e is a childenv call, or an append whose
// first argument is one or is lhs itself (extending a filtered Env).
func filteredEnv(e ast.Expr, lhs *ast.SelectorExpr, selector func(ast.Expr) (string, string, bool)) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	if pkg, _, ok := selector(call.Fun); ok && pkg == childenvPath {
		return true
	}
	if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "append" && len(call.Args) > 0 {
		if sel, ok := call.Args[0].(*ast.SelectorExpr); ok && sel.Sel.Name == "Env" && exprString(sel.X) == exprString(lhs.X) {
			return true
		}
		return filteredEnv(call.Args[0], lhs, selector)
	}
	return false
}

// exprString renders a simple expression (an identifier or a selector chain) for
// comparison.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return "?"
}

// selectorOf splits pkg.Name.
func selectorOf(e ast.Expr) (pkg, name string, ok bool) {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return "", "", false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return "", "", false
	}
	return id.Name, sel.Sel.Name, true
}
