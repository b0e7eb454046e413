package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"custody": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
		// custody-exit N ARGS... runs custody and succeeds only when it exits with N.
		"custody-exit": func() {
			want, err := strconv.Atoi(os.Args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "custody-exit: first argument must be the expected exit code")
				os.Exit(100)
			}
			if got := Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr); got != want {
				fmt.Fprintf(os.Stderr, "custody-exit: want exit code %d, got %d\n", want, got)
				os.Exit(101)
			}
			os.Exit(0)
		},
	})
}

// portsGiven holds the ports freePort has handed out in this process.
var portsGiven struct {
	sync.Mutex
	m map[int]bool
}

// freePort returns a port of 127.0.0.1 that nothing listens on and that no
// other script of this run was given. The scripts run in parallel and bind
// their port only later (custody serve), so the kernel may hand a port
// just closed to the next script's Setup: that script's server would then
// fail to bind, or its waitserver would find the other script's server.
func freePort() (int, error) {
	portsGiven.Lock()
	defer portsGiven.Unlock()
	if portsGiven.m == nil {
		portsGiven.m = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !portsGiven.m[port] {
			portsGiven.m[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no port that was not already given to another script")
}

// goEnv holds the Go toolchain's cache locations, read once.
var goEnv = map[string]string{}

func TestScripts(t *testing.T) {
	loadGoEnv()
	startScriptRegistries(t)
	corpus, err := filepath.Abs("../../testdata/corpus")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:       "testdata/script",
		Condition: scriptCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"pushimage":  pushImageCmd,
			"hookserver": scriptHookServer,
			"waitlines":  scriptWaitLines,
			// envfile NAME FILE sets NAME to the last non-empty line of FILE.
			"envfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: envfile NAME FILE")
				}
				lines := strings.Split(strings.TrimSpace(ts.ReadFile(args[1])), "\n")
				ts.Setenv(args[0], strings.TrimSpace(lines[len(lines)-1]))
			},
			// gencert writes cert.pem and key.pem: a self-signed TLS
			// certificate for 127.0.0.1.
			"gencert": func(ts *testscript.TestScript, neg bool, args []string) {
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				ts.Check(err)
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "custody test"},
					NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
					IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
				ts.Check(err)
				kder, err := x509.MarshalPKCS8PrivateKey(key)
				ts.Check(err)
				ts.Check(os.WriteFile(ts.MkAbs("cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
				ts.Check(os.WriteFile(ts.MkAbs("key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
			},
			// waitstatus CODE URL [TOKEN] waits until a GET of URL, with
			// TOKEN as bearer token, is answered CODE (a revoked token's
			// 401): a change a running server takes up soon, not at once.
			"waitstatus": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 || len(args) > 3 {
					ts.Fatalf("usage: waitstatus CODE URL [TOKEN]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				last := 0
				for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					req, err := http.NewRequest("GET", args[1], nil)
					ts.Check(err)
					if len(args) == 3 {
						req.Header.Set("Authorization", "Bearer "+args[2])
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						continue
					}
					resp.Body.Close()
					if last = resp.StatusCode; last == want {
						return
					}
				}
				ts.Fatalf("GET %s: still %d, want %d", args[1], last, want)
			},
			// oidcissuer starts a GitHub-Actions-shaped OIDC issuer on
			// loopback for the script and sets $ISSUER to its URL.
			"oidcissuer": scriptOIDCIssuer,
			// oidctoken FILE REPO WORKFLOW REF [CLAIM=VALUE...] writes an
			// ID token of the script's issuer for that job.
			"oidctoken": scriptOIDCToken,
			// actionsjob REPO WORKFLOW REF sets the GitHub Actions token
			// service variables of a job of REPO's WORKFLOW at REF.
			"actionsjob": scriptActionsJob,
			// waitserver URL waits until custody serve answers /healthz.
			"waitserver": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: waitserver URL")
				}
				hc := http.DefaultClient
				if ca := ts.Getenv("SSL_CERT_FILE"); ca != "" {
					pool := x509.NewCertPool()
					pool.AppendCertsFromPEM([]byte(ts.ReadFile(ca)))
					hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				}
				deadline := time.Now().Add(60 * time.Second)
				for time.Now().Before(deadline) {
					resp, err := hc.Get(args[0] + "/healthz")
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
				ts.Fatalf("server at %s did not come up", args[0])
			},
		},
		Setup: scriptSetup(corpus),
	})
}

// scriptSetup prepares each script's environment: a free port, a key
// password, a git identity, HOME outside the work tree, the real Go caches.
func scriptSetup(corpus string) func(env *testscript.Env) error {
	return func(env *testscript.Env) error {
		env.Setenv("CORPUS", corpus)
		// A free port for scripts that start custody serve.
		port, err := freePort()
		if err != nil {
			return err
		}
		env.Setenv("FREEPORT", strconv.Itoa(port))
		env.Setenv("CUSTODY_PASSWORD", "correct horse battery staple")
		env.Setenv("GIT_AUTHOR_NAME", "Test Author")
		env.Setenv("GIT_AUTHOR_EMAIL", "author@example.com")
		env.Setenv("GIT_COMMITTER_NAME", "Test Author")
		env.Setenv("GIT_COMMITTER_EMAIL", "author@example.com")
		env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
		// HOME outside the work tree: tools the build probes (go, rustup)
		// write there, and the script's git repository must stay clean.
		home := env.WorkDir + "-home"
		if err := os.MkdirAll(home, 0o755); err != nil {
			return err
		}
		env.Setenv("HOME", home)
		// Keep the real Go caches: HOME moved, and a script that builds
		// Go code should not start from an empty cache.
		for k, v := range goEnv {
			env.Setenv(k, v)
		}
		pkcs11ScriptEnv(env)
		registryScriptEnv(env)
		cosignScriptEnv(env)
		return nil
	}
}
