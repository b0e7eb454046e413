package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/sso"
)

// oidcFlags are custody serve's single sign-on flags.
type oidcFlags struct {
	issuer, clientID, secretFile, cliClientID, groupsClaim string
	roles, mfaACR                                          []string
}

func addOIDCFlags(c *cobra.Command, f *oidcFlags) {
	fl := c.Flags()
	fl.StringVar(&f.issuer, "sso-issuer", "", "sign people in through this OpenID Connect provider (issuer URL); see docs/sso.md")
	fl.StringVar(&f.clientID, "sso-client-id", "", "the dashboard's client ID at the provider (redirect URI PUBLIC-URL/ui/sso/callback)")
	fl.StringVar(&f.secretFile, "sso-client-secret-file", "", "file holding the dashboard client's secret (default $CUSTODY_SSO_CLIENT_SECRET; none: a public client, PKCE alone)")
	fl.StringVar(&f.cliClientID, "sso-cli-client-id", "", "the public client custody login uses (redirect http://127.0.0.1/callback; default --sso-client-id)")
	fl.StringVar(&f.groupsClaim, "sso-groups-claim", sso.DefaultGroupsClaim, "ID token claim holding the person's groups")
	fl.StringArrayVar(&f.roles, "sso-role", nil, "members of GROUP get ROLE: GROUP=admin|auditor|approver|deployer|builder (repeatable)")
	fl.StringArrayVar(&f.mfaACR, "sso-mfa-acr", nil, "an acr value that counts as multi-factor authentication besides amr (repeatable)")
}

// provider turns the flags into the server's sign-in provider (nil: no
// --sso-issuer).
func (f *oidcFlags) provider() (*sso.Provider, error) {
	if f.issuer == "" {
		if f.clientID != "" || len(f.roles) > 0 {
			return nil, usageErr(errors.New("--sso-client-id and --sso-role need --sso-issuer"), "")
		}
		return nil, nil
	}
	cfg := sso.Config{Issuer: f.issuer, ClientID: f.clientID, CLIClientID: f.cliClientID, GroupsClaim: f.groupsClaim,
		MFAACR: f.mfaACR, Roles: map[string]api.Role{}}
	cfg.ClientSecret = os.Getenv("CUSTODY_SSO_CLIENT_SECRET")
	if f.secretFile != "" {
		b, err := readLimited(f.secretFile, 4096)
		if err != nil {
			return nil, usageErr(fmt.Errorf("couldn't read --sso-client-secret-file: %w", err), "")
		}
		cfg.ClientSecret = strings.TrimSpace(string(b))
	}
	for _, kv := range f.roles {
		g, r, ok := strings.Cut(kv, "=")
		role, err := api.ParseRole(r)
		if !ok || g == "" || err != nil {
			return nil, usageErr(fmt.Errorf("--sso-role %q is not GROUP=ROLE (roles: admin, auditor, approver, deployer, builder)", kv), "")
		}
		cfg.Roles[g] = role
	}
	p, err := sso.New(cfg)
	if err != nil {
		return nil, usageErr(err, "custody serve --sso-issuer URL --sso-client-id ID --sso-role GROUP=ROLE")
	}
	return p, nil
}
