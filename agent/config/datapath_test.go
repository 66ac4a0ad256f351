package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseDatapath(t *testing.T) {
	c, err := Parse(strings.NewReader("uplinks: [{interface: eth0}]\ndatapath:\n  vnics: [vf, partition]\n  soft_switch: ovs\n  bridge: br-vm\n  ovsdb: tcp:127.0.0.1:6640\n  ovs_datapath: netdev\n  drift: report-only\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Datapath
	if !d.Enabled() || !d.HasVNIC(VNICVF) || !d.HasVNIC(VNICPartition) || d.SoftSwitch != SoftSwitchOVS ||
		d.Bridge != "br-vm" || d.OVSDB != "tcp:127.0.0.1:6640" || d.OVSDatapath != "netdev" || d.Drift != DriftReportOnly {
		t.Fatalf("datapath = %+v", d)
	}
	c, err = Parse(strings.NewReader("datapath:\n  soft_switch: linuxbridge\n  bridge_uplink: eth1\n  bridge_stag: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Datapath; !d.BridgeSTag || d.SoftSwitch != SoftSwitchLinuxBridge || d.BridgeUplink != "eth1" {
		t.Fatalf("datapath = %+v", d)
	}
	if Default().Datapath.BridgeSTag {
		t.Fatal("the default bridge is an 802.1ad bridge")
	}
	if Default().Datapath.Enabled() {
		t.Fatal("the default datapath is enabled; it must leave the host alone")
	}
}

func TestParseDatapathMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"datapath: {soft_switch: vpp}\n", `datapath.soft_switch: "vpp" is not one of none, linuxbridge, ovs`},
		{"datapath: {vnics: [tap]}\n", `datapath.vnics[0]: "tap" is not one of vf, partition`},
		{"datapath: {vnics: [vf, vf]}\n", `datapath.vnics[1]: "vf" is already datapath.vnics[0]`},
		{"datapath: {vnics: [partition]}\n", "datapath.vnics: partition needs an uplink (partitions are S-Tag devices on uplinks[0])"},
		{"datapath: {bridge: \"\"}\n", "datapath.bridge: missing: name the interface, for example eth0"},
		{"datapath: {bridge: a-very-long-bridge-name}\n", `datapath.bridge: "a-very-long-bridge-name" is longer than 15 bytes`},
		{"datapath: {bridge_uplink: \"e/0\"}\n", `datapath.bridge_uplink: "e/0" contains '/', ':' or white space`},
		{"datapath: {soft_switch: ovs, ovsdb: /run/db.sock}\n", `datapath.ovsdb: "/run/db.sock" is not unix:/ABSOLUTE/PATH or tcp:HOST:PORT`},
		{"datapath: {bridge_stag: true}\n", `datapath.bridge_stag: true needs soft_switch linuxbridge, not "none" (Open vSwitch carries S-Tags per port)`},
		{"datapath: {soft_switch: ovs, bridge_stag: true}\n", `datapath.bridge_stag: true needs soft_switch linuxbridge, not "ovs" (Open vSwitch carries S-Tags per port)`},
		{"datapath: {soft_switch: linuxbridge, bridge_stag: 1ad}\n", "line 1: cannot unmarshal !!str `1ad` into bool"},
		{"datapath: {ovs_datapath: dpdk}\n", `datapath.ovs_datapath: "dpdk" is not one of system, netdev`},
		{"datapath: {drift: ignore}\n", `datapath.drift: "ignore" is not one of repair, report-only`},
		{"datapath: {vnics: vf}\n", "line 1: cannot unmarshal !!str `vf` into []string"},
		{"datapath: {switch: ovs}\n", `line 1: unknown key "switch"`},
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
}

// TestShippedConfigDocumentsDatapath: packaging/tetherd.yaml spells out
// every key of the datapath section (with its default, which
// TestShippedConfigIsTheDefault checks), so an operator finds each one.
func TestShippedConfigDocumentsDatapath(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "packaging", "tetherd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc, def map[string]any
	if err := yaml.Unmarshal(shipped, &doc); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Write(&b, Default()); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b.Bytes(), &def); err != nil {
		t.Fatal(err)
	}
	have, _ := doc["datapath"].(map[string]any)
	want, _ := def["datapath"].(map[string]any)
	if len(want) == 0 {
		t.Fatalf("Write(Default()) has no datapath section:\n%s", b.String())
	}
	for k := range want {
		if _, ok := have[k]; !ok {
			t.Errorf("packaging/tetherd.yaml does not set datapath.%s", k)
		}
	}
}

// FuzzParseDatapath: a datapath section Parse accepts validates, and an
// 802.1ad bridge is only accepted on the Linux bridge.
func FuzzParseDatapath(f *testing.F) {
	f.Add("datapath: {vnics: [vf, partition], soft_switch: linuxbridge, bridge_stag: true, drift: report-only}\nuplinks: [{interface: eth0}]\n")
	f.Add("datapath: {soft_switch: ovs, bridge_stag: true}\n")
	f.Add("datapath: {bridge_stag: yes}\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", verr)
		}
		if d := c.Datapath; d.BridgeSTag && d.SoftSwitch != SoftSwitchLinuxBridge {
			t.Fatalf("accepted bridge_stag with soft_switch %q", d.SoftSwitch)
		}
	})
}
