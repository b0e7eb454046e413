package cli

import (
	"os"

	"github.com/rogpeppe/go-internal/testscript"
)

// The stock Sigstore clients of the interop scripts: scripts/test builds
// them (scripts/tool cosign-v3, cosign-v2) and exports their paths. A
// script that needs one starts with [!cosign] skip (or [!cosign2]); it
// runs the client as $COSIGN (or $COSIGN2).
var cosignEnv = map[string]string{
	"cosign":  "CUSTODY_TEST_COSIGN",
	"cosign2": "CUSTODY_TEST_COSIGN_V2",
}

// cosignCondition answers the [cosign] and [cosign2] conditions; ok is
// false for another condition.
func cosignCondition(cond string) (has, ok bool) {
	v, ok := cosignEnv[cond]
	if !ok {
		return false, false
	}
	return os.Getenv(v) != "", true
}

// cosignScriptEnv passes the clients' paths to scripts as COSIGN and
// COSIGN2, and keeps them off the network: no TUF, no Sigstore's public
// instance (every script gives --trusted-root and --signing-config).
func cosignScriptEnv(env *testscript.Env) {
	env.Setenv("COSIGN", os.Getenv("CUSTODY_TEST_COSIGN"))
	env.Setenv("COSIGN2", os.Getenv("CUSTODY_TEST_COSIGN_V2"))
	env.Setenv("COSIGN_PASSWORD", "")
	env.Setenv("COSIGN_YES", "true")
	env.Setenv("TUF_ROOT", env.WorkDir+"-home/.sigstore/root")
}
