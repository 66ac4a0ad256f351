package lldpagent

import (
	"context"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// TestAgentForget: Forget removes the neighbours its predicate selects at
// once, long before their TTL, with a NeighborRemoved event and counted as
// Removed and Deletes; a predicate that selects none removes none; the
// neighbour's next LLDPDU adds it again as a new neighbour.
func TestAgentForget(t *testing.T) {
	connA, connB := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
	clock := newFakeClock(t0) // frozen: no neighbour ages out
	keyA := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	check := func(context.Context, []byte, *wire.LLDPDU) (CheckResult, error) {
		return CheckResult{Signed: true, KeyID: keyA, Counter: 1}, nil
	}
	events := make(chan Event, 100)
	infoA := newInfo(macA, "p0", "alpha")
	a, err := New(connA, Config{Build: infoA.build, Clock: clock, Logger: quiet(), TxInterval: time.Hour})
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
	if ev := nextEvent(t, events); ev.Kind != NeighborAdded || ev.Neighbor.SystemName() != "alpha" {
		t.Fatalf("event %v %+v", ev.Kind, ev.Neighbor)
	}

	// Another key, then a predicate that selects none: nothing removed.
	b.ForgetKey([8]byte{9})
	seen := make(chan string, 1)
	b.Forget(func(n *Neighbor) bool {
		seen <- n.SystemName()
		return false
	})
	select {
	case name := <-seen:
		if name != "alpha" {
			t.Fatalf("predicate saw %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Forget's predicate not called within 5s")
	}
	if ns := b.Neighbors(); len(ns) != 1 {
		t.Fatalf("%d neighbours after Forget selected none", len(ns))
	}
	select {
	case ev := <-events:
		t.Fatalf("event %v after Forget selected none", ev.Kind)
	default:
	}

	b.ForgetKey(keyA)
	ev := nextEvent(t, events)
	if ev.Kind != NeighborRemoved || ev.Kind.String() != "removed" || ev.Port != "p1" ||
		ev.Neighbor.SystemName() != "alpha" || ev.Neighbor.Check.KeyID != keyA {
		t.Fatalf("event %v %+v", ev.Kind, ev.Neighbor)
	}
	// A sends a second LLDPDU when it first sees B (fast transmit); when
	// that frame reaches B only after the removal, it adds alpha again,
	// with an event of its own. Either the table is empty or that event
	// follows.
	lateAdd := false
	if ns := b.Neighbors(); len(ns) != 0 {
		if ev := nextEvent(t, events); ev.Kind != NeighborAdded || ev.Neighbor.SystemName() != "alpha" {
			t.Fatalf("neighbours after Forget: %+v, then event %v %+v", ns, ev.Kind, ev.Neighbor)
		}
		lateAdd = true
	}
	if s := b.Stats(); s.Removed != 1 || s.Deletes != 1 || s.Ageouts != 0 {
		t.Fatalf("b stats %+v", s)
	}

	// A's next LLDPDU: a new neighbour again.
	infoA.setName("alpha2")
	a.Update()
	ev = nextEvent(t, events)
	if !lateAdd && ev.Kind == NeighborAdded && ev.Neighbor.SystemName() == "alpha" {
		// A's late frame re-added alpha after the check above.
		lateAdd = true
		ev = nextEvent(t, events)
	}
	// Two inserts either way: alpha then alpha2, or alpha twice (alpha2
	// then updates the re-added entry).
	wantKind, wantInserts := NeighborAdded, uint64(2)
	if lateAdd {
		wantKind = NeighborUpdated
	}
	if ev.Kind != wantKind || ev.Neighbor.SystemName() != "alpha2" {
		t.Fatalf("event %v %+v, want %v alpha2", ev.Kind, ev.Neighbor, wantKind)
	}
	if s := b.Stats(); uint64(s.Inserts) != wantInserts || s.Neighbors != 1 {
		t.Fatalf("b stats %+v (late re-add %v)", s, lateAdd)
	}
}
