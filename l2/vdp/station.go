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

// StationConfig configures a Station.
type StationConfig struct {
	// Name names the port and S-channel in logs ("eth2/svid=5").
	Name string
	// LocalMAC is the station's address on the channel; required.
	LocalMAC [6]byte
	// PeerMAC is where requests go; zero means the nearest customer
	// bridge group address, as lldpad sends them.
	PeerMAC [6]byte
	// Timing holds R, RTE, RWD and RKA; nil means DefaultTiming().
	// SetTiming changes them after an EVB TLV exchange.
	Timing *Timing
	// CID is the Company ID of tether's TLVs; zero means wire.DefaultCID.
	CID wire.OUI
	// Security is the signing policy.
	Security Security
	// Clock is the time source; nil means ecp.SystemClock.
	Clock ecp.Clock
	// Logger receives the logs (default slog.Default()); they carry
	// component=l2/vdp, role=station and channel=Name.
	Logger *slog.Logger
	// OnEvent, if set, hears what happens to VSIs without a request of
	// the caller being answered (failed keep-alives, DE-ASSOCIATE from
	// the bridge, refused frames). It is called from the station's
	// goroutines and must not block.
	OnEvent func(Event)
}

// Request is what the station asks the bridge for one VSI.
type Request struct {
	// Mode is PRE-ASSOCIATE, PRE-ASSOCIATE-RR, ASSOCIATE or
	// DE-ASSOCIATE.
	Mode wire.VSIMode
	// Manager is the VSI Manager ID the VSI type is defined under.
	Manager wire.VSIManagerID
	// VSI is the VSI TLV to send: type, version, VSIID and filters (at
	// least one). A filter VID of 0 is the null VID: the bridge chooses
	// (in the VID format only as the single filter, as lldpad requires).
	// Its Mode is ignored, and of its Status only the M and S hints are
	// sent.
	VSI wire.VSI
}

// Result is the outcome of a Request.
type Result struct {
	// Key is the VSI.
	Key Key
	// Mode is the request's mode.
	Mode wire.VSIMode
	// State is the VSI's state at the station now.
	State State
	// Status is the status of the bridge's response (zero when none came).
	Status wire.VSIStatus
	// Filters are the filters the bridge granted, the VID it chose for a
	// null VID included; nil unless the request succeeded.
	Filters []wire.Filter
	// Profile is the tether profile the bridge sent with its answer, if
	// any.
	Profile *wire.TetherProfile
	// Peer is the verified signer of the response; nil when unsigned.
	Peer *identity.Verified
	// Err is nil when the bridge granted the request; a *ResponseError
	// when it refused; ErrTimeout, ErrResponseMismatch,
	// ErrDeassociatedByBridge, ErrStopped, or an error matching
	// ecp.ErrNoAck when the request never got through.
	Err error
}

// VSIInfo describes a VSI the station or the bridge holds.
type VSIInfo struct {
	Key     Key
	Manager wire.VSIManagerID
	State   State
	// Pending is the mode of the outstanding request (station), or of
	// the request being decided (bridge); 0 when none.
	Pending wire.VSIMode
	// VSI is the VSI TLV as last granted (filters with the VIDs the
	// bridge chose), or as requested while nothing was granted.
	VSI wire.VSI
	// Profile is the tether profile granted with the VSI.
	Profile *wire.TetherProfile
	// Peer is the verified signer of the last frame about the VSI.
	Peer *identity.Verified
}

