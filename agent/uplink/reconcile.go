package uplink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// session is one run of an uplink: its sockets, LLDP agent, VDP station
// and reconcile loop. Everything not marked otherwise is owned by the loop.
type session struct {
	u      *Uplink
	ifi    rawsock.Interface
	agent  *lldpagent.Agent
	st     *vdp.Station
	sch    schannels // the S-channels' stations and the CDCP request (schannel.go)
	timing vdp.Timing

	dirty    chan struct{}
	peer     atomic.Pointer[peer]
	inv      atomic.Pointer[wire.TetherInventory]
	lldpErr  atomic.Pointer[string]
	frameErr atomic.Pointer[string]

	// The station's callbacks queue here; the loop drains.
	inMu     sync.Mutex
	outcomes []outcome
	lost     []vdp.Event

	recs map[inventory.UUID]*vsiRec
	// resync makes the pass repeat every VSI's request: a new switch (or
	// one back) may not hold what the station still does.
	resync bool
}

// outcome is the answer to one request of the loop.
type outcome struct {
	vm  inventory.UUID
	res vdp.Result
}

// vsiRec is what the loop remembers about one VM's VSI between passes.
type vsiRec struct {
	// inflight: a request is outstanding; mode and filters are its.
	inflight bool
	mode     wire.VSIMode
	filters  []wire.Filter
	// fail is why the last request failed ("" when it did not); refused
	// means the switch refused it, hard with the hard-error bit.
	fail    string
	refused bool
	hard    bool
	// backoff is the current wait, retryAt when the next try may go.
	backoff time.Duration
	retryAt time.Time
	// lost says why the station dropped the VSI on its own (a DE-ASSOCIATE
	// from the switch, a failed keep-alive).
	lost string
}

// markDirty asks the loop for a pass; it never blocks.
func (s *session) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// deliver is the done callback of every request (station goroutines).
func (s *session) deliver(vm inventory.UUID, res vdp.Result) {
	s.inMu.Lock()
	s.outcomes = append(s.outcomes, outcome{vm: vm, res: res})
	s.inMu.Unlock()
	s.markDirty()
}

// onVDPEvent is the station's OnEvent (station goroutines).
func (s *session) onVDPEvent(ev vdp.Event) {
	switch ev.Kind {
	case vdp.EventFrameRefused:
		msg := ev.Err.Error()
		s.frameErr.Store(&msg)
		s.u.setErr("VDP frame from the switch refused: " + msg)
	case vdp.EventBridgeDeassociated, vdp.EventKeepaliveFailed:
		s.inMu.Lock()
		s.lost = append(s.lost, ev)
		s.inMu.Unlock()
	default:
		return
	}
	s.markDirty()
}

// relearn moves every VIF that an earlier session may have associated back
// to pending (nothing learnt before is trusted), and computes the first
// digest.
func (s *session) relearn(ctx context.Context) error {
	snap, err := s.u.cfg.Store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("uplink %s: %w", s.u.cfg.Interface, err)
	}
	s.updateDigest(snap)
	reason := fmt.Sprintf("%s yet: uplink started, associations are re-learnt", s.noSwitch())
	var writes []vifOps
	for i := range snap.VIFs {
		v := &snap.VIFs[i]
		if v.State != inventory.StatePending && v.State != inventory.StateGone {
			writes = append(writes, s.moveOps(v, inventory.StatePending, reason))
		}
	}
	s.write(ctx, writes)
	return nil
}

// loop runs reconcile passes on every trigger until ctx ends.
func (s *session) loop(ctx context.Context) error {
	store := s.u.cfg.Store
	sub := store.Subscribe(subscriptionBuffer)
	defer func() { sub.Close() }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake, err := s.pass(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.u.log.Warn("reconcile pass failed", "err", err)
			s.u.setErr(err.Error())
			wake = time.Now().Add(time.Second)
		}
		s.u.ready.Store(true)
		d := resync
		if !wake.IsZero() {
			d = min(d, max(time.Until(wake), time.Millisecond))
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-sub.Events():
			if !ok {
				if errors.Is(sub.Err(), inventory.ErrClosed) {
					return fmt.Errorf("uplink %s: %w", s.u.cfg.Interface, inventory.ErrClosed)
				}
				sub = store.Subscribe(subscriptionBuffer)
			}
		case <-s.dirty:
		case <-timer.C:
		}
		if !sub.Settle(ctx, settle, s.dirty, nil) {
			return nil
		}
	}
}

