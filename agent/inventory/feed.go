package inventory

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// ErrSlowSubscriber is what Subscription.Err returns after the store dropped
// the subscription because its buffer was full. The subscriber lost events:
// it should subscribe again and read a fresh Snapshot.
var ErrSlowSubscriber = errors.New("inventory: subscriber dropped: it fell behind the event feed")

// ErrClosed is returned by operations on a closed Store, and by
// Subscription.Err after the store closed.
var ErrClosed = errors.New("inventory: store closed")

// EventType says what an Event reports.
type EventType uint8

// The event types.
const (
	// EventVMUpserted: a VM record was created or replaced (Event.VM).
	EventVMUpserted EventType = iota + 1
	// EventVMRemoved: a VM record was deleted (Event.VM is the last value).
	EventVMRemoved
	// EventVIFUpserted: a VIF record was created or updated (Event.VIF);
	// Event.Transition is set when that changed its state.
	EventVIFUpserted
	// EventVIFRemoved: a VIF record was deleted (Event.VIF is the last value).
	EventVIFRemoved
	// EventVIFState: SetState moved a VIF (Event.VIF, Event.Transition).
	EventVIFState
)

var eventNames = [...]string{
	EventVMUpserted:  "vm-upserted",
	EventVMRemoved:   "vm-removed",
	EventVIFUpserted: "vif-upserted",
	EventVIFRemoved:  "vif-removed",
	EventVIFState:    "vif-state",
}

// String returns the event type's lower-case name ("vif-state", ...).
func (t EventType) String() string {
	if int(t) < len(eventNames) && eventNames[t] != "" {
		return eventNames[t]
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (t EventType) MarshalText() ([]byte, error) {
	if int(t) >= len(eventNames) || eventNames[t] == "" {
		return nil, fmt.Errorf("inventory: invalid event type %d", uint8(t))
	}
	return []byte(eventNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *EventType) UnmarshalText(b []byte) error {
	i, err := lookupName("event type", eventNames[:], b)
	*t = EventType(i)
	return err
}

// Event is one committed modification. The events of one Change share its
// Generation and arrive together, in the order of its operations.
type Event struct {
	// Generation is the store generation the Change committed.
	Generation uint64 `json:"generation"`
	// Type says what happened.
	Type EventType `json:"type"`
	// VM is set for VM events.
	VM VM `json:"vm,omitzero"`
	// VIF is set for VIF events.
	VIF VIF `json:"vif,omitzero"`
	// Transition is set when a VIF changed state.
	Transition Transition `json:"transition,omitzero"`
}

// Subscription is one subscriber's view of the event feed. The feed queues
// whole committed Changes (one slot per Change, however many events it
// holds, the slices shared by every subscriber) and a goroutine per
// subscription hands their events out one by one, so a full reconcile that
// commits thousands of events in one Change does not overrun a subscriber.
type Subscription struct {
	ch      chan Event
	batches chan []Event  // committed Changes not yet handed out; closed by detach
	done    chan struct{} // closed by Close: the pump stops at once
	feed    *feed
	start   uint64
	err     error // set under feed.mu before batches is closed
	once    sync.Once
}

// Events returns the channel the events arrive on. It is closed when the
// subscription ends: Close, the store closing, or the subscriber falling
// behind (see Err).
func (s *Subscription) Events() <-chan Event { return s.ch }

// Start is the generation the store had when the subscription began: every
// Change with a greater generation is delivered. To follow the inventory
// without a gap, subscribe, then take a Snapshot and skip the events whose
// Generation is not greater than the snapshot's.
func (s *Subscription) Start() uint64 { return s.start }

// Err returns why the channel was closed: nil after Close, ErrSlowSubscriber
// or ErrClosed. Read it after the channel is closed.
func (s *Subscription) Err() error {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.err
}

// Close ends the subscription and closes its channel. It is idempotent.
func (s *Subscription) Close() {
	s.feed.mu.Lock()
	s.feed.detach(s, nil)
	s.feed.mu.Unlock()
	s.once.Do(func() { close(s.done) })
}

// pump hands the queued Changes' events to ch in order, and closes ch when
// the queue is closed and drained, or at once on Close.
func (s *Subscription) pump() {
	defer close(s.ch)
	for evs := range s.batches {
		for _, ev := range evs {
			select {
			case s.ch <- ev:
			case <-s.done:
				return
			}
		}
	}
}

// feed delivers committed changes to subscribers in generation order. The
// writers of concurrent transactions (db.Batch) finish in any order, so
// publish holds back a generation until all earlier ones were delivered;
// generations of committed changes have no gaps, so that wait is short.
type feed struct {
	mu      sync.Mutex
	next    uint64             // next generation to deliver
	pending map[uint64][]Event // committed, waiting for an earlier generation
	subs    map[*Subscription]struct{}
	closed  bool
	dropped atomic.Uint64
	log     *slog.Logger
}

func newFeed(gen uint64, log *slog.Logger) *feed {
	return &feed{next: gen + 1, pending: map[uint64][]Event{}, subs: map[*Subscription]struct{}{}, log: log}
}

func (f *feed) subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &Subscription{ch: make(chan Event), batches: make(chan []Event, buffer), done: make(chan struct{}), feed: f, start: f.next - 1}
	go s.pump()
	if f.closed {
		s.err = ErrClosed
		close(s.batches)
		return s
	}
	f.subs[s] = struct{}{}
	return s
}

// publish hands over the events of the Change committed as generation gen.
func (f *feed) publish(gen uint64, evs []Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen < f.next {
		return // a generation can only be committed once; defensive
	}
	f.pending[gen] = evs
	for {
		evs, ok := f.pending[f.next]
		if !ok {
			break
		}
		delete(f.pending, f.next)
		f.next++
		f.deliver(evs)
	}
}

func (f *feed) deliver(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for s := range f.subs {
		select {
		case s.batches <- evs:
			continue
		default:
		}
		f.dropped.Add(1)
		f.log.Warn("dropping a slow event subscriber", "generation", evs[0].Generation, "buffer", cap(s.batches))
		f.detach(s, ErrSlowSubscriber)
		// What is still queued is of no use to a subscriber that must
		// resynchronise anyway: stop handing it out.
		s.once.Do(func() { close(s.done) })
	}
}

// detach removes s and closes its channel; f.mu must be held.
func (f *feed) detach(s *Subscription, err error) {
	if _, ok := f.subs[s]; !ok {
		return
	}
	delete(f.subs, s)
	s.err = err
	close(s.batches)
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		f.detach(s, ErrClosed)
	}
	f.closed = true
}

func (f *feed) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}