// Station is the VDP station role of one port and S-channel
// (IEEE 802.1Qbg-2012 41.5, the station state machine, as lldpad's
// qbg/vdp22sm.c runs it), on its own ECP engine.
//
// Per VSI: a request goes out (in a batch with other VSIs' requests, see
// package ecp) and the response wait timer (Timing.ResponseWait) starts.
// The bridge's answer decides the new state:
//
//   - success: the requested state (PRE-ASSOCIATED, PRE-ASSOCIATED-RR,
//     ASSOCIATED), or none after DE-ASSOCIATE. The granted filters are
//     kept, with the VID the bridge chose for a null VID, and a keep-alive
//     is scheduled Timing.KeepAlive later.
//   - error with KEEP: the state before the request is kept.
//   - error without KEEP: none; the bridge released the VSI.
//   - the hard-error bit is reported (ResponseError.Hard): retrying will
//     not help.
//   - a DE-ASSOCIATE answer to another request: none.
//   - no answer in time, ECP giving up, or filters that do not match the
//     request: none (lldpad ends the VSI too).
//
// A keep-alive repeats the request of the current state with the granted
// filters; its failure is reported as EventKeepaliveFailed. A
// DE-ASSOCIATE from the bridge ends the VSI (EventBridgeDeassociated); the
// station does not answer it, as lldpad does not.
type Station struct {
	core
	vsis   map[Key]*stVSI
	reqSeq uint64
	// awaiting counts requests sent and not answered yet.
	awaiting int
}

// stVSI is the station's state of one VSI; Station.mu guards it.
type stVSI struct {
	key     Key
	mgr     wire.VSIManagerID
	vsi     wire.VSI // as last requested by the user
	granted []wire.Filter
	profile *wire.TetherProfile
	peer    *identity.Verified
	state   State

	// The outstanding request, if pending != 0.
	pending   wire.VSIMode
	keepalive bool
	sent      bool          // its TLV went out in an ECPDU
	req       uint64        // its number, to match the outbox items
	filters   []wire.Filter // its filters, to match the response
	done      func(Result)
	deferred  *deferred // a user request waiting for a keep-alive
	timer     slot
}

// deferred is a user request that arrived during a keep-alive.
type deferred struct {
	req  Request
	v    wire.VSI
	it   *item
	done func(Result)
}

// stationULP connects a Station to its ECP engine without exporting the
// engine's callbacks.
type stationULP struct{ s *Station }

func (u stationULP) Next(b []byte, max int) ([]byte, bool)        { return u.s.next(b, max) }
func (u stationULP) Done(err error)                               { u.s.ecpDone(err) }
func (u stationULP) Receive(ctx context.Context, r *ecp.Received) { u.s.receive(ctx, r) }

// NewStation returns a Station on link. Run starts it.
func NewStation(link ecp.Link, cfg StationConfig) (*Station, error) {
	s := &Station{vsis: make(map[Key]*stVSI)}
	u := stationULP{s}
	if err := s.init(link, "station", cfg.Name, cfg.LocalMAC, cfg.PeerMAC, cfg.Timing, cfg.CID, cfg.Security,
		cfg.Clock, cfg.Logger, cfg.OnEvent, u, u); err != nil {
		return nil, err
	}
	s.expire = s.onTimer
	return s, nil
}

// Engine returns the station's ECP engine (for its Stats).
func (s *Station) Engine() *ecp.Engine { return s.eng }

// SetTiming changes R, RTE, RWD and RKA, for example after an EVB TLV
// exchange; running timers keep their deadlines.
func (s *Station) SetTiming(t Timing) error { return s.setTiming(t) }

// Run runs the station until ctx is done or the link fails. Requests
// still outstanding then end with ErrStopped and the VSI keeps its state
// from before the request.
func (s *Station) Run(ctx context.Context) error {
	err := s.run(ctx)
	var fx effects
	s.mu.Lock()
	s.out.drain()
	for _, e := range s.vsis {
		if e.pending != 0 {
			s.finish(e, Result{Mode: e.pending, Err: ErrStopped}, e.state, false, &fx)
		}
	}
	s.mu.Unlock()
	s.apply(&fx)
	return err
}

