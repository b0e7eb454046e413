// Package prompt asks the user for a key password: from an environment
// variable when it is set, otherwise on the terminal without echo (see
// golang.org/x/term). Passwords are never logged or printed.
package prompt

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ErrMismatch is returned when the confirmation does not match the password.
var ErrMismatch = errors.New("passwords do not match")

// Password returns the password in the environment variable envName if it is
// set (even to the empty string). Otherwise it asks on in, which must be a
// terminal, writing the prompt to out; with confirm it asks twice and
// returns ErrMismatch if the answers differ. If in is not a terminal it
// returns an error telling the user to set envName.
func Password(envName string, confirm bool, in *os.File, out io.Writer) ([]byte, error) {
	if envName != "" {
		if v, ok := os.LookupEnv(envName); ok {
			return []byte(v), nil
		}
	}
	if in == nil || !term.IsTerminal(int(in.Fd())) {
		if envName == "" {
			return nil, errors.New("no terminal to ask for the password on")
		}
		return nil, fmt.Errorf("no terminal to ask for the password on; set %s", envName)
	}
	pw, err := ask(in, out, "Enter password for private key: ")
	if err != nil {
		return nil, err
	}
	if !confirm {
		return pw, nil
	}
	again, err := ask(in, out, "Enter password for private key again: ")
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(pw, again) != 1 {
		return nil, ErrMismatch
	}
	return pw, nil
}

func ask(in *os.File, out io.Writer, prompt string) ([]byte, error) {
	if _, err := io.WriteString(out, prompt); err != nil {
		return nil, fmt.Errorf("couldn't write password prompt: %w", err)
	}
	pw, err := term.ReadPassword(int(in.Fd()))
	// The terminal swallowed the user's newline; end the prompt line.
	io.WriteString(out, "\n")
	if err != nil {
		return nil, fmt.Errorf("couldn't read password: %w", err)
	}
	return pw, nil
}
