package switchd

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// switchd's own refusal reasons, next to edge/verify's.
const (
	reasonNoProfile        = "no-profile"
	reasonVIDMismatch      = "vid-mismatch"
	reasonEnforceFailed    = "enforce-failed"
	reasonNeighbourChanged = "neighbour-changed"
)

// Decide implements vdp.Decider for the port: the closed-loop verifier
// decides, the profile gives the VID and the profile TLV, and on success
// the enforcer's rule is committed before the answer leaves, so the rule is
// in place when the station hears "success": PRE-ASSOCIATE installs the
// pairs held back (enforce Pending), ASSOCIATE allows them (Activate when
// they were pending, Allow otherwise).
func (p *port) Decide(ctx context.Context, req vdp.DecideRequest) vdp.Decision {
	d := p.d
	start := d.now()
	key := vdp.KeyOf(&req.VSI)
	k := recKey{p.name, key}
	p.waitNeighbour(ctx)
	mu := d.str.of(k)
	mu.Lock()
	defer mu.Unlock()
	p.mu.Lock()
	identOK, ident := p.identOK, p.ident
	p.mu.Unlock()

	prev := d.tbl.get(k)
	claim := p.claimOf(&req)
	if prev != nil && svidOf(prev.pairs) != claim.STag {
		prev = nil // the VM's association on another S-channel is not this request's to keep or end
	}
	dec, err := p.check(ctx, claim, req.Peer)
	if err != nil {
		p.log.Error("verifier failed", "vsi", key.String(), "err", err)
	}
	if !dec.Accepted {
		// A refusal that retrying may cure keeps the VSI's previous
		// association (KEEP), as edge/verify's own Decider does: the
		// verifier committed nothing for the refused request.
		code, hard := dec.Reason.VDPCode()
		return p.refuse(ctx, k, prev, &req, &dec, dec.Reason.String(), dec.Message, code, hard, prev != nil && !hard)
	}
	// From here on a refusal ends the VSI's association (no KEEP): the
	// verifier has already moved the VM's association to this request, so
	// the previous one cannot be kept as it was.
	release := func() {
		if req.VSI.Mode == wire.VSIAssociate {
			if err := d.verifier.Release(context.WithoutCancel(ctx), p.name, dec.VM); err != nil {
				p.log.Error("verifier release", "vm", dec.VM.String(), "err", err)
			}
		}
	}

	group := requestedGroup(req.Extra)
	pr, perr := d.profiles().Profile(ctx, ProfileRequest{VM: dec.VM, Host: dec.Host, Port: p.name, Group: group, VSITypeID: req.VSI.VSITypeID})
	if perr != nil {
		release()
		return p.refuse(ctx, k, prev, &req, &dec, reasonNoProfile,
			fmt.Sprintf("no profile for VSI type %d (port group %q): %v", req.VSI.VSITypeID, group, perr),
			wire.VDPOtherFailure, true, false)
	}
	gname, prof := pr.Group, &pr.TLV
	filters := slices.Clone(req.VSI.Filters)
	for i := range filters {
		switch {
		case filters[i].VID == 0:
			filters[i].VID = prof.VID
		case filters[i].VID != prof.VID:
			release()
			return p.refuse(ctx, k, prev, &req, &dec, reasonVIDMismatch,
				fmt.Sprintf("the request names VID %d, profile %q gives VID %d", filters[i].VID, gname, prof.VID),
				wire.VDPInvalidFormat, true, false)
		}
	}
	pairs := withSVID(pairsOf(filters), claim.STag)

	// The rule goes in before the answer.
	state := stateOfMode(req.VSI.Mode)
	if err := d.install(ctx, p.name, prev, state, pairs); err != nil {
		p.uninstall(ctx, prev, pairs)
		release()
		return p.refuse(ctx, k, prev, &req, &dec, reasonEnforceFailed, "nftables: "+err.Error(),
			wire.VDPInsufficientResources, false, false)
	}
	installed := d.now()

	// The neighbour that vouched for the claim must still be there: a
	// loss handled while deciding would otherwise leave this rule behind.
	p.mu.Lock()
	stillOK, still := p.identOK, p.ident
	p.mu.Unlock()
	if identOK != stillOK || ident != still {
		p.uninstall(ctx, prev, pairs)
		release()
		return p.refuse(ctx, k, prev, &req, &dec, reasonNeighbourChanged,
			"the port's LLDP neighbour changed while the request was being decided", wire.VDPOtherFailure, false, false)
	}

	since := start
	if prev != nil && prev.vm == dec.VM && (prev.state == state || state != vdp.StateAssociated) {
		since = prev.since
	}
	vmm := d.vmm.describe(dec.Host, dec.VM, verify.MAC(filters[0].MAC))
	rec := &record{
		port: p.name, key: key, vm: dec.VM, host: dec.Host, state: state, pairs: pairs,
		profile: gname, group: group, typeID: req.VSI.VSITypeID, since: since, signer: dec.Key, counter: dec.Counter, vmm: vmm,
		migr: dec.Migration, note: dec.Message, at: installed,
	}
	d.tbl.put(rec)
	d.lat.add(installed.Sub(start))
	for _, rl := range dec.Released {
		if rl.From.Switch == d.cfg.Name && rl.From.Port != p.name {
			d.migratedAway(rl, p.name, dec.Host, dec.VM, fmt.Sprintf("MAC %s moved to port %s: %s", rl.MAC, p.name, dec.Message))
		}
	}
	if prev == nil || prev.state != state || !slices.Equal(prev.pairs, pairs) {
		p.log.LogAttrs(ctx, slog.LevelInfo, "association verified",
			slog.String("mode", req.VSI.Mode.String()), slog.String("vm", dec.VM.String()), slog.String("host", dec.Host),
			slog.String("key", dec.Key.String()), slog.String("pairs", pairsString(pairs)), slog.String("profile", gname),
			slog.String("vm_manager", vmm), slog.Duration("rule_latency", installed.Sub(start)))
	}
	return vdp.Decision{Code: wire.VDPSuccess, Filters: filters, Profile: new(*prof)}
}

