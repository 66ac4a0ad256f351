package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/wire"
)

// entry is what the loop knows of one VIF between passes.
type entry struct {
	vif     inventory.VIF
	present bool // in the inventory and not gone
	// port is the soft-switch port set for the VIF ("" none), set is the
	// desired state last ensured on it.
	port string
	set  *softswitch.Port
	// want is the soft-switch port the VIF's device is ("" not known
	// yet): its port is kept by the sweep after a restart even before the
	// switch answered.
	want string
	// fail is the current failure; backoff and retryAt pace the retries.
	fail    error
	backoff time.Duration
	retryAt time.Time
}

// temporary is Granted's error while the answer is being applied: it is
// not a failure (agent/uplink keeps the VIF associated, not rejected).
type temporary struct{ error }

// Temporary reports true: the datapath is at it.
func (temporary) Temporary() bool { return true }

// Unwrap returns the wrapped error.
func (t temporary) Unwrap() error { return t.error }

// loop runs passes on every trigger until ctx ends.
func (r *Reconciler) loop(ctx context.Context) error {
	store := r.cfg.Store
	sub := store.Subscribe(subscriptionBuffer)
	defer func() { sub.Close() }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextFull := time.Time{} // the first pass is a full one
	for {
		now := time.Now()
		full := !now.Before(nextFull)
		if full {
			nextFull = now.Add(r.cfg.Resync)
		}
		wake, err := r.pass(ctx, full)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("datapath pass failed", "err", err)
			r.setErr(err.Error())
			nextFull = time.Time{}
			wake = time.Now().Add(time.Second)
		}
		r.ready.Store(true)
		d := time.Until(nextFull)
		if !wake.IsZero() {
			d = min(d, time.Until(wake))
		}
		timer.Reset(max(d, time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Events():
			if !ok {
				if errors.Is(sub.Err(), inventory.ErrClosed) {
					return fmt.Errorf("datapath: %w", inventory.ErrClosed)
				}
				sub = store.Subscribe(subscriptionBuffer)
				nextFull = time.Time{}
			} else {
				r.noteEvent(ev)
			}
		case <-r.dirty:
		case <-timer.C:
		}
		if !sub.Settle(ctx, settle, r.dirty, r.noteEvent) {
			return nil
		}
	}
}

// noteEvent marks the VIF an inventory event is about dirty. A state
// change alone needs nothing (the pass notices a VIF that went), nor do
// VM events (a VM's removal comes with its VIFs' removals).
func (r *Reconciler) noteEvent(ev inventory.Event) {
	switch ev.Type {
	case inventory.EventVIFUpserted, inventory.EventVIFRemoved:
		r.mu.Lock()
		r.marked[ev.VIF.MAC] = true
		r.mu.Unlock()
	}
}

