package lldpagent

import "time"

// Clock is the agent's source of time. SystemClock is the real one; tests
// substitute a fake to run the timers fast.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a stopped-or-running Timer that fires once, d from
	// now.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, like time.Timer.
type Timer interface {
	// C returns the channel on which the timer delivers the time.
	C() <-chan time.Time
	// Reset makes the timer fire d from now, dropping any pending tick.
	Reset(d time.Duration)
	// Stop stops the timer, dropping any pending tick.
	Stop()
}

// SystemClock returns the Clock of package time.
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

// systemTimer relies on Go 1.23+ timer semantics: after Reset or Stop no
// stale tick is delivered.
type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time   { return t.t.C }
func (t systemTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t systemTimer) Stop()                 { t.t.Stop() }