// refuse records a refusal and answers it. Without keep, the VSI's
// previous association (if any) ends: the bridge releases the VSI, so its
// pairs are revoked and the verifier releases its MACs.
func (p *port) refuse(ctx context.Context, k recKey, prev *record, req *vdp.DecideRequest, dec *verify.Decision,
	reason, msg string, code wire.VDPResponseCode, hard, keep bool) vdp.Decision {
	rj := rejectOf(p.d.now(), p.name, req.VSI.Mode.String(), &req.VSI, reason, msg)
	rj.Host = dec.Host
	if dec.Signed {
		rj.KeyID = dec.Key.String()
	}
	p.d.rej.add(rj)
	if prev != nil && !keep {
		p.dropLocked(context.WithoutCancel(ctx), k, prev.gen, "refused: "+reason, false)
	}
	return vdp.Decision{Code: code, Hard: hard, Keep: keep}
}

// uninstall undoes install: the pairs the new association added go,
// the previous association's pairs stay as they were.
func (p *port) uninstall(ctx context.Context, prev *record, pairs []enforce.Pair) {
	var added []enforce.Pair
	for _, pr := range pairs {
		if prev == nil || !slices.Contains(prev.pairs, pr) {
			added = append(added, pr)
		}
	}
	p.d.revoke(context.WithoutCancel(ctx), p.name, added)
}

