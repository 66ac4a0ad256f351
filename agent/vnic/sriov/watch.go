package sriov

import (
	"context"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tether-net/tether/agent/vnic"
)

// WatchOptions tune Watch.
type WatchOptions struct {
	// Drift is what Watch does about a VF that differs from its desired
	// settings: vnic.DriftRepair (the zero value) converges it;
	// vnic.DriftReportOnly only reports it (Action "drifted FIELDS", the
	// VF's Status drifted) and leaves unfinished Ensures and Releases
	// alone. The same setting as agent/vnic/partition's Config.Drift
	// (config key datapath.drift).
	Drift vnic.DriftPolicy
	// Settle is how long Watch waits after a PF's first change for more
	// before it reads the PF back (one read for a burst); 0 means 100 ms.
	Settle time.Duration
	// Resync is the period of a full Reconcile-like pass that catches what
	// notifications miss: the kernel announces a VF change only when its
	// PF is up (netdev_state_change). 0 means one minute; negative, never.
	Resync time.Duration
	// OnAction receives what Watch did or saw for each VF of a changed PF
	// that has a record ("in sync" actions are not reported).
	OnAction func(Action)
	// Ready, when set, is called once Watch is subscribed: a change made
	// after it returns is seen.
	Ready func()
}

// Watch detects drift as it happens: it subscribes to the kernel's link
// notifications (RTNLGRP_LINK) in the PFs' network namespace
// (Options.NetNS, where the Manager's netlink handle is) and, when a PF
// that holds VFs with records changes (an operator's `ip link set PF vf N
// ...` makes the kernel announce the PF if it is up), reads its VFs back
// and converges them like Reconcile, or only reports when o.Drift is
// vnic.DriftReportOnly; every o.Resync it checks all VFs with records. Link notifications carry no VF state (the kernel adds
// IFLA_VFINFO_LIST only to requests with RTEXT_FILTER_VF), so every check
// is a fresh read-back.
// Watch returns when ctx ends.
func (m *Manager) Watch(ctx context.Context, o WatchOptions) error {
	reportOnly := o.Drift == vnic.DriftReportOnly
	settle := o.Settle
	if settle == 0 {
		settle = 100 * time.Millisecond
	}
	updates := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	subErr := make(chan error, 1)
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		Namespace: m.ns,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	}); err != nil {
		return fmt.Errorf("sriov: subscribe to link notifications: %w", err)
	}
	if o.Ready != nil {
		o.Ready()
	}
	var resync <-chan time.Time
	switch {
	case o.Resync == 0:
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		resync = t.C
	case o.Resync > 0:
		t := time.NewTicker(o.Resync)
		defer t.Stop()
		resync = t.C
	}
	dirty := map[string]bool{}
	var timer <-chan time.Time
	for {
		select {
		case <-resync:
			acts, errs := m.reconcile(ctx, func(*Record) bool { return true }, reportOnly)
			m.report(o, acts, errs)
		case <-ctx.Done():
			return nil
		case err := <-subErr:
			return fmt.Errorf("sriov: link notifications: %w", err)
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("sriov: link notifications ended")
			}
			if u.Link == nil || u.Link.Attrs() == nil {
				continue
			}
			if len(dirty) == 0 {
				timer = time.After(settle)
			}
			dirty[u.Link.Attrs().Name] = true
		case <-timer:
			pfs := dirty
			dirty, timer = map[string]bool{}, nil
			acts, errs := m.reconcile(ctx, func(r *Record) bool { return pfs[r.VF.PF] }, reportOnly)
			m.report(o, acts, errs)
		}
	}
}

// report logs and hands on what a pass of Watch did.
func (m *Manager) report(o WatchOptions, acts []Action, errs []error) {
	m.noteActions(acts)
	for _, err := range errs {
		m.log.Error("watch: state record", "err", err)
	}
	for _, a := range acts {
		if a.Did == "in sync" && a.Err == nil {
			continue
		}
		if a.Err != nil {
			m.log.Error("watch: VF", "vf", a.VF.String(), "vnic", a.VNIC, "err", a.Err)
		}
		if o.OnAction != nil {
			o.OnAction(a)
		}
	}
}