// Do sends req and waits for its outcome. It returns the Result and its
// Err; if ctx ends first it returns ctx.Err() and the request carries on.
func (s *Station) Do(ctx context.Context, req Request) (Result, error) {
	ch := make(chan Result, 1)
	if err := s.Submit(req, func(r Result) { ch <- r }); err != nil {
		return Result{Key: KeyOf(&req.VSI), Mode: req.Mode, Err: err}, err
	}
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		return Result{Key: KeyOf(&req.VSI), Mode: req.Mode, Err: ctx.Err()}, ctx.Err()
	}
}

// Associate is Do with an ASSOCIATE request.
func (s *Station) Associate(ctx context.Context, mgr wire.VSIManagerID, v wire.VSI) (Result, error) {
	return s.Do(ctx, Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: v})
}

// PreAssociate is Do with a PRE-ASSOCIATE request, or PRE-ASSOCIATE-RR
// when reserve is set.
func (s *Station) PreAssociate(ctx context.Context, mgr wire.VSIManagerID, v wire.VSI, reserve bool) (Result, error) {
	mode := wire.VSIPreAssociate
	if reserve {
		mode = wire.VSIPreAssociateRR
	}
	return s.Do(ctx, Request{Mode: mode, Manager: mgr, VSI: v})
}

// Deassociate is Do with a DE-ASSOCIATE request.
func (s *Station) Deassociate(ctx context.Context, mgr wire.VSIManagerID, v wire.VSI) (Result, error) {
	return s.Do(ctx, Request{Mode: wire.VSIDeAssociate, Manager: mgr, VSI: v})
}

// checkRequest validates the VSI TLV of a request.
func checkRequest(v *wire.VSI) error {
	if v.Mode < wire.VSIPreAssociate || v.Mode > wire.VSIDeAssociate {
		return fmt.Errorf("%w: mode %d", ErrInvalidRequest, v.Mode)
	}
	if len(v.Filters) == 0 {
		return fmt.Errorf("%w: a VSI TLV needs at least one filter", ErrInvalidRequest)
	}
	if v.FilterFormat == wire.FilterVID && len(v.Filters) > 1 {
		for _, f := range v.Filters {
			if f.VID == 0 {
				return fmt.Errorf("%w: the null VID must be the only filter in the VID format", ErrInvalidRequest)
			}
		}
	}
	return nil
}

// Submit sends req and calls done (if not nil) once with its outcome,
// from one of the station's goroutines; done must not block. It fails at
// once with ErrInvalidRequest, ErrBusy (a request for the VSI is
// outstanding), ErrNotAssociated, ErrInvalidTransition or
// ErrPeerNotCapable. A request that arrives while the VSI's keep-alive is
// outstanding waits for it.
func (s *Station) Submit(req Request, done func(Result)) error {
	if err := s.sec.usable(); err != nil {
		return err
	}
	v := req.VSI
	v.Mode = req.Mode
	v.Status = wire.RequestStatus(req.VSI.Status.M(), req.VSI.Status.S())
	v.Filters = slices.Clone(v.Filters)
	if err := checkRequest(&v); err != nil {
		return err
	}
	it, err := encodeItem(req.Manager, s.cid, s.eng.MaxPayload(), &v)
	if err != nil {
		return err
	}
	key := KeyOf(&v)
	var fx effects
	s.mu.Lock()
	e := s.vsis[key]
	switch {
	case e == nil && v.Mode == wire.VSIDeAssociate:
		err = ErrNotAssociated
	case e == nil:
		e = &stVSI{key: key}
		s.vsis[key] = e
	case e.pending != 0 && e.keepalive && e.deferred == nil:
		e.deferred = &deferred{req: req, v: v, it: it, done: done}
		s.mu.Unlock()
		return nil
	case e.pending != 0:
		err = ErrBusy
	default:
		err = allowed(e.state, v.Mode)
	}
	if err == nil {
		s.start(e, req.Manager, &v, it, false, done, &fx)
	}
	s.mu.Unlock()
	s.apply(&fx)
	if err != nil {
		return fmt.Errorf("vdp %s: %s of %s: %w", s.name, v.Mode, key, err)
	}
	return nil
}

