// Command exec runs a program inside the kernel VM of tests/kvm and exits
// with its status. It is meant for `go test -exec`:
//
//	CGO_ENABLED=0 go test -c -o /tmp/x.test ./somepkg   # or:
//	go build -o /tmp/kvmexec ./tests/kvm/exec
//	CGO_ENABLED=0 go test -exec /tmp/kvmexec ./somepkg
//
// The test binary must be static (CGO_ENABLED=0). Inside the VM it runs as
// root in / with TETHER_KVM=1 and, from the host environment, only
// TETHER_*, GOTRACEBACK, GODEBUG and GOMAXPROCS. The current directory's
// testdata/ (go test runs the binary in the package directory) is copied to
// /pkg/testdata and the binary runs in /pkg; nothing else of the host's
// file system is there, so ../ paths out of testdata fail.
//
// The boot is bounded by $TETHER_KVM_TIMEOUT (a Go duration), else by the
// binary's -test.timeout plus one minute, else 10 minutes. Exit status 125
// means the harness itself failed (cache not prepared, QEMU error, timeout).
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tether-net/tether/tests/kvm"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: exec TEST-BINARY [ARGS...]")
		os.Exit(125)
	}
	bin, args := os.Args[1], os.Args[2:]
	ctx, cancel := context.WithTimeout(context.Background(), timeout(args))
	defer cancel()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TETHER_") && k != "TETHER_KVM_CACHE" ||
			k == "GOTRACEBACK" || k == "GODEBUG" || k == "GOMAXPROCS" {
			env = append(env, kv)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvm exec:", err)
		os.Exit(125)
	}
	code, _, err := kvm.RunOptions(ctx, kvm.Options{Env: env, Output: os.Stdout, Dir: wd}, bin, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvm exec:", err)
		os.Exit(125)
	}
	os.Exit(code)
}

func timeout(args []string) time.Duration {
	if s := os.Getenv("TETHER_KVM_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
	}
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "-test.timeout=")
		if !ok && a == "-test.timeout" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				return d + time.Minute
			}
		}
	}
	return 10 * time.Minute
}
