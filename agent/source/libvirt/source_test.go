package libvirt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	virt "libvirt.org/go/libvirt"
)

// TestLifecycle drives domains with several vNICs through define, start,
// suspend, resume, destroy, restart and undefine on the test driver and
// checks after each step that the inventory follows: VM state, VIF set and
// attributes, and VIF lifecycle states.
func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	st := e.store
	doms := []testDom{newTestDom(1, 3), newTestDom(2, 4), newTestDom(3, 4)}
	h := make([]*virt.Domain, len(doms))

	for i, d := range doms {
		h[i] = define(t, e.ctl, d)
	}
	for _, d := range doms {
		e.waitFor("defined "+d.name, func() error { return checkVM(st, d, inventory.VMStateShutoff, nil, 0) })
	}

	for i := range doms {
		must(t, "start", h[i].Create())
	}
	for _, d := range doms {
		e.waitFor("started "+d.name, func() error {
			return checkVM(st, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
		})
	}

	// Suspend and resume: the VM state changes, the VIFs are not touched.
	before, err := st.List(context.Background(), inventory.Filter{VM: doms[1].uuid})
	must(t, "list", err)
	must(t, "suspend", h[1].Suspend())
	e.waitFor("suspended", func() error {
		return checkVM(st, doms[1], inventory.VMStatePaused, doms[1].wantVIFs(), inventory.StatePending)
	})
	must(t, "resume", h[1].Resume())
	e.waitFor("resumed", func() error {
		return checkVM(st, doms[1], inventory.VMStateRunning, doms[1].wantVIFs(), inventory.StatePending)
	})
	after, err := st.List(context.Background(), inventory.Filter{VM: doms[1].uuid})
	must(t, "list", err)
	for i := range before {
		if before[i].Generation != after[i].Generation {
			t.Errorf("VIF %s rewritten by suspend/resume: generation %d -> %d", before[i].MAC, before[i].Generation, after[i].Generation)
		}
	}

	// Destroy: the VM is shut off, its vNICs are gone (DE-ASSOCIATE due).
	must(t, "destroy", h[2].Destroy())
	e.waitFor("destroyed", func() error {
		return checkVM(st, doms[2], inventory.VMStateShutoff, doms[2].wantVIFs(), inventory.StateGone)
	})
	v, err := st.VIF(doms[2].mac(0))
	must(t, "vif", err)
	if v.Last.From != inventory.StatePending || v.Last.Reason != "absent from libvirt" {
		t.Errorf("gone transition %+v", v.Last)
	}
	// Start again: the gone vNICs are re-added.
	must(t, "restart", h[2].Create())
	e.waitFor("restarted", func() error {
		return checkVM(st, doms[2], inventory.VMStateRunning, doms[2].wantVIFs(), inventory.StatePending)
	})
	v, err = st.VIF(doms[2].mac(0))
	must(t, "vif", err)
	if v.Last.From != inventory.StateGone {
		t.Errorf("re-add transition %+v", v.Last)
	}

	// Undefine a shut-off domain without vNICs left: the VM goes at once.
	must(t, "destroy", h[0].Destroy())
	e.waitFor("destroyed", func() error {
		return checkVM(st, doms[0], inventory.VMStateShutoff, doms[0].wantVIFs(), inventory.StateGone)
	})
	removeGone(t, st, doms[0]) // what the uplink does after DE-ASSOCIATE
	e.waitFor("gone VIFs deleted", func() error { return checkVM(st, doms[0], inventory.VMStateShutoff, nil, 0) })
	must(t, "undefine", h[0].Undefine())
	e.waitFor("undefined", func() error { return absent(st, doms[0].uuid) })

	// Undefine a running domain: it stays, transient, until destroyed; then
	// its vNICs go to gone and the VM record goes when the uplink deletes them.
	must(t, "undefine running", h[1].Undefine())
	must(t, "destroy transient", h[1].Destroy())
	e.waitFor("transient destroyed", func() error {
		vifs, err := st.List(context.Background(), inventory.Filter{VM: doms[1].uuid})
		if err != nil {
			return err
		}
		for _, v := range vifs {
			if v.State != inventory.StateGone {
				return fmt.Errorf("VIF %s is %s", v.MAC, v.State)
			}
		}
		if len(vifs) != doms[1].nics {
			return fmt.Errorf("%d VIFs", len(vifs))
		}
		return nil
	})
	if _, err := st.VM(doms[1].uuid); err != nil {
		t.Errorf("VM with gone VIFs removed too early: %v", err)
	}
	removeGone(t, st, doms[1])
	e.waitFor("VM removed after its VIFs", func() error { return absent(st, doms[1].uuid) })

	if s := e.src.Status(); !s.Connected || s.Events == 0 || s.Name != "libvirt" {
		t.Errorf("status %+v", s)
	}
}

