package datapath

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/agent/uplink/uplinktest"
	"github.com/tether-net/tether/l2/evb"
)

// TestWithUplink runs the real uplink against a real signed switch (in
// network namespaces) with the Reconciler as its datapath: a VIF is
// verified only after its soft-switch port was set from the switch's
// answer; a datapath failure rejects the VIF with the failure as its
// reason (what `tetherctl vif` shows), and the retry that succeeds takes
// it to verified. The vNIC and soft switch are the recording fake here
// (failure injection); TestVMEndToEnd runs the real ones.
func TestWithUplink(t *testing.T) {
	uplinktest.Require(t)
	host, swNS := uplinktest.NewNS(t), uplinktest.NewNS(t)
	uplinktest.Veth(t, host, "eth0", swNS, "swp1")
	dir := t.TempDir()
	swKey, keys := uplinktest.EnrolSwitchKey(t, dir)
	id, err := uplink.OpenIdentity(uplink.IdentityConfig{
		KeyFile: filepath.Join(dir, "host.key"), Counters: filepath.Join(dir, "counters"), SwitchKeys: keys,
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = id.Close() })
	uplinktest.StartSwitch(t, swNS, "swp1", uplinktest.SwitchConfig{Key: swKey, HostKeys: []ed25519.PublicKey{id.Key.Public()}})

	st := openStore(t)
	rec := newRecorder()
	u, err := uplink.New(uplink.Config{
		Interface: "eth0", Store: st, Signer: id.Signer, Verifier: id.Verifier, RequireSigned: true,
		EVB: evb.Config{RR: true, R: 3, RTE: 12, RWD: 20, RKA: 22}, SystemName: "hv1",
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, Listen: host.Listen, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{
		Store: st, VNICs: map[inventory.Kind]VNICs{inventory.KindTap: rec}, Switch: rec,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		OnApplied: u.Kick, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	u.SetDatapath(r)
	run(t, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("uplink Run: %v", err)
		}
	})

	const slow = 30 * time.Second
	state := func(mac inventory.MAC) inventory.VIF {
		v, err := st.VIF(mac)
		if err != nil && !errors.Is(err, inventory.ErrNotFound) {
			t.Fatal(err)
		}
		return v
	}

	// A VIF whose datapath works: verified, and by then its port carries
	// the switch's VID (uplinktest's default answer: VID 100, profile web).
	v1 := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindTap, HostDev: "vnet1"})
	waitFor(t, "VIF 1 verified", slow, func() bool { return state(v1.MAC).State == inventory.StateVerified })
	if !rec.has("port vnet1 vid 100 mac " + v1.MAC.String() + " rate 0") {
		t.Fatalf("verified before the port was set: %v", rec.log())
	}

	// A VIF whose vNIC fails: rejected with the datapath's failure.
	rec.mu.Lock()
	rec.failEnsure, rec.errEnsure, rec.failOnly = 1<<30, errors.New("VF busy"), testMAC(2)
	rec.mu.Unlock()
	v2 := addVIF(t, st, inventory.VIF{MAC: testMAC(2), Kind: inventory.KindTap, HostDev: "vnet2"})
	waitFor(t, "VIF 2 rejected", slow, func() bool { return state(v2.MAC).State == inventory.StateRejected })
	got := state(v2.MAC).Last.Reason
	if !strings.Contains(got, "; datapath failed: ensure tap vNIC: VF busy (retry in ") {
		t.Errorf("rejected VIF's reason %q does not carry the datapath's failure", got)
	}
	rec.mu.Lock()
	rec.failEnsure = 0
	rec.mu.Unlock()
	waitFor(t, "VIF 2 verified after the retry", slow, func() bool { return state(v2.MAC).State == inventory.StateVerified })
	if s := state(v1.MAC).State; s != inventory.StateVerified {
		t.Errorf("VIF 1 is %s", s)
	}

	// A VM migrating in (paused): PRE-ASSOCIATEd, and its port is set from
	// that answer before the VM runs.
	vm2 := inventory.VM{UUID: inventory.UUID{0xa5, 2}, Name: "vm2", State: inventory.VMStatePaused, Source: "test"}
	v3 := inventory.VIF{MAC: testMAC(3), VM: vm2.UUID, Kind: inventory.KindTap, HostDev: "vnet3"}
	if _, err := st.Apply(ctx, inventory.Change{}.Add(inventory.UpsertVM(vm2), inventory.UpsertVIF(v3))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VIF 3 pre-associated with its port set", slow, func() bool {
		return state(v3.MAC).State == inventory.StatePreAssociated && rec.has("port vnet3 vid 100 mac "+v3.MAC.String()+" rate 0")
	})
	vm2.State = inventory.VMStateRunning
	if _, err := st.Apply(ctx, inventory.Change{}.Add(inventory.UpsertVM(vm2))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "VIF 3 verified once running", slow, func() bool { return state(v3.MAC).State == inventory.StateVerified })
}
