// Command echoexit prints its arguments, environment and directory and
// exits 7: tests/kvm checks they cross the VM boundary intact.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	for _, a := range os.Args[1:] {
		fmt.Printf("ARG=%s\n", a)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TETHER_") {
			fmt.Printf("ENV %s\n", kv)
		}
	}
	wd, _ := os.Getwd()
	fmt.Printf("CWD %s\n", wd)
	if b, err := os.ReadFile("testdata/hello.txt"); err == nil {
		fmt.Printf("TESTDATA %s", b)
	} else {
		fmt.Println("TESTDATA absent")
	}
	os.Exit(7)
}
