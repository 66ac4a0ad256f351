package datapath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/vnic/partition"
	"github.com/tether-net/tether/agent/vnic/sriov"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/wire"
)

func TestResolveVF(t *testing.T) {
	mac := testMAC(1)
	ok := []struct {
		dev  string
		want sriov.VF
	}{
		{"enp3s0f0/vf0", sriov.VF{PF: "enp3s0f0", Index: 0}},
		{"eth1/vf63", sriov.VF{PF: "eth1", Index: 63}},
	}
	for _, tc := range ok {
		got, err := ResolveVF(inventory.VIF{MAC: mac, HostDev: tc.dev})
		if err != nil || got != tc.want {
			t.Errorf("ResolveVF(%q) = %v, %v; want %v", tc.dev, got, err, tc.want)
		}
	}
	bad := []struct{ dev, want string }{
		{"", "vf VIF 52:54:00:da:7a:01 has no host device: want PF/vfN, the VF's PCI address or its netdev"},
		{"eth1/vf", `vf VIF 52:54:00:da:7a:01: host device "eth1/vf" is not PF/vfN`},
		{"eth1/vf-1", `vf VIF 52:54:00:da:7a:01: host device "eth1/vf-1" is not PF/vfN`},
		{"/vf1", `vf VIF 52:54:00:da:7a:01: host device "/vf1" is not PF/vfN`},
		{"a/b", `vf VIF 52:54:00:da:7a:01: host device "a/b" is not PF/vfN, a PCI address or a netdev`},
		{"..", `vf VIF 52:54:00:da:7a:01: host device ".." is not PF/vfN, a PCI address or a netdev`},
		{"nosuchdev0", "resolve VF /sys/class/net/nosuchdev0/device: lstat /sys/class/net/nosuchdev0: no such file or directory"},
		{"0000:ff:1f.7", "resolve VF /sys/bus/pci/devices/0000:ff:1f.7: lstat /sys/bus/pci/devices/0000:ff:1f.7: no such file or directory"},
	}
	for _, tc := range bad {
		_, err := ResolveVF(inventory.VIF{MAC: mac, HostDev: tc.dev})
		if err == nil || err.Error() != tc.want {
			t.Errorf("ResolveVF(%q)\n got  %v\n want %s", tc.dev, err, tc.want)
		}
	}
}

// FuzzResolveVF: a host device from the inventory never panics the
// resolver, and a PF/vfN it accepts names a valid VF.
func FuzzResolveVF(f *testing.F) {
	for _, s := range []string{"", "eth0/vf1", "eth0/vf", "/vf2", "0000:03:10.1", "lo", "a/b/vf3", "eth0/vf99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dev string) {
		vf, err := ResolveVF(inventory.VIF{MAC: testMAC(1), HostDev: dev})
		if err == nil && (vf.PF == "" || vf.Index < 0) {
			t.Fatalf("ResolveVF(%q) = %v without an error", dev, vf)
		}
	})
}

