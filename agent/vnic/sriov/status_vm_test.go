package sriov

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tether-net/tether/agent/vnic"
)

// TestVMStatus: Statuses shows each VF's state as the local API does: ok
// after Ensure; drifted, with the fields' wanted and found values, when
// an operator changed the VF and the policy is report-only; ok again once
// a repairing pass put it back; error when Ensure fails; gone on Release.
func TestVMStatus(t *testing.T) {
	pf := nsimPF(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newManager(t, t.TempDir())
	vf := VF{PF: pf, Index: 0}
	if err := m.Ensure(ctx, "vm-s/net0", vf, tetherWant); err != nil {
		t.Fatal(err)
	}
	one := func(what string) Status {
		t.Helper()
		st := m.Statuses()
		if len(st) != 1 || st[0].VF != vf || st[0].VNIC != "vm-s/net0" {
			t.Fatalf("%s: Statuses = %+v, want one for %s", what, st, vf)
		}
		return st[0]
	}
	if s := one("after Ensure"); s.State != StateOK || s.Drift != nil || s.LastError != "" || s.Checked.IsZero() {
		t.Errorf("after Ensure: %+v", s)
	}

	// Report-only: the operator's change shows, nothing is repaired.
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(wctx, WatchOptions{Drift: vnic.DriftReportOnly, Resync: 50 * time.Millisecond})
	}()
	l, err := netlink.LinkByName(pf)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfTrust(l, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfVlanQosProto(l, 0, 300, 0, int(ProtoDot1Q)); err != nil {
		t.Fatal(err)
	}
	var s Status
	deadline := time.Now().Add(10 * time.Second)
	for s = one("report-only"); s.State != StateDrifted || len(s.Drift) != 2; s = one("report-only") {
		if time.Now().After(deadline) {
			t.Fatalf("no drift reported within 10 s: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := []string{"vlan: want 100 qos 5 proto 0x88a8, got 300 qos 0 proto 0x8100", "trust: want off, got on"}
	if !slices.Equal(s.Drift, want) || s.LastError != "" {
		t.Errorf("drifted status %+v\nwant drift %q", s, want)
	}
	if k := kernelVF(t, pf, 0); k.Trust != 1 || k.Vlan != 300 {
		t.Errorf("report-only repaired the VF: trust %d vlan %d", k.Trust, k.Vlan)
	}
	wcancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}

	// A repairing pass puts it back and the status with it.
	if _, errs := m.Reconcile(ctx); errs != nil {
		t.Fatal(errs)
	}
	if s := one("after the repair"); s.State != StateOK || s.Drift != nil {
		t.Errorf("after the repair: %+v", s)
	}

	// A failing Ensure: a VF the PF does not have.
	bad := VF{PF: pf, Index: 7}
	if err := m.Ensure(ctx, "vm-s/net1", bad, tetherWant); err == nil {
		t.Fatal("Ensure of a VF the PF does not have succeeded")
	}
	st := m.Statuses()
	if len(st) != 2 || st[1].VF != bad || st[1].State != StateError || !strings.Contains(st[1].LastError, "no such VF") {
		t.Errorf("after a failed Ensure: %+v", st)
	}
	if err := m.Release(ctx, "vm-s/net1", bad); err != nil {
		t.Errorf("Release of a VF never held: %v", err)
	}
	if err := m.Release(ctx, "vm-s/net0", vf); err != nil {
		t.Fatal(err)
	}
	if st := m.Statuses(); len(st) != 0 {
		t.Errorf("Statuses after Release: %+v", st)
	}
}
