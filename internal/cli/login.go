package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"

	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/childenv"
	"github.com/custody-dev/custody/internal/fsutil"
	"github.com/custody-dev/custody/internal/sso"
)

// openURL shows the sign-in URL: on stderr, and to $BROWSER when set.
// Tests replace it to drive the sign-in themselves.
var openURL = func(s *streams, url string) error {
	fmt.Fprintf(s.err, "Sign in at:\n  %s\n", url)
	if b := os.Getenv("BROWSER"); b != "" {
		if err := childenv.Command(context.Background(), b, url).Start(); err != nil {
			fmt.Fprintf(s.err, "couldn't start $BROWSER (%v): open the URL yourself\n", err)
		}
	}
	return nil
}

func newLoginCmd(s *streams) *cobra.Command {
	var server string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "login",
		Short: "Sign in through the organisation's identity provider (single sign-on) for commands against --server",
		Long: "login signs you in through the OIDC provider the server trusts (a loopback redirect with PKCE: the URL is\n" +
			"printed, and opened with $BROWSER when set) and keeps the session the server starts, mode 0600, under\n" +
			"$XDG_CONFIG_HOME/custody/sessions. Commands against that server use it when CUSTODY_TOKEN is not set.",
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogin(cmd.Context(), s, serverURL(server), timeout)
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the sign-in")
	return c
}

func runLogin(ctx context.Context, s *streams, server string, timeout time.Duration) error {
	if server == "" {
		return usageErr(errors.New("no server given"), "pass --server URL or set CUSTODY_SERVER")
	}
	a, err := sso.CLILogin{Server: server, Timeout: timeout, Open: func(u string) error { return openURL(s, u) }}.Login(ctx)
	var se *sso.ServerError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden || se.Status == http.StatusNotFound):
		return usageErr(fmt.Errorf("sign-in refused: %w", err), "")
	case err != nil:
		return &exitError{code: ExitUnreachable, err: fmt.Errorf("sign-in failed: %w", err)}
	}
	path, err := saveSession(server, a)
	if err != nil {
		return failErr(err, "")
	}
	mfa := "without MFA: admin and approver actions will be refused"
	if a.MFA {
		mfa = "with MFA"
	}
	roles := make([]string, len(a.Roles))
	for i, r := range a.Roles {
		roles[i] = string(r)
	}
	fmt.Fprintf(s.out, "signed in as %s via %s (%s), roles %s, until %s\nsession kept in %s\n",
		a.Identity, a.Issuer, mfa, strings.Join(roles, ","), a.Expires.UTC().Format(time.RFC3339), path)
	return nil
}

func newLogoutCmd(s *streams) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "logout",
		Short: "End the session custody login started with --server and forget it",
		Args:  argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogout(cmd.Context(), s, serverURL(server))
		},
	}
	c.Flags().StringVar(&server, "server", "", "custody server URL (default $CUSTODY_SERVER)")
	return c
}

func runLogout(ctx context.Context, s *streams, server string) error {
	if server == "" {
		return usageErr(errors.New("no server given"), "pass --server URL or set CUSTODY_SERVER")
	}
	path, err := sessionPath(server)
	if err != nil {
		return usageErr(err, "")
	}
	c, err := loadSession(server)
	if err != nil || c == nil {
		fmt.Fprintf(s.out, "not signed in to %s\n", server)
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/api/v1/sessions/end", nil)
	if err != nil {
		return usageErr(err, "")
	}
	req.Header.Set("Authorization", "Bearer "+c.Session)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return &exitError{code: ExitUnreachable, err: fmt.Errorf("couldn't end the session: %w", err)}
	}
	resp.Body.Close()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return failErr(err, "")
	}
	fmt.Fprintf(s.out, "signed out of %s (%s)\n", server, c.Identity)
	return nil
}

// cachedSession is what custody login keeps for one server.
type cachedSession struct {
	Server string `json:"server"`
	api.SessionAnswer
}

// sessionPath is where the session for server is kept.
func sessionPath(server string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("couldn't find a config directory for sessions: %w", err)
	}
	sum := sha256.Sum256([]byte(strings.TrimRight(server, "/")))
	return filepath.Join(dir, "custody", "sessions", hex.EncodeToString(sum[:8])+".json"), nil
}

// saveSession keeps a for server, mode 0600.
func saveSession(server string, a *api.SessionAnswer) (string, error) {
	path, err := sessionPath(server)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("couldn't keep the session: %w", err)
	}
	b, err := json.MarshalIndent(cachedSession{Server: strings.TrimRight(server, "/"), SessionAnswer: *a}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
		return "", fmt.Errorf("couldn't keep the session: %w", err)
	}
	return path, nil
}

// loadSession returns the session kept for server; nil when there is
// none or it expired.
func loadSession(server string) (*cachedSession, error) {
	path, err := sessionPath(server)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read the session from custody login: %w", err)
	}
	var c cachedSession
	if err := json.Unmarshal(b, &c); err != nil || c.Session == "" {
		return nil, fmt.Errorf("%s is malformed: run custody login again", path)
	}
	if !time.Now().Before(c.Expires) {
		return nil, nil
	}
	return &c, nil
}

// sessionToken is the bearer token for server: $CUSTODY_TOKEN, else the
// session custody login kept for it ("" with none).
func sessionToken(server string) string {
	if tok := os.Getenv(tokenEnv); tok != "" {
		return tok
	}
	if c, err := loadSession(server); err == nil && c != nil {
		return c.Session
	}
	return ""
}