// vmGroup is one VM's VIFs in a snapshot.
type vmGroup struct {
	vm   *inventory.VM
	live []*inventory.VIF
	gone []*inventory.VIF
}

// vifOps are the operations on one VIF, applied together.
type vifOps struct {
	mac inventory.MAC
	ops []inventory.Op
}

// pass is one level-triggered reconcile: desired (the inventory) against
// observed (the station's VSIs), converging both the switch and the VIF
// states. It returns when the next backoff expires (zero when none).
func (s *session) pass(ctx context.Context) (time.Time, error) {
	now := time.Now()
	s.drainCallbacks(now)
	snap, err := s.u.cfg.Store.Snapshot(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("uplink %s: %w", s.u.cfg.Interface, err)
	}
	s.updateDigest(snap)
	p := s.updatePeer()

	groups := make(map[inventory.UUID]*vmGroup, len(snap.VMs))
	for i := range snap.VMs {
		groups[snap.VMs[i].UUID] = &vmGroup{vm: &snap.VMs[i]}
	}
	for i := range snap.VIFs {
		v := &snap.VIFs[i]
		g := groups[v.VM]
		if g == nil {
			g = &vmGroup{}
			groups[v.VM] = g
		}
		if v.State == inventory.StateGone {
			g.gone = append(g.gone, v)
		} else {
			g.live = append(g.live, v)
		}
	}
	s.planChannels(ctx, groups, p)
	held := s.heldVSIs()

	var (
		writes []vifOps
		wake   time.Time
	)
	visit := func(id inventory.UUID) {
		w := s.reconcileVM(id, groups[id], held, p, now, &writes)
		if !w.IsZero() && (wake.IsZero() || w.Before(wake)) {
			wake = w
		}
	}
	for id := range groups {
		visit(id)
	}
	for id := range held {
		if groups[id] == nil {
			visit(id)
		}
	}
	for id, r := range s.recs {
		if groups[id] == nil && !r.inflight {
			if _, ok := held[id]; !ok {
				delete(s.recs, id)
			}
		}
	}
	s.write(ctx, writes)
	s.resync = false
	return wake, nil
}

// drainCallbacks applies the queued outcomes and events to the records.
func (s *session) drainCallbacks(now time.Time) {
	s.inMu.Lock()
	outs, lost := s.outcomes, s.lost
	s.outcomes, s.lost = nil, nil
	s.inMu.Unlock()
	for _, o := range outs {
		r := s.rec(o.vm)
		r.inflight = false
		res := o.res
		if errors.Is(res.Err, vdp.ErrStopped) {
			continue
		}
		s.u.outcomes.Add(1)
		if res.Err == nil {
			r.fail, r.refused, r.hard, r.backoff, r.retryAt, r.lost = "", false, false, 0, time.Time{}, ""
			continue
		}
		s.backoff(r, now)
		var re *vdp.ResponseError
		if errors.As(res.Err, &re) {
			r.refused, r.hard = true, re.Hard()
			r.fail = refusalReason(s.u.cfg.Interface, res, re, r.backoff)
		} else {
			r.refused, r.hard = false, false
			r.fail = fmt.Sprintf("VDP %s on %s failed: %v (retry in %v)", res.Mode, s.u.cfg.Interface, res.Err, r.backoff.Round(time.Millisecond))
			if e := s.frameErr.Load(); e != nil {
				r.fail += "; last frame refused from the switch: " + *e
			}
		}
		s.u.setErr(r.fail)
		s.u.log.Info("VDP request failed", "vm", o.vm.String(), "mode", res.Mode.String(), "err", res.Err, "retry_in", r.backoff)
	}
	for _, ev := range lost {
		if ev.Key.Format != wire.VSIIDUUID {
			continue
		}
		r := s.rec(inventory.UUID(ev.Key.ID))
		switch ev.Kind {
		case vdp.EventBridgeDeassociated:
			r.lost = "de-associated by the switch on " + s.u.cfg.Interface
		default:
			r.lost = fmt.Sprintf("VDP keep-alive on %s failed: %v", s.u.cfg.Interface, ev.Err)
		}
	}
}

// rec returns the record of vm, creating it.
func (s *session) rec(vm inventory.UUID) *vsiRec {
	r := s.recs[vm]
	if r == nil {
		r = &vsiRec{}
		s.recs[vm] = r
	}
	return r
}

