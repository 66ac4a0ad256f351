package libvirt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/libvirthooks"
	virt "libvirt.org/go/libvirt"
)

// fetchStatus is what reading one domain from libvirt found.
type fetchStatus uint8

const (
	// fetched: the domain was read and converted.
	fetched fetchStatus = iota
	// vanished: libvirt no longer has the domain (it was undefined).
	vanished
	// unreadable: its XML could not be used; the inventory's records of it
	// are kept as they are until it can be read.
	unreadable
)

// isNoDomain reports whether err is libvirt's "domain not found".
func isNoDomain(err error) bool {
	var e virt.Error
	return errors.As(err, &e) && e.Code == virt.ERR_NO_DOMAIN
}

// fetch reads one domain's live XML and run state and converts them. An
// error is returned only for a failed libvirt call (not for a domain that
// vanished meanwhile, nor for XML that cannot be used: those are a status,
// and the problem is logged). dom.VM.UUID is set for unreadable too.
func (s *Source) fetch(ss *session, d *virt.Domain) (dom inventory.Domain, st fetchStatus, err error) {
	xml, err := d.GetXMLDesc(0)
	if err != nil {
		if isNoDomain(err) {
			return inventory.Domain{}, vanished, nil
		}
		return inventory.Domain{}, 0, fmt.Errorf("get domain XML: %w", err)
	}
	state, _, err := d.GetState()
	if err != nil {
		if isNoDomain(err) {
			return inventory.Domain{}, vanished, nil
		}
		return inventory.Domain{}, 0, fmt.Errorf("get domain state: %w", err)
	}
	parsed, err := libvirthooks.ParseDomain([]byte(xml))
	if err == nil {
		var skipped []error
		dom, skipped, err = convertDomain(parsed, state, ss.networkKind)
		if err == nil {
			for _, e := range skipped {
				s.log.Warn("interface not recorded", "err", e)
				s.fail(e)
			}
			return dom, fetched, nil
		}
	}
	// Keep what the inventory has: the domain exists, it is only described
	// in a way this agent cannot use.
	raw, uerr := d.GetUUID()
	if uerr != nil || len(raw) != len(dom.VM.UUID) {
		return inventory.Domain{}, 0, fmt.Errorf("domain with unusable XML (%v): get its UUID: %w", err, uerr)
	}
	copy(dom.VM.UUID[:], raw)
	err = fmt.Errorf("domain %s: unusable XML, its records are kept: %w", dom.VM.UUID, err)
	s.log.Warn("domain not updated", "err", err)
	s.fail(err)
	return dom, unreadable, nil
}

// networkKind resolves (and caches, until the next full reconcile) how the
// interfaces of a libvirt network are plumbed.
func (ss *session) networkKind(name string) (inventory.Kind, error) {
	ss.netMu.Lock()
	k, ok := ss.netKinds[name]
	ss.netMu.Unlock()
	if ok {
		return k, nil
	}
	n, err := ss.conn.LookupNetworkByName(name)
	if err != nil {
		return inventory.KindUnknown, fmt.Errorf("look up network: %w", err)
	}
	defer n.Free()
	xml, err := n.GetXMLDesc(0)
	if err != nil {
		return inventory.KindUnknown, fmt.Errorf("get network XML: %w", err)
	}
	k, err = networkKind(xml)
	if err != nil {
		return inventory.KindUnknown, err
	}
	ss.netMu.Lock()
	if ss.netKinds == nil {
		ss.netKinds = make(map[string]inventory.Kind)
	}
	ss.netKinds[name] = k
	ss.netMu.Unlock()
	return k, nil
}

// round is one pass of the worker: a full reconcile if full or if one was
// requested, otherwise an update of each dirty domain. What fails is put
// back in the dirty set for the retry.
func (s *Source) round(ctx context.Context, ss *session, full bool) error {
	dirty, want := s.takeDirty()
	if full || want {
		if err := s.reconcile(ctx, ss); err != nil {
			s.requeue(dirty, true)
			return err
		}
		return nil
	}
	if len(dirty) == 0 {
		return nil
	}
	return s.syncDomains(ctx, ss, dirty)
}

