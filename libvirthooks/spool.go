package libvirthooks

import (
	"context"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/atomicfile"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spool defaults.
const (
	DefaultSpoolMaxFiles       = 10000
	DefaultSpoolMaxBytes int64 = 256 << 20
)

const (
	spoolSuffix    = ".event"
	spoolSeqDigits = 20
	spoolTmpPrefix = ".tmp-"
	spoolLockName  = ".lock"
	spoolBadDir    = "bad"
	// spoolTmpMaxAge: Replay removes temp files older than this, which a
	// Put that crashed between create and rename left behind.
	spoolTmpMaxAge = 10 * time.Minute
	// lockPoll is how often Put retries a busy spool lock.
	lockPoll = 2 * time.Millisecond
)

// Spool is a directory of hook events that tether-hook could not deliver
// to tetherd; tetherd replays it on start. The zero limits mean the
// defaults. A Spool is safe for concurrent use by many processes: Put
// serialises on a lock file, and each event is one file written atomically
// (temp file, fsync, rename, fsync of the directory), so a reader sees whole
// events or none. Files are named by a sequence number that is the
// wall-clock time in nanoseconds, forced above every number already in the
// spool, so replay order is Put order even if the clock steps back.
type Spool struct {
	Dir      string
	MaxFiles int          // at most this many events (DefaultSpoolMaxFiles if <= 0)
	MaxBytes int64        // at most this many bytes of events (DefaultSpoolMaxBytes if <= 0)
	Logger   *slog.Logger // for files moved aside; slog.Default() if nil
	// Now returns the current time; time.Now if nil. For tests.
	Now func() time.Time
}

// SpooledEvent is one event read back from the spool.
type SpooledEvent struct {
	Event Event
	XML   []byte    // the hook's stdin, as given to Put
	Time  time.Time // when Put wrote it
	Seq   uint64    // order key, from the file name
	File  string    // file name inside Dir
}

func (s *Spool) maxFiles() int {
	if s.MaxFiles <= 0 {
		return DefaultSpoolMaxFiles
	}
	return s.MaxFiles
}

func (s *Spool) maxBytes() int64 {
	if s.MaxBytes <= 0 {
		return DefaultSpoolMaxBytes
	}
	return s.MaxBytes
}

func (s *Spool) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Spool) logger() *slog.Logger {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "libvirthooks.spool", "dir", s.Dir)
}

// spoolName returns the file name for seq.
func spoolName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", spoolSeqDigits, seq, spoolSuffix)
}

// parseSpoolName returns the sequence number of an event file name.
func parseSpoolName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, spoolSuffix)
	if !ok || len(digits) != spoolSeqDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// spoolEntry is one event file found in the directory.
type spoolEntry struct {
	name string
	seq  uint64
	size int64
}

// list returns the event files in Dir in sequence order, and the temp files.
// A missing Dir is an empty spool.
func (s *Spool) list() (events []spoolEntry, temps []fs.DirEntry, err error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list spool %s: %w", s.Dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), spoolTmpPrefix) {
			temps = append(temps, e)
			continue
		}
		seq, ok := parseSpoolName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // replayed meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("stat spool file %s: %w", e.Name(), err)
		}
		events = append(events, spoolEntry{name: e.Name(), seq: seq, size: info.Size()})
	}
	slices.SortFunc(events, func(a, b spoolEntry) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return events, temps, nil
}

