// Command cmd prints the SHA-256 of each file argument using custody's
// internal/digest.File, in sha256sum's output format. It exists so
// bench/hash/run.sh can compare custody's hashing throughput with sha256sum.
package main

import (
	"fmt"
	"os"

	"github.com/custody-dev/custody/internal/digest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cmd FILE...")
		os.Exit(2)
	}
	status := 0
	for _, p := range os.Args[1:] {
		d, err := digest.File(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cmd: %v\n", err)
			status = 1
			continue
		}
		fmt.Printf("%s  %s\n", d.Hex, p)
	}
	os.Exit(status)
}
