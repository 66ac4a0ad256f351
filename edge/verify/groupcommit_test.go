package verify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// TestGroupCommitStoreFormat: marks written by a GroupCommitStore read
// back in identity.FileCounterStore and the other way round; the lock file
// keeps the two from sharing a file at once.
func TestGroupCommitStoreFormat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "replay")
	k1, k2 := identity.KeyID{1}, identity.KeyID{2}
	gs, err := verify.OpenGroupCommitStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gs.Store(ctx, k1, `swp1/svid=5 "quoted"`, 41); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.OpenFileCounterStore(path); err == nil {
		t.Fatal("identity store opened a file in use")
	}
	if _, err := verify.OpenGroupCommitStore(path); err == nil {
		t.Fatal("second GroupCommitStore opened a file in use")
	}
	if err := gs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gs.Store(ctx, k1, "x", 1); err == nil {
		t.Error("Store after Close succeeded")
	}
	fs, err := identity.OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := fs.Load(ctx, k1, `swp1/svid=5 "quoted"`); err != nil || m != 41 {
		t.Fatalf("identity read %d, %v", m, err)
	}
	if err := fs.Store(ctx, k2, "swp2", 7); err != nil {
		t.Fatal(err)
	}
	_ = fs.Close()
	gs, err = verify.OpenGroupCommitStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	if m, _ := gs.Load(ctx, k2, "swp2"); m != 7 {
		t.Errorf("read %d, want 7", m)
	}
	if m, _ := gs.Load(ctx, k1, `swp1/svid=5 "quoted"`); m != 41 {
		t.Errorf("read %d, want 41", m)
	}
	if err := os.WriteFile(path+".bad", []byte("not a counter file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.OpenGroupCommitStore(path + ".bad"); err == nil {
		t.Error("a file that does not parse opened")
	}
}

// TestGroupCommitStoreBatches: concurrent Stores on one processor share
// writes, and every mark is durable when its Store returns.
func TestGroupCommitStoreBatches(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "replay")
	gs, err := verify.OpenGroupCommitStore(path)
	if err != nil {
		t.Fatal(err)
	}
	const n, rounds = 64, 5
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 1; r <= rounds; r++ {
				if err := gs.Store(ctx, identity.KeyID{byte(g)}, "ch", uint64(r)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	writes, marks := gs.CommitStats()
	if marks != n*rounds || writes > n*rounds/8 {
		t.Errorf("%d marks in %d writes: not batched", marks, writes)
	}
	t.Logf("%d marks in %d writes", marks, writes)
	_ = gs.Close()
	fs, err := identity.OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for g := range n {
		if m, _ := fs.Load(ctx, identity.KeyID{byte(g)}, "ch"); m != rounds {
			t.Fatalf("key %d: mark %d, want %d", g, m, rounds)
		}
	}
}

// TestGroupCommitStoreContext: a Store whose context ends before its write
// returns the context's error.
func TestGroupCommitStoreContext(t *testing.T) {
	gs, err := verify.OpenGroupCommitStore(filepath.Join(t.TempDir(), "replay"))
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := gs.Store(ctx, identity.KeyID{1}, "ch", 1); err == nil {
		t.Error("Store with an ended context succeeded")
	}
}

// TestNoDecisionBeforeDurable: when the replay store cannot write, the
// claim is not accepted (internal error), and nothing is committed.
func TestNoDecisionBeforeDurable(t *testing.T) {
	w := newWorld(t, worldOptions{})
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	gs, err := verify.OpenGroupCommitStore(filepath.Join(dir, "replay"))
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	v, err := verify.New(verify.Config{Switch: testSwitch, Keys: w.keys, Replay: gs, Neighbours: w.nbrs, VMManager: w.vmm,
		Locations: w.locs, STags: w.stags, Logger: w.log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	d, err := v.Check(context.Background(), w.claim(w.a, "swp1", 10, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	if err == nil || d.Accepted || d.Reason != verify.ReasonInternal {
		t.Fatalf("%+v %v", d, err)
	}
	if w.locs.Len() != 0 || w.stags.Len() != 0 {
		t.Error("a claim whose mark is not durable changed the tables")
	}
	if len(w.log.lines("claim refused", "level=ERROR", "reason=internal")) != 1 {
		t.Errorf("not logged as an error:\n%s", w.log.String())
	}
}

// TestGroupCommitVerifierRestart: with a GroupCommitStore, CheckBatch on
// one processor batches the marks of many channels, and each accepted
// frame is a replay after a restart.
func TestGroupCommitVerifierRestart(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	w := newWorld(t, worldOptions{})
	path := filepath.Join(t.TempDir(), "replay")
	open := func() (*verify.Verifier, *verify.GroupCommitStore) {
		gs, err := verify.OpenGroupCommitStore(path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := verify.New(verify.Config{Switch: testSwitch, Keys: w.keys, Replay: gs, Neighbours: w.nbrs, VMManager: w.vmm,
			Logger: w.log.logger()})
		if err != nil {
			t.Fatal(err)
		}
		return v, gs
	}
	v, gs := open()
	// Three channels: host A's VMs on two S-channels of swp1, host B's
	// on swp2.
	var claims []verify.Claim
	for i, c := range []struct {
		s    *station
		port string
		vm   verify.UUID
		mac  verify.MAC
	}{{w.a, "swp1", vmA1, macA1}, {w.a, "swp1", vmA3, macA3}, {w.b, "swp2", vmB2, macB2}} {
		claims = append(claims, w.claim(c.s, c.port, uint16(i+1), assocVSI(wire.VSIAssociate, c.vm, 100, c.mac)))
	}
	for _, r := range v.CheckBatch(context.Background(), claims) {
		if !r.Decision.Accepted {
			t.Fatalf("%+v", r)
		}
	}
	if writes, marks := gs.CommitStats(); marks != 3 || writes > 2 {
		t.Errorf("%d marks in %d writes", marks, writes)
	}
	_ = gs.Close()
	v, gs = open()
	defer gs.Close()
	for i, r := range v.CheckBatch(context.Background(), claims) {
		if r.Decision.Reason != verify.ReasonReplay {
			t.Errorf("claim %d after restart: %+v", i, r)
		}
	}
}

// BenchmarkGroupCommitStore: n goroutines storing marks on their own
// channels, as the verifier's channels do.
func BenchmarkGroupCommitStore(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			gs, err := verify.OpenGroupCommitStore(filepath.Join(b.TempDir(), "replay"))
			if err != nil {
				b.Fatal(err)
			}
			defer gs.Close()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; i < b.N; i += n {
						if err := gs.Store(context.Background(), identity.KeyID{1}, fmt.Sprint(g), uint64(i+1)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "marks/s")
		})
	}
}
