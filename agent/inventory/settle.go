package inventory

import (
	"context"
	"time"
)

// Settle is a reconcile loop's wait after it woke up: it waits settle for
// the rest of a burst of changes (false when ctx ends first), then takes
// the events ready on the subscription without waiting, passing each to
// note (nil: dropped), and empties kick, so that the next pass covers the
// burst at once. It stops at a closed subscription, which the loop's next
// receive then sees.
func (s *Subscription) Settle(ctx context.Context, settle time.Duration, kick <-chan struct{}, note func(Event)) bool {
	t := time.NewTimer(settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return true
			}
			if note != nil {
				note(ev)
			}
		case <-kick:
		default:
			return true
		}
	}
}
