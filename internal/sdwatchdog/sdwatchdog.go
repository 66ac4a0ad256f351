// Package sdwatchdog pets systemd's watchdog for tether's daemons
// (WatchdogSec= in their units): one goroutine sends WATCHDOG=1 at half the
// interval systemd asks for, while the daemon lives.
package sdwatchdog

import (
	"context"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Start pets the watchdog every half interval until ctx ends or stop is
// called; outside systemd, or without WatchdogSec=, it does nothing.
func Start(ctx context.Context) (stop func()) {
	interval, _ := sdaemon.SdWatchdogEnabled(false)
	return start(ctx, interval, func() { _, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyWatchdog) })
}

// start runs pet every interval/2; interval <= 0 runs nothing.
func start(ctx context.Context, interval time.Duration, pet func()) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pet()
			}
		}
	}()
	return func() { cancel(); <-done }
}
