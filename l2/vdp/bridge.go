package vdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/wire"
)

// errLate cancels a decision that outlived the resource wait delay.
var errLate = errors.New("vdp: resource wait delay expired")

// DefaultMaxDecisions is how many Decider calls a Bridge runs at once
// unless configured otherwise.
const DefaultMaxDecisions = 64

// maxRefusalBacklog is how many answers may wait in a Bridge's queue for
// it still to answer a refused plain (unsigned) VDP request.
const maxRefusalBacklog = 256

// Decider decides on a station's request for a VSI; the closed-loop
// verifier of tether-switchd plugs in here (DESIGN.md "The flow of one VM
// start"). Decide runs on its own goroutine, concurrently for different
// VSIs (never for the same VSI), with a context that ends after
// Timing.ResourceWait: a decision that comes later is replaced by "unable
// to contact VSI manager", as lldpad's bridge gives up after its resource
// wait delay.
type Decider interface {
	Decide(ctx context.Context, req DecideRequest) Decision
}

// DeciderFunc adapts a function to Decider.
type DeciderFunc func(ctx context.Context, req DecideRequest) Decision

// Decide implements Decider.
func (f DeciderFunc) Decide(ctx context.Context, req DecideRequest) Decision { return f(ctx, req) }

// DecideRequest is a station's request as the Decider sees it.
type DecideRequest struct {
	// Channel is the bridge's Name (port and S-channel).
	Channel string
	// Manager is the VSI Manager ID the request came under.
	Manager wire.VSIManagerID
	// VSI is the request TLV (a copy); VSI.Mode is the request.
	VSI wire.VSI
	// Extra holds the organizationally specific TLVs that followed the
	// VSI TLV in the request.
	Extra []wire.TLV
	// Current is the bridge's state of the VSI before the request.
	Current State
	// Peer is the verified signer of the frame (key ID and counter); nil
	// when the frame was unsigned, which the signing policy allows only
	// in interop mode.
	Peer *identity.Verified
}

// Decision is the bridge's answer to a request (IEEE 802.1Qbg-2012 41.2:
// the response TLV's status and filters).
type Decision struct {
	// Code is the response code; wire.VDPSuccess grants the request.
	Code wire.VDPResponseCode
	// Keep sets the KEEP bit of a refusal: the VSI stays in its previous
	// state (the bridge keeps it; the station does too).
	Keep bool
	// Hard sets the hard-error bit of a refusal: retrying will not help.
	Hard bool
	// Filters are the granted filters: the request's count and order,
	// the same MACs and GroupIDs, and a VID for every null VID (0) of
	// the request; a VID the station asked for must not change. Nil
	// grants the request's filters unchanged.
	Filters []wire.Filter
	// Profile, if set on success, follows the VSI TLV in the response
	// (DESIGN.md: the switch answers ASSOCIATE with a signed profile
	// TLV).
	Profile *wire.TetherProfile
}

// AcceptAll is a Decider that grants every request, fills every null VID
// with VID and sends Profile (if set). It is for tests and labs.
type AcceptAll struct {
	VID     uint16
	Profile *wire.TetherProfile
}

// Decide implements Decider.
func (a AcceptAll) Decide(_ context.Context, r DecideRequest) Decision {
	f := slices.Clone(r.VSI.Filters)
	for i := range f {
		if f[i].VID == 0 {
			f[i].VID = a.VID
		}
	}
	return Decision{Code: wire.VDPSuccess, Filters: f, Profile: a.Profile}
}

// BridgeConfig configures a Bridge.
type BridgeConfig struct {
	// Name names the port and S-channel in logs ("swp3/svid=5").
	Name string
	// LocalMAC is the bridge port's address; required.
	LocalMAC [6]byte
	// PeerMAC is where the bridge's frames go; zero means the nearest
	// customer bridge group address, as lldpad sends them.
	PeerMAC [6]byte
	// Timing holds R, RTE, RWD and RKA; nil means DefaultTiming().
	Timing *Timing
	// CID is the Company ID of tether's TLVs; zero means wire.DefaultCID.
	CID wire.OUI
	// Security is the signing policy.
	Security Security
	// Decider decides on requests; required.
	Decider Decider
	// MaxDecisions bounds the Decider calls running at once (default
	// DefaultMaxDecisions).
	MaxDecisions int
	// Clock is the time source; nil means ecp.SystemClock.
	Clock ecp.Clock
	// Logger receives the logs (default slog.Default()); they carry
	// component=l2/vdp, role=bridge and channel=Name.
	Logger *slog.Logger
	// OnEvent, if set, hears every association, refusal,
	// de-association, keep-alive expiry and refused frame. It is called
	// from the bridge's goroutines and must not block.
	OnEvent func(Event)
}

