package cli

import (
	"os"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/custody-dev/custody/internal/ca/catest"
)

// scriptIssuers are the OIDC issuers scripts started, by script.
var scriptIssuers sync.Map // *testscript.TestScript → *catest.Issuer

func scriptOIDCIssuer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: oidcissuer")
	}
	is, err := catest.New()
	ts.Check(err)
	scriptIssuers.Store(ts, is)
	ts.Defer(func() { is.Close(); scriptIssuers.Delete(ts) })
	ts.Setenv("ISSUER", is.URL())
}

func scriptOIDCToken(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 4 {
		ts.Fatalf("usage: oidctoken FILE REPO WORKFLOW REF [CLAIM=VALUE...]")
	}
	v, ok := scriptIssuers.Load(ts)
	if !ok {
		ts.Fatalf("oidctoken: run oidcissuer first")
	}
	is := v.(*catest.Issuer)
	claims := is.Claims(catest.Workflow{Repository: args[1], Workflow: args[2], Ref: args[3]})
	for _, kv := range args[4:] {
		k, val, _ := strings.Cut(kv, "=")
		claims[k] = val
	}
	tok, err := is.Token(claims)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(tok+"\n"), 0o600))
}

// scriptActionsJob makes the script a GitHub Actions job of REPO's
// WORKFLOW at REF: ACTIONS_ID_TOKEN_REQUEST_URL and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN name the script issuer's token service,
// as a runner sets them for a job with id-token: write.
func scriptActionsJob(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: actionsjob REPO WORKFLOW REF")
	}
	v, ok := scriptIssuers.Load(ts)
	if !ok {
		ts.Fatalf("actionsjob: run oidcissuer first")
	}
	u, tok := v.(*catest.Issuer).ActionsJob(catest.Workflow{Repository: args[0], Workflow: args[1], Ref: args[2]})
	ts.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", u)
	ts.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", tok)
}
