// Command vulnerable depends on golang.org/x/text v0.3.6, which
// GO-2021-0113 (CVE-2021-38561, fixed in v0.3.7) affects.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	tag, err := language.Parse("en-US")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(tag)
}
