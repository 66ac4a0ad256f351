package datapath

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/linuxbridge"
	"github.com/tether-net/tether/agent/vnic/partition"
	"github.com/tether-net/tether/agent/vnic/sriov"
	"github.com/tether-net/tether/internal/nsimtest"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
	"github.com/tether-net/tether/wire"
)

// TestInKernelVM runs the TestVM* tests in the kernel VM: the Linux bridge
// soft switch needs vlan_filtering, the SR-IOV path netdevsim's VFs.
func TestInKernelVM(t *testing.T) {
	out := kvmtest.RunInVM(t, "^TestVM", kvmtest.Options{MemoryMB: 512})
	for _, name := range []string{"TestVMEndToEnd", "TestVMFromConfig"} {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the kernel VM", name)
		}
	}
	if strings.Contains(out, "no netdevsim in this kernel VM") {
		t.Log("the VF half of TestVMEndToEnd was skipped: the kernel VM has no netdevsim")
	}
}

// nsimPF creates a netdevsim device with n VFs and returns its PF's
// netdev, or "" when the kernel VM has no netdevsim (the VF half of a
// test is then left out, not the whole test).
func nsimPF(t *testing.T, n int) string {
	t.Helper()
	if why := nsimtest.Missing(); why != "" {
		t.Logf("no netdevsim in this kernel VM: %s", why)
		return ""
	}
	return nsimtest.NewPF(t, n)
}

