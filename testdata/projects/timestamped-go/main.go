// Command timestamped prints when it was built. The build time is linked
// in by build.sh, so no two builds are the same: custody rebuild must catch
// it.
package main

import "fmt"

var built = "unknown"

func main() { fmt.Println("built at", built) }