// backoff doubles r's wait (with ±10% jitter) and sets retryAt.
func (s *session) backoff(r *vsiRec, now time.Time) {
	b := r.backoff * 2
	b = min(max(b, s.u.cfg.RetryMin), s.u.cfg.RetryMax)
	r.backoff = b
	jitter := time.Duration(rand.Int64N(int64(b)/5+1)) - b/10
	r.retryAt = now.Add(b + jitter)
}

// reconcileVM converges one VM: the request to send, if any, the states
// of its live VIFs, and the removal of its gone ones. It returns when it
// wants another pass (a backoff expiring), or zero.
func (s *session) reconcileVM(id inventory.UUID, g *vmGroup, held map[inventory.UUID]vdp.VSIInfo,
	p *peer, now time.Time, writes *[]vifOps) time.Time {
	if g == nil {
		g = &vmGroup{}
	}
	r := s.recs[id]
	if r != nil && r.inflight {
		return time.Time{} // the answer will mark the loop dirty
	}
	info, isHeld := held[id]
	want := filtersOf(g.live)
	mode := wire.VSIAssociate
	if g.vm != nil && g.vm.State == inventory.VMStatePaused && !(isHeld && info.State == vdp.StateAssociated) {
		// Paused and not associated: the destination of a live
		// migration, not running yet.
		mode = wire.VSIPreAssociate
	}
	if mode == wire.VSIPreAssociate && s.u.cfg.PostMove {
		want = nil // post-move: nothing until the VM runs (migrate.go)
	}
	inSync := isHeld && len(want) > 0 && info.State == stateFor(mode) && grantMatches(info.VSI.Filters, want) && !s.resync

	var wake time.Time
	submitted := false
	if p.usable {
		switch {
		case len(want) == 0 && isHeld:
			submitted = s.submit(id, wire.VSIDeAssociate, info.VSI, now)
		case len(want) > 0 && !inSync:
			same := r != nil && r.mode == mode && slices.Equal(r.filters, want)
			switch {
			case same && r.hard:
				// Not retried until the VM's filters change.
			case same && now.Before(r.retryAt):
				wake = r.retryAt
			default:
				submitted = s.submit(id, mode, s.vsiOf(id, g.live, want), now)
			}
		}
	}

	r = s.recs[id]
	for _, v := range g.live {
		to, reason := s.targetFor(v, isHeld, &info, r, p, submitted, mode)
		if to != inventory.StateNone && to != v.State {
			*writes = append(*writes, s.moveOps(v, to, reason))
		}
	}
	for _, v := range g.gone {
		if submitted || (isHeld && hasMAC(info.VSI.Filters, v.MAC)) {
			continue // its removal waits for the switch to drop it
		}
		// Removing a VIF cannot be made conditional in one Change: check
		// that it is still the gone record of the snapshot right before.
		cur, err := s.u.cfg.Store.VIF(v.MAC)
		if err != nil || cur.State != inventory.StateGone || cur.Generation != v.Generation {
			s.markDirty()
			continue
		}
		s.u.log.Debug("gone VIF removed", "mac", v.MAC.String(), "vm", id.String())
		*writes = append(*writes, vifOps{mac: v.MAC, ops: []inventory.Op{inventory.RemoveVIF(v.MAC)}})
	}
	return wake
}

// submit sends one request for VM id and records it in flight; a request
// the station refuses at once counts as a failed one.
func (s *session) submit(id inventory.UUID, mode wire.VSIMode, v wire.VSI, now time.Time) bool {
	r := s.rec(id)
	r.inflight, r.mode, r.filters = true, mode, slices.Clone(v.Filters)
	if mode == wire.VSIDeAssociate {
		r.filters = nil
	}
	err := s.submitTo(id, vdp.Request{Mode: mode, Manager: s.u.cfg.Manager, VSI: v}, func(res vdp.Result) { s.deliver(id, res) })
	if err == nil {
		return true
	}
	r.inflight = false
	s.backoff(r, now)
	r.refused, r.hard = false, false
	r.fail = fmt.Sprintf("VDP %s on %s not sent: %v (retry in %v)", mode, s.u.cfg.Interface, err, r.backoff.Round(time.Millisecond))
	s.u.setErr(r.fail)
	s.u.log.Warn("VDP request not sent", "vm", id.String(), "mode", mode.String(), "err", err)
	return false
}

