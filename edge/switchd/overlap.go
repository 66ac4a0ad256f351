package switchd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
)

// Migration overlap.
//
// With a real libvirtd the destination's started hook, and so its
// ASSOCIATE, comes in the Prepare phase of a live migration, before the
// memory transfer: the guest keeps running on the source until the
// switchover, and no hook fires at the resume. Revoking the source port's
// pairs when the destination's ASSOCIATE moves the VM's MACs would drop
// the guest's frames for the whole transfer. So when the VM manager
// confirms a migration between two hosts (the source reports the VM
// migrating out, or the destination reports it migrating in, and the
// source still has it), the destination's ASSOCIATE makes its pairs live
// without revoking the source's: both ports pass the VM's (MAC, VID) pairs
// while the migration lasts. The source's record is marked (overlapUntil)
// and ends, its pairs revoked, when
//
//   - the source de-associates (its stopped hook, after the switchover), or
//     its keep-alives stop: the usual opVSIGone;
//   - the VM manager no longer reports the VM on the source: asked again at
//     each reconcile of the source port (Options.ReconcileInterval);
//   - migration_overlap after the destination's ASSOCIATE at the latest
//     (logged as a warning);
//   - the destination's association ends first (a failed migration): the
//     source is de-associated and verified again, as the MACs are no
//     longer live anywhere in the verifier's table.
//
// The source's station hears DE-ASSOCIATE in the last three cases. Nothing
// else changes: the verifier has moved the MACs to the destination, so any
// other claim on them (a third port, the source asking again with another
// request) is checked against the destination and refused as
// mac-live-elsewhere unless it is itself a confirmed migration.

// migratedAway is called (on the destination port's decision) for every
// location on this switch that the destination's ASSOCIATE took over: the
// source port's worker decides between an overlap and an immediate drop.
func (d *Daemon) migratedAway(rl verify.Released, to, toHost string, vm verify.UUID, why string) {
	dstate, _ := d.vmm.state(toHost, vm, rl.MAC)
	d.mu.Lock()
	p := d.ports[rl.From.Port]
	d.mu.Unlock()
	if p != nil {
		p.enqueue(op{kind: opMigrated, vm: vm, why: why, to: to, host: toHost, mac: rl.MAC, dstate: dstate})
	}
}

// migrated handles opMigrated on the source port: the VM's records here
// get the overlap, or go at once (with DE-ASSOCIATE) when the migration
// is not one the VM manager confirms in progress.
func (p *port) migrated(ctx context.Context, o op) {
	d := p.d
	var recs []record
	for _, r := range d.tbl.port(p.name) {
		if r.vm == o.vm {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return
	}
	ok, why := d.overlapAllowed(ctx, recs[0].host, o)
	until := d.now().Add(time.Duration(d.cfg.MigrationOverlap))
	armed := false
	for _, r := range recs {
		k := recKey{p.name, r.key}
		mu := d.str.of(k)
		mu.Lock()
		if ok && r.state == vdp.StateAssociated {
			if end := d.tbl.setOverlap(k, r.gen, o.to, until); !end.IsZero() {
				armed = true
				if r.overlapUntil.IsZero() {
					p.log.LogAttrs(ctx, slog.LevelInfo, "migration overlap: the source port keeps passing the VM until it de-associates",
						slog.String("vm", r.vm.String()), slog.String("host", r.host), slog.String("pairs", pairsString(r.pairs)),
						slog.String("destination_port", o.to), slog.String("destination_host", o.host),
						slog.Time("until", end), slog.String("why", why))
				}
			}
		} else {
			p.dropLocked(ctx, k, r.gen, o.why+" ("+why+")", true)
		}
		mu.Unlock()
	}
	if armed {
		// The bound holds even when reconciles are far apart.
		time.AfterFunc(time.Duration(d.cfg.MigrationOverlap), func() { p.enqueue(op{kind: opOverlapCheck}) })
	}
}

// overlapAllowed decides whether the source host's records of o.vm may
// keep passing: migration_overlap is not 0, the hosts differ, and the VM
// manager, asked afresh, still has the VM on the source, in the middle of
// a migration (migrating out there, or migrating in at the destination).
func (d *Daemon) overlapAllowed(ctx context.Context, srcHost string, o op) (bool, string) {
	switch {
	case d.cfg.MigrationOverlap <= 0:
		return false, "migration_overlap is 0"
	case srcHost == o.host:
		return false, "the VM stays on host " + srcHost
	}
	c, err := d.askSource(ctx, srcHost, o.vm, o.mac)
	switch {
	case err != nil:
		return false, fmt.Sprintf("the VM manager could not tell whether the VM still runs on %s: %v", srcHost, err)
	case !c.Confirmed:
		return false, fmt.Sprintf("the VM manager no longer reports the VM on %s (%s)", srcHost, c.State)
	case c.State == verify.VMMigratingOut || o.dstate == verify.VMMigratingIn:
		return true, fmt.Sprintf("the VM manager reports the VM %s on %s and %s on %s", c.State, srcHost, o.dstate, o.host)
	}
	return false, fmt.Sprintf("no migration in progress (%s on %s, %s on %s)", c.State, srcHost, o.dstate, o.host)
}

// askSource asks the VM manager afresh about vm on host.
func (d *Daemon) askSource(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	d.vmm.Forget(host, vm)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(d.cfg.VMManagerTimeout))
	defer cancel()
	return d.vmm.Confirm(ctx, host, vm, mac)
}

