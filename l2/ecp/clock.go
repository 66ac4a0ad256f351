package ecp

import "time"

// Clock is the time source of the ECP and VDP timers (the ACK timer of
// IEEE 802.1Qbg-2012 43.3, VDP's resourceWaitDelay and keep-alive of
// 41.5). Tests replace it with ecptest.FakeClock; nil in a Config means
// SystemClock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a stopped timer; Reset arms it.
	NewTimer() Timer
}

// Timer is a resettable one-shot timer with the semantics of time.Timer
// since Go 1.23: after Stop or Reset returns, no value from an earlier
// arming is received from C.
type Timer interface {
	// C delivers the firing time once per arming.
	C() <-chan time.Time
	// Reset arms the timer to fire after d, replacing any earlier arming.
	Reset(d time.Duration)
	// Stop disarms the timer.
	Stop()
}

// SystemClock is the real clock, built on package time.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer() Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return sysTimer{t}
}

// sysTimer adapts *time.Timer to Timer.
type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time   { return s.t.C }
func (s sysTimer) Reset(d time.Duration) { s.t.Reset(d) }
func (s sysTimer) Stop()                 { s.t.Stop() }

// TimeUnit is the unit of the EVB timer exponents: every ECP and VDP timer
// is TimeUnit × 2^exponent (IEEE 802.1Qbg-2012 43.3 for RTE, 41.5 for RWD
// and RKA; D.2.12 of 802.1Q-2018 for the EVB TLV fields).
const TimeUnit = 10 * time.Microsecond

// ExpDuration returns TimeUnit × 2^exp, the duration an EVB timer exponent
// (RTE, RWD, RKA; 5 bits, 0-31) stands for.
func ExpDuration(exp uint8) time.Duration {
	return TimeUnit << (exp & 0x1f)
}