// pass compares the inventory (and the answers) with what the loop put in
// place and converges the VIFs that are dirty, due for a retry, or all of
// them when full. It returns when the next retry is due (zero: none).
func (r *Reconciler) pass(ctx context.Context, full bool) (time.Time, error) {
	snapAt := time.Now()
	snap, err := r.cfg.Store.Snapshot(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("datapath: %w", err)
	}
	r.mu.Lock()
	marked := r.marked
	r.marked = map[inventory.MAC]bool{}
	r.mu.Unlock()

	seen := make(map[inventory.MAC]bool, len(snap.VIFs))
	for i := range snap.VIFs {
		v := snap.VIFs[i]
		if v.State == inventory.StateGone {
			continue
		}
		seen[v.MAC] = true
		e := r.ents[v.MAC]
		if e == nil {
			e = &entry{}
			r.ents[v.MAC] = e
			marked[v.MAC] = true
		}
		if !e.present || !sameDatapath(e.vif, v) {
			marked[v.MAC] = true
		}
		e.vif, e.present = v, true
	}
	for mac, e := range r.ents {
		if !seen[mac] && e.present {
			e.present = false
			marked[mac] = true
		}
	}
	if !r.ready.Load() {
		r.sweepHeld(ctx, seen, marked)
	}
	// An answer handed over for a VIF that is gone (a race with its
	// release) must not outlive it; one handed over after the snapshot
	// may be for a VIF the snapshot does not have yet.
	r.mu.Lock()
	for mac := range r.answers {
		if r.ents[mac] == nil && r.answeredAt[mac].Before(snapAt) {
			delete(r.answeredAt, mac)
			delete(r.answers, mac)
			delete(r.status, mac)
		}
	}
	r.mu.Unlock()

	now := time.Now()
	var wake time.Time
	changed := false
	macs := make([]inventory.MAC, 0, len(r.ents))
	for mac := range r.ents {
		macs = append(macs, mac)
	}
	slices.SortFunc(macs, func(a, b inventory.MAC) int { return bytes.Compare(a[:], b[:]) })
	for _, mac := range macs {
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		e := r.ents[mac]
		due := full || marked[mac] || (e.fail != nil && !now.Before(e.retryAt))
		if !due {
			if e.fail != nil && (wake.IsZero() || e.retryAt.Before(wake)) {
				wake = e.retryAt
			}
			continue
		}
		if r.converge(ctx, mac, e, full) {
			changed = true
		}
		if e.fail != nil && (wake.IsZero() || e.retryAt.Before(wake)) {
			wake = e.retryAt
		}
	}
	if !r.portsSwept && full {
		r.sweepPorts(ctx)
	}
	if changed && r.cfg.OnApplied != nil {
		r.cfg.OnApplied()
	}
	if r.cfg.RecordStates {
		r.writeStates(ctx)
	}
	return wake, nil
}

// reasonPrefix starts the reason of a VIF the datapath rejected.
const reasonPrefix = "datapath failed: "

// writeStates records the present VIFs' datapath failures in their states
// (Config.RecordStates), one Change per VIF.
func (r *Reconciler) writeStates(ctx context.Context) {
	for mac, e := range r.ents {
		if !e.present {
			continue
		}
		var op inventory.Op
		switch v := e.vif; {
		case e.fail != nil && v.State != inventory.StateRejected:
			op = inventory.SetState(mac, inventory.StateRejected, reasonPrefix+e.fail.Error())
		case e.fail == nil && v.State == inventory.StateRejected && strings.HasPrefix(v.Last.Reason, reasonPrefix):
			op = inventory.SetState(mac, inventory.StatePending, "datapath in place")
		default:
			continue
		}
		if _, err := r.cfg.Store.Apply(ctx, inventory.Change{}.Add(op)); err != nil {
			r.log.Debug("VIF state not written", "mac", mac.String(), "err", err)
		}
	}
}

// sweepHeld adds, on the first pass, the VIFs the vNIC managers hold
// durably that the inventory no longer has, so they are released.
func (r *Reconciler) sweepHeld(ctx context.Context, seen, marked map[inventory.MAC]bool) {
	for kind, vn := range r.cfg.VNICs {
		h, ok := vn.(Holder)
		if !ok {
			continue
		}
		held, err := h.Held(ctx)
		if err != nil {
			r.log.Warn("cannot list the vNICs held", "kind", kind.String(), "err", err)
			continue
		}
		for _, mac := range held {
			if seen[mac] || r.ents[mac] != nil {
				continue
			}
			r.log.Info("releasing a vNIC whose VIF left the inventory", "mac", mac.String(), "kind", kind.String())
			r.ents[mac] = &entry{vif: inventory.VIF{MAC: mac, Kind: kind}}
			marked[mac] = true
		}
	}
}

