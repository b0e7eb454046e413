package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// tokenWhere is how a token command reaches the tokens: a data directory,
// or a server (admin token) when none is given.
type tokenWhere struct {
	data, server string
}

func (w *tokenWhere) flags(c *cobra.Command) {
	c.Flags().StringVar(&w.data, "data", "", "data directory of custody serve")
	c.Flags().StringVar(&w.server, "server", "", "custody server to ask instead (admin token in CUSTODY_TOKEN; default $CUSTODY_SERVER)")
}

// remote returns the server to ask, or "" for the data directory.
func (w *tokenWhere) remote() (string, error) {
	if w.data != "" && w.server != "" {
		return "", usageErr(errors.New("give either --data or --server, not both"), "")
	}
	url := sourceServer(w.server, w.data)
	if w.data == "" && url == "" {
		return "", usageErr(errors.New("--data or --server is required"), "custody token list --data ./custody-data")
	}
	return url, nil
}

func newTokenCmd(s *streams) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Create, list and revoke the API tokens of custody serve",
		Long: "Tokens are stored as their SHA-256 in DATA/tokens. A running server accepts a new token at once and refuses\n" +
			"a revoked or expired one within a second, ending its dashboard sessions. Creating a token needs the data\n" +
			"directory; list and revoke also work against a server with an admin token (--server)."}
	c.AddCommand(newTokenCreateCmd(s), newTokenListCmd(s), newTokenRevokeCmd(s))
	return c
}

func newTokenCreateCmd(s *streams) *cobra.Command {
	var dataDir, db, role, key, name, expires string
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a token; prints it on the last line, once (only its hash is stored)",
		Args:  argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (dataDir == "") == (db == "") || role == "" {
				return usageErr(errors.New("--role and one of --data or --db are required"), "custody token create --role builder --name ci --data ./custody-data")
			}
			r, err := api.ParseRole(role)
			if err != nil {
				return usageErr(err, "")
			}
			spec := tokenfile.TokenSpec{Role: r, Key: key, Name: name}
			if expires != "" {
				if spec.Expires, err = parseExpiry(expires, time.Now()); err != nil {
					return usageErr(err, "--expires takes a duration (30d, 12h, 90m) or an RFC 3339 time")
				}
			}
			tok, st, err := newToken(cmd.Context(), dataDir, db, spec)
			if errors.Is(err, tokenfile.ErrTokenExists) {
				return failErr(err, "custody token list --data DATA (or --server URL)")
			}
			if err != nil {
				return usageErr(err, "")
			}
			exp := "never expires"
			if !st.Expires.IsZero() {
				exp = "expires " + st.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(s.err, "created %s token %q (ID %s, %s); it is shown once, store it now\n", st.Role, st.Name, st.ID, exp)
			fmt.Fprintln(s.out, tok)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dataDir, "data", "", "data directory of custody serve")
	f.StringVar(&db, "db", "", "PostgreSQL DSN of replicated custody serve (serve --db), whose tokens live there")
	f.StringVar(&role, "role", "", "builder, approver, deployer, auditor or admin")
	f.StringVar(&key, "key", "", "builder key the token may sign with (builder tokens; default \"builder\")")
	f.StringVar(&name, "name", "", "unique name of the token, used by list, revoke and the audit trail (default ROLE-ID)")
	f.StringVar(&expires, "expires", "", "when the token stops working: a duration such as 30d or 12h, or an RFC 3339 time (default never)")
	return c
}

// newToken creates a token in the data directory, or in the state of
// replicas in PostgreSQL.
func newToken(ctx context.Context, dataDir, db string, spec tokenfile.TokenSpec) (string, api.TokenStatus, error) {
	if db == "" {
		return tokenfile.NewToken(dataDir, spec)
	}
	pg, err := store.OpenPostgres(ctx, db)
	if err != nil {
		return "", api.TokenStatus{}, err
	}
	defer pg.Close()
	st, err := pg.State(ctx)
	if err != nil {
		return "", api.TokenStatus{}, err
	}
	return tokenfile.NewTokenIn(ctx, st, spec)
}

// parseExpiry reads --expires: a positive duration from now (Go syntax, or
// N days as "30d"), or an RFC 3339 time.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 36500 {
			return time.Time{}, fmt.Errorf("--expires %q is not a positive number of days", v)
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %q is not positive", v)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q is neither a duration nor an RFC 3339 time", v)
	}
	return t, nil
}

func newTokenListCmd(s *streams) *cobra.Command {
	var where tokenWhere
	var jsonOut bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List tokens: name, role, created, expires, last used, state (never a secret)",
		Args:  argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := where.remote()
			if err != nil {
				return err
			}
			var l *api.TokenList
			if url == "" {
				l, err = tokenfile.ListTokens(where.data)
			} else {
				cl, cerr := newClient(url)
				if cerr != nil {
					return cerr
				}
				l, err = cl.Tokens(cmd.Context())
				err = remoteErr(err, "list tokens")
			}
			if err != nil {
				return err
			}
			for _, sk := range l.Skipped {
				fmt.Fprintf(s.err, "custody: warning: tokens file %s: skipped (the server skips it too)\n", oneLine(sk))
			}
			if jsonOut {
				return writeJSON(s.out, l)
			}
			writeTokenTable(s.out, l.Tokens, time.Now())
			return nil
		},
	}
	where.flags(c)
	c.Flags().BoolVar(&jsonOut, "json", false, "print the list as JSON")
	return c
}

// writeTokenTable prints tokens as a table; a time never set is "-".
func writeTokenTable(w io.Writer, toks []api.TokenStatus, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tID\tCREATED\tEXPIRES\tLAST USED\tSTATE")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, t := range toks {
		state := t.State(now)
		if state == "revoked" {
			state += " " + ts(t.Revoked)
		}
		role := string(t.Role)
		if t.Key != "" && t.Key != api.DefaultBuilderKey {
			role += " (key " + t.Key + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(t.Name), role, t.ID, ts(t.Created), ts(t.Expires), ts(t.LastUsed), state)
	}
	tw.Flush()
}

func newTokenRevokeCmd(s *streams) *cobra.Command {
	var where tokenWhere
	c := &cobra.Command{
		Use:   "revoke NAME-OR-ID",
		Short: "Revoke a token: a running server refuses it within a second and ends its dashboard sessions",
		Args:  argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url, err := where.remote()
			if err != nil {
				return err
			}
			var st *api.TokenStatus
			if url == "" {
				var v api.TokenStatus
				v, err = tokenfile.RevokeToken(where.data, args[0])
				st = &v
				switch {
				case errors.Is(err, tokenfile.ErrTokenNotFound):
					return usageErr(err, "custody token list --data "+where.data)
				case errors.Is(err, tokenfile.ErrTokenAmbiguous):
					return failErr(err, "")
				}
			} else {
				cl, cerr := newClient(url)
				if cerr != nil {
					return cerr
				}
				st, err = cl.RevokeToken(cmd.Context(), args[0])
				err = remoteErr(err, "revoke token")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "revoked %s token %q (ID %s)\n", st.Role, st.Name, st.ID)
			return nil
		},
	}
	where.flags(c)
	return c
}
