package cache

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
)

// TestFollows: the cache follows creates, updates and deletes of every
// kind and answers lookups from them.
func TestFollows(t *testing.T) {
	ctx := context.Background()
	s := dialStore(t, testEtcd.Endpoints(), testPrefix(t))
	// Something present before the cache starts.
	if _, err := s.Create(ctx, &policy.Profile{Name: "web", VID: 100, Mode: policy.ModeSwitch}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	c := New(s, Options{OnChange: rec.OnChange})
	runCache(t, c)
	if err := c.Run(ctx); err == nil || err.Error() != "policy cache: already running" {
		t.Fatalf("second Run: %v", err)
	}
	if p, ok := c.Profile("web"); !ok || p.VID != 100 {
		t.Fatalf("listed profile: %+v %v", p, ok)
	}
	vm := policy.VMRef{UUID: vmUUID(1)}
	if _, err := c.Lookup(vm); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("lookup before group: %v", err)
	}
	if _, err := s.Create(ctx, &policy.PortGroup{Name: "g-web", Profile: "web", Match: policy.Match{NamePatterns: []string{"web-*"}}}); err != nil {
		t.Fatal(err)
	}
	p := placement(1, "hv1")
	p.Name = "web-1"
	rev, err := s.PutPlacements(ctx, []policy.Placement{p})
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, c, rev, 10*time.Second)
	r, err := c.Lookup(vm) // the name comes from the placement
	if err != nil || r.Group != "g-web" || r.Profile.VID != 100 || !r.HasPlacement || r.Placement.Host != "hv1" {
		t.Fatalf("lookup: %+v %v", r, err)
	}
	if pl, ok := c.PlacementByMAC(mac(1)); !ok || pl.VM != vmUUID(1) {
		t.Fatalf("by MAC: %+v %v", pl, ok)
	}
	// Update the profile, move the VM, change its MAC.
	if _, err := s.Update(ctx, &policy.Profile{Name: "web", VID: 200, Mode: policy.ModeSwitch}, 0); err != nil {
		t.Fatal(err)
	}
	p.Host, p.MACs = "hv2", []string{mac(2)}
	rev, err = s.PutPlacements(ctx, []policy.Placement{p})
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, c, rev, 10*time.Second)
	r, err = c.Lookup(vm)
	if err != nil || r.Profile.VID != 200 || r.Placement.Host != "hv2" {
		t.Fatalf("after update: %+v %v", r, err)
	}
	if _, ok := c.PlacementByMAC(mac(1)); ok {
		t.Fatal("old MAC still indexed")
	}
	if got := c.GroupsUsing("web"); len(got) != 1 || got[0] != "g-web" {
		t.Fatalf("GroupsUsing: %v", got)
	}
	// Delete the profile: the group now names a missing profile.
	if _, err := s.Delete(ctx, policy.KindProfiles, "web", 0); err != nil {
		t.Fatal(err)
	}
	rev, err = s.Delete(ctx, policy.KindPlacements, vmUUID(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, c, rev, 10*time.Second)
	if _, err := c.Lookup(policy.VMRef{UUID: vmUUID(1), Name: "web-1"}); !errors.Is(err, ErrNoProfile) {
		t.Fatalf("lookup after profile delete: %v", err)
	}
	if _, ok := c.Placement(vmUUID(1)); ok {
		t.Fatal("deleted placement still cached")
	}
	if _, ok := c.PlacementByMAC(mac(2)); ok {
		t.Fatal("deleted placement's MAC still indexed")
	}
	compareWithStore(t, c, s)
	rec.check(t)
	if rec.Events() != 6 {
		t.Errorf("%d events, want 6 (group, 2 placements, profile update, 2 deletes)", rec.Events())
	}
}

