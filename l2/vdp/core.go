package vdp

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/ratelog"
	"log/slog"
	"sync"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/wire"
)

// managerTLVLen is the encoded VSI Manager ID TLV: header and 16 octets.
const managerTLVLen = 18

// item is one VSI TLV (and the org TLVs that extend it) waiting to go out.
type item struct {
	mgr  [16]byte
	tlvs []byte // encoded TLVs, Manager ID excluded
	// owner and req identify the station request the item carries (nil
	// for the bridge's frames).
	owner *stVSI
	req   uint64
}

// encodeItem encodes tlvs as they follow a Manager ID TLV under mgr.
func encodeItem(mgr wire.VSIManagerID, cid wire.OUI, max int, tlvs ...wire.TLV) (*item, error) {
	all := make([]wire.TLV, 0, 1+len(tlvs))
	all = append(all, &mgr)
	all = append(all, tlvs...)
	d := wire.VDPDU{TLVs: all}
	b, err := d.Append(make([]byte, 0, 128), cid)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%w: %w: %d bytes with the Manager ID, at most %d", ErrInvalidRequest, ecp.ErrTooLarge, len(b), max)
	}
	return &item{mgr: mgr.ID, tlvs: b[managerTLVLen:]}, nil
}

// outbox queues items and packs them into VDPDUs: one Manager ID TLV, then
// as many items under that manager as fit (see package ecp on batching).
type outbox struct {
	q        []*item
	head     int
	inflight []*item
	// maxItems bounds the items of one VDPDU; 0 means as many as fit.
	maxItems int
}

func (o *outbox) push(it *item) { o.q = append(o.q, it) }

func (o *outbox) len() int { return len(o.q) - o.head }

// fill appends the next VDPDU to b, at most max bytes, and returns it with
// the items it carries; nil items when the queue is empty.
func (o *outbox) fill(b []byte, max int) ([]byte, []*item) {
	if o.head == len(o.q) {
		return b, nil
	}
	mgr := o.q[o.head].mgr
	b = append(b, vdpManagerTLVHeader0, vdpManagerTLVHeader1)
	b = append(b, mgr[:]...)
	used := managerTLVLen
	taken := o.inflight[:0]
	for o.head < len(o.q) {
		it := o.q[o.head]
		if it.mgr != mgr || (len(taken) > 0 && used+len(it.tlvs) > max) ||
			(o.maxItems > 0 && len(taken) >= o.maxItems) {
			break
		}
		b = append(b, it.tlvs...)
		used += len(it.tlvs)
		taken = append(taken, it)
		o.q[o.head] = nil
		o.head++
	}
	if o.head == len(o.q) {
		o.q, o.head = o.q[:0], 0
	} else if o.head > 1024 && o.head > len(o.q)/2 {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q, o.head = o.q[:n], 0
	}
	o.inflight = taken
	return b, taken
}

// drain empties the queue and returns what it held, in flight first.
func (o *outbox) drain() []*item {
	out := append([]*item(nil), o.inflight...)
	out = append(out, o.q[o.head:]...)
	o.q, o.head, o.inflight = nil, 0, nil
	return out
}

// The VSI Manager ID TLV header: type 5, length 16 (IEEE 802.1Qbg-2012
// 41.2).
const (
	vdpManagerTLVHeader0 = 5<<1 | 16>>8
	vdpManagerTLVHeader1 = 16 & 0xff
)

// timerKind says what a VSI's timer is for.
type timerKind uint8

const (
	timerNone timerKind = iota
	// timerResponse: the station waits for a response (ResponseWait).
	timerResponse
	// timerKeepalive: the station's next keep-alive (KeepAlive).
	timerKeepalive
	// timerExpiry: the bridge's keep-alive timeout (KeepAliveTimeout).
	timerExpiry
)

// slot is the one timer of a VSI. Arming or disarming bumps gen, which
// invalidates the heap entries of earlier armings.
type slot struct {
	gen  uint64
	kind timerKind
	when time.Time
}

// deadline is a heap entry.
type deadline struct {
	when  time.Time
	slot  *slot
	gen   uint64
	owner any
}

