package verify

import (
	"sync"
	"time"
)

// otherPorts is the bucket that ports beyond logLimiter.max share.
const otherPorts = "\x00other"

// logLimiter is a token bucket per port for refusal log lines, so a flood
// of forged frames on one port costs at most burst lines and then one per
// interval, and cannot drown the lines of other ports. What is held back
// is counted and reported with the next line of that port.
type logLimiter struct {
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

func newLogLimiter(burst int, interval time.Duration, max int) *logLimiter {
	return &logLimiter{burst: float64(burst), interval: interval, max: max, ports: make(map[string]*logBucket)}
}

// allow reports whether port may log a line at now, and how many lines it
// was denied since its last one.
func (l *logLimiter) allow(port string, now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ports[port]
	if b == nil {
		if len(l.ports) >= l.max {
			port = otherPorts
			b = l.ports[port]
		}
		if b == nil {
			b = &logBucket{tokens: l.burst, last: now}
			l.ports[port] = b
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
