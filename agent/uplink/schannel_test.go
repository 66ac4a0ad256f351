package uplink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
)

// TestSChannelRequestAndWait: VIFs with S-Tags make the uplink ask CDCP
// for one S-channel per distinct S-Tag (the switch sees the request in the
// uplink's LLDPDU); a switch that assigns none (this one advertises no
// CDCP) leaves a partition VIF pending, the uplink's status saying why, a
// VM whose VIFs are on two S-Tags pending with its own reason, while a tap
// VIF on the default S-channel is verified as usual.
func TestSChannelRequestAndWait(t *testing.T) {
	r := newRig(t)
	sw := r.startSwitch(true, nil)
	_, tap := r.addVM(0)
	vmP := inventory.UUID{0xa6, 1}
	vmM := inventory.UUID{0xa6, 2}
	mP := inventory.MAC{0x52, 0x54, 0, 0xa6, 1, 1}
	mM1, mM2 := inventory.MAC{0x52, 0x54, 0, 0xa6, 2, 1}, inventory.MAC{0x52, 0x54, 0, 0xa6, 2, 2}
	apply := func(ops ...inventory.Op) {
		t.Helper()
		if _, err := r.store.Apply(context.Background(), inventory.Change{}.Add(ops...)); err != nil {
			t.Fatal(err)
		}
	}
	apply(inventory.UpsertVM(inventory.VM{UUID: vmP, Name: "part", State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mP, VM: vmP, HostDev: "p5", Kind: inventory.KindPartition, STag: 5}))
	up := r.startUplink(true)
	r.waitState(tap, inventory.StateVerified, 10*time.Second)
	// The requests of the S-Tag VMs are not sent; the uplink's status says
	// why (a pending VIF keeps its reason: it was already pending).
	saysSoon := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(up.u.Status().LastError, want) {
			if time.Now().After(deadline) {
				t.Fatalf("the uplink's status never said %q (last: %q)", want, up.u.Status().LastError)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	saysSoon("S-channel with S-VID 5 not assigned by the switch's CDCP yet")
	apply(inventory.UpsertVM(inventory.VM{UUID: vmM, Name: "mixed", State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mM1, VM: vmM, HostDev: "p6", Kind: inventory.KindPartition, STag: 6}),
		inventory.UpsertVIF(inventory.VIF{MAC: mM2, VM: vmM, HostDev: "p7", Kind: inventory.KindPartition, STag: 5}))
	saysSoon("have different S-Tags (6 and 5): one VSI per VM goes on one S-channel")
	for _, m := range []inventory.MAC{mP, mM1, mM2} {
		if v, err := r.store.VIF(m); err != nil || v.State != inventory.StatePending {
			t.Errorf("VIF %s: %s %v, want pending", m, v.State, err)
		}
	}
	var ok bool
	deadline := time.Now().Add(5 * time.Second)
	for !ok && time.Now().Before(deadline) {
		for _, n := range sw.Agent.Neighbors() {
			if c := n.CDCP(); c != nil && c.ChnCap == 3 && len(c.Channels) == 3 && c.Channels[1].SCID == 2 && c.Channels[2].SCID == 3 &&
				c.Channels[1].SVID == 0 && c.Channels[2].SVID == 0 {
				ok = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ok {
		for _, n := range sw.Agent.Neighbors() {
			t.Logf("neighbour CDCP: %+v", n.CDCP())
		}
		t.Fatal("the uplink's LLDPDU does not ask CDCP for S-channels 2 and 3 (S-Tags 5 and 6)")
	}
}
