package uplinke2e

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// rig is one test's switch and host A: the lab, the switch's config
// (not yet validated: the caller adds to it) and both keys.
type rig struct {
	lab     *swlab.Lab
	dir     string
	cfg     switchconfig.Config
	swKey   *identity.PrivateKey
	hostKey *identity.PrivateKey
}

// newRig builds the lab, the switch's key (generated as switchd would),
// host A's key, host A's libvirt test-driver node with the domains, and a
// switch config enrolling host A with the lab's EVB timers and a default
// profile (tenant-a, VID 100).
func newRig(t *testing.T, domains []swlab.Domain) *rig {
	t.Helper()
	r := &rig{lab: swlab.NewLab(t), dir: t.TempDir()}
	cfg := switchconfig.Default()
	cfg.Name = "tor1"
	cfg.KeyFile = filepath.Join(r.dir, "switch.key")
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
	swlab.WriteNode(t, filepath.Join(r.dir, "hostA.xml"), domains)
	cfg.HostKeys = switchconfig.HostKeys{Inline: map[string]string{"hostA": string(pem)}}
	cfg.VMManagers = map[string]string{"hostA": "test://" + filepath.Join(r.dir, "hostA.xml")}
	cfg.EVB = switchconfig.EVB{R: 3, RTE: 12, RWD: 20, RKA: 17, ReflectiveRelay: true}
	cfg.Profiles = map[string]switchconfig.Profile{"default": {Name: "tenant-a", VID: 100, Mode: "switch"}}
	cfg.Socket = filepath.Join(r.dir, "switchd.sock")
	cfg.SocketGroup = ""
	cfg.StateDir = filepath.Join(r.dir, "state")
	r.cfg, r.swKey, r.hostKey = cfg, swKey, hostKey
	return r
}

// openStore opens host A's inventory and applies ops to it.
func (r *rig) openStore(ctx context.Context, t *testing.T, ops ...inventory.Op) *inventory.Store {
	t.Helper()
	store, err := inventory.Open(ctx, filepath.Join(r.dir, "inventory.db"), inventory.Options{Logger: logger(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Apply(ctx, inventory.Change{}.Add(ops...)); err != nil {
		t.Fatal(err)
	}
	return store
}

// runningVM is the inventory ops of one running VM with one VIF.
func runningVM(t *testing.T, uuid, name, mac string, vif inventory.VIF) []inventory.Op {
	t.Helper()
	id, err := inventory.ParseUUID(uuid)
	if err != nil {
		t.Fatal(err)
	}
	m, err := inventory.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	vif.MAC, vif.VM = m, id
	return []inventory.Op{
		inventory.UpsertVM(inventory.VM{UUID: id, Name: name, State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(vif),
	}
}

// startUplink runs tetherd's uplink on host A's eth0 (signing with host
// A's key, verifying the switch's) until cancel; its listeners open in
// host A's namespace, S-channel ones too when schannels is set.
func (r *rig) startUplink(ctx context.Context, cancel context.CancelFunc, t *testing.T, store *inventory.Store, schannels bool) {
	t.Helper()
	signer, err := identity.NewSigner(r.hostKey, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	swKeys, err := identity.NewStaticKeys(r.swKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(swKeys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listen := func(ifname string, opts rawsock.Options, et uint16) (rawsock.Conn, error) {
		var s *rawsock.Socket
		err := r.lab.A.Do(func() error {
			var err error
			s, err = rawsock.Listen(ifname, et, opts)
			return err
		})
		return s, err
	}
	cfg := uplink.Config{
		Interface: "eth0", Store: store, Signer: signer, Verifier: ver, RequireSigned: true,
		EVB:        evb.Config{RR: true, R: 3, RTE: 12, RWD: 20, RKA: 17},
		SystemName: "hostA",
		RetryMin:   200 * time.Millisecond, RetryMax: time.Second,
		Listen: func(ifname string, et uint16) (rawsock.Conn, error) {
			return listen(ifname, rawsock.Options{}, et)
		},
		Logger: logger(),
	}
	if schannels {
		cfg.Listen = func(ifname string, et uint16) (rawsock.Conn, error) {
			return listen(ifname, rawsock.Options{Untagged: et == wire.EtherTypeECP}, et)
		}
		cfg.ListenSChannel = func(ifname string, svid uint16) (rawsock.Conn, error) {
			return listen(ifname, rawsock.Options{SChannel: svid}, wire.EtherTypeECP)
		}
	}
	up, err := uplink.New(cfg)
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
}
