package verify

import (
	"context"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/atomicfile"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/tether-net/tether/identity"
)

// maxYields bounds how often the flusher lets other goroutines run before
// a write while they keep adding marks.
const maxYields = 64

// commitRound is one write that Stores wait for.
type commitRound struct {
	done chan struct{}
	err  error
}

// GroupCommitStore is an identity.CounterStore for a receiver's replay
// marks that writes the marks of many concurrent Stores with one atomic
// file write (temporary file, fsync, rename, directory fsync), like
// identity.FileCounterStore and in its file format, under the same lock
// file, so either can open the other's file.
//
// The difference is who writes. FileCounterStore writes on the goroutine
// of the first Store, in system calls that keep the Go scheduler's P: with
// GOMAXPROCS=1 no other verification runs during the write, so the next
// write carries one mark again, and a switch core verifies about one
// frame per write (1,300/s here). A GroupCommitStore parks every Store on
// a channel, which hands the P over at once, and one flusher goroutine
// first lets the runnable goroutines add their marks (it yields until no
// new mark arrives) and then writes them all. Store still returns only
// when its mark is durable (or with an error), as identity.CounterStore
// requires, so it is safe under any identity.Verifier. It is a receiver's
// store: a Signer gains nothing from it.
type GroupCommitStore struct {
	path string
	lock *os.File

	mu      sync.Mutex
	marks   map[identity.CounterKey]uint64
	gen     uint64       // bumped by every raised mark
	durable uint64       // the gen last written
	next    *commitRound // the round the next write completes
	closed  bool

	kick chan struct{} // capacity 1: a round is waiting
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the flusher has exited

	writes, marksWritten uint64 // guarded by mu
}

var _ identity.CounterStore = (*GroupCommitStore)(nil)

// OpenGroupCommitStore opens the store at path, reading its marks; a
// missing file is an empty store, a file that does not parse is an error.
// It holds an exclusive flock on "<path>.lock" until Close, as
// identity.FileCounterStore does.
func OpenGroupCommitStore(path string) (*GroupCommitStore, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("verify: replay store: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("verify: replay store %s is in use by another process", path)
		}
		return nil, fmt.Errorf("verify: replay store %s: lock: %w", path, err)
	}
	s := &GroupCommitStore{
		path: path, lock: lock, marks: make(map[identity.CounterKey]uint64),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		_ = lock.Close()
		return nil, fmt.Errorf("verify: replay store: %w", err)
	default:
		if err := s.parse(data); err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("verify: replay store %s: %w", path, err)
		}
	}
	go s.flusher()
	return s, nil
}

// parse reads the file's lines into s.marks.
func (s *GroupCommitStore) parse(data []byte) error {
	return identity.ParseCounterFile(data, s.marks)
}

// Load implements identity.CounterStore; marks are read at open.
func (s *GroupCommitStore) Load(ctx context.Context, key identity.KeyID, channel string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("verify: replay store %s is closed", s.path)
	}
	return s.marks[identity.CounterKey{Key: key, Channel: channel}], nil
}

// Store implements identity.CounterStore: it raises the mark and returns
// once a write that includes it is durable. When ctx ends first it returns
// ctx's error; the mark may still be written (marks only rise).
func (s *GroupCommitStore) Store(ctx context.Context, key identity.KeyID, channel string, mark uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("verify: replay store %s is closed", s.path)
	}
	k := identity.CounterKey{Key: key, Channel: channel}
	if cur, ok := s.marks[k]; !ok || mark > cur {
		s.marks[k] = mark
		s.gen++
	}
	if s.durable >= s.gen {
		// Nothing raised since the last write: the mark, or a higher
		// one, is on disk.
		s.mu.Unlock()
		return nil
	}
	r := s.next
	if r == nil {
		r = &commitRound{done: make(chan struct{})}
		s.next = r
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("verify: replay store: %w", r.err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flusher writes a round whenever one waits, until Close.
func (s *GroupCommitStore) flusher() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			s.flush() // what Stores before Close wait for
			return
		}
		s.settle()
		s.flush()
	}
}

// settle lets runnable goroutines add their marks before a write: it
// yields the processor while the marks keep changing.
func (s *GroupCommitStore) settle() {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	for range maxYields {
		runtime.Gosched()
		s.mu.Lock()
		now := s.gen
		s.mu.Unlock()
		if now == gen {
			return
		}
		gen = now
	}
}

// flush writes the current round, if any.
func (s *GroupCommitStore) flush() {
	s.mu.Lock()
	r := s.next
	s.next = nil
	if r == nil {
		s.mu.Unlock()
		return
	}
	gen := s.gen
	n := gen - s.durable
	data := s.encodeLocked()
	s.mu.Unlock()
	err := writeFileAtomic(s.path, data, 0o600)
	s.mu.Lock()
	if err == nil {
		s.durable = max(s.durable, gen)
		s.writes++
		s.marksWritten += n
	}
	s.mu.Unlock()
	r.err = err
	close(r.done)
}

// encodeLocked renders the marks, sorted; s.mu is held.
func (s *GroupCommitStore) encodeLocked() []byte { return identity.EncodeCounterFile(s.marks) }

// CommitStats reports how many writes the store made and how many raised
// marks they carried (marks per write is the group commit's batch).
func (s *GroupCommitStore) CommitStats() (writes, marks uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.marksWritten
}

// Close writes what Stores wait for, stops the flusher and releases the
// lock. Later calls fail.
func (s *GroupCommitStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("verify: replay store %s: %w", s.path, err)
	}
	return nil
}

// writeFileAtomic replaces path with data; see internal/atomicfile.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}