// Bridge is the VDP bridge role of one port and S-channel
// (IEEE 802.1Qbg-2012 41.5, the bridge state machine, as lldpad's
// qbg/vdp22sm.c runs it), on its own ECP engine.
//
// For each VSI TLV of a verified frame:
//
//   - DE-ASSOCIATE: the VSI is released and the answer is success, known
//     VSI or not.
//   - the request of the VSI's current state with the same filters: a
//     keep-alive; answered with success, the granted filters and the
//     profile, without asking the Decider.
//   - any other request: the Decider decides (one decision per VSI at a
//     time; requests for a VSI being decided are ignored, as lldpad
//     ignores them while busy). Success moves the VSI to the requested
//     state; a refusal with KEEP leaves the previous state; one without
//     KEEP releases the VSI.
//
// A VSI not refreshed within Timing.KeepAliveTimeout is released and the
// station is told with a DE-ASSOCIATE request. The answers to the VSI TLVs
// of one received VDPDU leave together, in request order, once its last
// decision is made (each decision is bounded by the resource wait delay),
// and are batched into ECPDUs like the station's requests: every ECPDU
// costs the station a signature check, whose replay counter the verifier
// persists.
type Bridge struct {
	core
	decider Decider
	sem     chan struct{}
	vsis    map[Key]*brVSI
}

// brVSI is the bridge's state of one VSI; Bridge.mu guards it.
type brVSI struct {
	key     Key
	mgr     wire.VSIManagerID
	vsi     wire.VSI // as granted
	profile *wire.TetherProfile
	peer    *identity.Verified
	state   State
	busy    wire.VSIMode // the request being decided, 0 when none
	dgen    uint64       // invalidates decisions of an earlier request
	timer   slot
}

// bridgeULP connects a Bridge to its ECP engine.
type bridgeULP struct{ b *Bridge }

func (u bridgeULP) Next(b []byte, max int) ([]byte, bool)        { return u.b.next(b, max) }
func (u bridgeULP) Done(err error)                               { u.b.ecpDone(err) }
func (u bridgeULP) Receive(ctx context.Context, r *ecp.Received) { u.b.receive(ctx, r) }

// NewBridge returns a Bridge on link. Run starts it.
func NewBridge(link ecp.Link, cfg BridgeConfig) (*Bridge, error) {
	if cfg.Decider == nil {
		return nil, errors.New("vdp: BridgeConfig.Decider is required")
	}
	n := cfg.MaxDecisions
	if n <= 0 {
		n = DefaultMaxDecisions
	}
	b := &Bridge{decider: cfg.Decider, sem: make(chan struct{}, n), vsis: make(map[Key]*brVSI)}
	u := bridgeULP{b}
	if err := b.init(link, "bridge", cfg.Name, cfg.LocalMAC, cfg.PeerMAC, cfg.Timing, cfg.CID, cfg.Security,
		cfg.Clock, cfg.Logger, cfg.OnEvent, u, u); err != nil {
		return nil, err
	}
	b.expire = b.onTimer
	return b, nil
}

// Engine returns the bridge's ECP engine (for its Stats).
func (b *Bridge) Engine() *ecp.Engine { return b.eng }

// SetTiming changes R, RTE, RWD and RKA.
func (b *Bridge) SetTiming(t Timing) error { return b.setTiming(t) }

// Run runs the bridge until ctx is done or the link fails. The VSIs it
// holds stay; their keep-alive timeouts run again with the next Run.
func (b *Bridge) Run(ctx context.Context) error {
	err := b.run(ctx)
	b.mu.Lock()
	b.out.drain()
	for _, e := range b.vsis {
		if e.busy != 0 {
			e.busy = 0
			e.dgen++
			if e.state == StateNone {
				b.remove(e)
			}
		}
	}
	b.mu.Unlock()
	return err
}

// Deassociate releases the VSI k and tells the station with a
// DE-ASSOCIATE request (bridge-initiated de-association). It returns
// ErrNotAssociated when the bridge does not hold k.
func (b *Bridge) Deassociate(k Key) error {
	var fx effects
	b.mu.Lock()
	e := b.vsis[k]
	if e == nil || e.state == StateNone {
		b.mu.Unlock()
		return fmt.Errorf("vdp %s: de-associate %s: %w", b.name, k, ErrNotAssociated)
	}
	b.remove(e)
	err := b.sendDeassociate(e, &fx)
	b.mu.Unlock()
	b.apply(&fx)
	return err
}

