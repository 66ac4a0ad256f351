package config

import (
	"fmt"
	"slices"
	"strings"
)

// Datapath configures tetherd's vNIC datapath and soft switch (package
// agent/datapath): which vNIC kinds tetherd configures itself, which soft
// switch it keeps consistent with the edge switch's answers, and what it
// does about drift. The defaults (no vNIC kinds, soft switch none) leave
// the host's devices alone, as tetherd did before the datapath existed.
type Datapath struct {
	// VNICs lists the vNIC kinds tetherd configures: "vf" (SR-IOV
	// virtual functions, through their PF) and "partition" (802.1ad S-Tag
	// devices on the uplink). Empty: none.
	VNICs []string `yaml:"vnics"`
	// SoftSwitch is the soft switch VM ports are on: "none", "linuxbridge"
	// or "ovs".
	SoftSwitch string `yaml:"soft_switch"`
	// Bridge is the soft switch's bridge name (1-15 bytes).
	Bridge string `yaml:"bridge"`
	// BridgeUplink, when set, is the port of the bridge toward the edge
	// switch (linuxbridge and ovs); empty leaves the uplink out of the
	// bridge.
	BridgeUplink string `yaml:"bridge_uplink"`
	// BridgeSTag makes the Linux bridge an IEEE 802.1ad (provider)
	// bridge: vlan_protocol 802.1ad, so the S-Tags of VM ports (tap VIFs
	// with an S-Tag) cross it and leave BridgeUplink as 0x88a8 tags
	// (linuxbridge.Options.STag). Every VM port on it then needs an
	// S-Tag. Only with soft_switch linuxbridge: Open vSwitch carries an
	// S-Tag per port (dot1q-tunnel).
	BridgeSTag bool `yaml:"bridge_stag"`
	// OVSDB is the ovsdb-server address ("unix:PATH" or "tcp:HOST:PORT")
	// when SoftSwitch is ovs.
	OVSDB string `yaml:"ovsdb"`
	// OVSDatapath is the OVS bridge's datapath type: "system" (the kernel
	// module) or "netdev" (userspace).
	OVSDatapath string `yaml:"ovs_datapath"`
	// Drift is what tetherd does when a vNIC or soft-switch port differs
	// from the desired state: "repair" or "report-only".
	Drift string `yaml:"drift"`
}

// The values of datapath.soft_switch.
const (
	SoftSwitchNone        = "none"
	SoftSwitchLinuxBridge = "linuxbridge"
	SoftSwitchOVS         = "ovs"
)

// The values of datapath.vnics.
const (
	VNICVF        = "vf"
	VNICPartition = "partition"
)

// The values of datapath.drift.
const (
	DriftRepair     = "repair"
	DriftReportOnly = "report-only"
)

// defaultDatapath is the datapath section when the file sets nothing.
func defaultDatapath() Datapath {
	return Datapath{
		VNICs:       nil,
		SoftSwitch:  SoftSwitchNone,
		Bridge:      "tetherbr0",
		OVSDB:       "unix:/var/run/openvswitch/db.sock",
		OVSDatapath: "system",
		Drift:       DriftRepair,
	}
}

// Enabled reports whether tetherd runs the datapath at all: some vNIC
// kind or a soft switch is configured.
func (d Datapath) Enabled() bool {
	return len(d.VNICs) > 0 || d.SoftSwitch != SoftSwitchNone
}

// HasVNIC reports whether kind ("vf", "partition") is in VNICs.
func (d Datapath) HasVNIC(kind string) bool { return slices.Contains(d.VNICs, kind) }

// validate checks the datapath section; errors name the key.
func (d Datapath) validate(uplinks []Uplink) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	seen := map[string]int{}
	for i, k := range d.VNICs {
		switch k {
		case VNICVF, VNICPartition:
		default:
			bad("datapath.vnics[%d]: %q is not one of %s, %s", i, k, VNICVF, VNICPartition)
			continue
		}
		if j, dup := seen[k]; dup {
			bad("datapath.vnics[%d]: %q is already datapath.vnics[%d]", i, k, j)
		}
		seen[k] = i
	}
	if d.HasVNIC(VNICPartition) && len(uplinks) == 0 {
		bad("datapath.vnics: partition needs an uplink (partitions are S-Tag devices on uplinks[0])")
	}
	switch d.SoftSwitch {
	case SoftSwitchNone, SoftSwitchLinuxBridge, SoftSwitchOVS:
	default:
		bad("datapath.soft_switch: %q is not one of %s, %s, %s", d.SoftSwitch, SoftSwitchNone, SoftSwitchLinuxBridge, SoftSwitchOVS)
	}
	if err := checkIfname(d.Bridge); err != nil {
		bad("datapath.bridge: %v", err)
	}
	if d.BridgeUplink != "" {
		if err := checkIfname(d.BridgeUplink); err != nil {
			bad("datapath.bridge_uplink: %v", err)
		}
	}
	if d.BridgeSTag && d.SoftSwitch != SoftSwitchLinuxBridge {
		bad("datapath.bridge_stag: true needs soft_switch %s, not %q (Open vSwitch carries S-Tags per port)", SoftSwitchLinuxBridge, d.SoftSwitch)
	}
	if d.SoftSwitch == SoftSwitchOVS || d.OVSDB != defaultDatapath().OVSDB {
		if !strings.HasPrefix(d.OVSDB, "unix:/") && !strings.HasPrefix(d.OVSDB, "tcp:") {
			bad("datapath.ovsdb: %q is not unix:/ABSOLUTE/PATH or tcp:HOST:PORT", d.OVSDB)
		}
	}
	switch d.OVSDatapath {
	case "system", "netdev":
	default:
		bad("datapath.ovs_datapath: %q is not one of system, netdev", d.OVSDatapath)
	}
	switch d.Drift {
	case DriftRepair, DriftReportOnly:
	default:
		bad("datapath.drift: %q is not one of %s, %s", d.Drift, DriftRepair, DriftReportOnly)
	}
	return errs
}
