package inventory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	boltErrors "go.etcd.io/bbolt/errors"
)

// DefaultPath is where tetherd keeps its inventory.
const DefaultPath = "/var/lib/tether/inventory.db"

// SchemaVersion is the layout of buckets and keys this package writes. Open
// refuses a file with a newer schema.
const SchemaVersion = 1

// Bucket and key names.
var (
	bucketMeta       = []byte("meta")
	bucketVMs        = []byte("vms")
	bucketVIFs       = []byte("vifs")
	bucketQuarantine = []byte("quarantine")
	keySchema        = []byte("schema")
	keyGeneration    = []byte("generation")
)

// ErrNotFound is wrapped by errors about a VM or VIF that is not stored.
var ErrNotFound = errors.New("not found")

// ErrLocked is wrapped by the *LockedError that Open returns when another
// process holds the store.
var ErrLocked = errors.New("inventory: store locked")

// LockedError says that another process holds the store's file lock.
type LockedError struct {
	// Path is the store file.
	Path string
	// PID is the process holding the lock, from /proc/locks; 0 if unknown.
	PID int
}

// Error names the file and, when known, the process holding it.
func (e *LockedError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("inventory: %s is locked by another tetherd (%s)", e.Path, pid)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Options tune Open. The zero value is what tetherd uses.
type Options struct {
	// LockTimeout bounds the wait for the file lock (default 2s; a
	// deadline on Open's context shortens it).
	LockTimeout time.Duration
	// ReadOnly opens the file shared and read-only (for inspection while
	// tetherd is stopped): Apply fails and Open reports problems without
	// repairing them.
	ReadOnly bool
	// NoSync skips fsync on commit. A crash of the process still loses
	// nothing committed, but a crash of the machine can lose or damage
	// recent commits. For tests and benchmarks only.
	NoSync bool
	// BatchDelay is how long ApplyBatch waits for more Changes to share a
	// transaction (default 1ms).
	BatchDelay time.Duration
	// BatchSize is the most Changes one ApplyBatch transaction holds
	// (default 256).
	BatchSize int
	// Logger receives the store's logs (default slog.Default()); they carry
	// component=inventory.
	Logger *slog.Logger
	// Now is the clock for transition times (default time.Now).
	Now func() time.Time
}

// Store is the durable inventory: a bbolt file with the buckets "meta"
// (schema version, generation), "vms" (key: the 16-byte UUID), "vifs" (key:
// the 6-byte MAC) and "quarantine" (records Open could not trust). Its
// methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	path     string
	log      *slog.Logger
	now      func() time.Time
	readOnly bool
	gen      atomic.Uint64
	feed     *feed
	report   Report
}

// Open opens or creates the store at path (its directory is created with
// mode 0700), waits at most Options.LockTimeout for the file lock, then
// checks every record; unless ReadOnly it repairs what it can in one
// transaction (see Report). A second tetherd gets a *LockedError.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inventory: open %s: %w", path, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "inventory")
	s := &Store{path: path, log: log, now: opts.Now, readOnly: opts.ReadOnly}
	if s.now == nil {
		s.now = time.Now
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	// bbolt treats a zero timeout as "wait forever".
	timeout = max(timeout, time.Millisecond)
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("inventory: create the store's directory: %w", err)
		}
	}
	start := time.Now()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		ReadOnly:     opts.ReadOnly,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, boltErrors.ErrTimeout) {
		return nil, &LockedError{Path: path, PID: lockHolder(path)}
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: open %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.BatchDelay
	if db.MaxBatchDelay <= 0 {
		db.MaxBatchDelay = time.Millisecond
	}
	db.MaxBatchSize = opts.BatchSize
	if db.MaxBatchSize <= 0 {
		db.MaxBatchSize = 256
	}
	s.db = db

	if opts.ReadOnly {
		err = db.View(func(tx *bolt.Tx) error {
			var err error
			s.report, err = check(ctx, tx, false)
			return err
		})
	} else {
		err = db.Update(func(tx *bolt.Tx) error {
			var err error
			s.report, err = check(ctx, tx, true)
			if err == nil && !s.report.wrote {
				return errNoop
			}
			return err
		})
		if errors.Is(err, errNoop) {
			err = nil
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("inventory: open %s: %w", path, err)
	}
	s.gen.Store(s.report.Generation)
	s.feed = newFeed(s.report.Generation, log)
	for _, p := range s.report.Problems {
		log.Warn("inventory record problem", "bucket", p.Bucket, "key", p.Key, "problem", p.Detail, "action", p.Action)
	}
	log.Info("inventory opened", "path", path, "generation", s.report.Generation,
		"vms", s.report.VMs, "vifs", s.report.VIFs, "problems", len(s.report.Problems),
		"read_only", opts.ReadOnly, "took", time.Since(start))
	return s, nil
}

// errNoop rolls back a write transaction that modified nothing, so that it
// costs no fsync.
var errNoop = errors.New("inventory: nothing to commit")

// Close ends every subscription and closes the file.
func (s *Store) Close() error {
	s.feed.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("inventory: close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the store file's path.
func (s *Store) Path() string { return s.path }

// Generation returns the generation of the last committed Change.
func (s *Store) Generation() uint64 { return s.gen.Load() }

// OpenReport returns what Open found (and repaired) when it checked the file.
func (s *Store) OpenReport() Report { return s.report }

// Check verifies every record now, without repairing anything.
func (s *Store) Check(ctx context.Context) (Report, error) {
	var r Report
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = check(ctx, tx, false)
		return err
	})
	if err != nil {
		return Report{}, s.wrap("check", err)
	}
	return r, nil
}

// Stats are counters for metrics and tetherctl.
type Stats struct {
	// Generation is the generation of the last committed Change.
	Generation uint64 `json:"generation"`
	// Subscribers is the number of live subscriptions.
	Subscribers int `json:"subscribers"`
	// DroppedSubscribers counts subscriptions dropped for falling behind.
	DroppedSubscribers uint64 `json:"dropped_subscribers"`
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Generation: s.gen.Load(), Subscribers: s.feed.subscribers(), DroppedSubscribers: s.feed.dropped.Load()}
}

