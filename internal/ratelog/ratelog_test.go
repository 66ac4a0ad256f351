package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(3, time.Second, 2)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("swA", t0); !ok {
			t.Fatalf("line %d of the burst refused", i)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("swA", t0); ok {
			t.Fatal("line beyond the burst allowed")
		}
	}
	// Another port has its own budget.
	if ok, _ := l.Allow("swB", t0); !ok {
		t.Fatal("swB starved by swA's flood")
	}
	// One interval later one line passes and reports what was held back.
	ok, held := l.Allow("swA", t0.Add(time.Second))
	if !ok || held != 5 {
		t.Fatalf("after an interval: ok %v held %d, want true 5", ok, held)
	}
	// Keys beyond max share one bucket, so a flood of new keys stays bounded.
	allowed := 0
	for i := 0; i < 100; i++ {
		if ok, _ := l.Allow(string(rune('a'+i%26))+"x", t0); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("new keys beyond max got %d lines, want the shared burst of 3", allowed)
	}
}
