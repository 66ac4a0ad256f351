// Package ratelog bounds how many log lines a source of trouble may cause:
// a token bucket per key (a port, usually), so a flood of bad frames on one
// port costs at most a burst of lines and then one per interval, and cannot
// drown the lines of other ports. What is held back is counted and reported
// with the next line that key may write.
package ratelog

import (
	"sync"
	"time"
)

// otherKeys is the bucket that keys beyond Limiter's max share.
const otherKeys = "\x00other"

// Limiter is a token bucket per key for log lines. It is safe for
// concurrent use.
type Limiter struct {
	burst    float64
	interval time.Duration
	max      int

	mu    sync.Mutex
	ports map[string]*logBucket
}

// logBucket is one port's budget.
type logBucket struct {
	tokens     float64
	last       time.Time
	suppressed uint64
}

// New returns a Limiter that lets each key write burst lines at once and
// one more per interval, tracking at most max keys (the rest share one
// bucket).
func New(burst int, interval time.Duration, max int) *Limiter {
	return &Limiter{burst: float64(burst), interval: interval, max: max, ports: make(map[string]*logBucket)}
}

// Allow reports whether key may log a line at now, and how many lines it
// was denied since its last one.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ports[key]
	if b == nil {
		if len(l.ports) >= l.max {
			key = otherKeys
			b = l.ports[key]
		}
		if b == nil {
			b = &logBucket{tokens: l.burst, last: now}
			l.ports[key] = b
		}
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(l.interval))
		b.last = now
	}
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	s := b.suppressed
	b.suppressed = 0
	return true, s
}