// targetFor returns the state VIF v should be in, and why; StateNone
// leaves it alone.
func (s *session) targetFor(v *inventory.VIF, isHeld bool, info *vdp.VSIInfo, r *vsiRec, p *peer, submitted bool,
	mode wire.VSIMode) (inventory.State, string) {
	ifname := s.u.cfg.Interface
	switch {
	case !p.usable && p.refused:
		return inventory.StateRejected, p.why
	case !p.usable && v.State != inventory.StatePending:
		return inventory.StatePending, p.why
	case !p.usable:
		return inventory.StateNone, ""
	}
	// After a switch change the station's grants are the old switch's:
	// wait for the new one's answer.
	if isHeld && !(submitted && s.resync) {
		if f, ok := grantFor(info.VSI.Filters, v); ok {
			switch info.State {
			case vdp.StateAssociated:
				return s.judgeWithDatapath(v, info, f, p)
			case vdp.StatePreAssociated, vdp.StatePreAssociatedRR:
				s.prepareDatapath(v, info, f, p)
				return inventory.StatePreAssociated, fmt.Sprintf("VDP PRE-ASSOCIATE accepted by %s: VID %d (VM not running yet: migration in)",
					switchName(info), f.VID)
			}
		}
	}
	notAssociated := v.State == inventory.StateAssociated || v.State == inventory.StateVerified || v.State == inventory.StatePreAssociated
	switch {
	case submitted:
		if v.State != inventory.StatePending {
			return inventory.StatePending, fmt.Sprintf("VDP %s sent on %s", mode, ifname)
		}
		return inventory.StateNone, ""
	case r != nil && r.fail != "" && hasMAC(r.filters, v.MAC):
		if r.refused {
			return inventory.StateRejected, r.fail
		}
		if v.State != inventory.StatePending {
			return inventory.StatePending, r.fail
		}
		return inventory.StateNone, ""
	case notAssociated:
		reason := "not associated on " + ifname
		if r != nil && r.lost != "" {
			reason = r.lost
		}
		return inventory.StatePending, reason
	}
	return inventory.StateNone, ""
}

// judgeGrant returns associated or verified for a VIF whose filter f the
// switch granted: verified when the answer was signed by the key the
// switch's LLDPDU advertises and carried a profile whose VID is the one
// granted.
func (s *session) judgeGrant(info *vdp.VSIInfo, f wire.Filter, p *peer) (inventory.State, string) {
	reason := fmt.Sprintf("VDP ASSOCIATE accepted by %s: VID %d", switchName(info), f.VID)
	if info.Profile != nil {
		reason += ", profile " + info.Profile.Name
	}
	var not string
	switch {
	case info.Peer == nil:
		not = "plain VDP (interop mode)"
	case info.Profile == nil:
		not = "the answer carries no profile"
	case p.tether == nil || info.Peer.Key != p.key:
		not = fmt.Sprintf("signed by key %s, not the key of the switch's LLDPDU", info.Peer.Key)
	case info.Profile.VID != f.VID:
		not = fmt.Sprintf("the profile's VID %d is not the granted VID %d", info.Profile.VID, f.VID)
	default:
		return inventory.StateVerified, reason
	}
	return inventory.StateAssociated, reason + "; not verified: " + not
}

// switchName names the signer of the switch's last answer.
func switchName(info *vdp.VSIInfo) string {
	if info.Peer == nil {
		return "switch (unsigned)"
	}
	return "switch " + info.Peer.Key.String()
}

// refusalReason is a rejected VIF's reason.
func refusalReason(ifname string, res vdp.Result, re *vdp.ResponseError, backoff time.Duration) string {
	who := "switch (unsigned)"
	if res.Peer != nil {
		who = "switch " + res.Peer.Key.String()
	}
	code := re.Code()
	next := fmt.Sprintf("retry in %v", backoff.Round(time.Millisecond))
	if re.Hard() {
		next = "hard error: not retried until the VM's VIFs change"
	}
	return fmt.Sprintf("rejected by %s: code %d %s (VDP %s on %s; %s)", who, uint8(code), code, res.Mode, ifname, next)
}