// allowed applies lldpad's transition table (qbg/vdp22sm.c): from
// ASSOCIATED, PRE-ASSOCIATE is refused; DE-ASSOCIATE needs a state.
func allowed(st State, mode wire.VSIMode) error {
	switch {
	case st == StateAssociated && (mode == wire.VSIPreAssociate || mode == wire.VSIPreAssociateRR):
		return ErrInvalidTransition
	case st == StateNone && mode == wire.VSIDeAssociate:
		return ErrNotAssociated
	}
	return nil
}

// start queues the request v for e; s.mu is held.
func (s *Station) start(e *stVSI, mgr wire.VSIManagerID, v *wire.VSI, it *item, keepalive bool, done func(Result), fx *effects) {
	s.reqSeq++
	if e.pending != 0 && e.sent {
		s.awaiting--
	}
	e.req = s.reqSeq
	it.owner, it.req = e, e.req
	e.mgr = mgr
	e.pending, e.keepalive, e.sent, e.done = v.Mode, keepalive, false, done
	e.filters = v.Filters
	if !keepalive {
		e.vsi = *v
	}
	s.disarm(&e.timer)
	s.out.push(it)
	fx.kick = true
}

// current reports whether it still carries e's outstanding request.
func (it *item) current() bool {
	return it.owner != nil && it.owner.req == it.req && it.owner.pending != 0
}

// next is the engine's Source.Next: it packs queued requests into one
// VDPDU and starts their response timers.
func (s *Station) next(b []byte, max int) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Drop items whose request ended while they were queued.
	for s.out.len() > 0 && !s.out.q[s.out.head].current() {
		s.out.q[s.out.head] = nil
		s.out.head++
	}
	// Toward a bridge known not to be tether's (PeerCapable says no, e.g.
	// lldpad), one request at a time, each waiting for its answer: lldpad's
	// bridge was seen to lose requests that arrive while it is still
	// answering earlier ones (tests/interop). tether's bridge takes many VSI
	// TLVs per VDPDU and many VDPDUs in flight.
	plain := s.sec.PeerCapable != nil && !s.sec.PeerCapable()
	if plain && s.awaiting > 0 {
		return b, false
	}
	s.out.maxItems = 0
	if plain {
		s.out.maxItems = 1
	}
	b, items := s.out.fill(b, max)
	if len(items) == 0 {
		return b, false
	}
	wait := s.timing.ResponseWait()
	for _, it := range items {
		if it.current() {
			it.owner.sent = true
			s.awaiting++
			s.arm(&it.owner.timer, timerResponse, wait, it.owner)
		}
	}
	return b, true
}

// ecpDone is the engine's Source.Done: a frame of requests that ECP gave
// up on ends those requests.
func (s *Station) ecpDone(err error) {
	if err == nil {
		return
	}
	var fx effects
	s.mu.Lock()
	for _, it := range s.out.inflight {
		if it.current() {
			e := it.owner
			st, rerr := StateNone, fmt.Errorf("vdp %s: request not delivered: %w", s.name, err)
			if errors.Is(err, ecp.ErrStopped) {
				// As Run does for requests still queued.
				st, rerr = e.state, fmt.Errorf("%w: %w", ErrStopped, err)
			}
			s.finish(e, Result{Mode: e.pending, Err: rerr}, st, true, &fx)
		}
	}
	s.out.inflight = s.out.inflight[:0]
	s.mu.Unlock()
	s.apply(&fx)
}