// sweepPorts removes, after a start, the soft-switch ports marked as
// tether's that no present VIF wants: ports of VIFs that went (or were
// removed) while tetherd was down. A present VIF wants the port its vNIC
// returned, or its host device while that is not known. It runs on full
// passes until one sweep succeeded.
func (r *Reconciler) sweepPorts(ctx context.Context) {
	pl, ok := r.cfg.Switch.(PortLister)
	if !ok {
		r.portsSwept = true
		return
	}
	ports, err := pl.Ports(ctx)
	if err != nil {
		r.log.Warn("cannot list the soft switch's ports", "err", err)
		r.setErr(fmt.Sprintf("list soft-switch ports: %v", err))
		return
	}
	wanted := map[string]bool{}
	for _, e := range r.ents {
		if !e.present || !slices.Contains(r.cfg.SwitchKinds, e.vif.Kind) {
			continue
		}
		for _, p := range []string{e.port, e.want, e.vif.HostDev} {
			if p != "" {
				wanted[p] = true
			}
		}
		if e.want == "" && e.fail != nil && r.cfg.VNICs[e.vif.Kind] != nil {
			// Its vNIC failed before naming its port: which port is the
			// VIF's is not known yet, so sweep on a later pass.
			return
		}
	}
	var errs []error
	for _, p := range ports {
		if wanted[p] {
			continue
		}
		if err := r.cfg.Switch.RemovePort(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("remove soft-switch port %s: %w", p, err))
			continue
		}
		r.ops.Add(1)
		r.log.Info("removed a soft-switch port no VIF wants", "port", p)
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Warn("stale soft-switch ports not removed", "err", err)
		r.setErr(err.Error())
		return
	}
	r.portsSwept = true
}

// sameDatapath reports whether a and b want the same datapath (the
// fields the vNIC and the port are made from).
func sameDatapath(a, b inventory.VIF) bool {
	return a.MAC == b.MAC && a.Kind == b.Kind && a.HostDev == b.HostDev && a.STag == b.STag && a.CVID == b.CVID
}

// converge brings one VIF's datapath to its desired state and records the
// outcome; it reports whether what Granted returns changed.
func (r *Reconciler) converge(ctx context.Context, mac inventory.MAC, e *entry, full bool) bool {
	if !e.present {
		err := r.release(ctx, e)
		if err == nil {
			delete(r.ents, mac)
			r.mu.Lock()
			delete(r.status, mac)
			delete(r.answers, mac)
			delete(r.answeredAt, mac)
			r.mu.Unlock()
			return false
		}
		return r.record(mac, e, nil, err)
	}
	r.mu.Lock()
	var a *Answer
	if ans, ok := r.answers[mac]; ok {
		ans = ans.clone()
		a = &ans
	}
	r.mu.Unlock()
	err := r.ensure(ctx, e, a, full)
	return r.record(mac, e, a, err)
}

// ensure runs the steps for a present VIF: the vNIC, then the soft-switch
// port from the answer (or its removal while there is none).
func (r *Reconciler) ensure(ctx context.Context, e *entry, a *Answer, full bool) error {
	v := e.vif
	port := v.HostDev
	if vn := r.cfg.VNICs[v.Kind]; vn != nil {
		p, err := vn.Ensure(ctx, v, a)
		if err != nil {
			return fmt.Errorf("ensure %s vNIC: %w", v.Kind, err)
		}
		r.ops.Add(1)
		if p != "" {
			port = p
		}
	}
	sw := r.cfg.Switch
	if sw == nil || !slices.Contains(r.cfg.SwitchKinds, v.Kind) {
		return nil
	}
	e.want = port
	if e.port != "" && (a == nil || e.port != port) {
		if err := sw.RemovePort(ctx, e.port); err != nil {
			return fmt.Errorf("remove soft-switch port %s: %w", e.port, err)
		}
		r.ops.Add(1)
		e.port, e.set = "", nil
	}
	if a == nil {
		return nil
	}
	if port == "" {
		return fmt.Errorf("no host device for the soft-switch port of a %s VIF", v.Kind)
	}
	prof := a.profile()
	if v.STag != 0 && prof.Mode == 0 {
		// No signed profile (plain VDP): the edge strips the S-Tag, as
		// for a partition before its profile says otherwise.
		prof.Mode = wire.TetherSTagSwitch
	}
	want, err := softswitch.FromProfile(prof, port, v.MAC.HardwareAddr(), v.STag)
	if err != nil {
		return fmt.Errorf("soft-switch port from the switch's answer: %w", err)
	}
	same := e.set != nil && softswitch.Compare(*e.set, want) == nil
	if same && !full {
		return nil
	}
	if same {
		// A resync: read the port back.
		d, err := sw.Check(ctx, want)
		if err != nil {
			return fmt.Errorf("check soft-switch port %s: %w", port, err)
		}
		if len(d) == 0 {
			return nil
		}
		r.drifts.Add(1)
		if r.cfg.Drift == DriftReportOnly {
			return fmt.Errorf("soft-switch port %s drifted (drift: report-only): %s", port, diffText(d))
		}
		r.log.Warn("repairing a drifted soft-switch port", "mac", v.MAC.String(), "port", port, "drift", diffText(d))
	}
	if err := sw.EnsurePort(ctx, want); err != nil {
		return fmt.Errorf("set soft-switch port %s: %w", port, err)
	}
	r.ops.Add(1)
	e.port, e.set = port, &want
	return nil
}

