package identity

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// CounterStore persists counter marks per key and channel. A Signer stores
// the highest counter it has reserved; a Verifier stores the highest counter
// it has accepted. Use one store per role: a daemon that both signs and
// verifies (tether-switchd) must not share a store between its Signer and
// its Verifier.
type CounterStore interface {
	// Load returns the persisted mark of (key, channel), 0 when there is
	// none.
	Load(ctx context.Context, key KeyID, channel string) (uint64, error)
	// Store durably raises the mark of (key, channel) to mark; a mark lower
	// than the stored one leaves it unchanged. It returns only when the
	// mark would survive a crash, or with an error.
	Store(ctx context.Context, key KeyID, channel string, mark uint64) error
}

// CounterKey names one replay window or signing counter: a key and a
// channel.
type CounterKey struct {
	// Key is the signing key's ID.
	Key KeyID
	// Channel is the sender's or receiver's channel name.
	Channel string
}

// MemoryCounterStore is a CounterStore that keeps marks in memory only, for
// tests and for callers that accept losing replay protection on restart.
// The zero value is ready to use.
type MemoryCounterStore struct {
	mu    sync.Mutex
	marks map[CounterKey]uint64
}

var _ CounterStore = (*MemoryCounterStore)(nil)

// Load implements CounterStore.
func (s *MemoryCounterStore) Load(ctx context.Context, key KeyID, channel string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[CounterKey{key, channel}], nil
}

// Store implements CounterStore.
func (s *MemoryCounterStore) Store(ctx context.Context, key KeyID, channel string, mark uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = make(map[CounterKey]uint64)
	}
	k := CounterKey{key, channel}
	if mark > s.marks[k] {
		s.marks[k] = mark
	}
	return nil
}

// counterFileHeader opens every counter file.
const counterFileHeader = "tether counters v1"

// FileCounterStore is a CounterStore kept in one file: a header line, then
// one line per key and channel, "<key ID> <mark> <quoted channel>". Every
// Store rewrites the file atomically (temporary file, fsync, rename,
// directory fsync). Concurrent Stores share one write: a Store that arrives
// while a write is in flight waits for the next one, which carries its mark
// too (group commit).
//
// An exclusive flock on "<path>.lock" keeps a second process from using the
// same file: two signers reserving the same block would reuse counters.
//
// Losing the file resets every mark to zero. For a Verifier that reopens
// replays of old frames signed by still-enrolled keys; for a Signer it makes
// receivers refuse its frames until its counters pass their marks. Rotate
// the key after losing a Signer's file.
type FileCounterStore struct {
	path string
	lock *os.File

	mu       sync.Mutex
	marks    map[CounterKey]uint64
	gen      uint64        // bumped by every change of marks
	durable  uint64        // the gen last written to disk
	flushing bool          // a write is in flight
	flushed  chan struct{} // closed when the write in flight ends
	closed   bool
}

var _ CounterStore = (*FileCounterStore)(nil)

// OpenFileCounterStore opens the store at path, reading its marks. A missing
// file is an empty store (first start); a file that does not parse is an
// error, never an empty store, since that would silently reset counters.
func OpenFileCounterStore(path string) (*FileCounterStore, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("identity: counter store: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("identity: counter store %s is in use by another process", path)
		}
		return nil, fmt.Errorf("identity: counter store %s: lock: %w", path, err)
	}
	s := &FileCounterStore{path: path, lock: lock, marks: make(map[CounterKey]uint64)}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		_ = lock.Close()
		return nil, fmt.Errorf("identity: counter store: %w", err)
	}
	if err := s.parse(data); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("identity: counter store %s: %w", path, err)
	}
	return s, nil
}

// parse reads the file's lines into s.marks.
func (s *FileCounterStore) parse(data []byte) error {
	return ParseCounterFile(data, s.marks)
}

// ParseCounterFile reads a counter file's lines (as FileCounterStore writes
// them) into marks. A header other than tether's, a malformed line, a
// repeated (key, channel) or an empty file is an error: a counter file must
// never silently read as empty.
func ParseCounterFile(data []byte, marks map[CounterKey]uint64) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != counterFileHeader {
				return fmt.Errorf("line 1: %q is not %q", text, counterFileHeader)
			}
			continue
		}
		id, rest, ok1 := strings.Cut(text, " ")
		num, quoted, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			return fmt.Errorf("line %d: want \"<key ID> <mark> <quoted channel>\"", line)
		}
		key, err := parseKeyID(id)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		mark, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: mark: %w", line, err)
		}
		channel, err := strconv.Unquote(quoted)
		if err != nil {
			return fmt.Errorf("line %d: channel %s: %w", line, quoted, err)
		}
		k := CounterKey{key, channel}
		if _, dup := marks[k]; dup {
			return fmt.Errorf("line %d: key %s channel %q repeated", line, key, channel)
		}
		marks[k] = mark
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if line == 0 {
		return errors.New("empty file")
	}
	return nil
}

// encodeLocked renders the marks, sorted so the file is stable; s.mu is
// held.
func (s *FileCounterStore) encodeLocked() []byte { return EncodeCounterFile(s.marks) }

// EncodeCounterFile renders marks as a counter file, sorted by key and
// channel so the file is stable.
func EncodeCounterFile(marks map[CounterKey]uint64) []byte {
	keys := make([]CounterKey, 0, len(marks))
	for k := range marks {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b CounterKey) int {
		if c := bytes.Compare(a.Key[:], b.Key[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.Channel, b.Channel)
	})
	b := make([]byte, 0, len(counterFileHeader)+1+len(keys)*48)
	b = append(b, counterFileHeader...)
	b = append(b, '\n')
	for _, k := range keys {
		b = append(b, k.Key.String()...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, marks[k], 10)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, k.Channel)
		b = append(b, '\n')
	}
	return b
}

// Load implements CounterStore. Marks are read at open, so it does not
// block.
func (s *FileCounterStore) Load(ctx context.Context, key KeyID, channel string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("identity: counter store %s is closed", s.path)
	}
	return s.marks[CounterKey{key, channel}], nil
}

// Store implements CounterStore. It returns once a write that includes
// mark has reached the disk; when ctx ends first it returns ctx's error and
// the mark may or may not be written later (which is safe: marks only
// rise).
func (s *FileCounterStore) Store(ctx context.Context, key KeyID, channel string, mark uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("identity: counter store %s is closed", s.path)
	}
	k := CounterKey{key, channel}
	if cur, ok := s.marks[k]; !ok || mark > cur {
		s.marks[k] = mark
		s.gen++
	}
	// Whatever raised the mark to at least this value happened no later
	// than the current generation.
	target := s.gen
	for s.durable < target {
		if !s.flushing {
			err := s.flushLocked()
			if err != nil {
				s.mu.Unlock()
				return err
			}
			continue
		}
		done := s.flushed
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// flushLocked writes the current marks; s.mu is held on entry and on
// return but released during the write.
func (s *FileCounterStore) flushLocked() error {
	s.flushing = true
	done := make(chan struct{})
	s.flushed = done
	gen := s.gen
	data := s.encodeLocked()
	s.mu.Unlock()
	err := writeFileAtomic(s.path, data, 0o600)
	s.mu.Lock()
	s.flushing = false
	close(done)
	if err != nil {
		return fmt.Errorf("identity: counter store: %w", err)
	}
	s.durable = max(s.durable, gen)
	return nil
}

// Close releases the file lock. Every Store has already reached the disk
// when it returned, so there is nothing to flush.
func (s *FileCounterStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("identity: counter store %s: %w", s.path, err)
	}
	return nil
}
