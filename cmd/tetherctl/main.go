// Command tetherctl is the operator's debug and admin CLI for tether. The
// commands live in package cli; see "tetherctl --help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tether-net/tether/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], &cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
