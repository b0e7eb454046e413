package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/custody-dev/custody/signer"
)

// scriptCondition adds [softhsm] to the scripts: true when the SoftHSM2
// test token of scripts/softhsm is configured (SOFTHSM2_CONF set).
func scriptCondition(cond string) (bool, error) {
	if has, ok := cosignCondition(cond); ok {
		return has, nil
	}
	if cond == "softhsm" {
		return os.Getenv("SOFTHSM2_CONF") != "", nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// pkcs11ScriptEnv passes the test token to scripts: SOFTHSM2_CONF,
// CUSTODY_PKCS11_PIN and P11PIN (the token's user PIN), P11MODULE (the module's path)
// and P11LABEL, a key label no earlier run used (the token persists).
func pkcs11ScriptEnv(env *testscript.Env) {
	conf := os.Getenv("SOFTHSM2_CONF")
	if conf == "" {
		return
	}
	env.Setenv("SOFTHSM2_CONF", conf)
	module := os.Getenv("CUSTODY_TEST_PKCS11_MODULE")
	if module == "" {
		module = signer.DefaultPKCS11Module
	}
	env.Setenv("P11MODULE", module)
	pin := os.Getenv("CUSTODY_TEST_PKCS11_PIN")
	if pin == "" {
		pin = "1234"
	}
	env.Setenv("CUSTODY_PKCS11_PIN", pin)
	env.Setenv("P11PIN", pin)
	b := make([]byte, 6)
	rand.Read(b)
	env.Setenv("P11LABEL", "cli-"+hex.EncodeToString(b))
}
