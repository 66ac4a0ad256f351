package inventory

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func opStrings(c Change) []string {
	var out []string
	for _, op := range c.Ops {
		s := op.Type.String() + " "
		switch op.Type {
		case OpUpsertVM:
			s += op.VM.UUID.String()[24:]
		case OpUpsertVIF:
			s += op.VIF.MAC.String()
		case OpRemoveVM:
			s += op.UUID.String()[24:]
		case OpSetState, OpRemoveVIF:
			s += op.MAC.String() + " " + op.State.String()
		}
		out = append(out, s)
	}
	return out
}

func TestDiffRoundTrip(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx := context.Background()
	reconcile := func(desired []Domain) ([]string, Result) {
		t.Helper()
		cur, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Diff("libvirt", desired, cur)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Apply(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		// Converged: a second diff is empty.
		cur, _ = s.Snapshot(ctx)
		if again, err := Diff("libvirt", desired, cur); err != nil || len(again.Ops) != 0 {
			t.Errorf("not converged: %q, %v", opStrings(again), err)
		}
		return opStrings(c), r
	}

	ops, r := reconcile([]Domain{testDomain(2, 1), testDomain(1, 2)})
	want := []string{"upsert-vm 000000000001", "upsert-vm 000000000002",
		"upsert-vif 52:54:00:00:01:00", "upsert-vif 52:54:00:00:01:01", "upsert-vif 52:54:00:00:02:00"}
	if !reflect.DeepEqual(ops, want) || r.Generation != 1 {
		t.Errorf("first reconcile: %q (gen %d)\nwant %q", ops, r.Generation, want)
	}
	mustApply(t, s, SetState(testMAC(1, 0), StateAssociated, "ok"))

	// VM 1 loses a vNIC and changes state, VM 2 disappears, VM 3 appears.
	d1 := testDomain(1, 1)
	d1.VM.State = VMStatePaused
	ops, _ = reconcile([]Domain{d1, testDomain(3, 1)})
	want = []string{"upsert-vm 000000000001", "upsert-vm 000000000003", "upsert-vif 52:54:00:00:03:00",
		"set-state 52:54:00:00:01:01 gone", "set-state 52:54:00:00:02:00 gone"}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("second reconcile: %q\nwant %q", ops, want)
	}
	if v, _ := s.VIF(testMAC(1, 0)); v.State != StateAssociated {
		t.Errorf("an unchanged VIF lost its state: %+v", v)
	}
	if v, _ := s.VIF(testMAC(2, 0)); v.State != StateGone || v.Last.Reason != "absent from libvirt" {
		t.Errorf("gone VIF: %+v", v)
	}

	// The gone VIF of VM 2 is deleted after its DE-ASSOCIATE; then VM 2 goes.
	mustApply(t, s, RemoveVIF(testMAC(2, 0)))
	ops, _ = reconcile([]Domain{d1, testDomain(3, 1)})
	if want = []string{"remove-vm 000000000002"}; !reflect.DeepEqual(ops, want) {
		t.Errorf("third reconcile: %q\nwant %q", ops, want)
	}

	// VM 1's lost vNIC comes back: re-added.
	ops, _ = reconcile([]Domain{testDomain(1, 2), testDomain(3, 1)})
	want = []string{"upsert-vm 000000000001", "upsert-vif 52:54:00:00:01:01"}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("fourth reconcile: %q\nwant %q", ops, want)
	}
	if v, _ := s.VIF(testMAC(1, 1)); v.State != StatePending || v.Last.Reason != "re-added" {
		t.Errorf("re-added VIF: %+v", v)
	}
}

func TestDiffOtherSourcesAndErrors(t *testing.T) {
	cni := VM{UUID: testUUID(50), Name: "pod", State: VMStateRunning, Source: "cni"}
	podVIF := testVIF(50, 0)
	podVIF.State, podVIF.Last = StatePending, Transition{To: StatePending, Reason: "added"}
	current := &Snapshot{VMs: []VM{cni}, VIFs: []VIF{podVIF}}

	bad := testDomain(3, 1)
	bad.VIFs[0].MAC = MAC{0x01, 0, 0x5e, 0, 0, 1}
	dup := testDomain(4, 1)
	dup.VIFs[0].MAC = testMAC(1, 0) // listed by VM 1 too
	steal := testDomain(5, 1)
	steal.VIFs[0].MAC = podVIF.MAC // live in the CNI pod
	c, err := Diff("libvirt", []Domain{testDomain(1, 1), bad, dup, steal, {VM: cni}}, current)
	for _, want := range []string{
		"inventory: diff libvirt: invalid vNIC MAC: 01:00:5e:00:00:01 is a multicast address",
		"inventory: diff libvirt: VIF 52:54:00:00:01:00 listed twice (again in VM a5000000-0000-0000-0000-000000000004)",
		"inventory: diff libvirt: VIF 52:54:00:00:32:00 of VM a5000000-0000-0000-0000-000000000005 is live in VM a5000000-0000-0000-0000-000000000032 of another source",
		`inventory: diff libvirt: VM a5000000-0000-0000-0000-000000000032: source "cni" is not this source`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Diff error %v\nlacks %q", err, want)
		}
	}
	want := []string{"upsert-vm 000000000001", "upsert-vm 000000000003", "upsert-vm 000000000004", "upsert-vm 000000000005",
		"upsert-vif 52:54:00:00:01:00"}
	if got := opStrings(c); !reflect.DeepEqual(got, want) {
		t.Errorf("ops %q\nwant %q", got, want)
	}
	// An empty libvirt list leaves the CNI pod alone.
	c, err = Diff("libvirt", nil, current)
	if err != nil || len(c.Ops) != 0 {
		t.Errorf("empty desired: %q, %v", opStrings(c), err)
	}
	// And a nil snapshot is an empty inventory.
	if c, err := Diff("cni", []Domain{{VM: cni, VIFs: []VIF{testVIF(50, 0)}}}, nil); err != nil || len(c.Ops) != 2 {
		t.Errorf("nil current: %q, %v", opStrings(c), err)
	}
	_, err = Diff("libvirt", []Domain{bad}, nil)
	if !errors.Is(err, ErrInvalidMAC) {
		t.Errorf("Diff error %v does not wrap ErrInvalidMAC", err)
	}
}

func TestDiffKeepsBadlyListedRecords(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx := context.Background()
	cur, _ := s.Snapshot(ctx)
	c, _ := Diff("libvirt", []Domain{testDomain(1, 2)}, cur)
	mustApply(t, s, c.Ops...)
	// The source now describes VM 1 with an invalid name: its records stay.
	broken := testDomain(1, 2)
	broken.VM.Name = "\xff"
	cur, _ = s.Snapshot(ctx)
	c, err := Diff("libvirt", []Domain{broken}, cur)
	if err == nil || len(c.Ops) != 0 {
		t.Errorf("ops %q, err %v", opStrings(c), err)
	}
}