// lock takes the spool's exclusive lock, waiting until ctx is done.
func (s *Spool) lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, spoolLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock spool: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock spool: %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// Put writes one event to the spool. It fails with *SpoolFullError when
// the spool is at MaxFiles or the event would take it past MaxBytes, and
// with ctx's error if the spool lock stays busy until ctx is done.
func (s *Spool) Put(ctx context.Context, ev Event, xmlData []byte) error {
	if err := ev.validate(); err != nil {
		return fmt.Errorf("spool event: %w", err)
	}
	now := s.now()
	rec, err := encodeSpoolRecord(ev, xmlData, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create spool: %w", err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	events, _, err := s.list()
	if err != nil {
		return err
	}
	var total int64
	var last uint64
	for _, e := range events {
		total += e.size
		last = max(last, e.seq)
	}
	if len(events)+1 > s.maxFiles() || total+int64(len(rec)) > s.maxBytes() {
		return &SpoolFullError{Dir: s.Dir, Files: len(events), Bytes: total, MaxFiles: s.maxFiles(), MaxBytes: s.maxBytes()}
	}
	seq := uint64(max(now.UnixNano(), 0))
	if seq <= last {
		seq = last + 1
	}
	return s.writeAtomic(spoolName(seq), rec)
}

// writeAtomic writes data to Dir/name via a synced temp file (named so
// list recognises it) and a rename, then syncs the directory.
func (s *Spool) writeAtomic(name string, data []byte) error {
	if err := atomicfile.WriteTemp(filepath.Join(s.Dir, name), data, 0o600, spoolTmpPrefix+name+"-*"); err != nil {
		return fmt.Errorf("spool %s: %w", name, err)
	}
	return nil
}

// Len returns the number of events and their total size in bytes.
func (s *Spool) Len() (files int, bytes int64, err error) {
	events, _, err := s.list()
	for _, e := range events {
		bytes += e.size
	}
	return len(events), bytes, err
}

// Replay calls fn for every spooled event in Put order, including events
// Put while Replay runs, and deletes each file after fn returns nil.
// Delivery is at least once: if the process dies between fn and the
// delete, the event comes again on the next Replay, so fn must be
// idempotent. If fn fails, Replay stops and returns the error, keeping that
// event and all later ones for the next Replay (order is never broken).
// Corrupt files are moved to Dir/bad/ with a logged reason (and a
// NAME.reason file beside them) and do not stop the replay. Temp files of
// an interrupted Put are skipped, and removed once older than ten minutes.
func (s *Spool) Replay(ctx context.Context, fn func(SpooledEvent) error) error {
	log := s.logger()
	for {
		events, temps, err := s.list()
		if err != nil {
			return err
		}
		s.removeStaleTemps(temps, log)
		if len(events) == 0 {
			return nil
		}
		for _, e := range events {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("replay spool: %w", err)
			}
			path := filepath.Join(s.Dir, e.name)
			rec, err := readBounded(path, maxSpoolRecord)
			if errors.Is(err, fs.ErrNotExist) {
				continue // another Replay took it
			}
			if err != nil {
				return fmt.Errorf("replay spool: %w", err)
			}
			ev, xmlData, t, derr := decodeSpoolRecord(rec)
			if derr != nil {
				if err := s.moveAside(e.name, derr, log); err != nil {
					return fmt.Errorf("replay spool: %w", err)
				}
				continue
			}
			if err := fn(SpooledEvent{Event: ev, XML: xmlData, Time: t, Seq: e.seq, File: e.name}); err != nil {
				return fmt.Errorf("replay spool event %s (%s): %w", e.name, ev, err)
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("replay spool: remove delivered event: %w", err)
			}
		}
	}
}

// readBounded reads a file of at most limit bytes; a larger file yields a
// short read that decodeSpoolRecord rejects.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// moveAside moves a corrupt event file to Dir/bad/ and logs why.
func (s *Spool) moveAside(name string, reason error, log *slog.Logger) error {
	bad := filepath.Join(s.Dir, spoolBadDir)
	if err := os.MkdirAll(bad, 0o700); err != nil {
		return fmt.Errorf("move aside corrupt %s: %w", name, err)
	}
	if err := os.Rename(filepath.Join(s.Dir, name), filepath.Join(bad, name)); err != nil {
		return fmt.Errorf("move aside corrupt %s: %w", name, err)
	}
	log.Warn("corrupt spool file moved aside", "file", name, "to", bad, "reason", reason.Error())
	if err := os.WriteFile(filepath.Join(bad, name+".reason"), []byte(reason.Error()+"\n"), 0o600); err != nil {
		log.Warn("cannot write reason file", "file", name, "err", err)
	}
	return nil
}

// removeStaleTemps deletes temp files an interrupted Put left behind.
func (s *Spool) removeStaleTemps(temps []fs.DirEntry, log *slog.Logger) {
	now := s.now()
	for _, t := range temps {
		info, err := t.Info()
		if err != nil || now.Sub(info.ModTime()) < spoolTmpMaxAge {
			continue
		}
		if err := os.Remove(filepath.Join(s.Dir, t.Name())); err == nil {
			log.Info("removed stale spool temp file", "file", t.Name(), "age", now.Sub(info.ModTime()).Round(time.Second))
		}
	}
}
