package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientDoesNotLinkServer: the client talks to a server over HTTP and
// shares only the wire types (package api) with it; importing the server,
// its index or anything that links them would make every client command
// carry SQLite, PostgreSQL and the log's storage. The same holds for the
// admission gate, which runs the client.
func TestClientDoesNotLinkServer(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to list dependencies")
	}
	const mod = "github.com/custody-dev/custody/"
	forbidden := []string{mod + "internal/server", mod + "internal/store", mod + "internal/dashboard"}
	for _, pkg := range []string{"./", "../gate"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f {
					t.Errorf("%s links %s", pkg, f)
				}
			}
		}
	}
}