// reconcile is the full reconcile: every domain is read, and the
// inventory's VMs of source "libvirt" are made equal to them in one
// Change. The dirty set is emptied first: events that arrive meanwhile are
// handled after it.
func (s *Source) reconcile(ctx context.Context, ss *session) error {
	start := time.Now()
	failures := s.failures.Load()
	s.takeDirty()
	ss.netMu.Lock()
	ss.netKinds = nil // networks may have changed while we were away
	ss.netMu.Unlock()
	doms, err := ss.conn.ListAllDomains(0)
	if err != nil {
		return fmt.Errorf("full reconcile: list domains: %w", err)
	}
	defer func() {
		for i := range doms {
			doms[i].Free()
		}
	}()
	results, err := s.fetchAll(ctx, ss, doms)
	if err != nil {
		return fmt.Errorf("full reconcile: %w", err)
	}
	desired := make([]inventory.Domain, 0, len(doms))
	var keep []inventory.UUID
	for _, r := range results {
		switch r.st {
		case fetched:
			desired = append(desired, r.dom)
		case unreadable:
			keep = append(keep, r.dom.VM.UUID)
		}
	}
	snap, err := s.Store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("full reconcile: read the inventory: %w", err)
	}
	desired = append(desired, keptDomains(snap, keep)...)
	ch, derr := inventory.Diff(SourceName, desired, snap)
	if derr != nil {
		// Diff left the entries it could not apply out; the rest goes in.
		s.log.Warn("full reconcile: some domains not recorded", "err", derr)
		s.fail(derr)
	}
	res, err := s.Store.Apply(ctx, ch)
	if err != nil {
		return fmt.Errorf("full reconcile: apply %d operations: %w", len(ch.Ops), err)
	}
	took := time.Since(start)
	s.reconciles.Add(1)
	s.lastReconcile.Store(int64(took))
	s.lastReconcileOps.Store(int64(len(ch.Ops)))
	if s.failures.Load() == failures {
		s.mu.Lock()
		s.lastErr = ""
		s.mu.Unlock()
	}
	s.log.Info("full reconcile", "domains", len(doms), "ops", len(ch.Ops), "changed", res.Changed,
		"generation", res.Generation, "took", took)
	return nil
}

// fetchWorkers is how many domains a full reconcile reads at once.
// libvirtd serves at most 5 concurrent calls per client by default
// (max_client_requests), and parsing uses the CPUs meanwhile.
const fetchWorkers = 4

// fetchResult is one domain as fetch read it.
type fetchResult struct {
	dom inventory.Domain
	st  fetchStatus
}

