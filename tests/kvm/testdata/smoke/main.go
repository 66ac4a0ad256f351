// Command smoke runs inside the kernel VM (tests/kvm): it builds the L2
// stack tether relies on and this machine's kernel cannot, reads it back
// over netlink and exits 0 when everything matches.
//
//	dum0 (dummy)
//	└─ stag100 (802.1ad, VID 100)
//	   └─ ctag200 (802.1Q, VID 200)
//	br0 (bridge, vlan_filtering=1) ── vethA (VLAN 300 PVID untagged) ── vethB
//
// It is its own module so that github.com/vishvananda/netlink stays out of
// tether's go.mod.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

func main() {
	if err := run(); err != nil {
		fmt.Println("SMOKE FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("SMOKE PASS")
}

func run() error {
	dum := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "dum0"}}
	if err := netlink.LinkAdd(dum); err != nil {
		return fmt.Errorf("add dummy: %w", err)
	}
	d, err := netlink.LinkByName("dum0")
	if err != nil {
		return err
	}
	stag := &netlink.Vlan{
		LinkAttrs:    netlink.LinkAttrs{Name: "stag100", ParentIndex: d.Attrs().Index},
		VlanId:       100,
		VlanProtocol: netlink.VLAN_PROTOCOL_8021AD,
	}
	if err := netlink.LinkAdd(stag); err != nil {
		return fmt.Errorf("add 802.1ad S-Tag device: %w", err)
	}
	s, err := netlink.LinkByName("stag100")
	if err != nil {
		return err
	}
	ctag := &netlink.Vlan{
		LinkAttrs:    netlink.LinkAttrs{Name: "ctag200", ParentIndex: s.Attrs().Index},
		VlanId:       200,
		VlanProtocol: netlink.VLAN_PROTOCOL_8021Q,
	}
	if err := netlink.LinkAdd(ctag); err != nil {
		return fmt.Errorf("add 802.1Q C-Tag device: %w", err)
	}
	yes := true
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, VlanFiltering: &yes}); err != nil {
		return fmt.Errorf("add bridge: %w", err)
	}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethA"}, PeerName: "vethB"}); err != nil {
		return fmt.Errorf("add veth: %w", err)
	}
	br, err := netlink.LinkByName("br0")
	if err != nil {
		return err
	}
	va, err := netlink.LinkByName("vethA")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(va, br); err != nil {
		return fmt.Errorf("enslave vethA: %w", err)
	}
	if err := netlink.BridgeVlanAdd(va, 300, true, true, false, false); err != nil {
		return fmt.Errorf("bridge vlan add: %w", err)
	}
	for _, n := range []string{"dum0", "stag100", "ctag200", "br0", "vethA", "vethB"} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("up %s: %w", n, err)
		}
	}

	// Read everything back from the kernel.
	if err := checkVlan("stag100", "dum0", 100, netlink.VLAN_PROTOCOL_8021AD); err != nil {
		return err
	}
	if err := checkVlan("ctag200", "stag100", 200, netlink.VLAN_PROTOCOL_8021Q); err != nil {
		return err
	}
	l, err := netlink.LinkByName("br0")
	if err != nil {
		return err
	}
	b, ok := l.(*netlink.Bridge)
	if !ok {
		return fmt.Errorf("br0 is %s, not bridge", l.Type())
	}
	if b.VlanFiltering == nil || !*b.VlanFiltering {
		return fmt.Errorf("br0 vlan_filtering not set on read-back")
	}
	sysfs, err := os.ReadFile("/sys/class/net/br0/bridge/vlan_filtering")
	if err != nil {
		return err
	}
	fmt.Printf("SMOKE bridge br0 vlan_filtering=%s (netlink %v)\n", strings.TrimSpace(string(sysfs)), *b.VlanFiltering)
	vl, err := netlink.BridgeVlanList()
	if err != nil {
		return fmt.Errorf("bridge vlan list: %w", err)
	}
	var found bool
	for _, v := range vl[int32(va.Attrs().Index)] {
		if v.Vid == 300 && v.Flags&nl.BRIDGE_VLAN_INFO_PVID != 0 && v.Flags&nl.BRIDGE_VLAN_INFO_UNTAGGED != 0 {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("vethA VLAN 300 PVID untagged not in %v", vl[int32(va.Attrs().Index)])
	}
	fmt.Println("SMOKE bridge port vethA vlan 300 pvid untagged")
	return nil
}

func checkVlan(name, parent string, vid int, proto netlink.VlanProtocol) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	v, ok := l.(*netlink.Vlan)
	if !ok {
		return fmt.Errorf("%s is %s, not vlan", name, l.Type())
	}
	p, err := netlink.LinkByName(parent)
	if err != nil {
		return err
	}
	if v.VlanId != vid || v.VlanProtocol != proto || v.Attrs().ParentIndex != p.Attrs().Index {
		return fmt.Errorf("%s read back as vid %d proto %s parent %d, want vid %d proto %s parent %d",
			name, v.VlanId, v.VlanProtocol, v.Attrs().ParentIndex, vid, proto, p.Attrs().Index)
	}
	fmt.Printf("SMOKE vlan %s on %s id %d protocol %s\n", name, parent, vid, v.VlanProtocol)
	return nil
}