// TestResumeAfterRestart: the embedded etcd is stopped and started again
// on the same directory and ports; the cache keeps serving while it is
// down, resumes its watch by revision (no re-list) and sees every later
// change exactly once.
func TestResumeAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := etcdembed.Start(ctx, etcdembed.Config{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: close etcd after the clients (etcd's
	// graceful stop waits up to 7 s for open watch streams).
	t.Cleanup(func() { srv.Close() })
	prefix := testPrefix(t)
	w := dialStore(t, srv.Endpoints(), prefix)
	cs := dialStore(t, srv.Endpoints(), prefix)
	rec := newRecorder()
	c := New(cs, Options{OnChange: rec.OnChange})
	runCache(t, c)
	write := func(from, to int) int64 {
		var rev int64
		for i := from; i < to; i++ {
			var err error
			if rev, err = w.PutPlacements(ctx, []policy.Placement{placement(i, "hv1")}); err != nil {
				t.Fatal(err)
			}
		}
		return rev
	}
	rev := write(0, 50)
	waitRevision(t, c, rev, 10*time.Second)
	cfg := srv.Config()
	tc := time.Now()
	srv.Close()
	t.Logf("etcd Close with a watch open: %v", time.Since(tc))
	// Reads are served from memory while the DB is down.
	for i := range 50 {
		if _, ok := c.Placement(vmUUID(i)); !ok {
			t.Fatalf("placement %d not served while etcd is down", i)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the watch notice
	srv, err = etcdembed.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rev = write(50, 100)
	waitRevision(t, c, rev, 20*time.Second)
	t.Logf("caught up %v after restart", time.Since(t0))
	if n := c.Relists(); n != 1 {
		t.Errorf("cache listed %d times, want 1 (resume by revision)", n)
	}
	compareWithStore(t, c, w)
	rec.check(t)
	if rec.Events() != 100 {
		t.Errorf("%d events, want 100", rec.Events())
	}
}

// TestCutAndCompact: the cache's connection is cut (a TCP proxy closes it
// and refuses new ones) while writes go on; after the cut the cache
// resumes from its revision and gets the missed changes once each. When
// the store is compacted past the cache's revision during a cut, the
// cache lists again and ends equal to the store.
func TestCutAndCompact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	w := dialStore(t, testEtcd.Endpoints(), prefix)
	px := newProxy(t, testEtcd.Endpoints()[0][len("http://"):])
	cs := dialStore(t, []string{px.Endpoint()}, prefix)
	rec := newRecorder()
	c := New(cs, Options{OnChange: rec.OnChange})
	runCache(t, c)
	put := func(i int, host string) int64 {
		rev, err := w.PutPlacements(ctx, []policy.Placement{placement(i, host)})
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	rev := put(0, "hv1")
	waitRevision(t, c, rev, 10*time.Second)

	px.Cut()
	for i := 1; i <= 30; i++ {
		rev = put(i, "hv1")
	}
	if c.Revision() >= rev {
		t.Fatal("cache saw writes through a cut connection")
	}
	px.Restore()
	t0 := time.Now()
	waitRevision(t, c, rev, 30*time.Second)
	t.Logf("resumed %v after the cut ended", time.Since(t0))
	if n := c.Relists(); n != 1 {
		t.Errorf("listed %d times after a cut, want 1", n)
	}
	rec.check(t)
	if rec.Events() != 31 {
		t.Errorf("%d events, want 31", rec.Events())
	}

	// Cut, write, delete, compact: the cache must re-list.
	px.Cut()
	for i := 1; i <= 10; i++ {
		put(i, "hv2")
	}
	rev, err := w.Delete(ctx, policy.KindPlacements, vmUUID(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Client().Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	px.Restore()
	waitRevision(t, c, rev, 30*time.Second)
	if n := c.Relists(); n != 2 {
		t.Errorf("listed %d times after a compaction, want 2", n)
	}
	if _, ok := c.Placement(vmUUID(0)); ok {
		t.Error("placement deleted during the cut is still cached")
	}
	if p, _ := c.Placement(vmUUID(5)); p.Host != "hv2" {
		t.Errorf("placement updated during the cut: %+v", p)
	}
	compareWithStore(t, c, w)
}

// percentile returns the p-th percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// TestProfileChangeLatency measures the time from a profile Update to
// the change callbacks of 4 caches (4 switches, each with its own etcd
// client) with 10,000 VMs (placements), 100 port groups and 50 profiles
// in the store, over 300 changes.
func TestProfileChangeLatency(t *testing.T) {
	ctx := context.Background()
	s := dialStore(t, testEtcd.Endpoints(), testPrefix(t))
	const nVM, nGroups, nProfiles, nChanges = 10000, 100, 50, 300
	for i := range nProfiles {
		if _, err := s.Create(ctx, &policy.Profile{Name: fmt.Sprintf("p%d", i), VID: uint16(i + 1), Mode: policy.ModeSwitch}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nGroups {
		if _, err := s.Create(ctx, &policy.PortGroup{Name: fmt.Sprintf("g%03d", i), Profile: fmt.Sprintf("p%d", i%nProfiles),
			Match: policy.Match{NamePatterns: []string{fmt.Sprintf("vm-%d*", i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	ps := make([]policy.Placement, nVM)
	for i := range ps {
		ps[i] = placement(i, fmt.Sprintf("hv%d", i%40))
	}
	t0 := time.Now()
	if _, err := s.PutPlacements(ctx, ps); err != nil {
		t.Fatal(err)
	}
	t.Logf("PutPlacements of %d: %v", nVM, time.Since(t0))

	// Several switches, each with its own client and cache.
	const nSwitches = 4
	type mark struct {
		key string
		rev int64
	}
	applied := make(chan mark, 16*nSwitches)
	caches := make([]*Cache, nSwitches)
	t0 = time.Now()
	for k := range caches {
		cs := s
		if k > 0 {
			cs = dialStore(t, testEtcd.Endpoints(), s.Prefix())
		}
		caches[k] = New(cs, Options{OnChange: func(ch Change) {
			for _, e := range ch.Events {
				if e.Kind == policy.KindProfiles {
					applied <- mark{e.Key, e.Revision}
				}
			}
		}})
		runCache(t, caches[k])
	}
	c := caches[0]
	t.Logf("%d caches' initial listing of %d objects: %v", nSwitches, nVM+nGroups+nProfiles, time.Since(t0))
	if n := c.Len(policy.KindPlacements); n != nVM {
		t.Fatalf("cache holds %d placements", n)
	}
	var fromCall, fromReturn, allFromReturn []time.Duration
	for i := range nChanges {
		name := fmt.Sprintf("p%d", i%nProfiles)
		start := time.Now()
		rev, err := s.Update(ctx, &policy.Profile{Name: name, VID: uint16(1 + i%4000), Mode: policy.ModeSwitch, RateKbps: uint32(i)}, 0)
		returned := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		for k := range nSwitches {
			select {
			case m := <-applied:
				now := time.Now()
				if m.key != name || m.rev != rev {
					t.Fatalf("applied %s@%d, want %s@%d", m.key, m.rev, name, rev)
				}
				if k == 0 {
					fromCall = append(fromCall, now.Sub(start))
					fromReturn = append(fromReturn, max(0, now.Sub(returned)))
				}
				if k == nSwitches-1 {
					allFromReturn = append(allFromReturn, max(0, now.Sub(returned)))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("change %d not applied", i)
			}
		}
	}
	for _, d := range [][]time.Duration{fromCall, fromReturn, allFromReturn} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	}
	t.Logf("profile change to cache callback, %d VMs in the store, %d changes: first cache, from Update return p50 %v p99 %v max %v (from Update call p50 %v p99 %v); all %d caches, from Update return p50 %v p99 %v max %v",
		nVM, nChanges, percentile(fromReturn, 0.5), percentile(fromReturn, 0.99), fromReturn[len(fromReturn)-1],
		percentile(fromCall, 0.5), percentile(fromCall, 0.99),
		nSwitches, percentile(allFromReturn, 0.5), percentile(allFromReturn, 0.99), allFromReturn[len(allFromReturn)-1])
	// Lookups answer from memory.
	r, err := c.Lookup(policy.VMRef{UUID: vmUUID(4242)})
	if err != nil || r.Group != "g004" {
		t.Fatalf("lookup: %+v %v", r, err)
	}
}

// BenchmarkLookup measures a VM's group, profile and placement lookup
// with 10,000 placements and 100 groups in the cache (no etcd involved
// once loaded).
func BenchmarkLookup(b *testing.B) {
	ctx := context.Background()
	s := dialStore(b, testEtcd.Endpoints(), testPrefix(b))
	for i := range 100 {
		if _, err := s.Create(ctx, &policy.PortGroup{Name: fmt.Sprintf("g%03d", i), Profile: "p",
			Match: policy.Match{NamePatterns: []string{fmt.Sprintf("vm-%d*", i)}}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, &policy.Profile{Name: "p", Mode: policy.ModeSwitch}); err != nil {
		b.Fatal(err)
	}
	ps := make([]policy.Placement, 10000)
	for i := range ps {
		ps[i] = placement(i, "hv1")
	}
	if _, err := s.PutPlacements(ctx, ps); err != nil {
		b.Fatal(err)
	}
	c := New(s, Options{})
	runCache(b, c)
	for i := 0; b.Loop(); i++ {
		if _, err := c.Lookup(policy.VMRef{UUID: vmUUID(i % 10000)}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSync: after Sync, a write acknowledged before it is visible; a
// change elsewhere in etcd (no event for the cache) does not block Sync.
func TestSync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	w := dialStore(t, testEtcd.Endpoints(), prefix)
	other := dialStore(t, testEtcd.Endpoints(), "/test/elsewhere-"+prefix[len("/test/"):])
	c := New(dialStore(t, testEtcd.Endpoints(), prefix), Options{})
	runCache(t, c)
	for i := range 50 {
		if _, err := w.PutPlacements(ctx, []policy.Placement{placement(i, "hv1")}); err != nil {
			t.Fatal(err)
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Placement(vmUUID(i)); !ok {
			t.Fatalf("placement %d not visible after Sync", i)
		}
	}
	before := c.Revision()
	rev, err := other.PutPlacements(ctx, []policy.Placement{placement(1000, "hv9")})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Revision() < rev || before >= rev {
		t.Fatalf("revision %d after Sync, want >= %d", c.Revision(), rev)
	}
	if _, ok := c.Placement(vmUUID(1000)); ok {
		t.Fatal("a placement under another prefix reached the cache")
	}
	t.Logf("Sync past a foreign change: %v", time.Since(t0))
	// Sync gives up with ctx.
	dead, dcancel := context.WithCancel(ctx)
	dcancel()
	if err := c.Sync(dead); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a canceled context: %v", err)
	}
}