// install commits pairs on port in state, replacing prev's pairs: pending
// for a pre-association, allowed (activated when they were pending) for an
// association; prev's pairs that are not in pairs are revoked afterwards.
func (d *Daemon) install(ctx context.Context, port string, prev *record, state vdp.State, pairs []enforce.Pair) error {
	d.enfMu.RLock()
	defer d.enfMu.RUnlock()
	ctx = context.WithoutCancel(ctx) // half-installed pairs are worse than a late answer
	for _, pr := range pairs {
		var err error
		switch {
		case state != vdp.StateAssociated:
			if prev != nil && prev.state == vdp.StateAssociated && slices.Contains(prev.pairs, pr) {
				// Going back from associated to pre-associated: the pair
				// stops passing.
				if err = d.enfRevoke(ctx, port, pr); err == nil {
					err = d.enfPending(ctx, port, pr)
				}
			} else {
				err = d.enfPending(ctx, port, pr)
			}
		case prev != nil && prev.state != vdp.StateAssociated && slices.Contains(prev.pairs, pr):
			err = d.enfActivate(ctx, port, pr)
		default:
			err = d.enfAllow(ctx, port, pr)
		}
		if err != nil {
			return fmt.Errorf("%s on %s: %w", pr, port, err)
		}
	}
	if prev != nil {
		for _, pr := range prev.pairs {
			if !slices.Contains(pairs, pr) {
				if err := d.enfRevoke(ctx, port, pr); err != nil {
					d.log.Error("revoke a pair the association no longer has", "port", port, "pair", pr.String(), "err", err)
				}
			}
		}
	}
	return nil
}

// revoke removes pairs from port, logging failures (the next resync
// repairs them).
func (d *Daemon) revoke(ctx context.Context, port string, pairs []enforce.Pair) {
	if len(pairs) == 0 {
		return
	}
	d.enfMu.RLock()
	defer d.enfMu.RUnlock()
	for _, pr := range pairs {
		if err := d.enfRevoke(ctx, port, pr); err != nil {
			d.log.Error("revoke", "port", port, "pair", pr.String(), "err", err)
		}
	}
}

// requestedGroup returns the port group a request names in a tether
// profile TLV following its VSI TLV, or "".
func requestedGroup(extra []wire.TLV) string {
	for _, t := range extra {
		if tp, ok := t.(*wire.TetherProfile); ok {
			return tp.Name
		}
	}
	return ""
}

// stateOfMode returns the state a successful request of mode leads to.
func stateOfMode(m wire.VSIMode) vdp.State {
	switch m {
	case wire.VSIPreAssociate:
		return vdp.StatePreAssociated
	case wire.VSIPreAssociateRR:
		return vdp.StatePreAssociatedRR
	case wire.VSIAssociate:
		return vdp.StateAssociated
	}
	return vdp.StateNone
}

// pairsOf returns the distinct (MAC, VID) pairs of filters, in order.
func pairsOf(filters []wire.Filter) []enforce.Pair {
	out := make([]enforce.Pair, 0, len(filters))
	for _, f := range filters {
		p := enforce.Pair{MAC: f.MAC, VID: f.VID}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func pairsString(ps []enforce.Pair) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// rejectOf builds a refusal entry.
func rejectOf(now time.Time, port, mode string, v *wire.VSI, reason, msg string) switchapi.Reject {
	rj := switchapi.Reject{Time: now, Port: port, Mode: mode, Reason: reason, Message: msg}
	if v != nil {
		if v.VSIIDFormat == wire.VSIIDUUID {
			rj.VM = verify.UUID(v.VSIID).String()
		} else {
			rj.VM = v.VSIIDString()
		}
		if len(v.Filters) > 0 && v.FilterFormat != wire.FilterVID && v.FilterFormat != wire.FilterGroupVID {
			rj.MAC = macString(v.Filters[0].MAC)
		}
	}
	return rj
}

// waitNeighbour waits, at most Options.NeighbourWait and while ctx lasts,
// until the port knows its LLDP neighbour. After a restart of switchd or of
// the host agent a station's request (often a keep-alive) can arrive before
// the station's next LLDPDU; refusing it would tear down a verified
// association that the LLDPDU about to come would have vouched for.
func (p *port) waitNeighbour(ctx context.Context) {
	p.mu.Lock()
	ok, ch := p.identOK, p.identCh
	p.mu.Unlock()
	if ok {
		return
	}
	t := time.NewTimer(p.d.opts.NeighbourWait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-ch:
		}
		p.mu.Lock()
		ok, ch = p.identOK, p.identCh
		p.mu.Unlock()
		if ok {
			return
		}
	}
}
