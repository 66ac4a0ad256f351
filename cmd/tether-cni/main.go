// Command tether-cni is a tether component that is not built yet; see README.md for
// the status of each part. It exits with status 1 so nothing mistakes it for
// a working daemon.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tether-cni: not implemented yet; see the status table in README.md")
	os.Exit(1)
}
