package dashboard_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/dashboard"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/sso"
	"github.com/custody-dev/custody/internal/ssotest"
)

// In headless Chromium: a person signs in through hydra ("Sign in with"
// on the login page, hydra's login and consent, the callback) and reaches
// the dashboard with the role their group maps to, with MFA; without MFA
// the header says admin actions are refused; signing out ends it.
func TestBrowserSSO(t *testing.T) {
	exe := chromium(t)
	h := ssotest.StartHydra(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	p, err := sso.New(sso.Config{Issuer: h.Issuer, ClientID: "custody-dashboard", ClientSecret: "dashboard-secret",
		Roles: map[string]api.Role{"custody-admins": api.RoleAdmin, "custody-auditors": api.RoleAuditor}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.Open(context.Background(), server.Config{Dir: t.TempDir(), PublicURL: url, BatchMaxAge: 5 * time.Millisecond,
		UI: dashboard.ForServer, SSO: p})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); s.Close() })
	h.Client(t, "custody-dashboard", "dashboard-secret", url+"/ui/sso/callback")

	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Flag("headless", true),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	shots := artifactsDir(t)
	shot := func(name string) {
		t.Helper()
		if buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil {
			os.WriteFile(filepath.Join(shots, name+".jpg"), buf, 0o644)
		}
	}

	h.SetUser(ssotest.User{Subject: "alice", Email: "alice@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd", "otp"}})
	run("login page", chromedp.Navigate(url+"/ui/"), chromedp.WaitVisible("#sso"))
	if got := text("#sso"); !strings.Contains(got, h.Issuer) {
		t.Errorf("sign-in link says %q; want the issuer", got)
	}
	run("sign in through hydra", chromedp.Click("#sso"), chromedp.WaitVisible("#holder"))
	shot("sso-mfa")
	if got, want := text("#holder"), "alice@example.com · admin · MFA · via "+h.Issuer; got != want {
		t.Errorf("header says %q; want %q", got, want)
	}
	run("sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#sso"))

	h.SetUser(ssotest.User{Subject: "bob", Email: "bob@example.com", Groups: []string{"custody-admins"}, AMR: []string{"pwd"}})
	run("sign in without MFA", chromedp.Click("#sso"), chromedp.WaitVisible("#holder"))
	shot("sso-no-mfa")
	if got := text("#holder"); !strings.Contains(got, "bob@example.com · admin · no MFA: admin actions refused") {
		t.Errorf("header without MFA says %q", got)
	}
}
