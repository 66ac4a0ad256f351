package ovs_test

import (
	"context"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/softswitch"
)

// TestWatchRepairsDrift runs the level-triggered loop tetherd runs: Watch
// marks ports dirty, the loop Checks and Ensures them. An operator's
// retag and del-port behind tether's back are undone without any call
// from the test.
func TestWatchRepairsDrift(t *testing.T) {
	l := newLab(t, "netdev")
	p := softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10, RateKbps: 2000}
	l.ensure(t, p)

	ctx, cancel := context.WithCancel(l.ctx)
	repaired := make(chan []softswitch.Difference, 16)
	dirty := make(chan string, 64)
	watchErr := make(chan error, 1)
	loopDone := make(chan struct{})
	// The loop ends before the test does (it reports with t.Errorf).
	defer func() { cancel(); <-loopDone }()
	go func() {
		watchErr <- l.sw.Watch(ctx, func(port string) {
			select {
			case dirty <- port:
			case <-ctx.Done():
			}
		})
	}()
	watching := make(chan struct{}) // closed at Watch's first hint: the monitor is in place
	go func() {
		defer close(loopDone)
		first := watching
		for {
			select {
			case <-ctx.Done():
				return
			case port := <-dirty:
				if port == "" && first != nil {
					close(first)
					first = nil
				}
				if port != vmPort && port != "" {
					continue
				}
				d, err := l.sw.Check(ctx, p)
				if err != nil || d == nil {
					continue
				}
				if err := l.sw.Ensure(ctx, p); err != nil {
					t.Errorf("reconcile Ensure: %v", err)
					continue
				}
				select {
				case repaired <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	select {
	case <-watching:
	case err := <-watchErr:
		t.Fatalf("Watch: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Watch gave no first hint within 30s")
	}

	for _, tc := range []struct {
		what  string
		args  []string
		field string
	}{
		{"retag", []string{"set", "Port", vmPort, "tag=99"}, "VID"},
		{"rate", []string{"set", "Interface", vmPort, "ingress_policing_rate=1"}, "RateKbps"},
		{"del-port", []string{"del-port", l.bridge, vmPort}, "present"},
	} {
		l.ovs.Vsctl(tc.args...)
		select {
		case d := <-repaired:
			if !hasField(d, tc.field) {
				t.Errorf("%s: repaired %v, want a %s difference", tc.what, d, tc.field)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: not repaired within 15s", tc.what)
		}
		if d := l.check(t, p); d != nil {
			t.Errorf("%s: after repair, Check = %v", tc.what, d)
		}
	}
	cancel()
	if err := <-watchErr; err != nil {
		t.Errorf("Watch: %v", err)
	}
}
