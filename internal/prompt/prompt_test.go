package prompt

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

const envName = "CUSTODY_TEST_PASSWORD"

func TestPasswordFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
	}{
		{"set", "s3cret"},
		{"set empty", ""},
		{"spaces kept", "  pass word  "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envName, tc.value)
			var out bytes.Buffer
			// in is nil: the environment wins without touching stdin.
			got, err := Password(envName, true, nil, &out)
			if err != nil || string(got) != tc.value {
				t.Errorf("got %q, %v; want %q", got, err, tc.value)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q, want nothing", out.String())
			}
		})
	}
}

func TestPasswordNoTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		name    string
		env     string
		in      *os.File
		wantErr string
	}{
		{"pipe", envName, r, "set " + envName},
		{"nil stdin", envName, nil, "set " + envName},
		{"no env name", "", r, "no terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Unsetenv(envName)
			var out bytes.Buffer
			_, err := Password(tc.env, false, tc.in, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want error containing %q", err, tc.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("prompted %q without a terminal", out.String())
			}
		})
	}
}