// vsiOf builds the VSI TLV of VM id with filters want. The VSI type comes
// from the first VIF with an 802.1Qbg virtual port, else configuration.
func (s *session) vsiOf(id inventory.UUID, live []*inventory.VIF, want []wire.Filter) wire.VSI {
	v := wire.VSI{
		VSITypeID:      s.u.cfg.TypeID,
		VSITypeVersion: s.u.cfg.TypeVersion,
		VSIIDFormat:    wire.VSIIDUUID,
		VSIID:          id,
		FilterFormat:   wire.FilterMACVID,
		Filters:        want,
	}
	for _, vif := range live {
		if vif.VirtualPort.Type == inventory.VirtualPort8021Qbg {
			v.VSITypeID, v.VSITypeVersion = vif.VirtualPort.TypeID, vif.VirtualPort.TypeIDVersion
			break
		}
	}
	return v
}

// filtersOf returns one MAC/VID filter per VIF (already in MAC order), the
// C-VID as VID (0: the switch assigns one).
func filtersOf(live []*inventory.VIF) []wire.Filter {
	if len(live) == 0 {
		return nil
	}
	out := make([]wire.Filter, len(live))
	for i, v := range live {
		out[i] = wire.Filter{MAC: v.MAC, VID: v.CVID}
	}
	return out
}

// stateFor is the station state a successful request of mode leads to.
func stateFor(mode wire.VSIMode) vdp.State {
	if mode == wire.VSIPreAssociate {
		return vdp.StatePreAssociated
	}
	return vdp.StateAssociated
}

// grantMatches reports whether granted filters answer want: same MACs in
// order, and the same VID where want names one.
func grantMatches(granted, want []wire.Filter) bool {
	if len(granted) != len(want) {
		return false
	}
	for i, w := range want {
		g := granted[i]
		if g.MAC != w.MAC || (w.VID != 0 && g.VID != w.VID) {
			return false
		}
	}
	return true
}

// grantFor returns the granted filter of VIF v, if it matches v's C-VID.
func grantFor(granted []wire.Filter, v *inventory.VIF) (wire.Filter, bool) {
	for _, g := range granted {
		if g.MAC == v.MAC {
			return g, v.CVID == 0 || g.VID == v.CVID
		}
	}
	return wire.Filter{}, false
}

// hasMAC reports whether filters name mac.
func hasMAC(filters []wire.Filter, mac inventory.MAC) bool {
	for _, f := range filters {
		if f.MAC == mac {
			return true
		}
	}
	return false
}

// moveOps returns the SetState operations that take v to state to, through
// the legal intermediate states (for example rejected -> pending ->
// associated -> verified), each with reason.
func (s *session) moveOps(v *inventory.VIF, to inventory.State, reason string) vifOps {
	path := statePath(v.State, to)
	if path == nil {
		s.u.log.Warn("no legal transition", "mac", v.MAC.String(), "from", v.State.String(), "to", to.String())
	}
	ops := make([]inventory.Op, len(path))
	for i, st := range path {
		ops[i] = inventory.SetState(v.MAC, st, reason)
	}
	return vifOps{mac: v.MAC, ops: ops}
}

// statePath returns the shortest sequence of legal transitions from one
// state to another (excluding from), or nil when there is none.
func statePath(from, to inventory.State) []inventory.State {
	if from == to {
		return nil
	}
	prev := map[inventory.State]inventory.State{from: from}
	queue := []inventory.State{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for next := inventory.StatePending; next <= inventory.StateGone; next++ {
			if _, seen := prev[next]; seen || inventory.CheckTransition(cur, next) != nil {
				continue
			}
			prev[next] = cur
			if next == to {
				var path []inventory.State
				for st := to; st != from; st = prev[st] {
					path = append(path, st)
				}
				slices.Reverse(path)
				return path
			}
			queue = append(queue, next)
		}
	}
	return nil
}

// write applies the operations in one Change; if that fails (a VIF
// changed since the snapshot), VIF by VIF, skipping those that fail, and
// asks for another pass.
func (s *session) write(ctx context.Context, writes []vifOps) {
	if len(writes) == 0 {
		return
	}
	store := s.u.cfg.Store
	var all inventory.Change
	for _, w := range writes {
		all.Ops = append(all.Ops, w.ops...)
	}
	if len(all.Ops) == 0 {
		return
	}
	_, err := store.Apply(ctx, all)
	if err == nil {
		return
	}
	s.u.log.Debug("inventory write raced; applying VIF by VIF", "err", err)
	s.markDirty()
	for _, w := range writes {
		if _, err := store.Apply(ctx, inventory.Change{Ops: w.ops}); err != nil && ctx.Err() == nil {
			s.u.log.Debug("VIF state not written", "mac", w.mac.String(), "err", err)
		}
	}
}
