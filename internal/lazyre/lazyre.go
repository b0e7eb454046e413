// Package lazyre is a regular expression (package regexp,
// https://github.com/google/re2/wiki/Syntax) compiled on first use instead
// of at package initialisation: a package-level pattern costs nothing to a
// command that never matches it. Patterns like [0-9a-f]{64} expand to
// dozens of instructions and allocate hundreds of times when compiled;
// custody compiled them all at every start of every command.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp compiles its expression on first use; it panics then if the
// expression does not compile, as regexp.MustCompile does at init (tests
// that match each pattern catch it).
type Regexp struct {
	expr string
	once sync.Once
	re   *regexp.Regexp
}

// New returns a Regexp of expr, not compiled yet.
func New(expr string) *Regexp { return &Regexp{expr: expr} }

// Get returns the compiled expression.
func (r *Regexp) Get() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.expr) })
	return r.re
}

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.Get().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.Get().FindStringSubmatch(s) }

// String returns the expression.
func (r *Regexp) String() string { return r.expr }
