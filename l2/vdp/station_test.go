package vdp_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// tableTiming is the timing of the fake-clock tests; the values only need
// to be told apart.
var tableTiming = vdp.Timing{R: 2, RTE: 4, RWD: 12, RKA: 16}

// stRig is a station on a fake clock against a bridge played by hand.
type stRig struct {
	t   *testing.T
	st  *vdp.Station
	p   *peer
	clk *ecptest.FakeClock
	ev  *events
}

func newStRig(t *testing.T) *stRig {
	t.Helper()
	clk := ecptest.NewFakeClock(time.Unix(1000, 0))
	a, b := ecptest.Pipe(0)
	ev := newEvents()
	st, err := vdp.NewStation(a, vdp.StationConfig{Name: "st", LocalMAC: stationMAC, Timing: &tableTiming,
		Clock: clk, Logger: quiet, OnEvent: ev.hook})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, st.Run)
	return &stRig{t: t, st: st, p: newPeer(t, b, bridgeMAC, stationMAC), clk: clk, ev: ev}
}

// submit sends a request and returns where its result will arrive.
func (r *stRig) submit(mode wire.VSIMode, v wire.VSI) (<-chan vdp.Result, error) {
	ch := make(chan vdp.Result, 1)
	err := r.st.Submit(vdp.Request{Mode: mode, Manager: mgr, VSI: v}, func(x vdp.Result) { ch <- x })
	return ch, err
}

func (r *stRig) result(ch <-chan vdp.Result) vdp.Result {
	r.t.Helper()
	select {
	case x := <-ch:
		return x
	case <-time.After(5 * time.Second):
		r.t.Fatal("no result")
	}
	return vdp.Result{}
}

// noResult checks that ch stays empty for a while.
func (r *stRig) noResult(ch <-chan vdp.Result) {
	r.t.Helper()
	select {
	case x := <-ch:
		r.t.Fatalf("unexpected result %+v", x)
	case <-time.After(20 * time.Millisecond):
	}
}

// waitTimer waits until a fake timer is armed to fire exactly d from now.
func (r *stRig) waitTimer(d time.Duration) {
	r.t.Helper()
	waitTimer(r.t, r.clk, d)
}

