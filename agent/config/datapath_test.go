package config

import (
	"strings"
	"testing"
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