// Lookup returns what the bridge holds about the VSI k.
func (b *Bridge) Lookup(k Key) (VSIInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.vsis[k]
	if e == nil {
		return VSIInfo{}, false
	}
	return e.info(), true
}

// VSIs returns what the bridge holds about every VSI.
func (b *Bridge) VSIs() []VSIInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]VSIInfo, 0, len(b.vsis))
	for _, e := range b.vsis {
		out = append(out, e.info())
	}
	return out
}

func (e *brVSI) info() VSIInfo {
	v := e.vsi
	v.Filters = slices.Clone(v.Filters)
	return VSIInfo{Key: e.key, Manager: e.mgr, State: e.state, Pending: e.busy, VSI: v, Profile: e.profile, Peer: e.peer}
}

// remove forgets e; b.mu is held.
func (b *Bridge) remove(e *brVSI) {
	if b.vsis[e.key] == e {
		delete(b.vsis, e.key)
	}
	b.disarm(&e.timer)
	e.dgen++
	e.busy = 0
	e.state = StateNone
}

// next is the engine's Source.Next.
func (b *Bridge) next(buf []byte, max int) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out, items := b.out.fill(buf, max)
	return out, len(items) > 0
}

// ecpDone is the engine's Source.Done.
func (b *Bridge) ecpDone(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	n := len(b.out.inflight)
	b.out.inflight = b.out.inflight[:0]
	b.mu.Unlock()
	b.log.Warn("responses lost", "tlvs", n, "err", err)
	if b.onEvt != nil {
		b.onEvt(Event{Kind: EventResponseLost, Err: err})
	}
}

// queue encodes a VSI TLV (and extra TLVs) under mgr for the station;
// b.mu is held.
func (b *Bridge) queue(mgr wire.VSIManagerID, fx *effects, tlvs ...wire.TLV) error {
	it, err := encodeItem(mgr, b.cid, b.eng.MaxPayload(), tlvs...)
	if err != nil {
		return err
	}
	b.out.push(it)
	fx.kick = true
	return nil
}

// group collects the answers to the VSI TLVs of one received VDPDU, in
// the order of the requests, so they leave together once the last
// decision of the frame is made: one ECPDU to verify at the station
// instead of one per decision.
type group struct {
	pending int     // decisions still running
	items   []*item // answers by request position; nil: none (yet)
	flushed bool
}

// flush queues g's answers once no decision is pending; b.mu is held.
func (b *Bridge) flush(g *group, fx *effects) {
	if g.pending > 0 || g.flushed {
		return
	}
	g.flushed = true
	for _, it := range g.items {
		if it != nil {
			b.out.push(it)
			fx.kick = true
		}
	}
}

// respond answers the request v (at position idx of group g, or at once
// when g is nil) with status, filters and, on success, profile; b.mu is
// held. A profile that does not encode turns the answer into "other
// failure".
func (b *Bridge) respond(g *group, idx int, mgr wire.VSIManagerID, v *wire.VSI, status wire.VSIStatus, filters []wire.Filter,
	profile *wire.TetherProfile, fx *effects) {
	r := *v
	r.Status = status
	r.Filters = filters
	tlvs := []wire.TLV{&r}
	if profile != nil && status.Code() == wire.VDPSuccess {
		tlvs = append(tlvs, profile)
	}
	it, err := encodeItem(mgr, b.cid, b.eng.MaxPayload(), tlvs...)
	if err != nil {
		b.log.Error("response does not encode", "vsi", KeyOf(v).String(), "err", err)
		r.Status = wire.ResponseStatus(wire.VDPOtherFailure, false, true)
		r.Filters = v.Filters
		if it, err = encodeItem(mgr, b.cid, b.eng.MaxPayload(), &r); err != nil {
			b.log.Error("failure response does not encode", "vsi", KeyOf(v).String(), "err", err)
			return
		}
	}
	if g != nil {
		g.items[idx] = it
		return
	}
	b.out.push(it)
	fx.kick = true
}

// sendDeassociate tells the station that e is released; b.mu is held.
func (b *Bridge) sendDeassociate(e *brVSI, fx *effects) error {
	v := e.vsi
	v.Mode = wire.VSIDeAssociate
	v.Status = 0
	if err := b.queue(e.mgr, fx, &v); err != nil {
		return fmt.Errorf("vdp %s: de-associate %s: %w", b.name, e.key, err)
	}
	return nil
}

