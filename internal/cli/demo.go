package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/demo"
	"github.com/custody-dev/custody/verify"
)

func newDemoCmd(s *streams) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Build a sample program with provenance, verify it, tamper with it, and watch verification refuse it",
		Args:  argsBetween(0, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "custody-demo-")
			if err != nil {
				return usageErr(err, "")
			}
			if keep {
				fmt.Fprintf(s.out, "working in %s (kept)\n", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			res, err := demo.Run(c.Context(), demo.Options{Dir: dir, Progress: demoPrinter{s.out}, BuildOutput: s.err})
			switch {
			case errors.Is(err, demo.ErrNoGo):
				return usageErr(err, "install Go, or run 'go run ./cmd/custody demo'")
			case errors.Is(err, demo.ErrFailed):
				return failErr(err, "")
			case err != nil:
				return err
			}
			fmt.Fprintln(s.out)
			if !res.OK() {
				return failErr(errors.New("demo did not behave as expected"), "")
			}
			fmt.Fprintln(s.out, "demo OK: the genuine artifact verified; the untrusted builder and the tampered artifact were refused")
			return nil
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	return c
}

// demoPrinter prints the demo's steps as they happen.
type demoPrinter struct{ w io.Writer }

func (p demoPrinter) Step(title string) { fmt.Fprintf(p.w, "\n==> %s\n", title) }
func (p demoPrinter) Note(text string)  { fmt.Fprintf(p.w, "    %s\n", text) }

func (p demoPrinter) Signed(name string, bundle []byte) {
	if ins, err := inspectBundle(bundle); err == nil {
		printInspection(p.w, name, ins)
	}
}

func (p demoPrinter) Verified(rep *verify.Report) { printReport(p.w, rep) }
