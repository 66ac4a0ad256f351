package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-net/tether/policy"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// levelError is the level of etcd client entries forwarded to the log.
const levelError = slog.LevelError

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	// EventPut: the object was created or replaced.
	EventPut EventType = iota + 1
	// EventDelete: the object was deleted.
	EventDelete
)

// String returns "put" or "delete".
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change of one object.
type Event struct {
	// Type is EventPut or EventDelete.
	Type EventType
	// Kind and Key name the object.
	Kind policy.Kind
	Key  string
	// Object is the new object of a put, nil for a delete.
	Object policy.Object
	// Revision is the store revision of the change.
	Revision int64
}

// Batch is what Watch delivers: the events of one or more revisions, in
// order. After a batch every change up to Revision has been delivered.
// A batch with Err is the last one.
type Batch struct {
	// Events are in revision order; empty for a progress notification.
	Events []Event
	// Revision is the revision the receiver is at after applying Events.
	Revision int64
	// Err ends the watch: it wraps ErrCompacted when fromRevision (or a
	// revision the watch had to resume from) was compacted away.
	Err error
}

// Backoff bounds of Watch's reconnects.
const (
	watchBackoffMin = 50 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

// Watch delivers every change under the store's prefix from
// fromRevision on (0: from now), in revision order, until ctx ends (the
// channel is then closed) or the revision to resume from was compacted
// (a last Batch with Err wrapping ErrCompacted, then the channel is
// closed). After a disconnect or a lost leader the watch resumes from
// the revision after the last one delivered, with backoff, so nothing
// is lost or delivered twice. Values that do not decode are skipped with
// a warning. The receiver must keep reading: Watch blocks on a full
// channel.
func (s *Store) Watch(ctx context.Context, fromRevision int64) <-chan Batch {
	out := make(chan Batch, 16)
	if fromRevision <= 0 {
		// Pin "now" before returning when etcd answers; watch retries.
		if r, err := s.c.Get(ctx, s.prefix, clientv3.WithCountOnly()); err == nil {
			fromRevision = r.Header.Revision + 1
		}
	}
	go s.watch(ctx, fromRevision, out)
	return out
}

func (s *Store) watch(ctx context.Context, next int64, out chan<- Batch) {
	defer close(out)
	send := func(b Batch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := watchBackoffMin
	// "From now" is pinned to a revision first, so that a resume after
	// a disconnect does not skip what happened in between.
	for next <= 0 {
		r, err := s.c.Get(ctx, s.prefix, clientv3.WithCountOnly())
		if err == nil {
			next = r.Header.Revision + 1
			break
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithProgressNotify(), clientv3.WithRev(next)}
		var lastErr error
		for resp := range s.c.Watch(wctx, s.prefix, opts...) {
			if resp.CompactRevision != 0 {
				cancel()
				send(Batch{Err: fmt.Errorf("policy store: watch from revision %d: %w (oldest is %d)", next, ErrCompacted, resp.CompactRevision)})
				return
			}
			if err := resp.Err(); err != nil {
				lastErr = err
				break
			}
			if resp.IsProgressNotify() {
				if r := resp.Header.Revision; r >= next {
					next = r + 1
					if !send(Batch{Revision: r}) {
						cancel()
						return
					}
				}
				continue
			}
			if len(resp.Events) == 0 {
				continue
			}
			b := Batch{Events: make([]Event, 0, len(resp.Events))}
			for _, ev := range resp.Events {
				rev := ev.Kv.ModRevision
				b.Revision = rev
				kind, key, ok := s.parseKey(ev.Kv.Key)
				if !ok {
					continue
				}
				e := Event{Kind: kind, Key: key, Revision: rev}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = EventDelete
				} else {
					obj, err := DecodeValue(kind, key, ev.Kv.Value)
					if err != nil {
						s.log.Warn("skipping undecodable policy value", "key", string(ev.Kv.Key), "revision", rev, "err", err)
						continue
					}
					e.Type, e.Object = EventPut, obj
				}
				b.Events = append(b.Events, e)
			}
			next = b.Revision + 1
			backoff = watchBackoffMin
			if !send(b) {
				cancel()
				return
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.log.Info("policy watch interrupted, resuming", "from_revision", next, "err", lastErr, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}

// CurrentRevision returns the store's current revision (one round trip).
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	r, err := s.c.Get(ctx, s.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("policy store: current revision: %w", err)
	}
	return r.Header.Revision, nil
}

// RequestProgress asks etcd to send the store's Watch channels a progress
// notification (a Batch without events whose Revision is the current
// store revision) once they are caught up.
func (s *Store) RequestProgress(ctx context.Context) error {
	// Watch runs its streams under WithRequireLeader, which is part of
	// the stream's identity in the client.
	if err := s.c.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
		return fmt.Errorf("policy store: request watch progress: %w", err)
	}
	return nil
}
