package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/httplimit"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
)

// startLimited runs a server as custody serve does: behind httplimit's
// timeouts and connection cap, on 127.0.0.1.
func startLimited(t *testing.T, cfg server.Config, o httplimit.Options) (*testServer, *httplimit.Server) {
	t.Helper()
	var hs *httplimit.Server
	ts := startWith(t, cfg, func(h http.Handler, ln net.Listener) func() {
		hs = httplimit.New(h, o)
		go hs.Serve(ln)
		return func() { hs.Close() }
	})
	return ts, hs
}

// slowClient sends a POST's headers and the start of its body, and then
// nothing.
func slowClient(t *testing.T, ts *testServer, path, token string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: 1000\r\n\r\n{\"statement\":", path, token)
	return c, bufio.NewReader(c)
}

// waitConns waits until the server holds at least n connections.
func waitConns(t *testing.T, hs *httplimit.Server, n int) {
	t.Helper()
	for i := 0; ; i++ {
		open, _ := hs.Conns()
		if open >= n {
			return
		}
		if i > 3000 {
			t.Fatalf("server holds %d connections, want %d", open, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Issue 11 item 4: 256 builder connections that send headers and no body
// held every write slot, and the admin's incident got 503.
func TestSlowBuildersDoNotStarveWrites(t *testing.T) {
	const slow = 300 // more than DefaultMaxInflight
	ts, hs := startLimited(t, server.Config{}, httplimit.Options{BodyTimeout: time.Hour, MaxConns: 2 * slow})
	builder := ts.tokens[api.RoleBuilder]
	var conns []net.Conn
	for i := range slow {
		path := "/api/v1/sign"
		if i%2 == 1 {
			path = "/api/v1/evidence"
		}
		c, _ := slowClient(t, ts, path, builder)
		conns = append(conns, c)
	}
	waitConns(t, hs, slow)

	body := fmt.Sprintf(`{"incident":%q,"event":"opened","actor":"alice","time":%q,"detail":"builder key compromised"}`,
		storetest.IncidentID(7), time.Now().UTC().Format(time.RFC3339Nano))
	if a := do(t, ts, http.MethodPost, "/api/v1/incidents", ts.tokens[api.RoleAdmin], []byte(body)); a.status/100 != 2 {
		t.Fatalf("admin's incident while %d builders stall: %d %q", slow, a.status, a.body)
	}
	// Writes of other builders go through too: a stalled body holds no
	// write slot.
	if a := do(t, ts, http.MethodPost, "/api/v1/sign", builder, signRequest(t, "build-during-stall")); a.status != http.StatusOK {
		t.Fatalf("builder's sign while %d builders stall: %d %q", slow, a.status, a.body)
	}
	recs, err := ts.Index().Incidents(context.Background(), store.IncidentQuery{Incident: storetest.IncidentID(7)})
	if err != nil || len(recs) != 1 {
		t.Fatalf("incident records %v, %v", recs, err)
	}
	// The stalled clients were only waited for, not answered.
	for _, c := range conns[:5] {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("a stalled client got an answer: %v", err)
		}
	}
}

func TestSlowClientsCutOff(t *testing.T) {
	ts, hs := startLimited(t, server.Config{}, httplimit.Options{HeaderTimeout: 300 * time.Millisecond,
		BodyTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	builder := ts.tokens[api.RoleBuilder]

	// Bodies that never come: each gets one line of 408 and its
	// connection closed.
	type slowConn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var bodies []slowConn
	for range 20 {
		c, br := slowClient(t, ts, "/api/v1/sign", builder)
		bodies = append(bodies, slowConn{c, br})
	}
	for i, sc := range bodies {
		sc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(sc.br, nil)
		if err != nil {
			t.Fatalf("slow body %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || strings.Count(string(b), "\n") != 1 {
			t.Errorf("slow body %d: %d %q, want 408 and one line", i, resp.StatusCode, b)
		}
		if _, err := io.Copy(io.Discard, sc.br); err != nil {
			t.Errorf("slow body %d: connection not closed: %v", i, err)
		}
	}

	// Headers that never end, and idle keep-alive connections: closed.
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("slow headers: connection not closed: %v", err)
	}
	idle, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	idle.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Errorf("idle keep-alive: connection not closed: %v", err)
	}
	// Nothing stalled was stored, and the server still answers.
	if n := count(t, ts); n != 0 {
		t.Errorf("index holds %d records", n)
	}
	for open, _ := hs.Conns(); open > 0; open, _ = hs.Conns() {
		time.Sleep(10 * time.Millisecond)
	}
	if a := do(t, ts, http.MethodPost, "/api/v1/sign", builder, signRequest(t, "after-stall")); a.status != http.StatusOK {
		t.Errorf("sign after the stalls: %d %q", a.status, a.body)
	}
}

// signRequest is a POST /api/v1/sign body for a build.
func signRequest(t *testing.T, buildID string) []byte {
	return []byte(`{"statement":` + string(statement(t, buildID, buildID+".bin")) + `}`)
}