func TestSRIOVSettings(t *testing.T) {
	s := &SRIOV{}
	v := inventory.VIF{MAC: testMAC(1), Kind: inventory.KindVF}
	mac := v.MAC.String()
	for _, tc := range []struct {
		name string
		vif  inventory.VIF
		a    *Answer
		want string
	}{
		{"before the answer", v, nil, "mac " + mac + ", spoof checking on, link-state disable, trust off"},
		{"VID only (interop)", v, &Answer{VID: 12}, "mac " + mac + ", vlan 12, qos 0, vlan protocol 0x8100, spoof checking on, link-state auto, trust off"},
		{"profile", v, &Answer{VID: 12, Profile: &wire.TetherProfile{VID: 12, Priority: 4, RateKbps: 2500, Name: "p"}},
			"mac " + mac + ", vlan 12, qos 4, vlan protocol 0x8100, spoof checking on, link-state auto, trust off, min_tx_rate 0Mbps, max_tx_rate 3Mbps"},
		{"S-Tag", inventory.VIF{MAC: v.MAC, Kind: inventory.KindVF, STag: 300}, &Answer{VID: 12},
			"mac " + mac + ", vlan 300, qos 0, vlan protocol 0x88a8, spoof checking on, link-state auto, trust off"},
	} {
		got := s.Settings(tc.vif, tc.a)
		if err := got.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got.String() != tc.want {
			t.Errorf("%s: %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestPartitionSpec(t *testing.T) {
	p := &Partitions{Uplink: "eth0"}
	v := inventory.VIF{MAC: testMAC(1), Kind: inventory.KindPartition, STag: 300, CVID: 7}
	id := v.MAC.String()
	for _, tc := range []struct {
		name string
		a    *Answer
		want partition.Spec
	}{
		{"before the answer", nil, partition.Spec{ID: id, Uplink: "eth0", STag: 300, CVID: 7}},
		{"VID only", &Answer{VID: 9}, partition.Spec{ID: id, Uplink: "eth0", STag: 300, CVID: 9}},
		{"I/O extender", &Answer{VID: 9, Profile: &wire.TetherProfile{Mode: wire.TetherSTagIOExtender}},
			partition.Spec{ID: id, Uplink: "eth0", STag: 300, CVID: 9, Mode: wire.TetherSTagIOExtender}},
	} {
		if got := p.Spec(v, tc.a); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestResolveVFFromDomainXML: the host device libvirthooks records for an
// <interface type='hostdev'> (the VF's PCI address) resolves to the VF's
// PF and index through sysfs, laid out here as the kernel lays it out: a
// VF's PCI directory has a physfn link to its PF, whose virtfnN links
// point back at its VFs and whose net/ holds its netdev.
func TestResolveVFFromDomainXML(t *testing.T) {
	dom, err := libvirthooks.ParseDomain([]byte(`<domain type='kvm'><name>vm</name><uuid>4d1f5b2e-93c7-4b0a-9e61-0c5a7f3d2b18</uuid><devices>` +
		`<interface type='hostdev' managed='yes'><mac address='52:54:00:da:7a:01'/><source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x5'/></source></interface>` +
		`</devices></domain>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(dom.VIFs) != 1 || dom.VIFs[0].HostDev != "0000:3b:02.5" {
		t.Fatalf("VIFs %+v, want one with host device 0000:3b:02.5", dom.VIFs)
	}
	root := t.TempDir()
	devices := filepath.Join(root, "devices")
	pciDevices := filepath.Join(root, "bus", "pci", "devices")
	classNet := filepath.Join(root, "class", "net")
	pf := filepath.Join(devices, "0000:3b:00.0")
	for _, d := range []string{filepath.Join(pf, "net", "enp59s0f0"), pciDevices, classNet} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The PF's VFs: functions 0000:3b:02.0-7 are virtfn0-7.
	for i := range 8 {
		vf := filepath.Join(devices, fmt.Sprintf("0000:3b:02.%d", i))
		if err := os.MkdirAll(vf, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, l := range [][2]string{
			{pf, filepath.Join(vf, "physfn")},
			{vf, filepath.Join(pf, fmt.Sprintf("virtfn%d", i))},
			{vf, filepath.Join(pciDevices, filepath.Base(vf))},
		} {
			if err := os.Symlink(l[0], l[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink(pf, filepath.Join(pciDevices, "0000:3b:00.0")); err != nil {
		t.Fatal(err)
	}
	v := inventory.VIF{MAC: testMAC(1), Kind: inventory.KindVF, HostDev: dom.VIFs[0].HostDev}
	got, err := resolveVFIn(classNet, pciDevices, v)
	if want := (sriov.VF{PF: "enp59s0f0", Index: 5}); err != nil || got != want {
		t.Fatalf("resolve %s = %v, %v; want %v", v.HostDev, got, err, want)
	}
	// The PF itself is no VF.
	v.HostDev = "0000:3b:00.0"
	if _, err := resolveVFIn(classNet, pciDevices, v); err == nil || !strings.Contains(err.Error(), "not a VF with a PF netdev") {
		t.Errorf("resolve the PF: %v, want not a VF", err)
	}
}
