// Command sandboxrun runs a command in custody's build sandbox
// (internal/sandbox) exactly as a hermetic build does, for bench/rebuild:
// the current directory writable, the toolchains named by -tools and the
// paths of the -env variables read-only, the hermetic environment.
//
//	sandboxrun [-tools go] [-env GOCACHE] -- sh build.sh
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/custody-dev/custody/internal/build"
	"github.com/custody-dev/custody/internal/sandbox"
)

func main() {
	tools := flag.String("tools", "go", "comma-separated toolchains to show")
	env := flag.String("env", "", "comma-separated variables to pass (their paths shown read-only)")
	flag.Parse()
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var allow []string
	if *env != "" {
		allow = strings.Split(*env, ",")
	}
	cfg := build.HermeticSandbox(dir, dir, allow, sandbox.ToolPaths(strings.Split(*tools, ","), os.Getenv("PATH")))
	cmd, cleanup, err := sandbox.Command(context.Background(), cfg, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer cleanup()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