// finish ends e's outstanding request (if any) with res and moves e to
// st; s.mu is held. kaEvent reports a failed keep-alive as an event.
func (s *Station) finish(e *stVSI, res Result, st State, kaEvent bool, fx *effects) {
	prev := e.state
	ka := e.keepalive
	done := e.done
	if e.pending != 0 && e.sent {
		s.awaiting--
		fx.kick = true // the response window may let the next request go
	}
	e.pending, e.keepalive, e.sent, e.done, e.filters = 0, false, false, nil, nil
	e.state = st
	s.disarm(&e.timer)
	if st == StateNone {
		if s.vsis[e.key] == e {
			delete(s.vsis, e.key)
		}
	} else {
		s.arm(&e.timer, timerKeepalive, s.timing.KeepAlive(), e)
	}
	res.Key, res.State = e.key, st
	if done != nil {
		fx.do(func() { done(res) })
	}
	if ka && kaEvent && (res.Err != nil || st != prev) {
		s.log.Info("keep-alive failed", "vsi", e.key.String(), "state", st.String(), "err", res.Err)
		s.event(fx, Event{Kind: EventKeepaliveFailed, Key: e.key, State: st, Mode: res.Mode,
			Status: res.Status, Peer: res.Peer, Err: res.Err})
	}
	if d := e.deferred; d != nil {
		e.deferred = nil
		s.launch(e, d, fx)
	}
}

// launch starts a deferred request once the keep-alive it waited for has
// ended; s.mu is held.
func (s *Station) launch(e *stVSI, d *deferred, fx *effects) {
	if cur := s.vsis[e.key]; cur != e {
		// The keep-alive ended the VSI.
		if d.v.Mode == wire.VSIDeAssociate {
			if d.done != nil {
				res := Result{Key: e.key, Mode: d.v.Mode, State: StateNone}
				fx.do(func() { d.done(res) })
			}
			return
		}
		if cur == nil {
			cur = &stVSI{key: e.key}
			s.vsis[e.key] = cur
		}
		e = cur
	}
	if err := allowed(e.state, d.v.Mode); err != nil {
		if d.done != nil {
			res := Result{Key: e.key, Mode: d.v.Mode, State: e.state, Err: err}
			fx.do(func() { d.done(res) })
		}
		return
	}
	s.start(e, d.req.Manager, &d.v, d.it, false, d.done, fx)
}

// onTimer handles an expired VSI timer; s.mu is held.
func (s *Station) onTimer(owner any, kind timerKind, _ time.Time, fx *effects) {
	e := owner.(*stVSI)
	switch kind {
	case timerResponse:
		if e.pending != 0 && e.sent {
			s.log.Debug("no response", "vsi", e.key.String(), "mode", e.pending.String())
			s.finish(e, Result{Mode: e.pending, Err: fmt.Errorf("%w within %v", ErrTimeout, s.timing.ResponseWait())}, StateNone, true, fx)
		}
	case timerKeepalive:
		if e.pending != 0 || e.state == StateNone {
			return
		}
		v := e.vsi
		v.Mode = e.state.Mode()
		v.Status = 0
		v.Filters = e.granted
		it, err := encodeItem(e.mgr, s.cid, s.eng.MaxPayload(), &v)
		if err != nil {
			// The granted VSI encoded when it arrived; this cannot
			// happen, but a VSI must not be stranded if it does.
			s.log.Error("keep-alive does not encode", "vsi", e.key.String(), "err", err)
			s.finish(e, Result{Mode: v.Mode, Err: err}, StateNone, true, fx)
			return
		}
		s.start(e, e.mgr, &v, it, true, nil, fx)
	}
}

// receive is the engine's Handler: the bridge's responses and
// DE-ASSOCIATE requests.
func (s *Station) receive(ctx context.Context, r *ecp.Received) {
	peer, ok := s.checkFrame(ctx, r)
	if !ok {
		return
	}
	_, entries := splitVDPDU(r.PDU.VDP)
	var fx effects
	s.mu.Lock()
	for _, en := range entries {
		s.handle(en, peer, &fx)
	}
	s.mu.Unlock()
	s.apply(&fx)
}