// fetchAll reads doms with fetchWorkers goroutines; the results are in the
// order of doms. The first failed libvirt call fails it.
func (s *Source) fetchAll(ctx context.Context, ss *session, doms []virt.Domain) ([]fetchResult, error) {
	out := make([]fetchResult, len(doms))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, fetchWorkers)
	for w := range min(fetchWorkers, len(doms)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(doms) {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				d, st, err := s.fetch(ss, &doms[i])
				if err != nil {
					errs[w] = err
					next.Store(int64(len(doms))) // stop the others
					return
				}
				out[i] = fetchResult{d, st}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// keptDomains lists, for the VMs ids whose XML could not be used, what the
// inventory holds now (the VM and its VIFs that are not gone), so that a
// Diff leaves them as they are.
func keptDomains(snap *inventory.Snapshot, ids []inventory.UUID) []inventory.Domain {
	if len(ids) == 0 {
		return nil
	}
	want := make(map[inventory.UUID]int, len(ids))
	var out []inventory.Domain
	for _, vm := range snap.VMs {
		if slices.Contains(ids, vm.UUID) && vm.Source == SourceName {
			want[vm.UUID] = len(out)
			out = append(out, inventory.Domain{VM: vm})
		}
	}
	for _, v := range snap.VIFs {
		if i, ok := want[v.VM]; ok && v.State != inventory.StateGone {
			out[i].VIFs = append(out[i].VIFs, v)
		}
	}
	return out
}

// plan is the update of one dirty domain.
type plan struct {
	id     inventory.UUID
	dom    *inventory.Domain // nil: the domain vanished
	marked time.Time         // when the first event marked it
}

// syncDomains reads each dirty domain and applies its diff. The domains of
// one round share a transaction (and an fsync) unless their changes touch
// the same MAC (a vNIC that moved between them), which are then applied one
// by one, each diffed against the previous one's result.
func (s *Source) syncDomains(ctx context.Context, ss *session, dirty map[inventory.UUID]time.Time) error {
	var plans []plan
	failed := make(map[inventory.UUID]time.Time)
	var errs []error
	for id, marked := range dirty {
		d, err := ss.conn.LookupDomainByUUID(id[:])
		if err != nil {
			if isNoDomain(err) {
				plans = append(plans, plan{id: id, marked: marked})
				continue
			}
			failed[id] = marked
			errs = append(errs, fmt.Errorf("domain %s: look up: %w", id, err))
			continue
		}
		dom, st, err := s.fetch(ss, d)
		d.Free()
		switch {
		case err != nil:
			failed[id] = marked
			errs = append(errs, fmt.Errorf("domain %s: %w", id, err))
		case st == vanished:
			plans = append(plans, plan{id: id, marked: marked})
		case st == fetched:
			plans = append(plans, plan{id: id, dom: &dom, marked: marked})
		}
	}
	slices.SortFunc(plans, func(a, b plan) int { return bytes.Compare(a.id[:], b.id[:]) })
	for _, p := range s.applyPlans(ctx, plans, &errs) {
		failed[p.id] = p.marked
	}
	if len(failed) > 0 {
		s.requeue(failed, false)
	}
	return errors.Join(errs...)
}

// applyPlans applies plans, batched when it is safe, and returns those that
// failed (their errors appended to errs).
func (s *Source) applyPlans(ctx context.Context, plans []plan, errs *[]error) (failed []plan) {
	if len(plans) > 1 {
		batch := true
		var all inventory.Change
		macs := make(map[inventory.MAC]int, 4*len(plans))
		for i, p := range plans {
			ch, err := s.diffOne(ctx, p)
			if err != nil {
				batch = false
				break
			}
			for _, op := range ch.Ops {
				mac := op.MAC
				if op.Type == inventory.OpUpsertVIF {
					mac = op.VIF.MAC
				}
				if mac.IsZero() {
					continue
				}
				if j, ok := macs[mac]; ok && j != i {
					batch = false
				}
				macs[mac] = i
			}
			all.Ops = append(all.Ops, ch.Ops...)
		}
		if batch {
			_, err := s.Store.Apply(ctx, all)
			if err == nil {
				s.applied(plans)
				return nil
			}
			s.log.Debug("batched domain updates failed; applying one by one", "domains", len(plans), "err", err)
		}
	}
	for _, p := range plans {
		ch, err := s.diffOne(ctx, p)
		if err == nil {
			_, err = s.Store.Apply(ctx, ch)
		}
		if err != nil {
			*errs = append(*errs, fmt.Errorf("domain %s: %w", p.id, err))
			failed = append(failed, p)
			continue
		}
		s.applied([]plan{p})
	}
	return failed
}

// applied counts and logs committed domain updates.
func (s *Source) applied(plans []plan) {
	s.syncs.Add(uint64(len(plans)))
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		for _, p := range plans {
			s.log.Debug("domain updated", "uuid", p.id, "vanished", p.dom == nil, "since_event", time.Since(p.marked))
		}
	}
}

// diffOne returns the Change for one domain: inventory.Diff over a
// snapshot that holds only this VM, its VIFs, and the current owners of
// the MACs the domain lists (so that a vNIC moving in from another VM, or
// a MAC another source holds, is seen). Diff would remove those other VMs,
// which it sees without their vNICs; those operations are dropped. An
// entry Diff cannot apply is logged and left out; the error reports only a
// failure to read the inventory.
func (s *Source) diffOne(ctx context.Context, p plan) (inventory.Change, error) {
	snap := &inventory.Snapshot{}
	haveVM := map[inventory.UUID]bool{}
	addVM := func(id inventory.UUID) error {
		if haveVM[id] {
			return nil
		}
		haveVM[id] = true
		vm, err := s.Store.VM(id)
		switch {
		case err == nil:
			snap.VMs = append(snap.VMs, vm)
		case !errors.Is(err, inventory.ErrNotFound):
			return fmt.Errorf("read VM %s: %w", id, err)
		}
		return nil
	}
	if err := addVM(p.id); err != nil {
		return inventory.Change{}, err
	}
	vifs, err := s.Store.List(ctx, inventory.Filter{VM: p.id})
	if err != nil {
		return inventory.Change{}, fmt.Errorf("list VIFs of %s: %w", p.id, err)
	}
	snap.VIFs = vifs
	var desired []inventory.Domain
	if p.dom != nil {
		desired = []inventory.Domain{*p.dom}
		for _, v := range p.dom.VIFs {
			if slices.ContainsFunc(vifs, func(c inventory.VIF) bool { return c.MAC == v.MAC }) {
				continue
			}
			cur, err := s.Store.VIF(v.MAC)
			if errors.Is(err, inventory.ErrNotFound) {
				continue
			}
			if err != nil {
				return inventory.Change{}, fmt.Errorf("read VIF %s: %w", v.MAC, err)
			}
			snap.VIFs = append(snap.VIFs, cur)
			if err := addVM(cur.VM); err != nil {
				return inventory.Change{}, err
			}
		}
	}
	ch, derr := inventory.Diff(SourceName, desired, snap)
	if derr != nil {
		s.log.Warn("domain partly recorded", "uuid", p.id, "err", derr)
		s.fail(derr)
	}
	ops := ch.Ops[:0]
	for _, op := range ch.Ops {
		if op.Type == inventory.OpRemoveVM && op.UUID != p.id {
			continue
		}
		ops = append(ops, op)
	}
	ch.Ops = ops
	return ch, nil
}
