package datapath

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/internal/ovstest"
	"github.com/tether-net/tether/wire"
)

// startOVS starts a private ovsdb-server and an ovs-vswitchd inside ns
// (internal/ovstest); the tests use its userspace datapath.
func startOVS(t *testing.T, ns *netnstest.NS) *ovstest.OVS {
	t.Helper()
	ovstest.Require(t)
	o := ovstest.Start(t)
	o.StartVSwitchd(ns.Name)
	return o
}

// TestOVSEndToEnd: a VIF appears in a real inventory -> the answer with a
// VID -> the Open vSwitch port (userspace datapath, in a namespace) has
// that VID as its tag, the rate and the MAC allow-list flows, read back
// from OVSDB and OpenFlow -> an operator's change is repaired on resync
// -> the VIF goes -> the port is off the bridge.
func TestOVSEndToEnd(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	o := startOVS(t, ns)
	netnstest.Run(t, "ip", "-n", ns.Name, "link", "add", "dpv1", "type", "veth", "peer", "name", "dpv1p")
	netnstest.Run(t, "ip", "-n", ns.Name, "link", "set", "dpv1p", "up")
	netnstest.SetUp(t, ns, "dpv1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sw, err := ovs.New(ctx, ovs.Config{DB: o.DB, RunDir: o.Dir, Bridge: "dpbr0", DatapathType: "netdev", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	if err := sw.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	r, err := New(Config{Store: st, Switch: Switch{sw}, Resync: 300 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	v := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindTap, HostDev: "dpv1"})
	want := softswitch.Port{Name: "dpv1", MAC: v.MAC.HardwareAddr(), VID: 100, RateKbps: 8000}
	prof := &wire.TetherProfile{VID: 100, RateKbps: 8000, Name: "web"}
	waitFor(t, "the answer in place", 20*time.Second, func() bool { return r.Granted(v, 100, prof) == nil })
	if d, err := sw.Check(ctx, want); err != nil || d != nil {
		t.Fatalf("OVS port after the answer: %v %v", d, err)
	}
	if p, ok, err := sw.Observe(ctx, "dpv1"); err != nil || !ok || p.VID != 100 {
		t.Fatalf("Observe dpv1 = %+v %v %v", p, ok, err)
	}

	// Drift: an operator changes the tag behind tether's back.
	o.Vsctl("set", "Port", "dpv1", "tag=999")
	waitFor(t, "the drift repaired", 20*time.Second, func() bool {
		d, err := sw.Check(ctx, want)
		return err == nil && d == nil && r.drifts.Load() > 0
	})

	setGone(t, st, v.MAC)
	waitFor(t, "the port removed and the VIF forgotten", 20*time.Second, func() bool {
		ports, err := sw.Ports(ctx)
		a, aerr := r.Applied(v.MAC)
		return err == nil && !strings.Contains(strings.Join(ports, ","), "dpv1") && a == nil && aerr == nil
	})
}