// handle runs one received VSI TLV through the VSI's state machine; s.mu
// is held.
func (s *Station) handle(en vsiEntry, peer *identity.Verified, fx *effects) {
	v := en.vsi
	key := KeyOf(v)
	e := s.vsis[key]
	if !v.IsResponse() {
		if v.Mode != wire.VSIDeAssociate {
			s.log.Debug("request from the bridge ignored", "vsi", key.String(), "mode", v.Mode.String())
			return
		}
		if e == nil {
			return
		}
		s.log.Info("de-associated by the bridge", "vsi", key.String(), "state", e.state.String())
		s.event(fx, Event{Kind: EventBridgeDeassociated, Key: key, State: StateNone, Mode: v.Mode, Peer: peer,
			Err: ErrDeassociatedByBridge})
		s.finish(e, Result{Mode: e.pending, Status: v.Status, Peer: peer, Err: ErrDeassociatedByBridge}, StateNone, false, fx)
		return
	}
	if e == nil || e.pending == 0 || !e.sent {
		s.log.Debug("response without request ignored", "vsi", key.String(), "mode", v.Mode.String())
		return
	}
	if v.Mode != e.pending && v.Mode != wire.VSIDeAssociate {
		s.log.Debug("response to another request ignored", "vsi", key.String(), "mode", v.Mode.String(),
			"pending", e.pending.String())
		return
	}
	e.peer = peer
	res := Result{Mode: e.pending, Status: v.Status, Peer: peer}
	if !filtersMatch(e.vsi.FilterFormat, e.filters, v) {
		res.Err = ErrResponseMismatch
		s.finish(e, res, StateNone, true, fx)
		return
	}
	var st State
	switch {
	case v.Code() == wire.VDPSuccess && v.Mode == wire.VSIDeAssociate:
		st = StateNone
		if e.pending != wire.VSIDeAssociate {
			res.Err = ErrDeassociatedByBridge
		}
	case v.Code() == wire.VDPSuccess:
		st = stateOf(v.Mode)
		e.granted = slices.Clone(v.Filters)
		e.profile = profileOf(en.extra)
		res.Filters, res.Profile = e.granted, e.profile
	default:
		res.Err = &ResponseError{Mode: v.Mode, Status: v.Status}
		// KEEP keeps the state from before the request, unless the bridge
		// answered another request with DE-ASSOCIATE.
		if v.Status.Keep() && v.Mode == e.pending {
			st = e.state
			res.Filters, res.Profile = e.granted, e.profile
		}
	}
	s.finish(e, res, st, true, fx)
}

// filtersMatch reports whether a response's filters answer the request's:
// same format and count, same MACs and GroupIDs, and the same VID except
// where the request asked for the null VID.
func filtersMatch(format wire.FilterFormat, req []wire.Filter, v *wire.VSI) bool {
	if v.FilterFormat != format || len(v.Filters) != len(req) {
		return false
	}
	for i, f := range v.Filters {
		q := req[i]
		if f.MAC != q.MAC || f.GroupID != q.GroupID || (q.VID != 0 && f.VID != q.VID) {
			return false
		}
	}
	return true
}

// Lookup returns what the station holds about the VSI k.
func (s *Station) Lookup(k Key) (VSIInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.vsis[k]
	if e == nil {
		return VSIInfo{}, false
	}
	return e.info(), true
}

// VSIs returns what the station holds about every VSI.
func (s *Station) VSIs() []VSIInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]VSIInfo, 0, len(s.vsis))
	for _, e := range s.vsis {
		out = append(out, e.info())
	}
	return out
}

// info describes e; the caller holds the lock.
func (e *stVSI) info() VSIInfo {
	v := e.vsi
	if e.granted != nil {
		v.Filters = slices.Clone(e.granted)
	} else {
		v.Filters = slices.Clone(v.Filters)
	}
	return VSIInfo{Key: e.key, Manager: e.mgr, State: e.state, Pending: e.pending, VSI: v, Profile: e.profile, Peer: e.peer}
}
