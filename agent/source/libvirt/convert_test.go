package libvirt

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/libvirthooks"
	virt "libvirt.org/go/libvirt"
)

func mustMAC(t *testing.T, s string) inventory.MAC {
	t.Helper()
	m, err := inventory.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustUUID(t *testing.T, s string) inventory.UUID {
	t.Helper()
	u, err := inventory.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestConvertDomain4NICs maps the live XML of a real QEMU domain (the
// libvirthooks golden file) with all four interface kinds and tether
// metadata.
func TestConvertDomain4NICs(t *testing.T) {
	raw, err := os.ReadFile("../../../libvirthooks/testdata/domain-4nics.xml")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := libvirthooks.ParseDomain(raw)
	if err != nil {
		t.Fatal(err)
	}
	noNet := func(string) (inventory.Kind, error) { t.Error("network lookup for a resolved kind"); return 0, nil }
	dom, skipped, err := convertDomain(parsed, virt.DOMAIN_RUNNING, noNet)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("err %v, skipped %v", err, skipped)
	}
	id := mustUUID(t, "4d1f5b2e-93c7-4b0a-9e61-0c5a7f3d2b18")
	if want := (inventory.VM{UUID: id, Name: "web-01", State: inventory.VMStateRunning, Source: "libvirt"}); dom.VM != want {
		t.Errorf("VM %+v, want %+v", dom.VM, want)
	}
	want := []inventory.VIF{
		{MAC: mustMAC(t, "52:54:00:a1:00:01"), VM: id, HostDev: "vnet7", Kind: inventory.KindTap},
		{MAC: mustMAC(t, "52:54:00:a1:00:02"), VM: id, HostDev: "vnet8", Kind: inventory.KindTap, CVID: 42,
			VirtualPort: inventory.VirtualPort{Type: inventory.VirtualPortOpenvswitch, ProfileID: "gold",
				InterfaceID: mustUUID(t, "8f2c1d3e-6a4b-4f5c-9d7e-1a2b3c4d5e6f")}},
		{MAC: mustMAC(t, "52:54:00:a1:00:03"), VM: id, HostDev: "macvtap3", Kind: inventory.KindMacvtap, STag: 100,
			PortGroup: "web", VirtualPort: inventory.VirtualPort{Type: inventory.VirtualPort8021Qbg, ManagerID: 11,
				TypeID: 1193047, TypeIDVersion: 2, InstanceID: mustUUID(t, "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f")}},
		// The VF's PCI address, what agent/datapath resolves the VF by.
		{MAC: mustMAC(t, "52:54:00:a1:00:04"), VM: id, HostDev: "0000:3b:10.2", Kind: inventory.KindVF, STag: 200, CVID: 100, PortGroup: "storage"},
	}
	if len(dom.VIFs) != len(want) {
		t.Fatalf("%d VIFs, want %d: %+v", len(dom.VIFs), len(want), dom.VIFs)
	}
	for i := range want {
		if dom.VIFs[i] != want[i] {
			t.Errorf("VIF %d\n got %+v\nwant %+v", i, dom.VIFs[i], want[i])
		}
	}

	// The same domain shut off: a VM without vNICs.
	parsed.ID = -1
	dom, _, err = convertDomain(parsed, virt.DOMAIN_SHUTOFF, noNet)
	if err != nil || len(dom.VIFs) != 0 || dom.VM.State != inventory.VMStateShutoff {
		t.Errorf("inactive: %+v, %v", dom, err)
	}
}

// TestConvertSkips: interfaces that cannot be recorded are left out with a
// reason, the others kept; a bad UUID fails the domain.
func TestConvertSkips(t *testing.T) {
	const xml = `<domain type='kvm' id='3'><name>d</name><uuid>00000000-0000-4000-8000-000000000001</uuid><devices>
<interface type='network'><source network='gone'/><mac address='52:54:00:00:00:01'/></interface>
<interface type='vhostuser'><mac address='52:54:00:00:00:02'/><source type='unix' path='/run/vhu.sock' mode='server'/></interface>
<interface type='bridge'><source bridge='br0'/></interface>
<interface type='bridge'><mac address='52:54:00:00:00:04'/><source bridge='br0'/><virtualport type='802.1Qbg'><parameters instanceid='not-a-uuid'/></virtualport></interface>
<interface type='user'><mac address='52:54:00:00:00:05'/></interface>
<interface type='network'><mac address='52:54:00:00:00:06'/><source network='pool'/></interface>
</devices></domain>`
	parsed, err := libvirthooks.ParseDomain([]byte(xml))
	if err != nil {
		t.Fatal(err)
	}
	netKind := func(n string) (inventory.Kind, error) {
		if n == "pool" {
			return inventory.KindMacvtap, nil
		}
		return 0, errors.New("no such network")
	}
	dom, skipped, err := convertDomain(parsed, virt.DOMAIN_RUNNING, netKind)
	if err != nil {
		t.Fatal(err)
	}
	if len(dom.VIFs) != 1 || dom.VIFs[0].MAC != mustMAC(t, "52:54:00:00:00:06") || dom.VIFs[0].Kind != inventory.KindMacvtap {
		t.Errorf("VIFs %+v", dom.VIFs)
	}
	wantSkips := []string{"no such network", "vhostuser", "no MAC address", "instanceid"}
	if len(skipped) != len(wantSkips) {
		t.Fatalf("skipped %v", skipped)
	}
	for i, w := range wantSkips {
		if !strings.Contains(skipped[i].Error(), w) {
			t.Errorf("skip %d: %v, want it to mention %q", i, skipped[i], w)
		}
	}

	parsed.UUID = "nonsense"
	if _, _, err := convertDomain(parsed, virt.DOMAIN_RUNNING, netKind); err == nil {
		t.Error("bad UUID accepted")
	}
}

// TestNetworkKind covers libvirt's forward modes.
func TestNetworkKind(t *testing.T) {
	for _, tc := range []struct {
		xml  string
		want inventory.Kind
	}{
		{`<network><name>n</name></network>`, inventory.KindTap},
		{`<network><name>n</name><forward mode='nat'/><bridge name='virbr0'/></network>`, inventory.KindTap},
		{`<network><name>n</name><forward mode='route'/></network>`, inventory.KindTap},
		{`<network><name>n</name><forward mode='open'/></network>`, inventory.KindTap},
		{`<network><name>n</name><forward mode='bridge'/><bridge name='br0'/></network>`, inventory.KindTap},
		{`<network><name>n</name><forward mode='bridge'><interface dev='eth0'/></forward></network>`, inventory.KindMacvtap},
		{`<network><name>n</name><forward mode='vepa'><interface dev='eth0'/></forward></network>`, inventory.KindMacvtap},
		{`<network><name>n</name><forward mode='private'/></network>`, inventory.KindMacvtap},
		{`<network><name>n</name><forward mode='passthrough'/></network>`, inventory.KindMacvtap},
		{`<network><name>n</name><forward mode='hostdev' managed='yes'><pf dev='eth0'/></forward></network>`, inventory.KindVF},
	} {
		got, err := networkKind(tc.xml)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.xml, got, err, tc.want)
		}
	}
	for _, bad := range []string{`<network><forward mode='warp'/></network>`, `<network`} {
		if _, err := networkKind(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestVMState maps every virDomainState.
func TestVMState(t *testing.T) {
	for s, want := range map[virt.DomainState]inventory.VMState{
		virt.DOMAIN_NOSTATE: inventory.VMStateUnknown, virt.DOMAIN_RUNNING: inventory.VMStateRunning,
		virt.DOMAIN_BLOCKED: inventory.VMStateBlocked, virt.DOMAIN_PAUSED: inventory.VMStatePaused,
		virt.DOMAIN_SHUTDOWN: inventory.VMStateShutdown, virt.DOMAIN_SHUTOFF: inventory.VMStateShutoff,
		virt.DOMAIN_CRASHED: inventory.VMStateCrashed, virt.DOMAIN_PMSUSPENDED: inventory.VMStatePMSuspended,
		virt.DomainState(99): inventory.VMStateUnknown,
	} {
		if got := vmState(s); got != want {
			t.Errorf("vmState(%d) = %v, want %v", s, got, want)
		}
	}
}