// Subscribe starts a subscription that queues up to buffer committed
// Changes (at least 1), each however many events it holds. A subscriber
// that lets its queue fill is dropped (its channel closes, Err says
// ErrSlowSubscriber): Apply never waits for subscribers.
func (s *Store) Subscribe(buffer int) *Subscription { return s.feed.subscribe(buffer) }

// Apply applies c in one transaction and commits it with an fsync before it
// returns. If any operation fails, nothing is written and the error (an
// *OpError for an operation) says which. A Change that modifies nothing
// commits nothing and keeps the generation.
func (s *Store) Apply(ctx context.Context, c Change) (Result, error) {
	return s.apply(ctx, c, false)
}

// ApplyBatch is Apply through bbolt's batching: Changes from concurrent
// callers within Options.BatchDelay share one transaction and one fsync,
// each still atomic on its own and each with its own generation. It trades
// up to BatchDelay of latency for throughput in bursts; a lone caller should
// use Apply.
func (s *Store) ApplyBatch(ctx context.Context, c Change) (Result, error) {
	return s.apply(ctx, c, true)
}

func (s *Store) apply(ctx context.Context, c Change, batch bool) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("inventory: apply: %w", err)
	}
	if s.readOnly {
		return Result{}, fmt.Errorf("inventory: apply: %s is open read-only", s.path)
	}
	var t *txn
	fn := func(tx *bolt.Tx) error {
		t = newTxn(tx, s.now())
		if err := t.apply(ctx, c); err != nil {
			return err
		}
		if !t.changed() && !batch {
			return errNoop
		}
		return nil
	}
	var err error
	if batch {
		err = s.db.Batch(fn)
	} else {
		err = s.db.Update(fn)
	}
	switch {
	case errors.Is(err, errNoop):
		return Result{Generation: t.gen - 1}, nil
	case err != nil:
		var oe *OpError
		if errors.As(err, &oe) {
			return Result{}, err
		}
		return Result{}, s.wrap("apply", err)
	case !t.changed():
		return Result{Generation: t.gen - 1}, nil
	}
	for {
		cur := s.gen.Load()
		if cur >= t.gen || s.gen.CompareAndSwap(cur, t.gen) {
			break
		}
	}
	s.feed.publish(t.gen, t.events)
	return Result{Generation: t.gen, Changed: true}, nil
}

// wrap adds the package prefix and what was being done to err, once; a
// closed database becomes ErrClosed.
func (s *Store) wrap(what string, err error) error {
	if errors.Is(err, boltErrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if what == "" {
		return fmt.Errorf("inventory: %w", unprefixed{err})
	}
	return fmt.Errorf("inventory: %s: %w", what, unprefixed{err})
}

// VM returns the stored VM id; the error wraps ErrNotFound if there is none.
func (s *Store) VM(id UUID) (VM, error) {
	var vm VM
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVMs).Get(id[:])
		if b == nil {
			return fmt.Errorf("VM %s %w", id, ErrNotFound)
		}
		var err error
		vm, err = decodeVM(b, nil)
		return err
	})
	if err != nil {
		return VM{}, s.wrap("", err)
	}
	return vm, nil
}