// release removes the VIF's soft-switch port and releases its vNIC.
func (r *Reconciler) release(ctx context.Context, e *entry) error {
	if e.port != "" && r.cfg.Switch != nil {
		if err := r.cfg.Switch.RemovePort(ctx, e.port); err != nil {
			return fmt.Errorf("remove soft-switch port %s: %w", e.port, err)
		}
		r.ops.Add(1)
		r.log.Info("soft-switch port removed", "mac", e.vif.MAC.String(), "port", e.port)
		e.port, e.set = "", nil
	}
	if vn := r.cfg.VNICs[e.vif.Kind]; vn != nil {
		if err := vn.Release(ctx, e.vif); err != nil {
			return fmt.Errorf("release %s vNIC: %w", e.vif.Kind, err)
		}
		r.ops.Add(1)
	}
	return nil
}

// record keeps the outcome of one convergence: the failure with its
// backoff, or the answer now in place. It reports whether what Granted
// returns changed.
func (r *Reconciler) record(mac inventory.MAC, e *entry, a *Answer, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.status[mac]
	if err != nil {
		r.fails.Add(1)
		e.backoff = min(max(e.backoff*2, r.cfg.RetryMin), r.cfg.RetryMax)
		jitter := time.Duration(rand.Int64N(int64(e.backoff)/5+1)) - e.backoff/10
		e.retryAt = time.Now().Add(e.backoff + jitter)
		err = fmt.Errorf("%w (retry in %v)", err, e.backoff.Round(time.Millisecond))
		e.fail = err
		r.lastErr = fmt.Sprintf("VIF %s: %v", mac, err)
		r.status[mac] = vifStatus{applied: old.applied, err: err}
		r.log.Warn("datapath failed", "mac", mac.String(), "kind", e.vif.Kind.String(), "err", err)
		return old.err == nil || old.err.Error() != err.Error()
	}
	if e.fail != nil {
		r.log.Info("datapath recovered", "mac", mac.String())
	}
	e.fail, e.backoff, e.retryAt = nil, 0, time.Time{}
	r.status[mac] = vifStatus{applied: a}
	changed := old.err != nil || (old.applied == nil) != (a == nil) || (a != nil && !old.applied.Equal(*a))
	if changed && a != nil {
		r.log.Info("datapath in place for the switch's answer", "mac", mac.String(), "answer", a.String(), "port", e.port)
	}
	return changed
}

// setErr records the last error for Status.
func (r *Reconciler) setErr(msg string) {
	r.mu.Lock()
	r.lastErr = msg
	r.mu.Unlock()
}

// diffText renders differences on one line.
func diffText(d []softswitch.Difference) string {
	s := make([]string, len(d))
	for i, x := range d {
		s[i] = x.String()
	}
	return strings.Join(s, "; ")
}
