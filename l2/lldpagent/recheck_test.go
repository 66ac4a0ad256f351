package lldpagent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// TestAgentRecheck: an LLDPDU that Check refused, handed back with
// Recheck once Check accepts it, makes its sender the neighbour without
// another LLDPDU from it; while Check still refuses, Recheck adds none.
func TestAgentRecheck(t *testing.T) {
	connA, connB := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
	clock := newFakeClock(t0) // frozen: A sends its first LLDPDUs only
	var (
		mu      sync.Mutex
		allow   bool
		refused []byte
	)
	errRefused := errors.New("not yet")
	check := func(_ context.Context, frame []byte, _ *wire.LLDPDU) (CheckResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if !allow {
			refused = slices.Clone(frame)
			return CheckResult{}, errRefused
		}
		return CheckResult{}, nil
	}
	events := make(chan Event, 100)
	a, err := New(connA, Config{Build: newInfo(macA, "p0", "alpha").build, Clock: clock, Logger: quiet(), TxInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(connB, Config{Build: newInfo(macB, "p1", "beta").build, Clock: clock, Logger: quiet(), TxInterval: time.Hour,
		Check: check, OnEvent: func(ev Event) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	go b.Run(ctx)
	waitFor(t, func() bool { return b.Stats().Rejected > 0 && a.Stats().FramesOut > 0 })
	time.Sleep(50 * time.Millisecond) // let A's start settle
	sent, rejected := a.Stats().FramesOut, b.Stats().Rejected

	mu.Lock()
	frame := refused
	mu.Unlock()
	b.Recheck(frame)
	waitFor(t, func() bool { return b.Stats().Rejected == rejected+1 })
	if len(b.Neighbors()) != 0 {
		t.Fatal("a neighbour from a frame Check still refuses")
	}

	mu.Lock()
	allow = true
	frame = refused
	mu.Unlock()
	b.Recheck(frame)
	ev := nextEvent(t, events)
	if ev.Kind != NeighborAdded || ev.Neighbor.SystemName() != "alpha" || ev.Neighbor.Source != macA {
		t.Fatalf("event %v %+v", ev.Kind, ev.Neighbor)
	}
	if n := a.Stats().FramesOut; n != sent {
		t.Fatalf("A sent %d LLDPDUs meanwhile", n-sent)
	}
	if s := b.Stats(); s.FramesIn != 1 || s.Rejected != rejected+1 {
		t.Fatalf("b stats %+v", s)
	}
}