func waitTimer(t testing.TB, clk *ecptest.FakeClock, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(clk.Deadlines(), d) {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("no timer armed for %v; armed: %v", d, clk.Deadlines())
}

// step is one request in a transition table row and what must follow.
type step struct {
	mode      wire.VSIMode
	reqVID    uint16                             // VID in the request (0: null VID)
	reply     func(req *wire.VSI) []wire.TLV     // the bridge's answer; nil: none
	submitErr error                              // Submit fails at once with this
	state     vdp.State                          // the VSI's state after
	err       error                              // errors.Is target of Result.Err; nil: success
	check     func(t *testing.T, res vdp.Result) // more checks
}

// Answers of the hand-played bridge.
func grant(vid uint16, withProfile bool) func(*wire.VSI) []wire.TLV {
	return func(req *wire.VSI) []wire.TLV {
		f := slices.Clone(req.Filters)
		f[0].VID = vid
		out := []wire.TLV{response(req, ok, f)}
		if withProfile {
			out = append(out, testProfile())
		}
		return out
	}
}

func refuse(code wire.VDPResponseCode, keep, hard bool) func(*wire.VSI) []wire.TLV {
	return func(req *wire.VSI) []wire.TLV {
		return []wire.TLV{response(req, wire.ResponseStatus(code, keep, hard), nil)}
	}
}

func answerDeassociate(req *wire.VSI) []wire.TLV {
	r := response(req, ok, nil)
	r.Mode = wire.VSIDeAssociate
	return []wire.TLV{r}
}

func wantVID(vid uint16) func(*testing.T, vdp.Result) {
	return func(t *testing.T, res vdp.Result) {
		t.Helper()
		if len(res.Filters) != 1 || res.Filters[0].VID != vid {
			t.Errorf("granted filters %+v, want VID %d", res.Filters, vid)
		}
	}
}

func wantBits(keep, hard bool, code wire.VDPResponseCode) func(*testing.T, vdp.Result) {
	return func(t *testing.T, res vdp.Result) {
		t.Helper()
		var re *vdp.ResponseError
		if !errors.As(res.Err, &re) || re.Keep() != keep || re.Hard() != hard || re.Code() != code {
			t.Errorf("error %v, want code %d keep %v hard %v", res.Err, code, keep, hard)
		}
	}
}

// TestStationTransitions is the station's transition table (IEEE
// 802.1Qbg-2012 41.5 as lldpad's qbg/vdp22sm.c implements it): for each
// row, requests in order, the bridge's answers, and the state and outcome
// after each.
func TestStationTransitions(t *testing.T) {
	const (
		pre   = wire.VSIPreAssociate
		rr    = wire.VSIPreAssociateRR
		assoc = wire.VSIAssociate
		deas  = wire.VSIDeAssociate
	)
	rows := []struct {
		name  string
		steps []step
	}{
		{"associate with the null VID takes the bridge's VID and profile", []step{
			{mode: assoc, reply: grant(300, true), state: vdp.StateAssociated, check: func(t *testing.T, res vdp.Result) {
				wantVID(300)(t, res)
				if res.Profile == nil || res.Profile.Name != "web" {
					t.Errorf("profile %+v", res.Profile)
				}
			}},
		}},
		{"associate with a VID keeps it", []step{
			{mode: assoc, reqVID: 42, reply: grant(42, false), state: vdp.StateAssociated, check: wantVID(42)},
		}},
		{"associate refused without KEEP ends the VSI", []step{
			{mode: assoc, reply: refuse(wire.VDPInsufficientResources, false, false), state: vdp.StateNone, err: vdp.ErrRefused,
				check: wantBits(false, false, wire.VDPInsufficientResources)},
		}},
		{"associate refused with the hard-error bit", []step{
			{mode: assoc, reply: refuse(wire.VDPOtherFailure, false, true), state: vdp.StateNone, err: vdp.ErrRefused,
				check: wantBits(false, true, wire.VDPOtherFailure)},
		}},
		{"every error code is reported", []step{
			{mode: assoc, reply: refuse(wire.VDPInvalidFormat, false, false), state: vdp.StateNone, err: vdp.ErrRefused, check: wantBits(false, false, 1)},
			{mode: assoc, reply: refuse(wire.VDPUnableToContactManager, false, false), state: vdp.StateNone, err: vdp.ErrRefused, check: wantBits(false, false, 3)},
			{mode: assoc, reply: refuse(wire.VDPInvalidAddress, false, true), state: vdp.StateNone, err: vdp.ErrRefused, check: wantBits(false, true, 5)},
		}},
		{"pre-associate, then associate refused with KEEP stays pre-associated", []step{
			{mode: pre, reply: grant(7, false), state: vdp.StatePreAssociated},
			{mode: assoc, reply: refuse(wire.VDPInsufficientResources, true, false), state: vdp.StatePreAssociated, err: vdp.ErrRefused,
				check: wantBits(true, false, wire.VDPInsufficientResources)},
		}},
		{"pre-associate with reservation, then associate", []step{
			{mode: rr, reply: grant(7, false), state: vdp.StatePreAssociatedRR},
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
		}},
		{"pre-associate of an associated VSI is refused locally", []step{
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
			{mode: pre, submitErr: vdp.ErrInvalidTransition, state: vdp.StateAssociated},
			{mode: rr, submitErr: vdp.ErrInvalidTransition, state: vdp.StateAssociated},
		}},
		{"de-associate of an unknown VSI is refused locally", []step{
			{mode: deas, submitErr: vdp.ErrNotAssociated, state: vdp.StateNone},
		}},
		{"associate, then de-associate", []step{
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
			{mode: deas, reply: grant(7, false), state: vdp.StateNone},
		}},
		{"de-associate refused with KEEP stays associated", []step{
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
			{mode: deas, reply: refuse(wire.VDPOtherFailure, true, false), state: vdp.StateAssociated, err: vdp.ErrRefused},
		}},
		{"associate again refreshes", []step{
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
			{mode: assoc, reply: grant(7, false), state: vdp.StateAssociated},
		}},
		{"a DE-ASSOCIATE answer ends the VSI", []step{
			{mode: assoc, reply: answerDeassociate, state: vdp.StateNone, err: vdp.ErrDeassociatedByBridge},
		}},
		{"a changed VID is a mismatch", []step{
			{mode: assoc, reqVID: 100, reply: grant(200, false), state: vdp.StateNone, err: vdp.ErrResponseMismatch},
		}},
		{"no answer within the response wait", []step{
			{mode: assoc, state: vdp.StateNone, err: vdp.ErrTimeout},
		}},
		{"pre-associated, no answer to associate", []step{
			{mode: pre, reply: grant(7, false), state: vdp.StatePreAssociated},
			{mode: assoc, state: vdp.StateNone, err: vdp.ErrTimeout},
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := newStRig(t)
			for i, s := range row.steps {
				v := testVSI(1, s.reqVID)
				ch, err := r.submit(s.mode, v)
				if s.submitErr != nil {
					if !errors.Is(err, s.submitErr) {
						t.Fatalf("step %d: Submit: %v, want %v", i, err, s.submitErr)
					}
				} else {
					if err != nil {
						t.Fatalf("step %d: Submit: %v", i, err)
					}
					got := r.p.next()
					if len(got.vsis) != 1 || got.vsis[0].Mode != s.mode || got.vsis[0].IsResponse() ||
						got.vsis[0].Filters[0].VID != s.reqVID {
						t.Fatalf("step %d: bridge got %v", i, got.vsis)
					}
					if s.reply != nil {
						r.p.send(s.reply(got.vsis[0])...)
					} else {
						r.waitTimer(tableTiming.ResponseWait())
						r.noResult(ch)
						r.clk.Advance(tableTiming.ResponseWait())
					}
					res := r.result(ch)
					if (s.err == nil) != (res.Err == nil) || (s.err != nil && !errors.Is(res.Err, s.err)) {
						t.Fatalf("step %d: %s: error %v, want %v", i, s.mode, res.Err, s.err)
					}
					if res.State != s.state || res.Mode != s.mode || res.Key != vdp.KeyOf(&v) {
						t.Errorf("step %d: result %+v, want state %s", i, res, s.state)
					}
					if s.check != nil {
						s.check(t, res)
					}
				}
				info, found := r.st.Lookup(vdp.KeyOf(&v))
				if found != (s.state != vdp.StateNone) || info.State != s.state || info.Pending != 0 {
					t.Errorf("step %d: station holds %+v (found %v), want state %s", i, info, found, s.state)
				}
			}
		})
	}
}

// associate brings VSI 1 to ASSOCIATED with VID 300 and returns the
// request the bridge saw.
func (r *stRig) associate() *wire.VSI {
	r.t.Helper()
	ch, err := r.submit(wire.VSIAssociate, testVSI(1, 0))
	if err != nil {
		r.t.Fatal(err)
	}
	req := r.p.next().vsis[0]
	r.p.send(grant(300, true)(req)...)
	if res := r.result(ch); res.Err != nil {
		r.t.Fatal(res.Err)
	}
	r.waitTimer(tableTiming.KeepAlive())
	return req
}

// keepalive fires the keep-alive timer and returns the request it sends.
func (r *stRig) keepalive() *wire.VSI {
	r.t.Helper()
	r.clk.Advance(tableTiming.KeepAlive())
	ka := r.p.next().vsis
	if len(ka) != 1 || ka[0].Mode != wire.VSIAssociate || ka[0].Filters[0].VID != 300 || ka[0].Status != 0 {
		r.t.Fatalf("keep-alive %v, want ASSOCIATE with the granted VID 300", ka)
	}
	return ka[0]
}

func (r *stRig) state() vdp.State {
	info, _ := r.st.Lookup(vdp.KeyOf(&wire.VSI{VSIIDFormat: wire.VSIIDUUID, VSIID: testVSI(1, 0).VSIID}))
	return info.State
}

// TestStationKeepalive covers the keep-alive: it repeats the request with
// the granted VID every 10 µs × 2^RKA; success keeps the VSI silently;
// a refusal, KEEP or not, or no answer is an event.
func TestStationKeepalive(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		r := newStRig(t)
		r.associate()
		for range 3 {
			ka := r.keepalive()
			r.p.send(grant(300, true)(ka)...)
			r.waitTimer(tableTiming.KeepAlive())
		}
		if r.state() != vdp.StateAssociated || r.ev.count(vdp.EventKeepaliveFailed) != 0 {
			t.Errorf("state %s, %d failures", r.state(), r.ev.count(vdp.EventKeepaliveFailed))
		}
	})
	t.Run("refused", func(t *testing.T) {
		r := newStRig(t)
		r.associate()
		r.p.send(refuse(wire.VDPOtherFailure, false, false)(r.keepalive())...)
		ev := r.ev.next(t, vdp.EventKeepaliveFailed)
		if ev.State != vdp.StateNone || !errors.Is(ev.Err, vdp.ErrRefused) || r.state() != vdp.StateNone {
			t.Errorf("event %+v", ev)
		}
	})
	t.Run("refused with KEEP", func(t *testing.T) {
		r := newStRig(t)
		r.associate()
		r.p.send(refuse(wire.VDPOtherFailure, true, false)(r.keepalive())...)
		ev := r.ev.next(t, vdp.EventKeepaliveFailed)
		if ev.State != vdp.StateAssociated || r.state() != vdp.StateAssociated {
			t.Errorf("event %+v", ev)
		}
		r.waitTimer(tableTiming.KeepAlive()) // still kept alive
	})
	t.Run("unanswered", func(t *testing.T) {
		r := newStRig(t)
		r.associate()
		r.keepalive()
		r.waitTimer(tableTiming.ResponseWait())
		r.clk.Advance(tableTiming.ResponseWait())
		ev := r.ev.next(t, vdp.EventKeepaliveFailed)
		if ev.State != vdp.StateNone || !errors.Is(ev.Err, vdp.ErrTimeout) {
			t.Errorf("event %+v", ev)
		}
	})
	t.Run("request during a keep-alive waits for it", func(t *testing.T) {
		r := newStRig(t)
		r.associate()
		ka := r.keepalive()
		ch, err := r.submit(wire.VSIDeAssociate, testVSI(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		r.p.none(20 * time.Millisecond)
		r.p.send(grant(300, false)(ka)...)
		de := r.p.next().vsis[0]
		if de.Mode != wire.VSIDeAssociate {
			t.Fatalf("after the keep-alive: %v", de)
		}
		r.p.send(grant(300, false)(de)...)
		if res := r.result(ch); res.Err != nil || res.State != vdp.StateNone {
			t.Fatalf("de-associate: %+v", res)
		}
	})
}

// TestStationBridgeDeassociates: an unsolicited DE-ASSOCIATE request ends
// the VSI, with an event and no answer.
func TestStationBridgeDeassociates(t *testing.T) {
	r := newStRig(t)
	req := r.associate()
	de := *req
	de.Mode, de.Status = wire.VSIDeAssociate, 0
	de.Filters = []wire.Filter{{MAC: req.Filters[0].MAC, VID: 300}}
	r.p.send(&de)
	ev := r.ev.next(t, vdp.EventBridgeDeassociated)
	if ev.State != vdp.StateNone || ev.Key != vdp.KeyOf(req) || r.state() != vdp.StateNone {
		t.Errorf("event %+v", ev)
	}
	r.p.none(20 * time.Millisecond)
}

// TestStationBusy: a second request while one is outstanding fails at
// once.
func TestStationBusy(t *testing.T) {
	r := newStRig(t)
	ch, err := r.submit(wire.VSIAssociate, testVSI(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.submit(wire.VSIAssociate, testVSI(1, 0)); !errors.Is(err, vdp.ErrBusy) {
		t.Fatalf("second Submit: %v, want ErrBusy", err)
	}
	r.p.send(grant(5, false)(r.p.next().vsis[0])...)
	if res := r.result(ch); res.Err != nil {
		t.Fatal(res.Err)
	}
}

// TestStationInvalidRequests are refused before anything is sent.
func TestStationInvalidRequests(t *testing.T) {
	r := newStRig(t)
	noFilter := testVSI(1, 0)
	noFilter.Filters = nil
	twoNull := wire.VSI{VSIIDFormat: wire.VSIIDUUID, VSIID: [16]byte{1}, FilterFormat: wire.FilterVID,
		Filters: []wire.Filter{{VID: 0}, {VID: 5}}}
	badVID := testVSI(1, 4095)
	for _, c := range []struct {
		mode wire.VSIMode
		v    wire.VSI
	}{{wire.VSIAssociate, noFilter}, {wire.VSIAssociate, twoNull}, {wire.VSIAssociate, badVID}, {9, testVSI(1, 0)}} {
		if _, err := r.submit(c.mode, c.v); !errors.Is(err, vdp.ErrInvalidRequest) {
			t.Errorf("%s %v: %v, want ErrInvalidRequest", c.mode, c.v.Filters, err)
		}
	}
	r.p.none(20 * time.Millisecond)
}

// TestStationECPGivesUp: when ECP drops the frame after R retries, the
// request fails with ecp.ErrNoAck at once (not after the response wait).
func TestStationECPGivesUp(t *testing.T) {
	r := newStRig(t)
	r.p.setAck(false)
	ch, err := r.submit(wire.VSIAssociate, testVSI(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	ack := tableTiming.ECP().AckTimeout()
	for range int(tableTiming.R) + 1 {
		r.p.next()
		r.waitTimer(ack)
		r.clk.Advance(ack)
	}
	res := r.result(ch)
	if !errors.Is(res.Err, ecp.ErrNoAck) || res.State != vdp.StateNone {
		t.Fatalf("result %+v", res)
	}
}

// TestStationBatches: requests submitted while an ECPDU is outstanding go
// out together in the next one, under one Manager ID; requests under
// another manager wait for the next ECPDU.
func TestStationBatches(t *testing.T) {
	r := newStRig(t)
	r.p.setAck(false) // hold the first ECPDU outstanding
	if _, err := r.submit(wire.VSIAssociate, testVSI(0, 0)); err != nil {
		t.Fatal(err)
	}
	first := r.p.next()
	for i := 1; i <= 50; i++ {
		if _, err := r.submit(wire.VSIAssociate, testVSI(uint32(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	other := mustManager("other")
	if err := r.st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: other, VSI: testVSI(99, 0)}, nil); err != nil {
		t.Fatal(err)
	}
	r.p.setAck(true)
	if err := r.p.end.Inject(context.Background(), frame(stationMAC, bridgeMAC,
		&wire.ECPDU{Op: wire.ECPAck, Subtype: wire.ECPSubtypeVDP, Sequence: first.seq})); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var mgrs []string
	for n := 0; n < 51; {
		got := r.p.next()
		sizes = append(sizes, len(got.vsis))
		mgrs = append(mgrs, got.pdu.ManagerID().String())
		n += len(got.vsis)
	}
	// 42 VSI TLVs of 35 bytes fit in an unsigned ECPDU.
	if !slices.Equal(sizes, []int{42, 8, 1}) || !slices.Equal(mgrs, []string{"tether", "tether", "other"}) {
		t.Errorf("batches %v under %v, want [42 8 1] under [tether tether other]", sizes, mgrs)
	}
}

// TestStationOneAtATimeToPlainBridge: toward a bridge known not to be
// tether's (PeerCapable false, e.g. lldpad), the station sends one VSI per
// VDPDU and the next request only after the previous one is answered.
func TestStationOneAtATimeToPlainBridge(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(1000, 0))
	a, b := ecptest.Pipe(0)
	st, err := vdp.NewStation(a, vdp.StationConfig{Name: "st", LocalMAC: stationMAC, Timing: &tableTiming,
		Clock: clk, Logger: quiet, Security: vdp.Security{PeerCapable: func() bool { return false }}})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, st.Run)
	p := newPeer(t, b, bridgeMAC, stationMAC)
	results := make(chan vdp.Result, 5)
	for i := 0; i < 5; i++ {
		if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: testVSI(uint32(i), 0)},
			func(x vdp.Result) { results <- x }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		got := p.next()
		if len(got.vsis) != 1 {
			t.Fatalf("ECPDU %d carries %d VSIs, want 1", i, len(got.vsis))
		}
		// Nothing more goes out while this one waits for its answer.
		p.none(50 * time.Millisecond)
		p.send(grant(300, true)(got.vsis[0])...)
		if res := <-results; res.Err != nil {
			t.Fatalf("VSI %d: %v", i, res.Err)
		}
	}
}

// TestStationStop: requests outstanding when Run ends fail with
// ErrStopped, whether in flight or still queued, and the VSIs keep their
// state.
func TestStationStop(t *testing.T) {
	a, b := ecptest.Pipe(0)
	st, err := vdp.NewStation(a, vdp.StationConfig{LocalMAC: stationMAC, Timing: &fast, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, b, bridgeMAC, stationMAC)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	first := make(chan vdp.Result, 1)
	if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: testVSI(1, 0)}, func(x vdp.Result) { first <- x }); err != nil {
		t.Fatal(err)
	}
	p.send(grant(5, false)(p.next().vsis[0])...)
	r := <-first
	if r.Err != nil || r.State != vdp.StateAssociated {
		t.Fatalf("associate: %+v", r)
	}
	p.setAck(false)
	results := make(chan vdp.Result, 2)
	for _, i := range []uint32{2, 3} { // 2 in flight (never ACKed), 3 queued behind it
		if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: testVSI(i, 0)}, func(x vdp.Result) { results <- x }); err != nil {
			t.Fatal(err)
		}
	}
	p.next()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	for range 2 {
		if x := <-results; !errors.Is(x.Err, vdp.ErrStopped) || x.State != vdp.StateNone {
			t.Errorf("result %+v", x)
		}
	}
	if info, found := st.Lookup(r.Key); !found || info.State != vdp.StateAssociated {
		t.Errorf("VSI 1 after stop: %+v (found %v), want still associated", info, found)
	}
}
