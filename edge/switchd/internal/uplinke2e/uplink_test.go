package uplinke2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
)

func logger() *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

const (
	vm1  = "6f1d0000-0000-4000-8000-000000000001"
	mac1 = "52:54:00:00:00:01"
)

// TestUplinkAgainstSwitchd: tetherd's uplink on host A and tether-switchd
// on the switch, both real, in network namespaces. The VM in host A's
// inventory gets associated, verified by switchd (host key, LLDP
// neighbour, libvirt test driver, uniqueness), its MAC passes the switch
// with the profile's VID, the uplink records the VIF as verified; when the
// VIF goes, the uplink de-associates it and the rule goes.
func TestUplinkAgainstSwitchd(t *testing.T) {
	// Keys: the switch's (generated as switchd would), host A's.
	r := newRig(t, []swlab.Domain{{Name: "vm1", UUID: vm1, MACs: []string{mac1}}})
	l, cfg, hostKey := r.lab, r.cfg, r.hostKey
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// startSwitchd runs tether-switchd until the returned stop is called.
	startSwitchd := func() (*switchd.Daemon, func()) {
		sctx, scancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		started := make(chan *switchd.Daemon, 1)
		go func() {
			done <- switchd.RunConfig(sctx, cfg, switchd.RunOptions{Version: "test", Logger: logger(), NetNS: l.SW.Path(),
				Started: func(d *switchd.Daemon) { started <- d }})
		}()
		var d *switchd.Daemon
		select {
		case d = <-started:
		case err := <-done:
			t.Fatalf("switchd: %v", err)
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			scancel()
			if err := <-done; err != nil {
				t.Errorf("switchd: %v", err)
			}
		}
		t.Cleanup(stop)
		return d, stop
	}
	_, stopSwitchd := startSwitchd()

	// Host A: inventory with VM1 running, one tap VIF with MAC 1.
	store := r.openStore(ctx, t, runningVM(t, vm1, "vm1", mac1, inventory.VIF{HostDev: "vnet0", Kind: inventory.KindTap})...)
	mac, _ := inventory.ParseMAC(mac1)
	r.startUplink(ctx, cancel, t, store, false)

	vifState := func() inventory.State {
		v, err := store.VIF(mac)
		if err != nil {
			return 0
		}
		return v.State
	}
	swlab.WaitFor(t, 20*time.Second, "VIF verified in host A's inventory", func() bool { return vifState() == inventory.StateVerified })
	c := &switchapi.Client{Socket: cfg.Socket}
	vms, err := c.VMs(ctx)
	if err != nil || len(vms) != 1 || vms[0].MAC != mac1 || vms[0].Port != "swA" || vms[0].Host != "hostA" || vms[0].VID != 100 ||
		vms[0].Verified.KeyID != hostKey.ID().String() {
		t.Fatalf("switchd's vms: %+v %v", vms, err)
	}
	l.WaitForwarding(t)
	if !l.Send(t, [6]byte(mac), 100, 2*time.Second) {
		t.Fatal("VM1's frame did not cross the switch")
	}
	if l.Send(t, [6]byte{0x52, 0x54, 0, 0, 0, 9}, 100, 300*time.Millisecond) {
		t.Fatal("an unverified MAC crossed the switch")
	}

	// Restart switchd: VM1's traffic keeps flowing while it is down and
	// after it is back, the uplink's keep-alive (or re-association after
	// the switch's shutdown LLDPDU) re-populates it, and the grace period
	// ends without removing it.
	stopSwitchd()
	if !l.Send(t, [6]byte(mac), 100, time.Second) {
		t.Fatal("VM1's traffic stopped while switchd was down")
	}
	d, _ := startSwitchd()
	if !l.Send(t, [6]byte(mac), 100, time.Second) {
		t.Fatal("VM1's traffic stopped when switchd started again")
	}
	swlab.WaitFor(t, 10*time.Second, "VM1 re-learnt after the restart", func() bool { return len(d.VMs()) == 1 })
	select {
	case <-d.Synced():
	case <-time.After(15 * time.Second):
		t.Fatal("no synchronization after the grace period")
	}
	if !l.Send(t, [6]byte(mac), 100, time.Second) {
		t.Fatal("VM1's traffic stopped after the grace period")
	}
	swlab.WaitFor(t, 10*time.Second, "VIF verified again", func() bool { return vifState() == inventory.StateVerified })

	// The VIF goes: the uplink de-associates, switchd revokes.
	if _, err := store.Apply(ctx, inventory.Change{}.Add(inventory.SetState(mac, inventory.StateGone, "domain stopped"))); err != nil {
		t.Fatal(err)
	}
	swlab.WaitFor(t, 10*time.Second, "switchd forgets VM1", func() bool {
		vms, err := c.VMs(ctx)
		return err == nil && len(vms) == 0
	})
	if l.Send(t, [6]byte(mac), 100, 300*time.Millisecond) {
		t.Fatal("VM1's frame crossed the switch after the VIF was gone")
	}
}
