package datapath

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/internal/netnstest"
)

// TestOVSSweepStalePorts: tetherd restarts after one of two VIFs went
// while it was down. Its first pass removes the gone VIF's Open vSwitch
// port (tether's, by its external_ids mark) and keeps the other VIF's,
// although the switch has not answered for it yet; a port tether does not
// own stays.
func TestOVSSweepStalePorts(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	o := startOVS(t, ns)
	for _, p := range []string{"dps1", "dps2", "dps3"} {
		netnstest.Run(t, "ip", "-n", ns.Name, "link", "add", p, "type", "veth", "peer", "name", p+"p")
		netnstest.Run(t, "ip", "-n", ns.Name, "link", "set", p+"p", "up")
		netnstest.SetUp(t, ns, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sw, err := ovs.New(ctx, ovs.Config{DB: o.DB, RunDir: o.Dir, Bridge: "dpbr1", DatapathType: "netdev", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	if err := sw.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	// What the earlier tetherd left: both VIFs' ports.
	gone, kept := testMAC(1), testMAC(2)
	for _, p := range []softswitch.Port{
		{Name: "dps1", MAC: gone.HardwareAddr(), VID: 100},
		{Name: "dps2", MAC: kept.HardwareAddr(), VID: 200},
	} {
		if err := sw.Ensure(ctx, p); err != nil {
			t.Fatalf("Ensure %s: %v", p.Name, err)
		}
	}
	// A port someone else added to the bridge.
	o.Vsctl("add-port", "dpbr1", "dps3")
	if ports, err := sw.Ports(ctx); err != nil || !slices.Equal(ports, []string{"dps1", "dps2"}) {
		t.Fatalf("tether's ports before the restart: %q, %v", ports, err)
	}

	st := openStore(t)
	addVIF(t, st, inventory.VIF{MAC: kept, Kind: inventory.KindTap, HostDev: "dps2"})
	r, err := New(Config{Store: st, Switch: Switch{sw}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	waitFor(t, "the gone VIF's port removed", 20*time.Second, func() bool {
		ports, err := sw.Ports(ctx)
		return err == nil && slices.Equal(ports, []string{"dps2"})
	})
	if _, ok, err := sw.Observe(ctx, "dps2"); err != nil || !ok {
		t.Errorf("the present VIF's port: on the bridge %v, %v", ok, err)
	}
	if _, ok, err := sw.Observe(ctx, "dps3"); err != nil || !ok {
		t.Errorf("the port tether does not own: on the bridge %v, %v", ok, err)
	}
}
