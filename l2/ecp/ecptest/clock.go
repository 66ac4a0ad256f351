// Package ecptest has test doubles for package ecp and the protocols on
// top of it: a fake Clock driven by hand, an in-memory Link that can lose
// frames, and an AF_PACKET Link on veth pairs in a network namespace.
package ecptest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tether-net/tether/l2/ecp"
)

// FakeClock is an ecp.Clock whose time moves only when Advance is called.
// Timers fire, in deadline order, during Advance. It is safe for
// concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer // every timer made, armed or not
	changed chan struct{}
}

var _ ecp.Clock = (*FakeClock)(nil)

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now implements ecp.Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements ecp.Clock.
func (c *FakeClock) NewTimer() ecp.Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	return t
}

// notifyLocked wakes WaitArmed callers; c.mu is held.
func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the time forward by d, firing every timer whose deadline
// is reached, earliest first.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if t.armed && !t.when.After(end) && (next == nil || t.when.Before(next.when)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.when.After(c.now) {
			c.now = next.when
		}
		next.armed = false
		select {
		case next.ch <- c.now:
		default:
		}
	}
	c.now = end
	c.notifyLocked()
}

// Armed returns the number of armed timers.
func (c *FakeClock) Armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.armed {
			n++
		}
	}
	return n
}

// Deadlines returns the durations from now to each armed timer's deadline,
// shortest first.
func (c *FakeClock) Deadlines() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		if t.armed {
			out = append(out, t.when.Sub(c.now))
		}
	}
	slices.Sort(out)
	return out
}

// AdvanceToNext advances to the earliest armed timer's deadline and fires
// it; it returns false, without moving, when no timer is armed.
func (c *FakeClock) AdvanceToNext() bool {
	d := c.Deadlines()
	if len(d) == 0 {
		return false
	}
	c.Advance(d[0])
	return true
}

// WaitArmed waits until cond(armed timers) holds or ctx is done.
func (c *FakeClock) WaitArmed(ctx context.Context, cond func(armed int) bool) error {
	for {
		c.mu.Lock()
		n := 0
		for _, t := range c.timers {
			if t.armed {
				n++
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if cond(n) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fakeTimer is a FakeClock's timer.
type fakeTimer struct {
	c     *FakeClock
	ch    chan time.Time
	when  time.Time
	armed bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.when = t.c.now.Add(d)
	t.armed = true
	if d <= 0 {
		t.armed = false
		t.ch <- t.c.now
	}
	t.c.notifyLocked()
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.drain()
	t.armed = false
	t.c.notifyLocked()
}

// drain empties the channel so no value of an earlier arming is seen.
func (t *fakeTimer) drain() {
	select {
	case <-t.ch:
	default:
	}
}
