// Command custody keeps a verifiable chain of custody for software artifacts.
// See the README for usage; internal/cli holds the commands.
package main

import (
	"os"

	"github.com/custody-dev/custody/internal/cli"
	"github.com/custody-dev/custody/internal/gcpolicy"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "verify" {
		// One verification, then exit: as custody-verify (docs/edge.md).
		// Not for serve or any command that keeps running.
		gcpolicy.ShortLived()
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
