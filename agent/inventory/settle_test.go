package inventory

import (
	"context"
	"testing"
	"time"
)

// TestSettle: after the settle time, the events ready are noted in order
// (the rest of the burst follows on Events) and the kick channel is
// drained; a cancelled context
// ends the wait at once with false.
func TestSettle(t *testing.T) {
	s := openTest(t, "", Options{})
	sub := s.Subscribe(16)
	defer sub.Close()
	kick := make(chan struct{}, 1)
	kick <- struct{}{}
	for i := uint64(1); i <= 3; i++ {
		mustApply(t, s, UpsertVM(testVM(i)))
	}
	var noted []Event
	if !sub.Settle(context.Background(), 50*time.Millisecond, kick, func(ev Event) { noted = append(noted, ev) }) {
		t.Fatal("Settle = false with a live context")
	}
	if len(noted) == 0 || len(kick) != 0 {
		t.Errorf("noted %d events (want >= 1), kick holds %d (want 0)", len(noted), len(kick))
	}
	for len(noted) < 3 {
		select {
		case ev := <-sub.Events():
			noted = append(noted, ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of the burst's 3 events", len(noted))
		}
	}
	for i, ev := range noted {
		if ev.Generation != uint64(i+1) {
			t.Errorf("event %d: generation %d, want %d", i, ev.Generation, i+1)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if sub.Settle(ctx, time.Hour, kick, nil) {
		t.Error("Settle = true with a cancelled context")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Settle with a cancelled context took %v", d)
	}

	// A closed subscription ends the drain; the caller's receive sees it.
	sub.Close()
	if !sub.Settle(context.Background(), time.Millisecond, kick, nil) {
		t.Error("Settle = false on a closed subscription")
	}
	if _, ok := <-sub.Events(); ok {
		t.Error("events after Close")
	}
}
