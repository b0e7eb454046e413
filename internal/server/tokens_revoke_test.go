package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// A name that looks like another token's ID cannot make a revocation hit
// the wrong token: such names are refused at creation; in an older or
// hand-edited file, a name matching one token and an ID matching another
// is refused as ambiguous; and the token API revokes the very token its
// audit entry names.
func TestRevokeNameLikeID(t *testing.T) {
	ts := start(t, server.Config{})
	victim, st, err := tokenfile.NewToken(ts.dir, tokenfile.TokenSpec{Role: api.RoleBuilder, Name: "stolen"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokenfile.NewToken(ts.dir, tokenfile.TokenSpec{Role: api.RoleBuilder, Name: st.ID}); err == nil {
		t.Errorf("a token named like the ID %s was created", st.ID)
	}
	// The same name in a hand-edited file.
	appendLine(t, ts.dir+"/tokens", fmt.Sprintf(`{"sha256":"%s","role":"auditor","name":"%s","created":"2026-01-01T00:00:00Z"}`+"\n",
		strings.Repeat("0", 64), st.ID))
	if _, err := tokenfile.RevokeToken(ts.dir, st.ID); !errors.Is(err, tokenfile.ErrTokenAmbiguous) {
		t.Errorf("revoking %s, a name of one token and the ID of another: %v, want ambiguous", st.ID, err)
	}
	got, err := newClient(t, ts, api.RoleAdmin).RevokeToken(context.Background(), "stolen")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != st.ID || got.Name != "stolen" {
		t.Errorf("API revoked %s (%s), want %s (stolen)", got.ID, got.Name, st.ID)
	}
	l, err := tokenfile.ListTokens(ts.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range l.Tokens {
		switch tk.ID {
		case st.ID:
			if tk.State(time.Now()) != "revoked" {
				t.Errorf("token stolen is %s after the API revoked it", tk.State(time.Now()))
			}
		case strings.Repeat("0", api.TokenIDLen):
			if tk.State(time.Now()) != "active" {
				t.Errorf("token named %s is %s: the API revoked the wrong token", tk.Name, tk.State(time.Now()))
			}
		}
	}
	c, err := newClientTok(ts, victim)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token to be refused", func() bool {
		_, err := c.Incidents(context.Background(), store.IncidentQuery{})
		return err != nil && strings.Contains(err.Error(), "token revoked")
	})
}

// A token listed twice in the tokens file (by hand) is revoked by revoking
// either line, by name or ID: the server refuses a token any of whose
// lines is revoked or expired.
func TestRevokeDuplicateLine(t *testing.T) {
	ts := start(t, server.Config{})
	tok, st, err := tokenfile.NewToken(ts.dir, tokenfile.TokenSpec{Role: api.RoleAuditor, Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := readTokensLine(ts.dir, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	appendLine(t, ts.dir+"/tokens", strings.Replace(b, `"name":"first"`, `"name":"second"`, 1)+"\n")
	if _, err := tokenfile.RevokeToken(ts.dir, "second"); err != nil {
		t.Fatal(err)
	}
	c, err := newClientTok(ts, tok)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a token revoked on its second line to be refused", func() bool {
		_, err := c.Incidents(context.Background(), store.IncidentQuery{})
		return err != nil && strings.Contains(err.Error(), "token revoked")
	})

	tok2, st2, err := tokenfile.NewToken(ts.dir, tokenfile.TokenSpec{Role: api.RoleAuditor, Name: "third"})
	if err != nil {
		t.Fatal(err)
	}
	b, err = readTokensLine(ts.dir, st2.ID)
	if err != nil {
		t.Fatal(err)
	}
	appendLine(t, ts.dir+"/tokens", b+"\n")
	if _, err := tokenfile.RevokeToken(ts.dir, st2.ID); err != nil {
		t.Fatalf("revoking a token listed twice by its ID: %v", err)
	}
	c2, err := newClientTok(ts, tok2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a token listed twice and revoked by ID to be refused", func() bool {
		_, err := c2.Incidents(context.Background(), store.IncidentQuery{})
		return err != nil && strings.Contains(err.Error(), "token revoked")
	})
}

func newClientTok(ts *testServer, tok string) (*client.Client, error) {
	return client.New(ts.url, tok)
}

// readTokensLine returns the line of the tokens file of dir for the token
// whose ID is id.
func readTokensLine(dir, id string) (string, error) {
	b, err := os.ReadFile(dir + "/tokens")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"sha256":"`+id) {
			return l, nil
		}
	}
	return "", fmt.Errorf("no line for token %s", id)
}
