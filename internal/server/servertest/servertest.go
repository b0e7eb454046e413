// Package servertest runs a custody server inside a test: on 127.0.0.1, in
// a temporary data directory, on the index the test gives, with clients of
// any role. Tests of the server's clients (deploy.ServerHistory,
// incident.ServerLedger, ...) use it to check a server backend the way
// they check a local one.
package servertest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/custody-dev/custody/internal/api"
	"github.com/custody-dev/custody/internal/client"
	"github.com/custody-dev/custody/internal/server"
	"github.com/custody-dev/custody/internal/store"
	"github.com/custody-dev/custody/internal/store/storetest"
	"github.com/custody-dev/custody/internal/tokenfile"
)

// Server is a running server of a test.
type Server struct {
	*server.Server
	URL string
	Dir string
}

// Start opens a server on index (nil: the server's default SQLite index)
// and serves it until the test ends.
func Start(t testing.TB, index server.Index) *Server {
	t.Helper()
	dir := t.TempDir()
	hs := httptest.NewUnstartedServer(nil)
	url := "http://" + hs.Listener.Addr().String()
	s, err := server.Open(context.Background(), server.Config{Dir: dir, PublicURL: url, Index: index, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		hs.Close()
		t.Fatalf("couldn't open the server: %v", err)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &Server{Server: s, URL: url, Dir: dir}
}

// Client returns a client of the server with a new token of role, its
// checkpoints in a temporary directory.
func (s *Server) Client(t testing.TB, role api.Role) *client.Client {
	t.Helper()
	tok, err := tokenfile.CreateToken(s.Dir, role, "", "test "+string(role))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.URL, tok, client.WithCheckpointDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Backend is an index backend a server can run on.
type Backend struct {
	Name string
	// Open returns a new, empty index, closed when the test ends (nil:
	// the server's default SQLite index).
	Open func(t *testing.T) server.Index
}

// Backends are the index backends to run a server's clients against:
// SQLite (the default), store.Memory and PostgreSQL (skipped unless
// CUSTODY_TEST_POSTGRES is set, see scripts/postgres).
func Backends() []Backend {
	return []Backend{
		{"sqlite", func(*testing.T) server.Index { return nil }},
		{"memory", func(*testing.T) server.Index { return new(store.Memory) }},
		{"postgres", func(t *testing.T) server.Index {
			pg := storetest.OpenPostgres(t)
			t.Cleanup(func() { pg.Close() })
			return pg
		}},
	}
}