// checkOverlaps ends the port's overlaps that are over: past their bound,
// or whose VM the VM manager no longer reports on the source host
// (reconcile and the bound's timer).
func (p *port) checkOverlaps(ctx context.Context) {
	d := p.d
	asked := map[verify.UUID]string{} // vm: why it ends ("" keeps it)
	for _, r := range d.tbl.port(p.name) {
		if r.overlapUntil.IsZero() {
			continue
		}
		why, done := asked[r.vm]
		switch {
		case done:
		case !d.now().Before(r.overlapUntil):
			why = fmt.Sprintf("migration overlap over: the source did not de-associate within migration_overlap (%v) of the destination's ASSOCIATE on port %s",
				time.Duration(d.cfg.MigrationOverlap), r.overlapTo)
			p.log.Warn("migration overlap timed out: revoking the source port's pairs", "vm", r.vm.String(), "host", r.host,
				"destination_port", r.overlapTo, "pairs", pairsString(r.pairs))
		default:
			c, err := d.askSource(ctx, r.host, r.vm, verify.MAC(r.pairs[0].MAC))
			switch {
			case err != nil:
				p.log.Warn("migration overlap: the VM manager did not answer; asking again at the next reconcile", "vm", r.vm.String(),
					"host", r.host, "err", err)
			case !c.Confirmed:
				why = fmt.Sprintf("migration done: the VM manager no longer reports the VM on %s (%s)", r.host, c.State)
			}
		}
		asked[r.vm] = why
		if why == "" {
			continue
		}
		k := recKey{p.name, r.key}
		mu := d.str.of(k)
		mu.Lock()
		p.dropLocked(ctx, k, r.gen, why, true)
		mu.Unlock()
	}
}

// destinationGone is called when port's record r (not itself a source in
// an overlap) ended: a source of the same VM still overlapping with it
// would pass MACs the verifier no longer holds live anywhere, so it is
// de-associated, and verified again when its station asks again.
func (d *Daemon) destinationGone(port string, r *record) {
	if !r.overlapUntil.IsZero() {
		return
	}
	for _, s := range d.tbl.all() {
		if s.vm != r.vm || s.overlapTo != port || s.port == port {
			continue
		}
		d.mu.Lock()
		sp := d.ports[s.port]
		d.mu.Unlock()
		if sp != nil {
			sp.enqueue(op{kind: opOverlapDestGone, vm: r.vm, to: port,
				why: "the destination's association on port " + port + " ended during the migration: the source is verified again"})
		}
	}
}

// destGone handles opOverlapDestGone on the source port.
func (p *port) destGone(ctx context.Context, o op) {
	for _, r := range p.d.tbl.port(p.name) {
		if r.vm != o.vm || r.overlapTo != o.to {
			continue
		}
		k := recKey{p.name, r.key}
		p.drop(ctx, k, r.gen, o.why, true)
	}
}

// state returns the state the VM manager last confirmed vm in on host
// with mac.
func (r *vmmRecorder) state(host string, vm verify.UUID, mac verify.MAC) (verify.VMState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.last[vmmKey{host, vm, mac}]
	return c.State, ok && c.Confirmed
}
