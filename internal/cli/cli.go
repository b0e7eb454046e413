// Package cli implements the custody command line: cobra commands that turn
// flags into library options and library results into human or JSON output.
//
// Exit codes (DESIGN.md): 0 verified/allowed/done, 1 verification failed or
// denied, 2 usage error or malformed/missing input, 3 a service could not be
// reached. Every failure prints one "custody: error: …" line, optionally
// followed by "custody: hint: …".
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitUnreachable = 3
)

// exitError carries an exit code and an optional hint up to Main.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage / malformed-input failure (exit 2).
func usageErr(err error, hint string) error { return &exitError{code: ExitUsage, err: err, hint: hint} }

// failErr marks err as a verification failure or refusal (exit 1).
func failErr(err error, hint string) error { return &exitError{code: ExitFailed, err: err, hint: hint} }

// silentExit ends the command with code after output was already written.
type silentExit struct{ code int }

func (e *silentExit) Error() string { return fmt.Sprintf("exit %d", e.code) }

// streams are the command's standard streams.
type streams struct {
	in       *os.File
	out, err io.Writer
}

// Main runs the custody command line with args and returns the exit code.
func Main(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	s := &streams{in: stdin, out: stdout, err: stderr}
	warnPINInArgs(stderr, args)
	root := newRoot(s)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return ExitOK
	}
	var se *silentExit
	if errors.As(err, &se) {
		return se.code
	}
	code, hint := ExitUsage, ""
	var ee *exitError
	if errors.As(err, &ee) {
		code, hint = ee.code, ee.hint
	} else {
		code = classify(err)
	}
	fmt.Fprintf(stderr, "custody: error: %s\n", oneLine(err.Error()))
	if hint != "" {
		fmt.Fprintf(stderr, "custody: hint: %s\n", oneLine(hint))
	}
	return code
}

// warnPINInArgs warns when an argument is a pkcs11: URI with a pin-value:
// every local user can read a process's arguments (ps, /proc/PID/cmdline),
// while pin-source names a file only its owner reads and
// $CUSTODY_PKCS11_PIN is readable only by the same user. Custody still
// uses the PIN: refusing it would break existing setups.
func warnPINInArgs(stderr io.Writer, args []string) {
	for _, a := range args {
		if i := strings.Index(strings.ToLower(a), "pkcs11:"); i >= 0 && strings.Contains(strings.ToLower(a[i:]), "pin-value=") {
			fmt.Fprintln(stderr, "custody: warning: a pkcs11: URI on the command line carries its PIN (pin-value), "+
				"which every local user can read in the process list")
			fmt.Fprintln(stderr, "custody: hint: use pin-source=file:/path/to/pin (mode 0600) in the URI, or set CUSTODY_PKCS11_PIN")
			return
		}
	}
}

// classify maps errors that did not pass through usageErr/failErr. Cobra's
// own errors (unknown flag, bad args) are usage errors.
func classify(err error) int {
	return ExitUsage
}

// plural is "1 ONE" or "N MANY".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", "; ")
}

func newRoot(s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "custody",
		Short:         "Verifiable chain of custody for software artifacts",
		Long:          "custody records how artifacts are built (SLSA provenance), signs the record when the artifact is produced\n(DSSE in a Sigstore bundle), and verifies it before anyone uses the artifact.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(err, fmt.Sprintf("run '%s --help' for usage", c.CommandPath()))
	})
	root.AddCommand(
		newKeyCmd(s),
		newBuildCmd(s),
		newVerifyCmd(s), newPackCmd(s),
		withReview(newAttestCmd(s), s),
		newInspectCmd(s),
		newDemoCmd(s),
		newServeCmd(s), newTokenCmd(s), newAuditCmd(s),
		newLoginCmd(s), newLogoutCmd(s),
		newPushCmd(s),
		newFetchCmd(s),
		newSearchCmd(s),
		newLogCmd(s),
		newWitnessCmd(s),
		newTrustCmd(s),
		newPolicyCmd(s),
		newScanCmd(s),
		newAdmissionCmd(s),
		newApproveCmd(s), newApprovalsCmd(s),
		newDeployCmd(s), newRollbackCmd(s), newPromoteCmd(s), newStatusCmd(s),
		newRebuildCmd(s),
		newIncidentCmd(s), newRedFlagsCmd(s),
		newVersionCmd(s),
	)
	setVersion(root)
	return root
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func argsBetween(min, max int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < min || (max >= 0 && len(args) > max) {
			want := fmt.Sprintf("%d", min)
			switch {
			case max < 0:
				want = fmt.Sprintf("at least %d", min)
			case max != min:
				want = fmt.Sprintf("%d to %d", min, max)
			}
			return usageErr(fmt.Errorf("%s takes %s argument(s), got %d", c.CommandPath(), want, len(args)),
				fmt.Sprintf("run '%s --help' for usage", c.CommandPath()))
		}
		return nil
	}
}
