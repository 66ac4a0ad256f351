package datapath

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/linuxbridge"
	"github.com/tether-net/tether/agent/vnic/partition"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/internal/nsimtest"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
	"github.com/tether-net/tether/wire"
)

// vethUp creates the veth pair a-b, both up, deleted when the test ends.
func vethUp(t *testing.T, a, b string) netlink.Link {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a, MTU: 1500}, PeerName: b}); err != nil {
		t.Fatalf("veth %s-%s: %v", a, b, err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(a); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	for _, n := range []string{a, b} {
		l, err := netlink.LinkByName(n)
		if err != nil || netlink.LinkSetUp(l) != nil {
			t.Fatalf("up %s: %v", n, err)
		}
	}
	l, err := netlink.LinkByName(a)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// vnicStatus returns the datapath's status of the vNIC of mac.
func vnicStatus(r *Reconciler, mac inventory.MAC) (api.VNICStatus, bool) {
	for _, v := range r.Status().VNICs {
		if v.VIF == mac.String() {
			return v, true
		}
	}
	return api.VNICStatus{}, false
}

// TestVMFromConfig builds the datapath from a tetherd.yaml as tetherd
// does and checks what its keys do:
//
//   - drift: report-only reaches both vNIC kinds: an operator's change to
//     a partition's S-Tag device and to a VF is reported (state drifted,
//     the differences, in the datapath's status for `tetherctl status`)
//     and left as it is;
//   - soft_switch: linuxbridge with bridge_stag: true makes an 802.1ad
//     bridge on which a tap VIF with an S-Tag gets its port (PVID the
//     S-VID), even without a signed profile;
//   - the first pass removes the bridge port tether set for a VIF that
//     went while tetherd was down.
func TestVMFromConfig(t *testing.T) {
	kvmtest.RequireVM(t)
	ctx := context.Background()
	const bridge = "dpcbr0"
	up := vethUp(t, "dpcup", "dpcupp")
	vethUp(t, "dpcbu", "dpcbup") // the bridge's uplink
	tap := vethUp(t, "dpct1", "dpct1p")
	vethUp(t, "dpct2", "dpct2p")
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	pf := nsimPF(t, 2)
	vnics := "[partition]"
	if pf != "" {
		vnics = "[vf, partition]"
	}
	stateDir := t.TempDir()
	c, err := config.Parse(strings.NewReader(fmt.Sprintf(`state_dir: %s
uplinks: [{interface: dpcup}]
datapath:
  vnics: %s
  soft_switch: linuxbridge
  bridge: %s
  bridge_uplink: dpcbu
  bridge_stag: true
  drift: report-only
`, stateDir, vnics, bridge)))
	if err != nil {
		t.Fatal(err)
	}

	// What an earlier tetherd left on the bridge: the port of a VIF that
	// went while it was down.
	old, err := linuxbridge.New(ctx, linuxbridge.Options{Bridge: bridge, Uplink: "dpcbu", STag: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = old.Close() })
	stale := softswitch.Port{Name: "dpct2", MAC: testMAC(9).HardwareAddr(), STag: 500, Mode: wire.TetherSTagSwitch}
	if err := old.Ensure(ctx, stale); err != nil {
		t.Fatalf("the earlier instance's port: %v", err)
	}

	st := openStore(t)
	r, closeFn, err := FromConfig(ctx, &c, st, nil, testLogger(t))
	if err != nil {
		t.Fatalf("FromConfig: %v", err)
	}
	t.Cleanup(func() {
		if err := closeFn(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	pv := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindPartition, STag: 310})
	tv := addVIF(t, st, inventory.VIF{MAC: testMAC(2), Kind: inventory.KindTap, HostDev: "dpct1", STag: 400})
	var vv inventory.VIF
	if pf != "" {
		vv = addVIF(t, st, inventory.VIF{MAC: testMAC(3), Kind: inventory.KindVF, HostDev: pf + "/vf1"})
	}
	run(t, r)

	// The stale port goes; the tap VIF's port, once answered (plain VDP:
	// no profile), is an S-Tag port of the 802.1ad bridge.
	waitFor(t, "the stale port removed", wait, func() bool {
		ports, err := old.Ports(ctx)
		return err == nil && !slices.Contains(ports, "dpct2")
	})
	waitFor(t, "the tap's answer in place", wait, func() bool { return r.Granted(tv, 30, nil) == nil })
	want := softswitch.Port{Name: "dpct1", MAC: tv.MAC.HardwareAddr(), VID: 30, STag: 400, Mode: wire.TetherSTagSwitch}
	if d, err := old.Check(ctx, want); err != nil || d != nil {
		t.Errorf("the S-Tag port read back: %v %v", d, err)
	}
	vlans, err := netlink.BridgeVlanList()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(vlans[int32(tap.Attrs().Index)], func(v *nl.BridgeVlanInfo) bool { return v.Vid == 400 && v.PortVID() }) {
		t.Errorf("dpct1 is not a PVID member of S-VLAN 400: %v", vlans[int32(tap.Attrs().Index)])
	}

	// Both vNICs in place, ok in the status.
	waitFor(t, "the partition's answer in place", wait, func() bool { return r.Granted(pv, 0, nil) == nil })
	if pf != "" {
		waitFor(t, "the VF's answer in place", wait, func() bool { return r.Granted(vv, 200, nil) == nil })
	}
	waitFor(t, "the vNICs ok in the status", wait, func() bool {
		p, ok1 := vnicStatus(r, pv.MAC)
		v, ok2 := vnicStatus(r, vv.MAC)
		return ok1 && p.State == "ok" && (pf == "" || ok2 && v.State == "ok" && v.Device == pf+"/vf1")
	})

	// The operator's changes: reported, not repaired.
	sdev, _ := partition.Names(up.Attrs().Index, 310)
	sl, err := netlink.LinkByName(sdev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetMTU(sl, 1400); err != nil {
		t.Fatal(err)
	}
	var p api.VNICStatus
	waitFor(t, "the partition's drift reported", wait, func() bool {
		p, _ = vnicStatus(r, pv.MAC)
		return p.State == "drifted"
	})
	if p.Kind != "partition" || p.Device != sdev || len(p.Drift) == 0 || !strings.Contains(strings.Join(p.Drift, "; "), "1400") {
		t.Errorf("partition status %+v", p)
	}
	if pf != "" {
		l, err := netlink.LinkByName(pf)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetVfTrust(l, 1, true); err != nil {
			t.Fatal(err)
		}
		var v api.VNICStatus
		waitFor(t, "the VF's drift reported", wait, func() bool {
			v, _ = vnicStatus(r, vv.MAC)
			return v.State == "drifted"
		})
		if v.Kind != "vf" || !slices.Equal(v.Drift, []string{"trust: want off, got on"}) {
			t.Errorf("VF status %+v", v)
		}
		time.Sleep(300 * time.Millisecond)
		if k := nsimtest.VF(t, pf, 1); k.Trust != 1 {
			t.Error("report-only repaired the VF's trust")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if l, err := netlink.LinkByName(sdev); err != nil || l.Attrs().MTU != 1400 {
		t.Errorf("report-only repaired the partition's MTU: %v", err)
	}
}
