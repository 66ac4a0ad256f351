package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
)

// TestClusterLeaderKill is issue 5's cluster test: a 3-node embedded etcd
// cluster; placements stream from a goroutine (one write each, retried on
// error) while the leader is killed. The cache keeps serving reads during
// the election, writes resume after it, and at the end every placement is
// stored exactly once with its last value, the cache equals the store,
// and the cache saw each change once, in order. A second cache, whose
// client knows only the killed leader, serves its last state while that
// member is down and catches up by revision when it is back.
func TestClusterLeaderKill(t *testing.T) {
	const n = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	t0 := time.Now()
	cl, err := etcdembed.StartCluster(ctx, t.TempDir(), 3, etcdembed.Config{UnsafeNoFsync: true, TickMs: 50, ElectionMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close) // registered first: runs after the clients close
	t.Logf("3-node cluster start: %v", time.Since(t0))
	prefix := testPrefix(t)
	w := dialStore(t, cl.Endpoints(), prefix)
	cs := dialStore(t, cl.Endpoints(), prefix)
	if _, err := w.Create(ctx, &policy.Profile{Name: "web", VID: 10, Mode: policy.ModeSwitch}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Create(ctx, &policy.PortGroup{Name: "all", Profile: "web", Match: policy.Match{NamePatterns: []string{"vm-*"}}}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	c := New(cs, Options{OnChange: rec.OnChange})
	runCache(t, c)
	// A second cache whose client knows only the leader: its watch dies
	// with the leader and resumes when that member is back.
	lead, err := cl.Leader()
	if err != nil {
		t.Fatal(err)
	}
	recL := newRecorder()
	cL := New(dialStore(t, cl.MemberEndpoints(lead), prefix), Options{OnChange: recL.OnChange})
	runCache(t, cL)

	// Writer: placement i, retried until it succeeds.
	var (
		written    atomic.Int64 // writes acknowledged
		retries    atomic.Int64
		maxWrite   atomic.Int64 // slowest acknowledged write incl. retries, ns
		killAt     = n / 4
		acks       = make([]time.Time, n)
		writerDone = make(chan struct{})
	)
	go func() {
		defer close(writerDone)
		for i := range n {
			p := placement(i, "hv1")
			start := time.Now()
			for ctx.Err() == nil {
				wctx, wcancel := context.WithTimeout(ctx, time.Second)
				_, err := w.PutPlacements(wctx, []policy.Placement{p})
				wcancel()
				if err == nil {
					break
				}
				retries.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
			if d := int64(time.Since(start)); d > maxWrite.Load() {
				maxWrite.Store(d)
			}
			acks[i] = time.Now()
			written.Add(1)
		}
	}()

	// Reader: looks VMs up from the cache all along and counts failures
	// for VMs the cache had already applied.
	var (
		reads, readFails atomic.Int64
		maxRead          atomic.Int64
		readerStop       = make(chan struct{})
		readerWG         sync.WaitGroup
	)
	readerWG.Add(1)
	go func() {
		defer readerWG.Done()
		for i := 0; ; i++ {
			select {
			case <-readerStop:
				return
			default:
			}
			k := c.Len(policy.KindPlacements)
			if k == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			start := time.Now()
			r, err := c.Lookup(policy.VMRef{UUID: vmUUID(i % k)})
			if d := int64(time.Since(start)); d > maxRead.Load() {
				maxRead.Store(d)
			}
			reads.Add(1)
			if err != nil || !r.HasPlacement || r.Group != "all" || r.Profile.VID != 10 {
				readFails.Add(1)
			}
			if i%64 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()

	// Kill the leader once a quarter of the stream is written.
	for written.Load() < int64(killAt) {
		time.Sleep(time.Millisecond)
	}
	if l, err := cl.Leader(); err != nil || l != lead {
		t.Fatalf("leader changed before the kill: m%d, %v", l, err)
	}
	readsBefore := reads.Load()
	tKill := time.Now()
	cl.Kill(lead)
	atKill := written.Load()
	t.Logf("killed leader m%d after %d writes (Kill returned after %v)", lead, atKill, time.Since(tKill))
	// Wait for a new leader and for writes after it.
	var newLead int
	for {
		if newLead, err = cl.Leader(); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil || newLead == lead {
		t.Fatalf("leader after kill: m%d, %v", newLead, err)
	}
	tLead := time.Now()
	readsElection := reads.Load() - readsBefore
	t.Logf("new leader m%d %v after the kill; the cache served %d lookups meanwhile", newLead, tLead.Sub(tKill), readsElection)
	if readsElection == 0 {
		t.Error("the cache served no lookups during the election")
	}
	<-writerDone
	// The longest pause between two acknowledged writes.
	var gap time.Duration
	gapAt := 0
	for i := 1; i < n; i++ {
		if d := acks[i].Sub(acks[i-1]); d > gap {
			gap, gapAt = d, i
		}
	}
	t.Logf("longest pause between acknowledged writes: %v before write %d (kill at write ~%d)", gap, gapAt, atKill)
	if acks[n-1].Before(tLead) {
		t.Error("no write acknowledged after the new leader was elected")
	}
	close(readerStop)
	readerWG.Wait()
	if ctx.Err() != nil {
		t.Fatalf("writer did not finish: %d of %d written", written.Load(), n)
	}
	t.Logf("%d placements written in %v, %d retries, slowest write %v; %d cache lookups, %d failed, slowest %v",
		n, time.Since(t0), retries.Load(), time.Duration(maxWrite.Load()), reads.Load(), readFails.Load(), time.Duration(maxRead.Load()))
	if readFails.Load() != 0 {
		t.Errorf("%d lookups failed", readFails.Load())
	}

	// Every placement present exactly once, with the value written.
	waitRevision(t, c, storeRevision(t, w), 30*time.Second)
	items, _, err := w.List(ctx, policy.KindPlacements)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int)
	for _, it := range items {
		seen[it.Object.Key()]++
		p := it.Object.(*policy.Placement)
		var i int
		if _, err := fmt.Sscanf(p.Name, "vm-%d", &i); err != nil || !equalJSON(p, placement(i, "hv1")) {
			t.Errorf("stored %+v, not what was written", p)
		}
	}
	if len(items) != n || len(seen) != n {
		t.Errorf("store holds %d placements (%d distinct), want %d", len(items), len(seen), n)
	}
	for i := range n {
		if seen[vmUUID(i)] != 1 {
			t.Errorf("placement %d stored %d times", i, seen[vmUUID(i)])
		}
	}
	compareWithStore(t, c, w)
	rec.check(t)
	if rec.Relists() != 1 {
		t.Errorf("cache listed %d times, want 1", rec.Relists())
	}

	// The leader-only cache served its last state meanwhile, and catches
	// up by revision once its member is back.
	if n := cL.Len(policy.KindPlacements); n >= 2000 || n < killAt-1 {
		t.Errorf("leader-only cache holds %d placements while its member is down", n)
	}
	if _, ok := cL.Placement(vmUUID(0)); !ok {
		t.Error("leader-only cache lost placement 0")
	}
	tr := time.Now()
	if err := cl.Restart(ctx, lead); err != nil {
		t.Fatal(err)
	}
	waitRevision(t, cL, storeRevision(t, w), 30*time.Second)
	t.Logf("leader-only cache caught up %v after its member restarted (%d events, %d listings)", time.Since(tr), recL.Events(), recL.Relists())
	compareWithStore(t, cL, w)
	recL.check(t)
	if recL.Relists() != 1 {
		t.Errorf("leader-only cache listed %d times, want 1 (resume by revision)", recL.Relists())
	}
}
