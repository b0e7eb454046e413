package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// A write whose headers arrived before its token was revoked, and whose
// body arrives after, is refused: the token is checked again once the body
// is read, so a revoked token cannot finish a slow write (up to the body
// timeout) after revocation took effect.
func TestRevokedDuringBody(t *testing.T) {
	ts := start(t, server.Config{})
	tok, err := tokenfile.CreateToken(ts.dir, api.RoleBuilder, "", "ci")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]json.RawMessage{"statement": statement(t, "race-1", "app.tar")})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	fmt.Fprintf(conn, "POST /api/v1/sign HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", tok, len(body))
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenfile.RevokeToken(ts.dir, "ci"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token to be refused", func() bool {
		req, _ := http.NewRequest("GET", ts.url+"/api/v1/incidents", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(msg)) != "token revoked" {
		t.Fatalf("write finished after its token was revoked: %d %s", resp.StatusCode, msg)
	}
	if n := count(t, ts); n != 0 {
		t.Errorf("%d bundles indexed from a revoked token", n)
	}
}
