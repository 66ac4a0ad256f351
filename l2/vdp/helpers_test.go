package vdp_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

var (
	stationMAC = [6]byte{0x02, 0, 0, 0, 0xaa, 0x01}
	bridgeMAC  = [6]byte{0x02, 0, 0, 0, 0xbb, 0x01}
	mgr        = mustManager("tether")
)

func mustManager(s string) wire.VSIManagerID {
	m, err := wire.ManagerIDFromString(s)
	if err != nil {
		panic(err)
	}
	return m
}

// quiet drops logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testVSI returns VSI number n: a UUID VSIID carrying n, one MAC/VID filter
// with the given VID (0: null VID).
func testVSI(n uint32, vid uint16) wire.VSI {
	var id [16]byte
	id[0] = 0x6f
	binary.BigEndian.PutUint32(id[12:], n)
	mac := [6]byte{0x52, 0x54, 0x00, byte(n >> 16), byte(n >> 8), byte(n)}
	return wire.VSI{VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: id,
		FilterFormat: wire.FilterMACVID, Filters: []wire.Filter{{MAC: mac, VID: vid}}}
}

func testProfile() *wire.TetherProfile {
	return &wire.TetherProfile{VID: 100, Mode: wire.TetherSTagSwitch, RateKbps: 1000000, Name: "web"}
}

// runBg runs f until the test ends; f's error, other than a cancellation,
// fails the test.
func runBg(t testing.TB, f func(context.Context) error) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return ctx
}

// events collects events.
type events struct {
	mu  sync.Mutex
	evs []vdp.Event
	ch  chan vdp.Event
}

func newEvents() *events { return &events{ch: make(chan vdp.Event, 100000)} }

func (e *events) hook(ev vdp.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	e.ch <- ev
}

// next waits for the next event of kind k, skipping others.
func (e *events) next(t testing.TB, k vdp.EventKind) vdp.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == k {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event", k)
		}
	}
}

func (e *events) count(k vdp.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// peer plays the other side of a Pipe by hand: it ACKs every request it
// reads, hands their VSI TLVs to the test, and sends VDPDUs as requests.
type peer struct {
	t    testing.TB
	end  *ecptest.PipeEnd
	mac  [6]byte
	to   [6]byte
	seq  uint16
	ack  bool // ACK requests (false: let ECP time out)
	mu   sync.Mutex
	reqs chan received
	acks chan uint16
}

// received is a VDPDU the peer read.
type received struct {
	seq  uint16
	pdu  *wire.VDPDU
	vsis []*wire.VSI
}

func newPeer(t testing.TB, end *ecptest.PipeEnd, mac, to [6]byte) *peer {
	p := &peer{t: t, end: end, mac: mac, to: to, seq: 100, ack: true,
		reqs: make(chan received, 10000), acks: make(chan uint16, 10000)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.loop(ctx)
	return p
}

func (p *peer) setAck(on bool) {
	p.mu.Lock()
	p.ack = on
	p.mu.Unlock()
}

func (p *peer) loop(ctx context.Context) {
	var (
		seen bool
		last uint16
	)
	for {
		f, err := p.end.ReadSent(ctx)
		if err != nil {
			return
		}
		var h wire.EthernetHeader
		pl, err := h.Parse(f)
		if err != nil {
			continue
		}
		var e wire.ECPDU
		if err := e.UnmarshalBinary(pl); err != nil {
			p.t.Errorf("peer: frame does not decode: %v", err)
			continue
		}
		if e.Op == wire.ECPAck {
			p.acks <- e.Sequence
			continue
		}
		p.mu.Lock()
		ack := p.ack
		p.mu.Unlock()
		if ack {
			_ = p.end.Inject(ctx, frame(h.Src, p.mac, &wire.ECPDU{Op: wire.ECPAck, Subtype: wire.ECPSubtypeVDP, Sequence: e.Sequence}))
		}
		// A retransmission (the fake clock may fire the ACK timer before
		// the ACK is read) is not a new request, as ECP's receiver says.
		if ack && seen && e.Sequence == last {
			continue
		}
		seen, last = true, e.Sequence
		p.reqs <- received{seq: e.Sequence, pdu: e.VDP, vsis: e.VDP.VSIs()}
	}
}

// frame encodes an ECP frame.
func frame(dst, src [6]byte, e *wire.ECPDU) []byte {
	h := wire.EthernetHeader{Dst: dst, Src: src, EtherType: wire.EtherTypeECP}
	b := h.Append(nil)
	b, err := e.AppendBinary(b)
	if err != nil {
		panic(err)
	}
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// next returns the next VDPDU the other side sent.
func (p *peer) next() received {
	p.t.Helper()
	select {
	case r := <-p.reqs:
		return r
	case <-time.After(5 * time.Second):
		p.t.Fatal("peer: no request")
	}
	return received{}
}

// none checks that nothing arrives for d.
func (p *peer) none(d time.Duration) {
	p.t.Helper()
	select {
	case r := <-p.reqs:
		p.t.Fatalf("peer: unexpected %v", r.vsis)
	case <-time.After(d):
	}
}

// send sends tlvs (after a Manager ID TLV) as a request and waits for its
// ACK.
func (p *peer) send(tlvs ...wire.TLV) {
	p.t.Helper()
	p.seq++
	d := &wire.VDPDU{TLVs: append([]wire.TLV{&mgr}, tlvs...)}
	e := &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: p.seq, VDP: d}
	if err := p.end.Inject(context.Background(), frame(p.to, p.mac, e)); err != nil {
		p.t.Fatal(err)
	}
	select {
	case s := <-p.acks:
		if s != p.seq {
			p.t.Fatalf("peer: ACK %d, want %d", s, p.seq)
		}
	case <-time.After(5 * time.Second):
		p.t.Fatal("peer: no ACK")
	}
}

// response returns v answered with status (and, if set, other filters).
func response(v *wire.VSI, status wire.VSIStatus, filters []wire.Filter) *wire.VSI {
	r := *v
	r.Status = status
	if filters != nil {
		r.Filters = filters
	}
	return &r
}

// ok is a success status.
var ok = wire.ResponseStatus(wire.VDPSuccess, false, false)

// fast is a Timing for real-clock tests: ACK timer 1.28 ms, 3 retries,
// resource wait 1.3 s, keep-alive 10.5 s.
var fast = vdp.Timing{R: 3, RTE: 7, RWD: 17, RKA: 20}

// pair makes a station and a bridge over a Pipe.
func pair(t testing.TB, scfg vdp.StationConfig, bcfg vdp.BridgeConfig) (*vdp.Station, *vdp.Bridge, *ecptest.PipeEnd, *ecptest.PipeEnd) {
	t.Helper()
	a, b := ecptest.Pipe(0)
	scfg.LocalMAC, bcfg.LocalMAC = stationMAC, bridgeMAC
	if scfg.Logger == nil {
		scfg.Logger = quiet
	}
	if bcfg.Logger == nil {
		bcfg.Logger = quiet
	}
	if bcfg.Decider == nil {
		bcfg.Decider = vdp.AcceptAll{VID: 100, Profile: testProfile()}
	}
	st, err := vdp.NewStation(a, scfg)
	if err != nil {
		t.Fatal(err)
	}
	br, err := vdp.NewBridge(b, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	return st, br, a, b
}

var _ ecp.Link = (*ecptest.PipeEnd)(nil)
