// Command reproducible prints a greeting. Built with
// `go build -trimpath -ldflags=-buildid=` it rebuilds bit for bit: no
// paths, no build ID, no time, no network, no dependencies.
package main

import "fmt"

func main() { fmt.Println("hello from a reproducible build") }
