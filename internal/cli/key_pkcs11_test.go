//go:build cgo

package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/custody-dev/custody/signer"
)

// tokenHeld reports whether this process still has module initialized:
// while any command holds a token of it (a session, a login), the module
// stays initialized; once every hold is released it is finalized.
func tokenHeld(t *testing.T, module string) bool {
	t.Helper()
	p := pkcs11.New(module)
	if p == nil {
		t.Fatalf("couldn't load %s", module)
	}
	defer p.Destroy()
	err := p.Initialize()
	if err == nil {
		p.Finalize()
		return false
	}
	if e, ok := err.(pkcs11.Error); ok && e == pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
		return true
	}
	t.Fatalf("C_Initialize: %v", err)
	return false
}

// run runs custody in this process, as a user would run it in a shell.
func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Main(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

// TestPKCS11CommandsReleaseToken signs twice in one process with the same
// pkcs11: URI (the SoftHSM2 token of scripts/softhsm), and checks that each
// command releases the token when it ends, that both bundles verify, and
// that a wrong PIN then fails with one clear error line that never shows it.
func TestPKCS11CommandsReleaseToken(t *testing.T) {
	if os.Getenv("SOFTHSM2_CONF") == "" {
		t.Skip("SOFTHSM2_CONF not set; run eval \"$(scripts/softhsm)\" first")
	}
	module := os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = signer.DefaultPKCS11Module
	}
	pin := os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	t.Setenv("CUSTODY_PKCS11_PIN", pin)
	if tokenHeld(t, module) {
		t.Fatal("the PKCS#11 module is initialized before any command ran")
	}

	dir := t.TempDir()
	label := uniqueTestLabel()
	key := "pkcs11:token=custody;object=" + label + "?module-path=" + module
	pub := filepath.Join(dir, "release")
	if code, _, stderr := run("key", "generate", "--pkcs11", key, "--out", pub); code != 0 {
		t.Fatalf("key generate: exit %d: %s", code, stderr)
	}
	if tokenHeld(t, module) {
		t.Error("key generate --pkcs11 left the token open")
	}
	pred := filepath.Join(dir, "pred.json")
	if err := os.WriteFile(pred, []byte(`{"passed": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const subject = "app@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	for i, name := range []string{"first", "second"} {
		bundle := filepath.Join(dir, name+".sigstore.json")
		code, _, stderr := run("attest", "--key", key, "--predicate-type", "https://example.com/test/v1",
			"--predicate", pred, "--subject", subject, "--bundle", bundle)
		if code != 0 {
			t.Fatalf("attest #%d: exit %d: %s", i+1, code, stderr)
		}
		if stderr != "" {
			t.Errorf("attest #%d wrote to stderr: %q", i+1, stderr)
		}
		if tokenHeld(t, module) {
			t.Errorf("attest #%d left the token open", i+1)
		}
		code, stdout, stderr := run("verify", "--key", pub+".pub", "--bundle", bundle,
			"--predicate-type", "https://example.com/test/v1", "--digest", subject[len("app@"):])
		if code != 0 || !strings.Contains(stdout, "Verified OK") {
			t.Errorf("verify #%d: exit %d: %s%s", i+1, code, stdout, stderr)
		}
	}

	const wrong = "wrong-98765"
	for _, tc := range []struct{ name, key string }{
		{"PIN from the environment", key},
		{"PIN in the URI", key + "&pin-value=" + wrong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CUSTODY_PKCS11_PIN", wrong)
			bundle := filepath.Join(t.TempDir(), "x.sigstore.json")
			code, stdout, stderr := run("attest", "--key", tc.key, "--predicate-type", "https://example.com/test/v1",
				"--predicate", pred, "--subject", subject, "--bundle", bundle)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if strings.Contains(stdout+stderr, wrong) {
				t.Errorf("the PIN is shown:\n%s%s", stdout, stderr)
			}
			var errLines []string
			for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if strings.HasPrefix(l, "custody: error: ") {
					errLines = append(errLines, l)
				}
			}
			want := "custody: error: couldn't open key pkcs11:token=custody;object=" + label
			if len(errLines) != 1 || !strings.HasPrefix(errLines[0], want) || !strings.Contains(errLines[0], "refused the PIN") {
				t.Errorf("want one error line %q… saying the token refused the PIN, got:\n%s", want, stderr)
			}
			if !strings.Contains(stderr, "custody: hint: check CUSTODY_PKCS11_PIN") {
				t.Errorf("no hint:\n%s", stderr)
			}
			if _, err := os.Stat(bundle); err == nil {
				t.Error("a bundle was written")
			}
			if tokenHeld(t, module) {
				t.Error("a refused login left the token open")
			}
		})
	}
}

// uniqueTestLabel is a key label no earlier run used (the token persists).
func uniqueTestLabel() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "cli-close-" + hex.EncodeToString(b)
}
