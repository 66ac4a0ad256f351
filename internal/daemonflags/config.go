package daemonflags

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// CheckConfig is a daemon's --check-config once its configuration has
// loaded: it runs check (the files the configuration names, opened as at
// start; nil: none), writes the configuration with defaults filled in to
// stdout through write, and says on stderr that the file at path is
// valid. It returns the exit code: 0, ExitUsage when check refuses the
// configuration (its error on stderr, "name: error"), 1 when writing
// fails.
func CheckConfig(name, path string, check func() error, write func(io.Writer) error, stdout, stderr io.Writer) int {
	if check != nil {
		if err := check(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return ExitUsage
		}
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: configuration %s is valid\n", name, path)
	return 0
}

// NotifyReload returns a channel that receives after each of the signals
// sigs (a daemon's SIGHUP) until ctx ends. Signals that come while one is
// pending are folded into it, so a slow reload never blocks the signal
// handler and never runs more than once for a burst.
func NotifyReload(ctx context.Context, sigs ...os.Signal) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, sigs...)
	reload := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	return reload
}