// removeGone deletes d's gone VIFs, as the uplink does after DE-ASSOCIATE.
func removeGone(t *testing.T, st *inventory.Store, d testDom) {
	t.Helper()
	var ch inventory.Change
	for j := range d.nics {
		ch = ch.Add(inventory.RemoveVIF(d.mac(j)))
	}
	_, err := st.Apply(context.Background(), ch)
	must(t, "remove VIFs", err)
}

// TestMetadataChangeEvent: a live change of a running domain's tether
// metadata (an S-Tag) raises libvirt's metadata-change event; the worker
// re-reads the domain and the VIF follows, back to pending because what the
// switch associated changed. (The test driver raises no device events;
// they take the same path: markDomain with the event's domain.)
func TestMetadataChangeEvent(t *testing.T) {
	e := newEnv(t, nil)
	d := newTestDom(21, 4)
	h := define(t, e.ctl, d)
	must(t, "start", h.Create())
	e.waitFor("started", func() error {
		return checkVM(e.store, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
	})
	// The uplink associated the vNIC meanwhile.
	_, err := e.store.Apply(context.Background(), inventory.Change{}.Add(
		inventory.SetState(d.mac(1), inventory.StateAssociated, "VDP ASSOCIATE accepted")))
	must(t, "associate", err)

	events := e.src.Stats().Events
	must(t, "set metadata", h.SetMetadata(virt.DOMAIN_METADATA_ELEMENT,
		fmt.Sprintf(`<tether><vif mac="%s" stag="777"/></tether>`, d.mac(1)),
		"tether", "https://tether-net.github.io/xmlns/tether/1", virt.DOMAIN_AFFECT_LIVE))
	e.waitFor("metadata followed", func() error {
		v, err := e.store.VIF(d.mac(1))
		if err != nil {
			return err
		}
		if v.STag != 777 || v.PortGroup != "" || v.State != inventory.StatePending {
			return fmt.Errorf("VIF %+v", v)
		}
		return nil
	})
	if e.src.Stats().Events <= events {
		t.Errorf("events %d -> %d, want +1", events, e.src.Stats().Events)
	}
}

// TestReconcileRemovesStale: a full reconcile finds VMs of source libvirt
// that libvirt no longer has: one without VIFs is removed, one with a live
// VIF keeps its record with the VIF gone; a VM of another source is left
// alone.
func TestReconcileRemovesStale(t *testing.T) {
	e := newEnv(t, nil)
	stale, withVIF, other := newTestDom(91, 0), newTestDom(92, 1), newTestDom(93, 1)
	_, err := e.store.Apply(context.Background(), inventory.Change{}.Add(
		inventory.UpsertVM(inventory.VM{UUID: stale.uuid, Name: stale.name, State: inventory.VMStateRunning, Source: SourceName}),
		inventory.UpsertVM(inventory.VM{UUID: withVIF.uuid, Name: withVIF.name, State: inventory.VMStateRunning, Source: SourceName}),
		inventory.UpsertVIF(withVIF.wantVIFs()[0]),
		inventory.UpsertVM(inventory.VM{UUID: other.uuid, Name: other.name, State: inventory.VMStateRunning, Source: "cni"}),
		inventory.UpsertVIF(inventory.VIF{MAC: other.mac(0), VM: other.uuid, Kind: inventory.KindVeth}),
	))
	must(t, "seed", err)
	n := e.src.Stats().Reconciles
	e.src.requestResync()
	e.waitFor("reconcile", func() error {
		if r := e.src.Stats().Reconciles; r <= n {
			return fmt.Errorf("%d reconciles", r)
		}
		return nil
	})
	if err := absent(e.store, stale.uuid); err != nil {
		t.Error(err)
	}
	if v, err := e.store.VIF(withVIF.mac(0)); err != nil || v.State != inventory.StateGone {
		t.Errorf("VIF of a vanished VM: %+v, %v", v, err)
	}
	if v, err := e.store.VIF(other.mac(0)); err != nil || v.State != inventory.StatePending {
		t.Errorf("VIF of another source: %+v, %v", v, err)
	}
}

// TestReconcileIdempotent runs the full reconcile twice on one session: the
// second applies nothing and keeps the generation.
func TestReconcileIdempotent(t *testing.T) {
	ctl := control(t)
	store := openStore(t, true)
	for i := range 5 {
		h := define(t, ctl, newTestDom(10+i, 4))
		if i%2 == 0 {
			must(t, "start", h.Create())
		}
	}
	s := &Source{URI: testURI, Store: store, Logger: testLogger(t)}
	s.init()
	release, err := acquireEventLoop(s.log)
	must(t, "event loop", err)
	defer release()
	ctx := context.Background()
	ss, err := s.open(ctx, testURI)
	must(t, "open", err)
	defer s.close(ss)

	must(t, "first reconcile", s.reconcile(ctx, ss))
	gen := store.Generation()
	if s.Stats().LastReconcileOps == 0 || gen == 0 {
		t.Fatalf("first reconcile did nothing: %+v", s.Stats())
	}
	snap1, err := store.Snapshot(ctx)
	must(t, "snapshot", err)
	must(t, "second reconcile", s.reconcile(ctx, ss))
	if ops := s.Stats().LastReconcileOps; ops != 0 {
		t.Errorf("second reconcile applied %d ops", ops)
	}
	if g := store.Generation(); g != gen {
		t.Errorf("generation %d -> %d", gen, g)
	}
	// 6 VMs: ours and the test driver's own "test" domain.
	if len(snap1.VMs) != 6 || len(snap1.VIFs) < 12 {
		t.Errorf("snapshot has %d VMs, %d VIFs", len(snap1.VMs), len(snap1.VIFs))
	}
	if st := s.Stats(); st.Reconciles != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestReconnect fakes a connection loss (the test driver cannot die) by
// calling the close callback's path, holds the reconnect while domains
// change, then checks that the Source connected again, registered its
// events again (later events are followed) and did a full reconcile that
// caught up with what changed while it was away.
func TestReconnect(t *testing.T) {
	var dials atomic.Int32
	gate := make(chan struct{})
	var gateOnce sync.Once
	release := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(release)
	e := newEnv(t, nil, func(s *Source) {
		s.Dial = func(ctx context.Context, uri string) (*virt.Connect, error) {
			if dials.Add(1) == 2 {
				select {
				case <-gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return dialContext(ctx, uri)
		}
	})
	d1, d2 := newTestDom(41, 4), newTestDom(42, 3)
	h1 := define(t, e.ctl, d1)
	must(t, "start", h1.Create())
	e.waitFor("started", func() error {
		return checkVM(e.store, d1, inventory.VMStateRunning, d1.wantVIFs(), inventory.StatePending)
	})

	ss := e.src.sess.Load()
	if ss == nil {
		t.Fatal("no session")
	}
	ss.markClosed(virt.CONNECT_CLOSE_REASON_EOF)
	e.waitFor("disconnected", func() error {
		if st := e.src.Stats(); st.Connected || dials.Load() < 2 {
			return fmt.Errorf("stats %+v, %d dials", st, dials.Load())
		}
		return nil
	})
	if s := e.src.Status(); s.Connected || s.LastError == "" {
		t.Errorf("status while away %+v", s)
	}
	// While the Source is away: d1 stops, d2 appears and starts. Nobody
	// hears these events.
	must(t, "destroy", h1.Destroy())
	h2 := define(t, e.ctl, d2)
	must(t, "start", h2.Create())
	release()

	e.waitFor("reconnected and reconciled", func() error {
		if st := e.src.Stats(); !st.Connected || st.Connects != 2 || st.Reconciles != 2 {
			return fmt.Errorf("stats %+v", st)
		}
		if err := checkVM(e.store, d1, inventory.VMStateShutoff, d1.wantVIFs(), inventory.StateGone); err != nil {
			return err
		}
		return checkVM(e.store, d2, inventory.VMStateRunning, d2.wantVIFs(), inventory.StatePending)
	})
	if s := e.src.Status(); s.LastError != "" {
		t.Errorf("last error not cleared by the reconcile: %q", s.LastError)
	}
	// Events flow on the new connection.
	must(t, "suspend", h2.Suspend())
	e.waitFor("event after reconnect", func() error {
		return checkVM(e.store, d2, inventory.VMStatePaused, d2.wantVIFs(), inventory.StatePending)
	})
	if ss2 := e.src.sess.Load(); ss2 == nil || ss2 == ss || len(ss2.callback) != 5 {
		t.Errorf("new session %p (old %p) with callbacks %v", ss2, ss, ss2.callback)
	}
}

// TestReconnectBackoff: while connecting fails, attempts are spaced by the
// backoff and Status says why; once it works the Source reconciles.
func TestReconnectBackoff(t *testing.T) {
	const fails = 5
	const minWait, maxWait = 4 * time.Millisecond, 16 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	store := openStore(t, true)
	s := &Source{
		URI: testURI, Store: store, Logger: testLogger(t), ReconnectMin: minWait, ReconnectMax: maxWait,
		Dial: func(ctx context.Context, uri string) (*virt.Connect, error) {
			mu.Lock()
			at = append(at, time.Now())
			n := len(at)
			mu.Unlock()
			if n <= fails {
				return nil, errors.New("libvirtd is not there")
			}
			return dialContext(ctx, uri)
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "connected", func() error {
		if st := s.Stats(); !st.Connected || st.Reconciles != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	if st := s.Stats(); st.Errors < fails || st.Connects != 1 {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		if gap < minWait {
			t.Errorf("attempt %d came %v after the previous one, below ReconnectMin %v", i, gap, minWait)
		}
		if gap > maxWait+500*time.Millisecond { // generous: a loaded CI machine
			t.Errorf("attempt %d came %v after the previous one, far above ReconnectMax %v", i, gap, maxWait)
		}
	}
}

// TestBackoff checks the schedule's bounds and growth with the jitter at
// both ends.
func TestBackoff(t *testing.T) {
	const minWait, maxWait = 100 * time.Millisecond, 2 * time.Second
	low := func(int64) int64 { return 0 }
	high := func(k int64) int64 { return k - 1 }
	for n, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		if got := backoff(n, minWait, maxWait, high); got != want {
			t.Errorf("backoff(%d) high = %v, want %v", n, got, want)
		}
		lo := max(want/2, minWait)
		if got := backoff(n, minWait, maxWait, low); got != lo {
			t.Errorf("backoff(%d) low = %v, want %v", n, got, lo)
		}
	}
	if got := backoff(1000, minWait, maxWait, high); got != maxWait {
		t.Errorf("backoff(1000) = %v", got)
	}
}

// flakyStore fails Apply while failing is set.
type flakyStore struct {
	*inventory.Store
	failing atomic.Bool
	fails   atomic.Int32
}

func (f *flakyStore) Apply(ctx context.Context, c inventory.Change) (inventory.Result, error) {
	if f.failing.Load() {
		f.fails.Add(1)
		return inventory.Result{}, errors.New("disk on fire")
	}
	return f.Store.Apply(ctx, c)
}

// TestRetryAfterStoreFailure: an update that cannot be committed is
// retried with backoff until it is.
func TestRetryAfterStoreFailure(t *testing.T) {
	fs := &flakyStore{Store: openStore(t, true)}
	e := newEnv(t, fs.Store, func(s *Source) { s.Store = fs })
	d := newTestDom(51, 4)
	fs.failing.Store(true)
	h := define(t, e.ctl, d)
	must(t, "start", h.Create())
	waitFor(t, "failed applies", func() error {
		if n := fs.fails.Load(); n < 3 {
			return fmt.Errorf("%d failed applies", n)
		}
		return nil
	})
	if s := e.src.Status(); s.LastError == "" {
		t.Errorf("no last error while failing: %+v", s)
	}
	fs.failing.Store(false)
	e.waitFor("recorded after the failure", func() error {
		return checkVM(e.store, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
	})
}

// TestBurst: many events for a few domains in a burst end in the right
// state, with fewer domain updates than events (coalesced).
func TestBurst(t *testing.T) {
	e := newEnv(t, nil)
	var hs []*virt.Domain
	var doms []testDom
	for i := range 8 {
		d := newTestDom(60+i, 4)
		doms = append(doms, d)
		hs = append(hs, define(t, e.ctl, d))
	}
	ev0, sync0 := e.src.Stats().Events, e.src.Stats().DomainSyncs
	for round := range 20 {
		for _, h := range hs {
			must(t, "start", h.Create())
			must(t, "suspend", h.Suspend())
			must(t, "resume", h.Resume())
			if round < 19 {
				must(t, "destroy", h.Destroy())
			}
		}
	}
	for _, d := range doms {
		e.waitFor("burst settled", func() error {
			return checkVM(e.store, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
		})
	}
	st := e.src.Stats()
	events, syncs := st.Events-ev0, st.DomainSyncs-sync0
	t.Logf("%d events, %d domain updates", events, syncs)
	if events < 8*20*3 || syncs > events {
		t.Errorf("%d events, %d domain updates", events, syncs)
	}
}

// TestMarkCoalesces: events for one domain before the worker looks make
// one entry, stamped with the first event's time; the worker is woken once.
func TestMarkCoalesces(t *testing.T) {
	s := &Source{Logger: testLogger(t)}
	s.init()
	a, b := newTestDom(1, 0).uuid, newTestDom(2, 0).uuid
	s.mark(a)
	first := s.dirty[a]
	for range 100 {
		s.mark(a)
		s.mark(b)
	}
	if len(s.wake) != 1 {
		t.Errorf("wake channel holds %d", len(s.wake))
	}
	d, full := s.takeDirty()
	if len(d) != 2 || full || !d[a].Equal(first) {
		t.Errorf("dirty %v, full %v", d, full)
	}
	if d, _ := s.takeDirty(); len(d) != 0 {
		t.Errorf("dirty set not emptied: %v", d)
	}
}

// TestEventLoopStops: the loop goroutine ends when no Source runs.
func TestEventLoopStops(t *testing.T) {
	t.Run("source", func(t *testing.T) { newEnv(t, nil) })
	waitFor(t, "event loop stopped", func() error {
		eventLoop.mu.Lock()
		defer eventLoop.mu.Unlock()
		if eventLoop.running || eventLoop.refs != 0 {
			return fmt.Errorf("running %v, refs %d", eventLoop.running, eventLoop.refs)
		}
		return nil
	})
}

// TestRunConfig: bad configurations fail fast.
func TestRunConfig(t *testing.T) {
	ctx := context.Background()
	if err := (&Source{}).Run(ctx); err == nil {
		t.Error("Run without a store succeeded")
	}
	st := openStore(t, true)
	if err := (&Source{Store: st, ReconnectMin: time.Second, ReconnectMax: time.Millisecond}).Run(ctx); err == nil {
		t.Error("Run with max < min succeeded")
	}
}