// sendFrom sends n frames with source MAC src out of ifname (the VM side
// of a tap).
func sendFrom(t *testing.T, ifname string, src net.HardwareAddr, n int) {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	proto := uint16(0x88b5) // IEEE 802 local experimental EtherType
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(proto)))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: l.Attrs().Index}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], src)
	binary.BigEndian.PutUint16(frame[12:], proto)
	for range n {
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			t.Fatal(err)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestVMEndToEnd: VIFs appear in a real inventory -> the real datapath is
// ensured (the VF gets the VIF's MAC, spoof checking, link down) -> the
// switch's answer with a VID (handed over as agent/uplink does) -> the
// Linux bridge port has that VID, the MAC allow-list and the rate, the VF
// that VLAN and rate -> a frame with a foreign source MAC is dropped at
// the soft switch -> the VIFs go -> port removed, VF restored.
func TestVMEndToEnd(t *testing.T) {
	kvmtest.RequireVM(t)
	ctx := context.Background()
	const tap, peer, bridge = "dpv1", "dpv1p", "dpbr0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tap}, PeerName: peer}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(tap); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	for _, n := range []string{tap, peer} {
		l, err := netlink.LinkByName(n)
		if err != nil || netlink.LinkSetUp(l) != nil {
			t.Fatalf("up %s: %v", n, err)
		}
	}
	sw, err := linuxbridge.New(ctx, linuxbridge.Options{Bridge: bridge, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("linuxbridge: %v", err)
	}
	t.Cleanup(func() {
		sw.Close()
		if l, err := netlink.LinkByName(bridge); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	st := openStore(t)
	cfg := Config{Store: st, Switch: Switch{sw}, Logger: testLogger(t), VNICs: map[inventory.Kind]VNICs{}, Resync: 200 * time.Millisecond}
	pf := nsimPF(t, 2)
	var vfOrig sriov.Settings
	if pf != "" {
		m, err := sriov.New(sriov.Options{StateDir: t.TempDir(), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if vfOrig, err = m.Observe(ctx, sriov.VF{PF: pf, Index: 1}); err != nil {
			t.Fatal(err)
		}
		cfg.VNICs[inventory.KindVF] = &SRIOV{Manager: m}
	}
	// Partitions on an uplink of their own.
	const up, upPeer = "dpup", "dpupp"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: up, MTU: 1500}, PeerName: upPeer}); err != nil {
		t.Fatalf("veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(up); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	upl, err := netlink.LinkByName(up)
	if err != nil || netlink.LinkSetUp(upl) != nil {
		t.Fatalf("up %s: %v", up, err)
	}
	pm, err := partition.Open(ctx, partition.Config{StateDir: t.TempDir(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.Close() })
	cfg.VNICs[inventory.KindPartition] = &Partitions{Manager: pm, Uplink: up}
	sdev, cdev := partition.Names(upl.Attrs().Index, 300)

	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	// 1. The VIFs appear.
	pv := addVIF(t, st, inventory.VIF{MAC: testMAC(3), Kind: inventory.KindPartition, STag: 300})
	waitFor(t, "the partition's S-Tag device before any answer", wait, func() bool {
		l, err := netlink.LinkByName(sdev)
		if err != nil {
			return false
		}
		vl, ok := l.(*netlink.Vlan)
		return ok && vl.VlanId == 300 && vl.VlanProtocol == netlink.VLAN_PROTOCOL_8021AD && l.Attrs().MTU == 1500
	})
	if _, err := netlink.LinkByName(cdev); err == nil {
		t.Errorf("C-VLAN device %s before any answer", cdev)
	}
	tv := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindTap, HostDev: tap})
	var vv inventory.VIF
	if pf != "" {
		vv = addVIF(t, st, inventory.VIF{MAC: testMAC(2), Kind: inventory.KindVF, HostDev: pf + "/vf1"})
		waitFor(t, "the VF ensured before any answer", wait, func() bool {
			k := nsimtest.VF(t, pf, 1)
			return k.Mac.String() == vv.MAC.String() && k.Spoofchk && k.LinkState == uint32(sriov.LinkStateDisable)
		})
		k := nsimtest.VF(t, pf, 1)
		if !k.Spoofchk || k.LinkState != uint32(sriov.LinkStateDisable) || k.Vlan != 0 {
			t.Errorf("VF before the answer: spoofchk %v link state %d vlan %d; want on, disable (2), 0", k.Spoofchk, k.LinkState, k.Vlan)
		}
	}
	want := softswitch.Port{Name: tap, MAC: tv.MAC.HardwareAddr(), VID: 100, RateKbps: 8000}
	if d, err := sw.Check(ctx, want); err != nil || len(d) == 0 {
		t.Fatalf("the port is set before any answer: %v %v", d, err)
	}

	// 2. The switch answers (what agent/uplink hands over on every pass).
	web := &wire.TetherProfile{VID: 100, RateKbps: 8000, Priority: 3, Name: "web"}
	db := &wire.TetherProfile{VID: 200, RateKbps: 3000, Priority: 5, Name: "db"}
	start := time.Now()
	waitFor(t, "the tap's answer in place", wait, func() bool { return r.Granted(tv, 100, web) == nil })
	t.Logf("answer to port in place: %v", time.Since(start))
	if pf != "" {
		waitFor(t, "the VF's answer in place", wait, func() bool { return r.Granted(vv, 200, db) == nil })
	}
	iox := &wire.TetherProfile{VID: 30, Mode: wire.TetherSTagIOExtender, Name: "iox"}
	waitFor(t, "the partition's answer in place", wait, func() bool { return r.Granted(pv, 30, iox) == nil })
	for _, dev := range []struct {
		name  string
		vid   int
		proto netlink.VlanProtocol
	}{{sdev, 300, netlink.VLAN_PROTOCOL_8021AD}, {cdev, 30, netlink.VLAN_PROTOCOL_8021Q}} {
		l, err := netlink.LinkByName(dev.name)
		if err != nil {
			t.Fatalf("partition device %s: %v", dev.name, err)
		}
		vl, ok := l.(*netlink.Vlan)
		// I/O-extender mode: the S-Tag travels on, 4 bytes off the MTU.
		if !ok || vl.VlanId != dev.vid || vl.VlanProtocol != dev.proto || l.Attrs().MTU != 1496 {
			t.Errorf("partition device %s: %+v, want VLAN %d %v MTU 1496", dev.name, l, dev.vid, dev.proto)
		}
	}

	// 3. The soft switch's port, read back from the kernel.
	if d, err := sw.Check(ctx, want); err != nil || d != nil {
		t.Fatalf("port %s after the answer: %v %v", tap, d, err)
	}
	vlans, err := netlink.BridgeVlanList()
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := netlink.LinkByName(tap)
	pvid := false
	for _, vi := range vlans[int32(tl.Attrs().Index)] {
		if vi.Vid == 100 && vi.PortVID() && vi.EngressUntag() {
			pvid = true
		}
	}
	if !pvid {
		t.Errorf("%s is not an untagged PVID member of VLAN 100: %v", tap, vlans[int32(tl.Attrs().Index)])
	}
	// The allow-list: the VM's own MAC passes, another is dropped.
	sendFrom(t, peer, tv.MAC.HardwareAddr(), 3)
	sendFrom(t, peer, net.HardwareAddr{0x02, 0, 0, 0, 0xee, 0xee}, 5)
	waitFor(t, "the allow-list counters", wait, func() bool {
		pc, err := sw.Counters(ctx, tap)
		return err == nil && pc.Accepted.Packets >= 3 && pc.Dropped.Packets >= 5
	})
	if pf != "" {
		k := nsimtest.VF(t, pf, 1)
		if k.Vlan != 200 || k.Qos != 5 || k.MaxTxRate != 3 || k.LinkState != uint32(sriov.LinkStateAuto) || !k.Spoofchk {
			t.Errorf("VF after the answer: vlan %d qos %d max_tx_rate %d link state %d spoofchk %v; want 200 5 3 auto(0) on",
				k.Vlan, k.Qos, k.MaxTxRate, k.LinkState, k.Spoofchk)
		}
	}

	// 4. Drift: an operator takes the port off the bridge; the periodic
	// resync reads the port back and repairs it.
	if err := netlink.LinkSetNoMaster(tl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drifted port repaired", wait, func() bool {
		d, err := sw.Check(ctx, want)
		return err == nil && d == nil
	})
	if r.drifts.Load() == 0 {
		t.Error("the repair was not counted as drift")
	}

	// 5. The VIFs go.
	setGone(t, st, tv.MAC)
	setGone(t, st, pv.MAC)
	if pf != "" {
		setGone(t, st, vv.MAC)
	}
	waitFor(t, "everything released", wait, func() bool {
		a1, _ := r.Applied(tv.MAC)
		a2, _ := r.Applied(vv.MAC)
		d, err := sw.Check(ctx, want)
		return a1 == nil && a2 == nil && err == nil && len(d) > 0 && (pf == "" || nsimtest.VF(t, pf, 1).Mac.String() == vfOrig.MAC.String())
	})
	if d, err := sw.Check(ctx, want); err != nil || len(d) == 0 {
		t.Errorf("port %s still set after the VIF went: %v %v", tap, d, err)
	}
	waitFor(t, "the partition's devices deleted", wait, func() bool {
		_, e1 := netlink.LinkByName(sdev)
		_, e2 := netlink.LinkByName(cdev)
		return e1 != nil && e2 != nil
	})
	if l, _ := netlink.LinkByName(tap); l != nil && l.Attrs().MasterIndex != 0 {
		t.Errorf("%s still on a bridge after the VIF went", tap)
	}
	if pf != "" {
		k := nsimtest.VF(t, pf, 1)
		if k.Mac.String() != vfOrig.MAC.String() || k.Vlan != int(vfOrig.VLAN) || k.Spoofchk != vfOrig.SpoofCheck ||
			k.LinkState != uint32(vfOrig.LinkState) || k.MaxTxRate != vfOrig.MaxTxRate {
			t.Errorf("VF not restored: mac %s vlan %d spoofchk %v link %d rate %d; original %s", k.Mac, k.Vlan, k.Spoofchk, k.LinkState, k.MaxTxRate, vfOrig)
		}
	}
}