// VIF returns the stored VIF mac; the error wraps ErrNotFound if there is none.
func (s *Store) VIF(mac MAC) (VIF, error) {
	var v VIF
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVIFs).Get(mac[:])
		if b == nil {
			return fmt.Errorf("VIF %s %w", mac, ErrNotFound)
		}
		var err error
		v, err = decodeVIF(b, nil)
		return err
	})
	if err != nil {
		return VIF{}, s.wrap("", err)
	}
	return v, nil
}

// Snapshot is a consistent copy of the whole inventory.
type Snapshot struct {
	// Generation is the generation the copy was taken at.
	Generation uint64 `json:"generation"`
	// VMs are ordered by UUID bytes.
	VMs []VM `json:"vms"`
	// VIFs are ordered by MAC.
	VIFs []VIF `json:"vifs"`
}

// Snapshot reads the whole inventory in one read transaction.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{}
	err := s.db.View(func(tx *bolt.Tx) error {
		snap.Generation = readGeneration(tx)
		in := interner{}
		vms := tx.Bucket(bucketVMs)
		snap.VMs = make([]VM, 0, vms.Stats().KeyN)
		if err := vms.ForEach(func(k, b []byte) error {
			vm, err := decodeVM(b, in)
			if err != nil {
				return fmt.Errorf("VM key %x: %w", k, unprefixed{err})
			}
			snap.VMs = append(snap.VMs, vm)
			return nil
		}); err != nil {
			return err
		}
		vifs := tx.Bucket(bucketVIFs)
		snap.VIFs = make([]VIF, 0, vifs.Stats().KeyN)
		n := 0
		return vifs.ForEach(func(k, b []byte) error {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			v, err := decodeVIF(b, in)
			if err != nil {
				return fmt.Errorf("VIF key %x: %w", k, unprefixed{err})
			}
			snap.VIFs = append(snap.VIFs, v)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("snapshot", err)
	}
	return snap, nil
}

// Filter selects VIFs for List. Zero fields match everything.
type Filter struct {
	// VM keeps the VIFs of this VM.
	VM UUID
	// State keeps the VIFs in this state.
	State State
	// Kind keeps the VIFs of this kind.
	Kind Kind
	// PortGroup keeps the VIFs in this port group.
	PortGroup string
	// Vendor keeps the VIFs whose MAC is from this vendor pool.
	Vendor Vendor
}

func (f Filter) match(v *VIF) bool {
	return (f.VM.IsZero() || v.VM == f.VM) &&
		(f.State == StateNone || v.State == f.State) &&
		(f.Kind == KindUnknown || v.Kind == f.Kind) &&
		(f.PortGroup == "" || v.PortGroup == f.PortGroup) &&
		(f.Vendor == VendorInvalid || v.MAC.Vendor() == f.Vendor)
}

// List returns the VIFs that match f, ordered by MAC.
func (s *Store) List(ctx context.Context, f Filter) ([]VIF, error) {
	var out []VIF
	err := s.db.View(func(tx *bolt.Tx) error {
		in := interner{}
		n := 0
		return tx.Bucket(bucketVIFs).ForEach(func(k, b []byte) error {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if !f.VM.IsZero() {
				if id, ok := vifVM(b); ok && id != f.VM {
					return nil
				}
			}
			v, err := decodeVIF(b, in)
			if err != nil {
				return fmt.Errorf("VIF key %x: %w", k, unprefixed{err})
			}
			if f.match(&v) {
				out = append(out, v)
			}
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("list", err)
	}
	return out, nil
}

func readGeneration(tx *bolt.Tx) uint64 {
	if b := tx.Bucket(bucketMeta).Get(keyGeneration); len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// unprefixed wraps an error of this package to be wrapped again by one,
// without repeating the "inventory: " prefix.
type unprefixed struct{ err error }

// Error is the wrapped error's text without the prefix.
func (u unprefixed) Error() string { return strings.TrimPrefix(u.err.Error(), "inventory: ") }

// Unwrap returns the wrapped error.
func (u unprefixed) Unwrap() error { return u.err }
