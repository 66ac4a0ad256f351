package uplinke2e

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
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
	l := swlab.NewLab(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const (
		vmP  = "6f1d0000-0000-4000-8000-0000000000a2"
		macP = "52:54:00:00:00:a2"
		vmT  = "6f1d0000-0000-4000-8000-0000000000a3"
		macT = "52:54:00:00:00:a3"
	)

	cfg := switchconfig.Default()
	cfg.Name = "tor1"
	cfg.KeyFile = filepath.Join(dir, "switch.key")
	swKey, _, err := switchd.LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := identity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := identity.MarshalPublicKeyPEM(hostKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	swlab.WriteNode(t, filepath.Join(dir, "hostA.xml"), []swlab.Domain{
		{Name: "vmp", UUID: vmP, MACs: []string{macP}}, {Name: "vmt", UUID: vmT, MACs: []string{macT}}})
	cfg.HostKeys = switchconfig.HostKeys{Inline: map[string]string{"hostA": string(pem)}}
	cfg.VMManagers = map[string]string{"hostA": "test://" + filepath.Join(dir, "hostA.xml")}
	cfg.EVB = switchconfig.EVB{R: 3, RTE: 12, RWD: 20, RKA: 17, ReflectiveRelay: true}
	cfg.CDCP = switchconfig.CDCP{Channels: 4, FirstSVID: 2, LastSVID: 4094}
	cfg.Profiles = map[string]switchconfig.Profile{"default": {Name: "tenant-a", VID: 100, Mode: "switch"}}
	cfg.Socket = filepath.Join(dir, "switchd.sock")
	cfg.SocketGroup = ""
	cfg.StateDir = filepath.Join(dir, "state")
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

	store, err := inventory.Open(ctx, filepath.Join(dir, "inventory.db"), inventory.Options{Logger: logger(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	idP, _ := inventory.ParseUUID(vmP)
	idT, _ := inventory.ParseUUID(vmT)
	mP, _ := inventory.ParseMAC(macP)
	mT, _ := inventory.ParseMAC(macT)
	if _, err := store.Apply(ctx, inventory.Change{}.Add(
		inventory.UpsertVM(inventory.VM{UUID: idP, Name: "vmp", State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mP, VM: idP, HostDev: "eth0.p2", Kind: inventory.KindPartition, STag: 2}),
		inventory.UpsertVM(inventory.VM{UUID: idT, Name: "vmt", State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mT, VM: idT, HostDev: "vnet0", Kind: inventory.KindTap}),
	)); err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(hostKey, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	swKeys, err := identity.NewStaticKeys(swKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(swKeys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listen := func(ifname string, opts rawsock.Options, et uint16) (rawsock.Conn, error) {
		var s *rawsock.Socket
		err := l.A.Do(func() error {
			var err error
			s, err = rawsock.Listen(ifname, et, opts)
			return err
		})
		return s, err
	}
	up, err := uplink.New(uplink.Config{
		Interface: "eth0", Store: store, Signer: signer, Verifier: ver, RequireSigned: true,
		EVB:        evb.Config{RR: true, R: 3, RTE: 12, RWD: 20, RKA: 17},
		SystemName: "hostA",
		RetryMin:   200 * time.Millisecond, RetryMax: time.Second,
		Listen: func(ifname string, et uint16) (rawsock.Conn, error) {
			return listen(ifname, rawsock.Options{Untagged: et == wire.EtherTypeECP}, et)
		},
		ListenSChannel: func(ifname string, svid uint16) (rawsock.Conn, error) {
			return listen(ifname, rawsock.Options{SChannel: svid}, wire.EtherTypeECP)
		},
		Logger: logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-upDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("uplink: %v", err)
		}
	})

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
