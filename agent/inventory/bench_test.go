package inventory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The benchmarks write to b.TempDir() (TMPDIR, else /tmp); benchDir logs
// whether that is tmpfs, where fsync costs nothing and the figures lie.

// fill stores vms VMs with n vNICs each in one Change.
func fill(tb testing.TB, s *Store, vms, n int) {
	tb.Helper()
	var ops []Op
	for i := range vms {
		d := testDomain(uint64(i), n)
		ops = append(ops, UpsertVM(d.VM))
		for _, v := range d.VIFs {
			ops = append(ops, UpsertVIF(v))
		}
	}
	mustApply(tb, s, ops...)
}

func benchStore(b *testing.B, opts Options) *Store {
	b.Helper()
	dir := b.TempDir()
	if fs := fsType(dir); fs == "tmpfs" {
		b.Logf("warning: %s is on tmpfs: fsync is free there, the figures are not a disk's", dir)
	}
	return openTest(b, filepath.Join(dir, "inventory.db"), opts)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkApplySingle is the event-to-commit cost: one VIF change in its
// own transaction, fsync included, on a store holding 4,096 VIFs.
func BenchmarkApplySingle(b *testing.B) {
	s := benchStore(b, Options{})
	fill(b, s, 1024, 4)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		v := testVIF(uint64(i%1024), (i/1024)%4)
		v.HostDev = fmt.Sprintf("tap%d", i)
		start := time.Now()
		if _, err := s.Apply(ctx, Change{Ops: []Op{UpsertVIF(v)}}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	reportLatency(b, lat)
}

// BenchmarkApplySetState is the same for a state transition (a VDP answer).
func BenchmarkApplySetState(b *testing.B) {
	s := benchStore(b, Options{})
	fill(b, s, 1024, 4)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		to := StateAssociated
		if (i/4096)%2 == 1 {
			to = StatePending
		}
		op := SetState(testMAC(uint64(i%1024), (i/1024)%4), to, "VDP ASSOCIATE accepted")
		start := time.Now()
		if _, err := s.Apply(ctx, Change{Ops: []Op{op}}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	reportLatency(b, lat)
}

// BenchmarkApplyBatch is a burst: 16 goroutines each applying one-VIF
// Changes through ApplyBatch, so that they share transactions and fsyncs.
// ns/op is per Change; the latency is each caller's wait.
func BenchmarkApplyBatch(b *testing.B) {
	s := benchStore(b, Options{})
	fill(b, s, 1024, 4)
	ctx := context.Background()
	var seq atomic.Int64
	lats := make(chan []time.Duration, 64)
	b.SetParallelism(16 / runtime.GOMAXPROCS(0))
	if runtime.GOMAXPROCS(0) > 16 {
		b.SetParallelism(1)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var lat []time.Duration
		for pb.Next() {
			i := int(seq.Add(1))
			v := testVIF(uint64(i%1024), (i/1024)%4)
			v.HostDev = fmt.Sprintf("tap%d", i)
			start := time.Now()
			if _, err := s.ApplyBatch(ctx, Change{Ops: []Op{UpsertVIF(v)}}); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(start))
		}
		lats <- lat
	})
	b.StopTimer()
	close(lats)
	var all []time.Duration
	for l := range lats {
		all = append(all, l...)
	}
	reportLatency(b, all)
}

// BenchmarkLoad4096 reads the whole inventory (1,024 VMs, 4,096 VIFs).
func BenchmarkLoad4096(b *testing.B) {
	s := benchStore(b, Options{})
	fill(b, s, 1024, 4)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		snap, err := s.Snapshot(ctx)
		if err != nil || len(snap.VIFs) != 4096 {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiff1000x4 diffs 1,000 domains with 4 vNICs each against an
// inventory: empty (the first reconcile), identical (the periodic one), and
// with 10% of the domains changed.
func BenchmarkDiff1000x4(b *testing.B) {
	desired := make([]Domain, 1000)
	for i := range desired {
		desired[i] = testDomain(uint64(i), 4)
	}
	c, err := Diff("libvirt", desired, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Build the "current" snapshot as the store would hold it.
	s := benchStore(b, Options{NoSync: true})
	mustApply(b, s, c.Ops...)
	same, err := s.Snapshot(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	changed := slices.Clone(desired)
	for i := 0; i < len(changed); i += 10 {
		d := testDomain(uint64(i), 4)
		d.VIFs = d.VIFs[:3]
		d.VIFs[0].STag = 999
		changed[i] = d
	}
	for _, bc := range []struct {
		name    string
		current *Snapshot
		desired []Domain
		ops     int
	}{
		{"empty", nil, desired, 5000},
		{"same", same, desired, 0},
		{"10pct", same, changed, 200},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := Diff("libvirt", bc.desired, bc.current)
				if err != nil || len(c.Ops) != bc.ops {
					b.Fatalf("%d ops, %v", len(c.Ops), err)
				}
			}
		})
	}
}

// BenchmarkReconcile1000x4 is the full reconcile at start: snapshot, diff
// and apply 1,000 domains with 4 vNICs each into an empty store, one
// transaction, fsync included.
func BenchmarkReconcile1000x4(b *testing.B) {
	desired := make([]Domain, 1000)
	for i := range desired {
		desired[i] = testDomain(uint64(i), 4)
	}
	ctx := context.Background()
	dir := b.TempDir()
	n := 0
	for b.Loop() {
		b.StopTimer()
		s := openTest(b, filepath.Join(dir, fmt.Sprintf("inv%d.db", n)), Options{})
		n++
		b.StartTimer()
		cur, err := s.Snapshot(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c, err := Diff("libvirt", desired, cur)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Apply(ctx, c); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}

// TestMemory4096 reports the heap a loaded inventory of 4,096 VIFs takes,
// the file's size, and this process's RSS after loading it.
func TestMemory4096(t *testing.T) {
	if testing.Short() {
		t.Skip("memory figures: skipped with -short")
	}
	path := filepath.Join(t.TempDir(), "inventory.db")
	s := openTest(t, path, Options{})
	fill(t, s, 1024, 4)
	var before, after runtime.MemStats
	runtime.GC() // twice: sync.Pool victims survive one cycle
	runtime.GC()
	runtime.ReadMemStats(&before)
	snap, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(snap)
	fi, _ := os.Stat(path)
	t.Logf("snapshot of %d VMs and %d VIFs: %.2f MiB live heap (%d bytes per VIF); total heap in use %.2f MiB; file %.2f MiB; process RSS %s",
		len(snap.VMs), len(snap.VIFs), float64(heap)/(1<<20), heap/int64(len(snap.VIFs)),
		float64(after.HeapInuse)/(1<<20), float64(fi.Size())/(1<<20), rss())
	if heap > 8<<20 {
		t.Errorf("a snapshot of 4,096 VIFs takes %d bytes of heap, budget 8 MiB", heap)
	}
}

func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
