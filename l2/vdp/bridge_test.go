package vdp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// brRig is a bridge on a fake clock against a station played by hand.
type brRig struct {
	t   *testing.T
	br  *vdp.Bridge
	p   *peer
	clk *ecptest.FakeClock
	ev  *events
}

func newBrRig(t *testing.T, d vdp.Decider) *brRig {
	t.Helper()
	clk := ecptest.NewFakeClock(time.Unix(1000, 0))
	a, b := ecptest.Pipe(0)
	ev := newEvents()
	br, err := vdp.NewBridge(b, vdp.BridgeConfig{Name: "br", LocalMAC: bridgeMAC, Timing: &tableTiming, Clock: clk,
		Logger: quiet, OnEvent: ev.hook, Decider: d})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, br.Run)
	return &brRig{t: t, br: br, p: newPeer(t, a, stationMAC, bridgeMAC), clk: clk, ev: ev}
}

// request sends a request for v and returns the bridge's answer TLVs.
func (r *brRig) request(mode wire.VSIMode, v wire.VSI) received {
	r.t.Helper()
	v.Mode = mode
	r.p.send(&v)
	return r.p.next()
}

// answer checks that got is one response TLV of mode with status and, if
// vid > 0, the VID.
func answer(t *testing.T, got received, mode wire.VSIMode, status wire.VSIStatus, vid int) {
	t.Helper()
	if len(got.vsis) != 1 {
		t.Fatalf("answer %v, want one VSI TLV", got.vsis)
	}
	v := got.vsis[0]
	if v.Mode != mode || v.Status != status || (vid >= 0 && v.Filters[0].VID != uint16(vid)) {
		t.Fatalf("answer %v, want %s status %#x VID %d", v, mode, status, vid)
	}
}

// scripted is a Decider answering by mode and counting calls.
type scripted struct {
	mu    sync.Mutex
	by    map[wire.VSIMode]vdp.Decision
	calls int
	last  vdp.DecideRequest
}

func (s *scripted) Decide(ctx context.Context, r vdp.DecideRequest) vdp.Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.last = r
	if d, ok := s.by[r.VSI.Mode]; ok {
		return d
	}
	return vdp.AcceptAll{VID: 100, Profile: testProfile()}.Decide(ctx, r)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestBridgeAssociate: the Decider fills the null VID, the answer carries
// the VID and, after the VSI TLV, the profile; a repeat is a keep-alive
// answered without the Decider; the VSI expires when keep-alives stop.
func TestBridgeAssociate(t *testing.T) {
	d := &scripted{}
	r := newBrRig(t, d)
	got := r.request(wire.VSIAssociate, testVSI(1, 0))
	answer(t, got, wire.VSIAssociate, ok, 100)
	if tl := got.pdu.TLVs; len(tl) != 3 {
		t.Fatalf("answer TLVs %d, want Manager ID, VSI, profile", len(tl))
	} else if p, isP := tl[2].(*wire.TetherProfile); !isP || p.Name != "web" {
		t.Fatalf("third TLV %#v, want the profile", tl[2])
	}
	if ev := r.ev.next(t, vdp.EventAssociated); ev.State != vdp.StateAssociated || ev.Peer != nil {
		t.Errorf("event %+v", ev)
	}
	if d.last.Current != vdp.StateNone || d.last.Channel != "br" || d.last.Manager != mgr {
		t.Errorf("decide request %+v", d.last)
	}

	// Keep-alives, with the granted VID or the null VID again.
	r.waitTimer(tableTiming.KeepAliveTimeout())
	for _, vid := range []uint16{100, 0} {
		r.clk.Advance(tableTiming.KeepAliveTimeout() / 2)
		answer(t, r.request(wire.VSIAssociate, testVSI(1, vid)), wire.VSIAssociate, ok, 100)
		r.waitTimer(tableTiming.KeepAliveTimeout())
	}
	if d.count() != 1 {
		t.Errorf("Decider called %d times, want 1", d.count())
	}

	// No more keep-alives: the bridge de-associates and tells the station.
	r.clk.Advance(tableTiming.KeepAliveTimeout())
	de := r.p.next().vsis
	if len(de) != 1 || de[0].Mode != wire.VSIDeAssociate || de[0].IsResponse() || de[0].Filters[0].VID != 100 {
		t.Fatalf("after the timeout: %v, want a DE-ASSOCIATE request", de)
	}
	if ev := r.ev.next(t, vdp.EventKeepaliveExpired); ev.State != vdp.StateNone {
		t.Errorf("event %+v", ev)
	}
	if len(r.br.VSIs()) != 0 {
		t.Errorf("bridge still holds %v", r.br.VSIs())
	}
}

func (r *brRig) waitTimer(d time.Duration) { r.t.Helper(); waitTimer(r.t, r.clk, d) }