// deadlines is a min-heap of deadlines.
type deadlines []deadline

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].when.Before(h[j].when) }
func (h deadlines) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlines) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlines) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*h = old[:len(old)-1]
	return x
}

// effects are what a locked section decided to do once the lock is
// released: callbacks (request outcomes, events) and a kick of the
// transmitter.
type effects struct {
	fns  []func()
	kick bool
}

func (fx *effects) do(f func()) { fx.fns = append(fx.fns, f) }

// core is what the station and the bridge share: the ECP engine, the
// lock, the outbox, the VSI timers and the signing policy.
type core struct {
	name   string
	log    *slog.Logger
	clock  ecp.Clock
	eng    *ecp.Engine
	sec    Security
	cid    wire.OUI
	onEvt  func(Event)
	wake   chan struct{}
	expire func(owner any, kind timerKind, now time.Time, fx *effects) // mu held

	refusedLog *ratelog.Limiter // bounds "frame refused" lines under a flood

	mu       sync.Mutex
	timing   Timing
	out      outbox
	heap     deadlines
	loopNext time.Time // the deadline the timer loop waits for; zero: none
}

// init fills the common fields and makes the engine.
func (c *core) init(link ecp.Link, role, name string, local, peer [6]byte, timing *Timing, cid wire.OUI,
	sec Security, clock ecp.Clock, log *slog.Logger, onEvent func(Event), src ecp.Source, h ecp.Handler) error {
	if err := sec.validate(); err != nil {
		return err
	}
	c.refusedLog = ratelog.New(10, time.Second, 1)
	c.timing = DefaultTiming()
	if timing != nil {
		c.timing = *timing
	}
	if err := c.timing.Validate(); err != nil {
		return err
	}
	if clock == nil {
		clock = ecp.SystemClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	c.name, c.clock, c.sec, c.cid, c.onEvt = name, clock, sec, cid, onEvent
	c.log = log.With("component", "l2/vdp", "role", role, "channel", name)
	c.wake = make(chan struct{}, 1)
	p := c.timing.ECP()
	var sign ecp.SignFunc
	if c.sec.Sign != nil {
		// Without a signer nothing is ever signed (RequireSigned needs
		// one), so the ECPDUs need no room for a signature.
		sign = c.sec.signFrame
	}
	eng, err := ecp.New(link, ecp.Config{
		Name:     name,
		LocalMAC: local,
		PeerMAC:  peer,
		Subtype:  wire.ECPSubtypeVDP,
		Params:   &p,
		CID:      cid,
		Sign:     sign,
		Source:   src,
		Handler:  h,
		Clock:    clock,
		Logger:   log,
	})
	if err != nil {
		return fmt.Errorf("vdp %s: %w", name, err)
	}
	c.eng = eng
	return nil
}

// setTiming changes the timers; ECP's take effect at the next arming, the
// VDP ones at the next request or keep-alive.
func (c *core) setTiming(t Timing) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := c.eng.SetParams(t.ECP()); err != nil {
		return err
	}
	c.mu.Lock()
	c.timing = t
	c.mu.Unlock()
	return nil
}

// arm (re)arms s to fire after d for owner; c.mu is held.
func (c *core) arm(s *slot, kind timerKind, d time.Duration, owner any) {
	if s.kind != timerNone && s.when.Equal(c.loopNext) {
		c.wakeLoop() // the loop waits for the deadline this replaces
	}
	s.gen++
	s.kind = kind
	s.when = c.clock.Now().Add(d)
	heap.Push(&c.heap, deadline{when: s.when, slot: s, gen: s.gen, owner: owner})
	if c.loopNext.IsZero() || s.when.Before(c.loopNext) {
		c.wakeLoop()
	}
}

// disarm stops s; c.mu is held. When s was the timer loop's next deadline
// the loop recomputes it, so the clock's timer always matches a live
// deadline (tests read it from ecptest.FakeClock).
func (c *core) disarm(s *slot) {
	s.gen++
	if s.kind != timerNone && s.when.Equal(c.loopNext) {
		c.wakeLoop()
	}
	s.kind = timerNone
}