// receive is the engine's Handler: the station's requests.
func (b *Bridge) receive(ctx context.Context, r *ecp.Received) {
	peer, err := b.sec.check(ctx, r.Frame)
	mgr, entries := splitVDPDU(r.PDU.VDP)
	if err != nil {
		b.logRefused(r, err)
		if b.onEvt != nil {
			b.onEvt(Event{Kind: EventFrameRefused, Err: err})
		}
		if !errors.Is(err, ErrUnsignedRefused) {
			return // forged, replayed or unknown: no answer
		}
		// Plain VDP from a station that must sign: refuse each request
		// outright, so a standard station learns it at once. These
		// answers cost nothing to provoke: past maxRefusalBacklog queued
		// answers they are not sent (the frame is counted refused all
		// the same), so a flood of plain requests from a peer that does
		// not ACK cannot grow the queue without bound.
		var fx effects
		b.mu.Lock()
		for _, en := range entries {
			if b.out.len() >= maxRefusalBacklog {
				break
			}
			if !en.vsi.IsResponse() {
				b.respond(nil, 0, mgr, en.vsi, wire.ResponseStatus(wire.VDPOtherFailure, false, true), en.vsi.Filters, nil, &fx)
			}
		}
		b.mu.Unlock()
		b.apply(&fx)
		return
	}
	var fx effects
	g := &group{items: make([]*item, len(entries))}
	b.mu.Lock()
	for i, en := range entries {
		b.handle(ctx, mgr, en, peer, g, i, &fx)
	}
	b.flush(g, &fx)
	b.mu.Unlock()
	b.apply(&fx)
}

// handle runs one request TLV through the VSI's state machine; b.mu is
// held.
func (b *Bridge) handle(ctx context.Context, mgr wire.VSIManagerID, en vsiEntry, peer *identity.Verified, g *group, idx int, fx *effects) {
	v := en.vsi
	key := KeyOf(v)
	if v.IsResponse() {
		b.log.Debug("response from the station ignored", "vsi", key.String())
		return
	}
	if len(v.Filters) == 0 {
		b.respond(g, idx, mgr, v, wire.ResponseStatus(wire.VDPInvalidFormat, false, true), nil, nil, fx)
		return
	}
	e := b.vsis[key]
	switch {
	case v.Mode == wire.VSIDeAssociate:
		if e != nil {
			prev := e.state
			b.remove(e)
			b.event(fx, Event{Kind: EventDeassociated, Key: key, State: StateNone, Mode: v.Mode, Peer: peer})
			b.log.Debug("de-associated", "vsi", key.String(), "was", prev.String())
		}
		b.respond(g, idx, mgr, v, wire.ResponseStatus(wire.VDPSuccess, false, false), v.Filters, nil, fx)
	case e != nil && e.busy != 0:
		b.log.Debug("request ignored: the previous one is being decided", "vsi", key.String(), "mode", v.Mode.String())
	case e != nil && e.state != StateNone && e.state == stateOf(v.Mode) && e.mgr == mgr && sameVSI(&e.vsi, v):
		e.peer = peer
		b.arm(&e.timer, timerExpiry, b.timing.KeepAliveTimeout(), e)
		b.respond(g, idx, mgr, v, wire.ResponseStatus(wire.VDPSuccess, false, false), slices.Clone(e.vsi.Filters), e.profile, fx)
	default:
		if e == nil {
			e = &brVSI{key: key}
			b.vsis[key] = e
		}
		e.busy = v.Mode
		e.dgen++
		b.disarm(&e.timer)
		req := DecideRequest{Channel: b.name, Manager: mgr, VSI: *v, Extra: en.extra, Current: e.state, Peer: peer}
		req.VSI.Filters = slices.Clone(v.Filters)
		gen, wait := e.dgen, b.timing.ResourceWait()
		g.pending++
		fx.do(func() { go b.decide(ctx, e, gen, wait, req, g, idx) })
	}
}

// sameVSI reports whether the request v repeats the granted VSI g (a
// keep-alive): same type and version, filter format and count, MACs and
// GroupIDs, and VIDs (a null VID in v matches the VID granted for it).
func sameVSI(g, v *wire.VSI) bool {
	if g.VSITypeID != v.VSITypeID || g.VSITypeVersion != v.VSITypeVersion {
		return false
	}
	return filtersMatch(v.FilterFormat, v.Filters, g)
}

