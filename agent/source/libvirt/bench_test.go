package libvirt

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	virt "libvirt.org/go/libvirt"
)

// startMany defines and starts n domains with nics vNICs each.
func startMany(tb testing.TB, c *virt.Connect, n, nics int) {
	tb.Helper()
	for i := range n {
		d := newTestDom(1000+i, nics)
		h, err := c.DomainDefineXML(d.xml())
		if err != nil {
			tb.Fatalf("define %s: %v", d.name, err)
		}
		err = h.Create()
		h.Free()
		if err != nil {
			tb.Fatalf("start %s: %v", d.name, err)
		}
	}
}

// BenchmarkReconcile1000x4 times one full reconcile of 1,000 running
// domains with 4 vNICs each on the test driver into a real bbolt store
// (with fsync): list, read and parse every domain's XML and state, snapshot,
// diff, apply. "cold" starts each time from an empty store (1,000 VMs and
// 4,000 VIFs written in one transaction: tetherd's first start); "steady"
// finds the store in step (a reconnect with nothing changed: nothing
// written). ns/op is the time of one full reconcile.
func BenchmarkReconcile1000x4(b *testing.B) {
	const n, nics = 1000, 4
	ctl := control(b)
	startMany(b, ctl, n, nics)
	s := &Source{URI: testURI, Logger: testLogger(b)}
	s.init()
	release, err := acquireEventLoop(s.log)
	must(b, "event loop", err)
	defer release()
	ctx := context.Background()
	ss, err := s.open(ctx, testURI)
	must(b, "open", err)
	defer s.close(ss)
	dir := b.TempDir()
	newStore := func(i int) *inventory.Store {
		st, err := inventory.Open(ctx, filepath.Join(dir, fmt.Sprintf("inv-%d.db", i)), inventory.Options{Logger: testLogger(b)})
		must(b, "open store", err)
		return st
	}
	check := func(st *inventory.Store) {
		snap, err := st.Snapshot(ctx)
		must(b, "snapshot", err)
		// +1 VM: the test driver's own domain "test".
		if len(snap.VMs) != n+1 || len(snap.VIFs) < n*nics {
			b.Fatalf("inventory has %d VMs, %d VIFs", len(snap.VMs), len(snap.VIFs))
		}
	}

	b.Run("cold", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			st := newStore(i)
			i++
			s.Store = st
			b.StartTimer()
			must(b, "reconcile", s.reconcile(ctx, ss))
			b.StopTimer()
			check(st)
			st.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(n), "domains")
	})
	b.Run("steady", func(b *testing.B) {
		st := newStore(-1)
		defer st.Close()
		s.Store = st
		must(b, "reconcile", s.reconcile(ctx, ss))
		check(st)
		gen := st.Generation()
		for b.Loop() {
			must(b, "reconcile", s.reconcile(ctx, ss))
		}
		if st.Generation() != gen || s.Stats().LastReconcileOps != 0 {
			b.Errorf("steady reconcile wrote: generation %d -> %d, %d ops", gen, st.Generation(), s.Stats().LastReconcileOps)
		}
		b.ReportMetric(float64(n), "domains")
	})
}

// BenchmarkEventToCommit measures the latency from a libvirt event to its
// commit in the inventory, as a subscriber of the store's feed sees it.
// Each iteration starts and then destroys one domain with 4 vNICs (two
// events, two samples). "from_event" starts the clock when a lifecycle
// callback of the test's own connection fires (the same dispatch that
// marks the domain dirty for the Source); "from_call" starts it before the
// libvirt call (an upper bound that includes the call). Run it with
// -benchtime=500x for the N=500 start/stop cycles of the issue. The store
// syncs to disk ("fsync") or not ("nosync", to show the rest of the path).
func BenchmarkEventToCommit(b *testing.B) {
	for _, tc := range []struct {
		name   string
		noSync bool
		others int
	}{
		{"fsync", false, 0},
		{"nosync", true, 0},
		// With 1,000 other running domains (4,000 VIFs) in libvirt and
		// in the inventory.
		{"fsync-with-1000x4", false, 1000},
	} {
		b.Run(tc.name, func(b *testing.B) { benchEventToCommit(b, tc.noSync, tc.others) })
	}
}

func benchEventToCommit(b *testing.B, noSync bool, others int) {
	store := openStore(b, noSync)
	if others > 0 {
		startMany(b, control(b), others, 4)
	}
	e := newEnv(b, store)
	d := newTestDom(7, 4)
	h := define(b, e.ctl, d)
	e.waitFor("defined", func() error { return checkVM(store, d, inventory.VMStateShutoff, nil, 0) })

	fired := make(chan time.Time, 16)
	cb, err := e.ctl.DomainEventLifecycleRegister(h, func(_ *virt.Connect, _ *virt.Domain, ev *virt.DomainEventLifecycle) {
		if ev.Event == virt.DOMAIN_EVENT_STARTED || ev.Event == virt.DOMAIN_EVENT_STOPPED {
			select {
			case fired <- time.Now():
			default:
			}
		}
	})
	must(b, "register", err)
	defer e.ctl.DomainEventDeregister(cb)

	sub := store.Subscribe(4096)
	defer sub.Close()
	committed := func(state inventory.VMState) time.Time {
		timeout := time.After(waitTimeout)
		for {
			select {
			case ev, ok := <-sub.Events():
				if !ok {
					b.Fatalf("feed closed: %v", sub.Err())
				}
				if ev.Type == inventory.EventVMUpserted && ev.VM.UUID == d.uuid && ev.VM.State == state {
					return time.Now()
				}
			case <-timeout:
				b.Fatalf("no commit of state %s", state)
			}
		}
	}
	var fromEvent, fromCall []time.Duration
	step := func(call func() error, state inventory.VMState) {
		t0 := time.Now()
		must(b, "libvirt call", call())
		t1 := committed(state)
		var tEv time.Time
		select {
		case tEv = <-fired:
		case <-time.After(waitTimeout):
			b.Fatal("lifecycle callback did not fire")
		}
		fromCall = append(fromCall, t1.Sub(t0))
		fromEvent = append(fromEvent, t1.Sub(tEv))
	}
	for b.Loop() {
		step(h.Create, inventory.VMStateRunning)
		step(h.Destroy, inventory.VMStateShutoff)
	}
	report := func(what string, xs []time.Duration) {
		slices.Sort(xs)
		q := func(p float64) float64 { return float64(xs[int(p*float64(len(xs)-1))].Microseconds()) }
		b.ReportMetric(q(0.50), what+"_p50_µs")
		b.ReportMetric(q(0.99), what+"_p99_µs")
		b.ReportMetric(float64(xs[len(xs)-1].Microseconds()), what+"_max_µs")
	}
	report("from_event", fromEvent)
	report("from_call", fromCall)
	b.ReportMetric(float64(len(fromEvent)), "samples")
}