// TestBridgeTransitions is the bridge's side of the table: what it
// answers and holds after each request.
func TestBridgeTransitions(t *testing.T) {
	const (
		pre   = wire.VSIPreAssociate
		assoc = wire.VSIAssociate
		deas  = wire.VSIDeAssociate
	)
	refuseKeep := vdp.Decision{Code: wire.VDPInsufficientResources, Keep: true}
	refuseHard := vdp.Decision{Code: wire.VDPInvalidAddress, Hard: true}
	type step struct {
		mode   wire.VSIMode
		status wire.VSIStatus
		state  vdp.State
	}
	rows := []struct {
		name  string
		by    map[wire.VSIMode]vdp.Decision
		steps []step
	}{
		{"pre-associate then associate", nil, []step{
			{pre, ok, vdp.StatePreAssociated},
			{assoc, ok, vdp.StateAssociated},
			{deas, ok, vdp.StateNone},
		}},
		{"associate refused with KEEP keeps pre-association", map[wire.VSIMode]vdp.Decision{assoc: refuseKeep}, []step{
			{pre, ok, vdp.StatePreAssociated},
			{assoc, wire.ResponseStatus(wire.VDPInsufficientResources, true, false), vdp.StatePreAssociated},
		}},
		{"refusal of a new VSI holds nothing", map[wire.VSIMode]vdp.Decision{assoc: refuseHard}, []step{
			{assoc, wire.ResponseStatus(wire.VDPInvalidAddress, false, true), vdp.StateNone},
		}},
		{"refusal without KEEP releases", map[wire.VSIMode]vdp.Decision{assoc: {Code: wire.VDPOtherFailure}}, []step{
			{pre, ok, vdp.StatePreAssociated},
			{assoc, wire.ResponseStatus(wire.VDPOtherFailure, false, false), vdp.StateNone},
		}},
		{"de-associate of an unknown VSI succeeds", nil, []step{
			{deas, ok, vdp.StateNone},
		}},
		{"invalid filters from the Decider", map[wire.VSIMode]vdp.Decision{assoc: {Filters: []wire.Filter{{VID: 1}, {VID: 2}}}}, []step{
			{assoc, wire.ResponseStatus(wire.VDPOtherFailure, false, false), vdp.StateNone},
		}},
		{"a Decider may not change a requested VID", map[wire.VSIMode]vdp.Decision{pre: {Filters: []wire.Filter{{VID: 9}}}}, []step{
			{pre, wire.ResponseStatus(wire.VDPOtherFailure, false, false), vdp.StateNone},
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := newBrRig(t, &scripted{by: row.by})
			v := testVSI(1, 0)
			if row.name == "a Decider may not change a requested VID" {
				v = testVSI(1, 5)
			}
			for i, s := range row.steps {
				got := r.request(s.mode, v)
				answer(t, got, s.mode, s.status, -1)
				info, _ := r.br.Lookup(vdp.KeyOf(&v))
				if info.State != s.state {
					t.Errorf("step %d: bridge holds %s, want %s", i, info.State, s.state)
				}
			}
		})
	}
}

// TestBridgeSlowDecider: a Decider that outlives the resource wait delay
// is answered "unable to contact VSI manager"; while it runs, repeats of
// the request are ignored, and a DE-ASSOCIATE cancels it.
func TestBridgeSlowDecider(t *testing.T) {
	started := make(chan struct{}, 10)
	d := vdp.DeciderFunc(func(ctx context.Context, r vdp.DecideRequest) vdp.Decision {
		started <- struct{}{}
		<-ctx.Done()
		return vdp.Decision{}
	})
	r := newBrRig(t, d)
	v := testVSI(1, 0)
	v.Mode = wire.VSIAssociate
	r.p.send(&v)
	<-started
	r.p.send(&v) // ignored: being decided
	r.waitTimer(tableTiming.ResourceWait())
	r.clk.Advance(tableTiming.ResourceWait())
	answer(t, r.p.next(), wire.VSIAssociate, wire.ResponseStatus(wire.VDPUnableToContactManager, false, false), -1)
	r.p.none(20 * time.Millisecond)

	// A DE-ASSOCIATE during a decision: answered at once; the decision's
	// answer is dropped.
	r.p.send(&v)
	<-started
	de := v
	de.Mode = wire.VSIDeAssociate
	answer(t, r.request(wire.VSIDeAssociate, de), wire.VSIDeAssociate, ok, -1)
	r.waitTimer(tableTiming.ResourceWait())
	r.clk.Advance(tableTiming.ResourceWait())
	r.p.none(20 * time.Millisecond)
	if len(r.br.VSIs()) != 0 {
		t.Errorf("bridge holds %v", r.br.VSIs())
	}
}

// TestBridgeDeassociate: a bridge-initiated de-association sends a
// DE-ASSOCIATE request and forgets the VSI.
func TestBridgeDeassociate(t *testing.T) {
	r := newBrRig(t, vdp.AcceptAll{VID: 100})
	v := testVSI(1, 0)
	answer(t, r.request(wire.VSIAssociate, v), wire.VSIAssociate, ok, 100)
	if err := r.br.Deassociate(vdp.KeyOf(&v)); err != nil {
		t.Fatal(err)
	}
	de := r.p.next().vsis
	if len(de) != 1 || de[0].Mode != wire.VSIDeAssociate || de[0].IsResponse() {
		t.Fatalf("got %v, want a DE-ASSOCIATE request", de)
	}
	if err := r.br.Deassociate(vdp.KeyOf(&v)); !errors.Is(err, vdp.ErrNotAssociated) {
		t.Errorf("second Deassociate: %v", err)
	}
}

// TestBridgeBatchOfRequests: one VDPDU with many VSI TLVs is answered for
// each of them.
func TestBridgeBatchOfRequests(t *testing.T) {
	r := newBrRig(t, vdp.AcceptAll{VID: 100})
	var tlvs []wire.TLV
	for i := range 30 {
		v := testVSI(uint32(i), 0)
		v.Mode = wire.VSIAssociate
		tlvs = append(tlvs, &v)
	}
	r.p.send(tlvs...)
	seen := map[vdp.Key]bool{}
	for len(seen) < 30 {
		for _, v := range r.p.next().vsis {
			if v.Status != ok || v.Filters[0].VID != 100 || seen[vdp.KeyOf(v)] {
				t.Fatalf("answer %v", v)
			}
			seen[vdp.KeyOf(v)] = true
		}
	}
	if len(r.br.VSIs()) != 30 {
		t.Errorf("bridge holds %d VSIs", len(r.br.VSIs()))
	}
}
