package libvirthooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepClock returns times that go *backwards* by one second per call, to
// prove that order does not depend on the wall clock.
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := testTime
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(-time.Second)
		return t
	}
}

func testEvent(i int) Event {
	return Event{DriverQEMU, fmt.Sprintf("vm-%d", i), OpStarted, SubBegin, "-"}
}

func replayAll(t *testing.T, s *Spool) []SpooledEvent {
	t.Helper()
	var got []SpooledEvent
	if err := s.Replay(t.Context(), func(e SpooledEvent) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSpoolOrderAndDelete(t *testing.T) {
	s := &Spool{Dir: filepath.Join(t.TempDir(), "spool"), Now: stepClock()}
	for i := range 5 {
		if err := s.Put(t.Context(), testEvent(i), fmt.Appendf(nil, "<domain><name>vm-%d</name></domain>", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n, b, err := s.Len(); err != nil || n != 5 || b == 0 {
		t.Fatalf("Len = %d, %d, %v", n, b, err)
	}
	// Modes: directory 0700, files 0600.
	if fi, err := os.Stat(s.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", e.Name(), fi.Mode())
		}
	}
	got := replayAll(t, s)
	if len(got) != 5 {
		t.Fatalf("replayed %d events", len(got))
	}
	for i, e := range got {
		if e.Event != testEvent(i) || string(e.XML) != fmt.Sprintf("<domain><name>vm-%d</name></domain>", i) {
			t.Errorf("event %d = %+v %q", i, e.Event, e.XML)
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Errorf("seq %d not after %d", e.Seq, got[i-1].Seq)
		}
		if want := testTime.Add(-time.Duration(i+1) * time.Second); !e.Time.Equal(want) {
			t.Errorf("time %v, want %v", e.Time, want)
		}
	}
	if n, _, _ := s.Len(); n != 0 {
		t.Errorf("%d files left after replay", n)
	}
	if again := replayAll(t, s); len(again) != 0 {
		t.Errorf("second replay gave %d events", len(again))
	}
}

func TestSpoolReplayStopsOnError(t *testing.T) {
	s := &Spool{Dir: t.TempDir()}
	for i := range 5 {
		if err := s.Put(t.Context(), testEvent(i), []byte("<domain/>")); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("tetherd store closed")
	var seen []string
	err := s.Replay(t.Context(), func(e SpooledEvent) error {
		seen = append(seen, e.Event.Object)
		if e.Event.Object == "vm-2" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "(qemu vm-2 started begin -): tetherd store closed") {
		t.Fatalf("Replay error %v", err)
	}
	if !slices.Equal(seen, []string{"vm-0", "vm-1", "vm-2"}) {
		t.Fatalf("seen %v", seen)
	}
	var rest []string
	for _, e := range replayAll(t, s) {
		rest = append(rest, e.Event.Object)
	}
	if !slices.Equal(rest, []string{"vm-2", "vm-3", "vm-4"}) {
		t.Fatalf("second replay %v", rest)
	}
}

func TestSpoolReplaySeesEventsPutDuringReplay(t *testing.T) {
	s := &Spool{Dir: t.TempDir()}
	if err := s.Put(t.Context(), testEvent(0), nil); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err := s.Replay(t.Context(), func(e SpooledEvent) error {
		seen = append(seen, e.Event.Object)
		if len(seen) == 1 {
			return s.Put(t.Context(), testEvent(1), nil)
		}
		return nil
	})
	if err != nil || !slices.Equal(seen, []string{"vm-0", "vm-1"}) {
		t.Fatalf("seen %v, %v", seen, err)
	}
}

func TestSpoolTempFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	now := testTime
	s := &Spool{Dir: dir, Now: func() time.Time { return now }}
	if err := s.Put(t.Context(), testEvent(1), []byte("<domain/>")); err != nil {
		t.Fatal(err)
	}
	// A Put that died after writing part of its temp file, long ago, and
	// one that is writing right now.
	stale := filepath.Join(dir, ".tmp-00000000000000000001.event-123")
	fresh := filepath.Join(dir, ".tmp-00000000000000000002.event-456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("TETHER-SPOOL 1 999 0"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, now.Add(-time.Hour), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(fresh, now, now); err != nil {
		t.Fatal(err)
	}
	// Files that are not events at all are left alone too.
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.Len(); n != 1 {
		t.Fatalf("Len counts %d events", n)
	}
	got := replayAll(t, s)
	if len(got) != 1 || got[0].Event != testEvent(1) {
		t.Fatalf("replayed %+v", got)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file not removed: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was moved aside")
	}
}

func TestSpoolCorruptMovedAside(t *testing.T) {
	dir := t.TempDir()
	var logBuf bytes.Buffer
	s := &Spool{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))}
	for i := range 3 {
		if err := s.Put(t.Context(), testEvent(i), []byte("<domain/>")); err != nil {
			t.Fatal(err)
		}
	}
	events, _, _ := s.list()
	// Corrupt the middle event (one flipped bit), and add a garbage file, a
	// truncated file and an oversize file with event names.
	mid := filepath.Join(dir, events[1].name)
	b, _ := os.ReadFile(mid)
	b[len(b)-5] ^= 0x20
	if err := os.WriteFile(mid, b, 0o600); err != nil {
		t.Fatal(err)
	}
	last := events[2].seq
	garbage, truncated, huge := spoolName(last+1), spoolName(last+2), spoolName(last+3)
	good, _ := encodeSpoolRecord(testEvent(9), []byte("<domain/>"), testTime)
	for name, content := range map[string][]byte{
		garbage:   []byte("\x00\x01\x02"),
		truncated: good[:len(good)-10],
		huge:      bytes.Repeat([]byte("x"), int(maxSpoolRecord)+10),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	if err := s.Replay(t.Context(), func(e SpooledEvent) error {
		seen = append(seen, e.Event.Object)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"vm-0", "vm-2"}) {
		t.Fatalf("replayed %v", seen)
	}
	for name, reason := range map[string]string{
		events[1].name: "checksum",
		garbage:        "no header line",
		truncated:      "header says",
		huge:           "limit",
	} {
		if _, err := os.Stat(filepath.Join(dir, "bad", name)); err != nil {
			t.Errorf("%s not moved aside: %v", name, err)
		}
		r, err := os.ReadFile(filepath.Join(dir, "bad", name+".reason"))
		if err != nil || !strings.Contains(string(r), reason) {
			t.Errorf("%s reason %q, %v; want it to mention %q", name, r, err, reason)
		}
		if !strings.Contains(logBuf.String(), "file="+name) {
			t.Errorf("%s: not logged", name)
		}
	}
	if !strings.Contains(logBuf.String(), `level=WARN msg="corrupt spool file moved aside" component=libvirthooks.spool`) {
		t.Errorf("log:\n%s", logBuf.String())
	}
	if n, _, _ := s.Len(); n != 0 {
		t.Errorf("%d files left", n)
	}
}

func TestSpoolFull(t *testing.T) {
	dir := t.TempDir()
	s := &Spool{Dir: dir, MaxFiles: 2}
	for i := range 2 {
		if err := s.Put(t.Context(), testEvent(i), []byte("<domain/>")); err != nil {
			t.Fatal(err)
		}
	}
	_, size, _ := s.Len()
	err := s.Put(t.Context(), testEvent(2), []byte("<domain/>"))
	var fe *SpoolFullError
	if !errors.As(err, &fe) || ExitCode(err) != ExitSpoolFull {
		t.Fatalf("Put on full spool: %v", err)
	}
	want := fmt.Sprintf("spool %s is full: 2 files, %d bytes (limits 2 files, 268435456 bytes); is tetherd running?", dir, size)
	if err.Error() != want {
		t.Errorf("error\n got: %s\nwant: %s", err, want)
	}

	s2 := &Spool{Dir: t.TempDir(), MaxBytes: 600}
	if err := s2.Put(t.Context(), testEvent(0), bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	err = s2.Put(t.Context(), testEvent(1), bytes.Repeat([]byte("x"), 300))
	if !errors.As(err, &fe) || fe.MaxBytes != 600 || fe.Files != 1 {
		t.Fatalf("Put over MaxBytes: %v", err)
	}
	// Replay frees the space.
	replayAll(t, s2)
	if err := s2.Put(t.Context(), testEvent(1), bytes.Repeat([]byte("x"), 300)); err != nil {
		t.Fatal(err)
	}
}

func TestSpoolPutRejectsBadEvent(t *testing.T) {
	s := &Spool{Dir: t.TempDir()}
	err := s.Put(t.Context(), Event{Driver: "lxc", Object: "c"}, nil)
	if err == nil || err.Error() != `spool event: unknown hook driver "lxc" (want qemu or network)` {
		t.Fatalf("Put = %v", err)
	}
	big := bytes.Repeat([]byte("x"), int(DefaultXMLLimit)+1<<20)
	if err := s.Put(t.Context(), testEvent(0), big); err == nil || !strings.HasPrefix(err.Error(), "encode spool record: ") {
		t.Fatalf("Put oversize = %v", err)
	}
}

func TestSpoolConcurrentPut(t *testing.T) {
	s := &Spool{Dir: t.TempDir()}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Each goroutine its own Spool value, as separate hook processes.
			sp := &Spool{Dir: s.Dir}
			errs <- sp.Put(context.Background(), testEvent(i), []byte("<domain/>"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := replayAll(t, s)
	if len(got) != n {
		t.Fatalf("replayed %d of %d", len(got), n)
	}
	objs := map[string]bool{}
	for _, e := range got {
		objs[e.Event.Object] = true
	}
	if len(objs) != n {
		t.Fatalf("%d distinct events", len(objs))
	}
}

func TestSpoolLockHonoursContext(t *testing.T) {
	s := &Spool{Dir: t.TempDir()}
	unlock, err := s.lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err = s.Put(ctx, testEvent(0), nil)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "lock spool: context deadline exceeded" {
		t.Fatalf("Put with held lock = %v", err)
	}
}

func TestSpoolReplayMissingDirAndContext(t *testing.T) {
	s := &Spool{Dir: filepath.Join(t.TempDir(), "never-created")}
	if got := replayAll(t, s); len(got) != 0 {
		t.Fatal(got)
	}
	s = &Spool{Dir: t.TempDir()}
	if err := s.Put(t.Context(), testEvent(0), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Replay(ctx, func(SpooledEvent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay on cancelled context = %v", err)
	}
	if n, _, _ := s.Len(); n != 1 {
		t.Fatalf("event lost on cancelled replay")
	}
}

func TestSpoolRecordErrors(t *testing.T) {
	good, err := encodeSpoolRecord(testEvent(1), []byte("<domain/>"), testTime)
	if err != nil {
		t.Fatal(err)
	}
	hdrEnd := bytes.IndexByte(good, '\n')
	payload := good[hdrEnd+1:]
	withHeader := func(h string, p []byte) []byte { return append([]byte(h+"\n"), p...) }
	reenc := func(p string) []byte {
		return withHeader(fmt.Sprintf("TETHER-SPOOL 1 %d %08x", len(p), crc32c([]byte(p))), []byte(p))
	}
	for _, tc := range []struct {
		name string
		rec  []byte
		want string
	}{
		{"empty", nil, "no header line"},
		{"bad magic", withHeader("TETHER-SPOOF 1 1 00000000", payload), "bad header"},
		{"version 2", withHeader("TETHER-SPOOL 2 1 00000000", payload), `unsupported version "2"`},
		{"bad length", withHeader("TETHER-SPOOL 1 x 00000000", payload), "bad payload length"},
		{"length mismatch", withHeader(fmt.Sprintf("TETHER-SPOOL 1 %d 00000000", len(payload)+1), payload), fmt.Sprintf("payload is %d bytes, header says %d", len(payload), len(payload)+1)},
		{"bad crc field", withHeader(fmt.Sprintf("TETHER-SPOOL 1 %d zz", len(payload)), payload), "bad checksum field"},
		{"unknown field", reenc(`{"time":"2025-03-14T15:09:26Z","driver":"qemu","object":"vm","operation":"start","sub_operation":"begin","extra":"-","xml":"","more":1}`), `payload: json: unknown field "more"`},
		{"trailing json", reenc(`{"time":"2025-03-14T15:09:26Z","driver":"qemu","object":"vm","operation":"start","sub_operation":"begin","extra":"-","xml":""} {}`), "payload: trailing data"},
		{"bad op", reenc(`{"time":"2025-03-14T15:09:26Z","driver":"qemu","object":"vm","operation":"define","sub_operation":"begin","extra":"-","xml":""}`), `payload: unknown qemu operation "define"`},
		{"no time", reenc(`{"driver":"qemu","object":"vm","operation":"start","sub_operation":"begin","extra":"-","xml":""}`), "payload: no time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := decodeSpoolRecord(tc.rec)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("decode = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzSpoolDecode(f *testing.F) {
	for i, x := range [][]byte{nil, []byte("<domain/>"), readTestdata(f, "domain-4nics.xml"), {0xff, 0x00}} {
		rec, err := encodeSpoolRecord(testEvent(i), x, testTime)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	rec, _ := encodeSpoolRecord(Event{DriverNetwork, "default", OpPortCreated, SubBegin, "-"}, readTestdata(f, "network-port-created.xml"), testTime)
	f.Add(rec)
	f.Add([]byte("TETHER-SPOOL 1 2 00000000\n{}"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		ev, x, tm, err := decodeSpoolRecord(rec)
		if err != nil {
			return
		}
		if err := ev.validate(); err != nil {
			t.Fatalf("decoded invalid event %+v: %v", ev, err)
		}
		// Whatever decodes re-encodes to something that decodes the same.
		rec2, err := encodeSpoolRecord(ev, x, tm)
		if err != nil {
			t.Fatal(err)
		}
		ev2, x2, tm2, err := decodeSpoolRecord(rec2)
		if err != nil || ev2 != ev || !bytes.Equal(x2, x) || !tm2.Equal(tm) {
			t.Fatalf("round trip: %+v %q %v %v", ev2, x2, tm2, err)
		}
	})
}

// BenchmarkSpoolPut measures one Put of a 5 KB domain XML (two fsyncs) into
// a spool that already holds 0 or 5,000 events: the hook's cost when
// tetherd is down.
func BenchmarkSpoolPut(b *testing.B) {
	x := readTestdata(b, "domain-4nics.xml")
	for _, backlog := range []int{0, 5000} {
		b.Run(fmt.Sprintf("backlog=%d", backlog), func(b *testing.B) {
			s := &Spool{Dir: b.TempDir(), MaxFiles: 1 << 30, MaxBytes: 1 << 40}
			for i := range backlog {
				if err := os.WriteFile(filepath.Join(s.Dir, spoolName(uint64(i+1))), x, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := s.Put(b.Context(), testEvent(1), x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
