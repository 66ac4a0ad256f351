package uplinke2e

import (
	"context"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
)

// TestUplinkSChannelAgainstSwitchd: tetherd's uplink with a VM whose vNIC
// is a NIC partition on S-Tag 2 (inventory.KindPartition), against the
// real tether-switchd with four S-channels per port. The uplink asks CDCP
// for an S-channel, switchd assigns S-VID 2 and runs a VDP bridge on it,
// the uplink runs a station there and associates the VM inside S-Tag 2
// (signed, the S-VID bound into the signature): switchd verifies it with
// S-Tag 2 (the rule is (swA, S-VID 2, MAC, VID 100), GET /v1/switch/vms
// says svid 2), the inventory records the VIF as verified, and the VM's
// frames pass the switch inside S-Tag 2 only. A tap VM of the same host
// on the default S-channel associates alongside.
func TestUplinkSChannelAgainstSwitchd(t *testing.T) {
	const (
		vmP  = "6f1d0000-0000-4000-8000-0000000000a2"
		macP = "52:54:00:00:00:a2"
		vmT  = "6f1d0000-0000-4000-8000-0000000000a3"
		macT = "52:54:00:00:00:a3"
	)

	r := newRig(t, []swlab.Domain{
		{Name: "vmp", UUID: vmP, MACs: []string{macP}}, {Name: "vmt", UUID: vmT, MACs: []string{macT}}})
	l, cfg, hostKey := r.lab, r.cfg, r.hostKey
	cfg.CDCP = switchconfig.CDCP{Channels: 4, FirstSVID: 2, LastSVID: 4094}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	sdone := make(chan error, 1)
	go func() {
		sdone <- switchd.RunConfig(sctx, cfg, switchd.RunOptions{Version: "test", Logger: logger(), NetNS: l.SW.Path()})
	}()
	t.Cleanup(func() {
		scancel()
		if err := <-sdone; err != nil {
			t.Errorf("switchd: %v", err)
		}
	})

	store := r.openStore(ctx, t, append(
		runningVM(t, vmP, "vmp", macP, inventory.VIF{HostDev: "eth0.p2", Kind: inventory.KindPartition, STag: 2}),
		runningVM(t, vmT, "vmt", macT, inventory.VIF{HostDev: "vnet0", Kind: inventory.KindTap})...)...)
	mP, _ := inventory.ParseMAC(macP)
	mT, _ := inventory.ParseMAC(macT)
	r.startUplink(ctx, cancel, t, store, true)

	state := func(m inventory.MAC) (inventory.State, string) {
		v, err := store.VIF(m)
		if err != nil {
			return 0, err.Error()
		}
		return v.State, v.Last.Reason
	}
	swlab.WaitFor(t, 20*time.Second, "both VIFs verified in host A's inventory", func() bool {
		a, _ := state(mP)
		b, _ := state(mT)
		return a == inventory.StateVerified && b == inventory.StateVerified
	})
	_, why := state(mP)
	t.Logf("partition VIF: %s", why)
	c := &switchapi.Client{Socket: cfg.Socket}
	vms, err := c.VMs(ctx)
	if err != nil || len(vms) != 2 {
		t.Fatalf("switchd's vms: %+v %v", vms, err)
	}
	for _, v := range vms {
		wantSVID := uint16(0)
		if v.MAC == macP {
			wantSVID = 2
		}
		if v.Port != "swA" || v.Host != "hostA" || v.VID != 100 || v.SVID != wantSVID || v.Verified.KeyID != hostKey.ID().String() {
			t.Errorf("switchd's vm %+v: want svid %d", v, wantSVID)
		}
	}
	l.WaitForwarding(t)
	if !l.SendTags(t, [6]byte(mP), [][2]uint16{{0x88a8, 2}, {0x8100, 100}}, 2*time.Second) {
		t.Fatal("the partition VM's frame in S-Tag 2 did not cross the switch")
	}
	if l.SendTags(t, [6]byte(mP), [][2]uint16{{0x8100, 100}}, 300*time.Millisecond) {
		t.Fatal("the partition VM's frame without its S-Tag crossed the switch")
	}
	if l.SendTags(t, [6]byte(mP), [][2]uint16{{0x88a8, 3}, {0x8100, 100}}, 300*time.Millisecond) {
		t.Fatal("the partition VM's frame in another S-Tag crossed the switch")
	}
	if !l.Send(t, [6]byte(mT), 100, 2*time.Second) {
		t.Fatal("the tap VM's frame did not cross the switch")
	}

	// The partition VIF goes: DE-ASSOCIATE on S-channel 2, the rule goes.
	if _, err := store.Apply(ctx, inventory.Change{}.Add(inventory.SetState(mP, inventory.StateGone, "partition removed"))); err != nil {
		t.Fatal(err)
	}
	swlab.WaitFor(t, 10*time.Second, "switchd forgets the partition VM", func() bool {
		vms, err := c.VMs(ctx)
		return err == nil && len(vms) == 1 && vms[0].MAC == macT
	})
	if l.SendTags(t, [6]byte(mP), [][2]uint16{{0x88a8, 2}, {0x8100, 100}}, 300*time.Millisecond) {
		t.Fatal("the partition VM's frame crossed the switch after DE-ASSOCIATE")
	}
}
