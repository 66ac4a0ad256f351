package ovs

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs/ovsdb"
	"github.com/tether-net/tether/wire"
)

// rowsFor builds the Port and Interface rows Ensure would write for p, as
// OVSDB returns them.
func rowsFor(p softswitch.Port) observed {
	pc, ic := desiredCols(p)
	port := ovsdb.Row{}
	for k, v := range portChanges(ovsdb.Row{}, pc) {
		port[k] = v
	}
	for _, col := range []string{"other_config", "external_ids"} {
		if m, ok := port[col].(map[string]string); ok {
			om := ovsdb.Map{}
			for k, v := range m {
				om[k] = v
			}
			port[col] = om
		}
	}
	iface := ovsdb.Row{}
	for k, v := range ifaceChanges(ovsdb.Row{}, ic) {
		if m, ok := v.(map[string]string); ok {
			om := ovsdb.Map{}
			for mk, mv := range m {
				om[mk] = mv
			}
			v = om
		}
		iface[k] = v
	}
	return observed{port: port, iface: iface, portOnBridge: true}
}

// TestMappingRoundTrip: every VLAN shape maps onto OVS columns and back to
// the same softswitch.Port (the priority, which OVS does not hold, aside).
func TestMappingRoundTrip(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}
	cases := []struct {
		p        softswitch.Port
		vlanMode string
	}{
		{softswitch.Port{Name: "tap0", MAC: mac}, "trunk"},
		{softswitch.Port{Name: "tap0", MAC: mac, Trunks: []uint16{7, 5}}, "trunk"},
		{softswitch.Port{Name: "tap0", MAC: mac, VID: 10, RateKbps: 5000}, "access"},
		{softswitch.Port{Name: "tap0", MAC: mac, VID: 10, Trunks: []uint16{20}}, "native-untagged"},
		{softswitch.Port{Name: "tap0", MAC: mac, STag: 100, Mode: wire.TetherSTagSwitch}, "dot1q-tunnel"},
		{softswitch.Port{Name: "tap0", MAC: mac, VID: 10, STag: 100, Mode: wire.TetherSTagIOExtender, Trunks: []uint16{11}}, "dot1q-tunnel"},
	}
	for _, c := range cases {
		p := c.p
		p.Normalize()
		o := rowsFor(p)
		if got := o.port.String("vlan_mode"); got != c.vlanMode {
			t.Errorf("%+v: vlan_mode %q, want %q", p, got, c.vlanMode)
		}
		if d := softswitch.Compare(p, observedPort(p.Name, o)); d != nil {
			t.Errorf("%+v: round trip differs: %v", p, d)
		}
		// Applying the same desired state to its own rows changes nothing.
		pc, ic := desiredCols(p)
		if ch := portChanges(o.port, pc); len(ch) != 0 {
			t.Errorf("%+v: Port changes on a second pass: %v", p, ch)
		}
		if ch := ifaceChanges(o.iface, ic); len(ch) != 0 {
			t.Errorf("%+v: Interface changes on a second pass: %v", p, ch)
		}
	}
}

func TestNewRejectsConfig(t *testing.T) {
	cases := []struct {
		cfg Config
		err string
	}{
		{Config{}, `ovs: bridge name "": want 1-15 bytes`},
		{Config{Bridge: "a-very-long-bridge"}, `ovs: bridge name "a-very-long-bridge": want 1-15 bytes`},
		{Config{Bridge: "br0", DatapathType: "dpdk"}, `ovs: datapath type "dpdk": want system or netdev`},
	}
	for _, c := range cases {
		if _, err := New(context.Background(), c.cfg); err == nil || err.Error() != c.err {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.err)
		}
	}
}

// TestParseFlows: ovs-ofctl's dump-flows output (an outside program's
// text) read back as desiredFlows writes the rules.
func TestParseFlows(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}
	out := "NXST_FLOW reply (xid=0x4):\n" +
		" cookie=0x7465746812345678, priority=200,in_port=3,dl_src=52:54:00:01:02:03 actions=NORMAL\n" +
		" cookie=0x7465746812345678, priority=190,in_port=3 actions=drop\n\n"
	if got, want := parseFlows(out), desiredFlows(3, mac); !slices.Equal(got, want) {
		t.Errorf("parseFlows = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"header only", "OFPST_FLOW reply (OF1.3) (xid=0x2):\n", nil},
		{"no priority", "cookie=0x1, in_port=3 actions=drop", []string{"cookie=0x1, in_port=3 actions=drop"}},
		{"garbage", "ovs-ofctl: bad\x00\xff", []string{"ovs-ofctl: bad\x00\xff"}},
	} {
		if got := parseFlows(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: parseFlows = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// FuzzParseFlows: any output is read without a panic into sorted,
// non-empty, one-line rules.
func FuzzParseFlows(f *testing.F) {
	f.Add(" cookie=0x1, priority=190,in_port=3 actions=drop\n")
	f.Add("NXST_FLOW reply\npriority=")
	f.Fuzz(func(t *testing.T, out string) {
		flows := parseFlows(out)
		if !slices.IsSorted(flows) {
			t.Fatalf("not sorted: %q", flows)
		}
		for _, fl := range flows {
			if fl == "" || strings.Contains(fl, "\n") {
				t.Fatalf("rule %q", fl)
			}
		}
	})
}
