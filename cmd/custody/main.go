// Command custody keeps a verifiable chain of custody for software artifacts.
// See the README for usage; internal/cli holds the commands.
package main

import (
	"os"

	"github.com/custody-dev/custody/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