// decide runs the Decider for e's request and answers it.
func (b *Bridge) decide(ctx context.Context, e *brVSI, gen uint64, wait time.Duration, req DecideRequest, g *group, idx int) {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	// The deadline runs on the bridge's Clock, so tests can move it.
	dctx, cancel := context.WithCancelCause(ctx)
	tm := b.clock.NewTimer()
	tm.Reset(wait)
	stop := make(chan struct{})
	go func() {
		select {
		case <-tm.C():
			cancel(errLate)
		case <-stop:
		}
	}()
	d := b.decider.Decide(dctx, req)
	close(stop)
	tm.Stop()
	late := errors.Is(context.Cause(dctx), errLate)
	cancel(nil)
	<-b.sem
	if ctx.Err() != nil {
		return
	}
	var fx effects
	b.mu.Lock()
	b.finishDecision(e, gen, &req, d, late, g, idx, &fx)
	g.pending--
	b.flush(g, &fx)
	b.mu.Unlock()
	b.apply(&fx)
}

// finishDecision applies d to e and answers the station; b.mu is held.
func (b *Bridge) finishDecision(e *brVSI, gen uint64, req *DecideRequest, d Decision, late bool, g *group, idx int, fx *effects) {
	if b.vsis[e.key] != e || e.dgen != gen {
		return // released or superseded while deciding
	}
	e.busy = 0
	v := &req.VSI
	if late {
		b.log.Warn("decision took longer than the resource wait delay", "vsi", e.key.String(), "wait", b.timing.ResourceWait())
		d = Decision{Code: wire.VDPUnableToContactManager, Keep: e.state != StateNone}
	}
	filters := v.Filters
	if d.Code == wire.VDPSuccess {
		f, err := granted(v, d.Filters)
		if err != nil {
			b.log.Error("decider granted invalid filters", "vsi", e.key.String(), "err", err)
			d = Decision{Code: wire.VDPOtherFailure, Keep: e.state != StateNone}
		} else {
			filters = f
		}
	}
	if d.Code == wire.VDPSuccess {
		e.state = stateOf(v.Mode)
		e.mgr = req.Manager
		e.vsi = *v
		e.vsi.Filters = filters
		e.profile = d.Profile
		e.peer = req.Peer
		b.arm(&e.timer, timerExpiry, b.timing.KeepAliveTimeout(), e)
		b.respond(g, idx, req.Manager, v, wire.ResponseStatus(wire.VDPSuccess, false, false), slices.Clone(filters), d.Profile, fx)
		b.event(fx, Event{Kind: EventAssociated, Key: e.key, State: e.state, Mode: v.Mode, Peer: req.Peer})
		return
	}
	st := wire.ResponseStatus(d.Code, d.Keep, d.Hard)
	if d.Keep && e.state != StateNone {
		b.arm(&e.timer, timerExpiry, b.timing.KeepAliveTimeout(), e)
	} else {
		b.remove(e)
	}
	b.respond(g, idx, req.Manager, v, st, filters, nil, fx)
	b.event(fx, Event{Kind: EventRejected, Key: e.key, State: e.state, Mode: v.Mode, Status: st, Peer: req.Peer,
		Err: &ResponseError{Mode: v.Mode, Status: st}})
}

// granted checks a Decider's filters against the request.
func granted(v *wire.VSI, f []wire.Filter) ([]wire.Filter, error) {
	if f == nil {
		return slices.Clone(v.Filters), nil
	}
	if len(f) != len(v.Filters) {
		return nil, fmt.Errorf("%d filters granted for %d requested", len(f), len(v.Filters))
	}
	g := wire.VSI{FilterFormat: v.FilterFormat, Filters: f}
	if !filtersMatch(v.FilterFormat, v.Filters, &g) {
		return nil, errors.New("granted filters change a MAC, GroupID or requested VID")
	}
	for i, x := range f {
		if x.VID > 4094 || x.PCP > 7 {
			return nil, fmt.Errorf("filter %d: VID %d or PCP %d out of range", i, x.VID, x.PCP)
		}
	}
	return slices.Clone(f), nil
}

// onTimer handles an expired keep-alive timeout; b.mu is held.
func (b *Bridge) onTimer(owner any, kind timerKind, _ time.Time, fx *effects) {
	e := owner.(*brVSI)
	if kind != timerExpiry || e.busy != 0 || e.state == StateNone {
		return
	}
	b.log.Info("keep-alive timeout: de-associating", "vsi", e.key.String(), "state", e.state.String())
	b.remove(e)
	if err := b.sendDeassociate(e, fx); err != nil {
		b.log.Error("de-associate", "vsi", e.key.String(), "err", err)
	}
	b.event(fx, Event{Kind: EventKeepaliveExpired, Key: e.key, State: StateNone, Mode: wire.VSIDeAssociate})
}