// wakeLoop makes the timer loop recompute its next deadline.
func (c *core) wakeLoop() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// apply runs the effects of a locked section; c.mu is not held.
func (c *core) apply(fx *effects) {
	for _, f := range fx.fns {
		f()
	}
	if fx.kick {
		c.eng.Kick()
	}
}

// event reports ev through the OnEvent hook, after the lock is released.
func (c *core) event(fx *effects, ev Event) {
	if c.onEvt != nil {
		fx.do(func() { c.onEvt(ev) })
	}
}

// run runs the engine and the timers until ctx is done or the engine
// fails.
func (c *core) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- c.eng.Run(ctx)
		cancel()
	}()
	c.timerLoop(ctx)
	err := <-errc
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vdp %s: %w", c.name, err)
	}
	return err
}

// timerLoop fires due VSI timers until ctx is done.
func (c *core) timerLoop(ctx context.Context) {
	t := c.clock.NewTimer()
	defer t.Stop()
	for {
		var fx effects
		c.mu.Lock()
		now := c.clock.Now()
		for len(c.heap) > 0 && !c.heap[0].when.After(now) {
			d := heap.Pop(&c.heap).(deadline)
			if d.gen != d.slot.gen {
				continue // disarmed or re-armed since
			}
			kind := d.slot.kind
			d.slot.kind = timerNone
			c.expire(d.owner, kind, now, &fx)
		}
		// Drop stale entries at the top so the next wait is exact.
		for len(c.heap) > 0 && c.heap[0].gen != c.heap[0].slot.gen {
			heap.Pop(&c.heap)
		}
		var next time.Duration = -1
		c.loopNext = time.Time{}
		if len(c.heap) > 0 {
			c.loopNext = c.heap[0].when
			next = c.loopNext.Sub(now)
		}
		c.mu.Unlock()
		c.apply(&fx)
		if next >= 0 {
			t.Reset(next)
		} else {
			t.Stop()
		}
		select {
		case <-t.C():
		case <-c.wake:
		case <-ctx.Done():
			return
		}
	}
}

// logRefused writes a "frame refused" line, at most 10 at once and then one
// a second, with the count of lines held back since the last one.
func (c *core) logRefused(r *ecp.Received, err error) {
	if ok, held := c.refusedLog.Allow("", time.Now()); ok {
		c.log.Warn("frame refused", "src", macString(r.Header.Src), "err", err, "held_back", held)
	}
}

// checkFrame applies the signing policy to a received frame, reporting a
// refusal as an event. ok false means: drop the frame.
func (c *core) checkFrame(ctx context.Context, r *ecp.Received) (peer *identity.Verified, ok bool) {
	v, err := c.sec.check(ctx, r.Frame)
	if err != nil {
		c.logRefused(r, err)
		if c.onEvt != nil {
			c.onEvt(Event{Kind: EventFrameRefused, Err: err})
		}
		return nil, false
	}
	return v, true
}

// macString formats a MAC address for logs.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// vsiEntry is one VSI TLV of a received VDPDU with the organizationally
// specific TLVs that follow it (tether's profile, for one).
type vsiEntry struct {
	vsi   *wire.VSI
	extra []wire.TLV
}

// splitVDPDU returns the Manager ID and the VSI TLVs of d, each with the
// org TLVs that follow it; tether's signature TLV, which ends the PDU, is
// left out.
func splitVDPDU(d *wire.VDPDU) (wire.VSIManagerID, []vsiEntry) {
	var mgr wire.VSIManagerID
	if m := d.ManagerID(); m != nil {
		mgr = *m
	}
	var out []vsiEntry
	for _, t := range d.TLVs {
		switch t := t.(type) {
		case *wire.VSI:
			out = append(out, vsiEntry{vsi: t})
		case *wire.TetherSignature, *wire.VSIManagerID:
		default:
			if len(out) > 0 {
				out[len(out)-1].extra = append(out[len(out)-1].extra, t)
			}
		}
	}
	return mgr, out
}

// profileOf returns the tether profile among extra, or nil.
func profileOf(extra []wire.TLV) *wire.TetherProfile {
	for _, t := range extra {
		if p, ok := t.(*wire.TetherProfile); ok {
			return p
		}
	}
	return nil
}
