// Package uplinktest runs the switch side of an uplink for tests: network
// namespaces joined by veth pairs, and a Switch made of the l2 pieces (an
// LLDP agent in the bridge role and a VDP bridge over ECP) standing in for
// tether-switchd. Tests that use it need root and iproute2; Require skips
// them otherwise.
package uplinktest

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// Require skips t unless it runs as root with iproute2.
func Require(t testing.TB) { t.Helper(); netnstest.Require(t) }

// NS is a network namespace made for one test.
type NS struct{ *netnstest.NS }

// NewNS creates a namespace with loopback up; it is deleted when t ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	return &NS{netnstest.New(t)}
}

// Veth joins a and b with a veth pair (aName in a, bName in b), both ends
// up and passing frames.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	netnstest.Veth(t, a.NS, aName, b.NS, bName)
}

// Listen opens a rawsock Socket inside the namespace; it is an
// uplink.ListenFunc.
func (ns *NS) Listen(ifname string, etherType uint16) (rawsock.Conn, error) {
	var c rawsock.Conn
	err := ns.Do(func() error {
		s, err := rawsock.Listen(ifname, etherType, rawsock.Options{})
		if err != nil {
			return err
		}
		c = s
		return nil
	})
	return c, err
}

// Profile is the profile the default Decider grants.
func Profile() *wire.TetherProfile {
	return &wire.TetherProfile{VID: 100, Mode: wire.TetherSTagSwitch, Name: "web"}
}

// SwitchConfig configures a Switch.
type SwitchConfig struct {
	// Key signs the switch's LLDPDUs and VDP frames and is advertised in
	// its tether capability TLV. Nil makes a plain 802.1Qbg bridge: no
	// capability, nothing signed, unsigned VDP accepted.
	Key *identity.PrivateKey
	// HostKeys are the enrolled host keys (needed with Key).
	HostKeys []ed25519.PublicKey
	// Decider decides on requests (default vdp.AcceptAll with VID 100
	// and Profile()).
	Decider vdp.Decider
	// EVB is the bridge's EVB configuration (default R 3, RTE 12, RWD 20,
	// RKA 22: no keep-alive during a test).
	EVB *evb.Config
	// SystemName is the LLDP System Name (default "tor1").
	SystemName string
	// CounterDir, when set, keeps the switch's signature counters in
	// files there (as tether-switchd would), so a Switch started again on
	// the same directory goes on counting; empty keeps them in memory.
	CounterDir string
	// Logger gets the logs (default: discarded).
	Logger *slog.Logger
}

// Switch is the link-local side of an edge switch on one port.
type Switch struct {
	// Agent is the LLDP agent (bridge role, nearest customer bridge).
	Agent *lldpagent.Agent
	// Bridge is the VDP bridge.
	Bridge *vdp.Bridge

	cancel  context.CancelFunc
	done    chan struct{}
	closers []func() error

	mu     sync.Mutex
	events []vdp.Event
	seen   chan struct{}
	evbCfg evb.Config
	evbTLV *wire.EVB // the station's last EVB TLV
}

// StartSwitch runs a Switch on interface ifname of ns until t ends (or
// Stop).
func StartSwitch(t testing.TB, ns *NS, ifname string, cfg SwitchConfig) *Switch {
	t.Helper()
	if cfg.Decider == nil {
		cfg.Decider = vdp.AcceptAll{VID: 100, Profile: Profile()}
	}
	if cfg.EVB == nil {
		cfg.EVB = &evb.Config{RR: true, R: 3, RTE: 12, RWD: 20, RKA: 22}
	}
	if cfg.SystemName == "" {
		cfg.SystemName = "tor1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lconn, err := ns.Listen(ifname, wire.EtherTypeLLDP)
	if err != nil {
		t.Fatal(err)
	}
	econn, err := ns.Listen(ifname, wire.EtherTypeECP)
	if err != nil {
		t.Fatal(err)
	}
	sw := &Switch{done: make(chan struct{}), seen: make(chan struct{}, 1), evbCfg: *cfg.EVB}
	mac := lconn.Interface().MAC
	var (
		signer   *identity.Signer
		verifier *identity.Verifier
	)
	if cfg.Key != nil {
		var ss, vs identity.CounterStore = &identity.MemoryCounterStore{}, &identity.MemoryCounterStore{}
		if cfg.CounterDir != "" {
			if err := os.MkdirAll(cfg.CounterDir, 0o700); err != nil {
				t.Fatal(err)
			}
			fs, err := identity.OpenFileCounterStore(filepath.Join(cfg.CounterDir, "sign"))
			if err != nil {
				t.Fatal(err)
			}
			fv, err := identity.OpenFileCounterStore(filepath.Join(cfg.CounterDir, "verify"))
			if err != nil {
				_ = fs.Close()
				t.Fatal(err)
			}
			sw.closers = append(sw.closers, fs.Close, fv.Close)
			ss, vs = fs, fv
		}
		if signer, err = identity.NewSigner(cfg.Key, ss, identity.SignerOptions{}); err != nil {
			t.Fatal(err)
		}
		keys, err := identity.NewStaticKeys(cfg.HostKeys...)
		if err != nil {
			t.Fatal(err)
		}
		if verifier, err = identity.NewVerifier(keys, vs, identity.VerifierOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	build := func() (wire.LLDPDU, error) {
		sw.mu.Lock()
		_, tlv, _ := evb.Bridge(sw.evbCfg, sw.evbTLV)
		sw.mu.Unlock()
		info := lldpagent.LocalInfo{
			ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: net.HardwareAddr(mac[:])},
			PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(ifname)},
			SystemName: cfg.SystemName,
			EVB:        &tlv,
		}
		if signer != nil {
			info.Tether = &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleSwitchAgent,
				KeyID: signer.KeyID(), Flags: wire.TetherFlagRequiresSignature}
		}
		return info.LLDPDU()
	}
	acfg := lldpagent.Config{Build: build, Dest: wire.NearestCustomerBridge, Logger: cfg.Logger}
	if signer != nil {
		acfg.Sign = lldpagent.SignWith(signer, ifname)
		acfg.Check = lldpagent.VerifyWith(verifier, ifname, true)
	}
	acfg.OnEvent = func(ev lldpagent.Event) {
		sw.mu.Lock()
		sw.evbTLV = nil
		if ev.Kind == lldpagent.NeighborAdded || ev.Kind == lldpagent.NeighborUpdated {
			if e := ev.Neighbor.EVB(); e != nil {
				c := *e
				sw.evbTLV = &c
			}
		}
		o, _, _ := evb.Bridge(sw.evbCfg, sw.evbTLV)
		sw.mu.Unlock()
		if sw.Bridge != nil {
			_ = sw.Bridge.SetTiming(vdp.Timing{R: o.R, RTE: o.RTE, RWD: o.RWD, RKA: o.RKA})
		}
		sw.Agent.Update()
	}
	if sw.Agent, err = lldpagent.New(lconn, acfg); err != nil {
		t.Fatal(err)
	}
	o, _, _ := evb.Bridge(*cfg.EVB, nil)
	timing := vdp.Timing{R: o.R, RTE: o.RTE, RWD: o.RWD, RKA: o.RKA}
	bcfg := vdp.BridgeConfig{Name: ifname, LocalMAC: mac, Timing: &timing, Decider: cfg.Decider, Logger: cfg.Logger,
		OnEvent: sw.record}
	if signer != nil {
		ch := ifname + "/ecp"
		bcfg.Security = vdp.Security{
			Sign:          vdp.IdentitySigner(signer, ch),
			Verify:        vdp.IdentityVerifier(verifier, ch),
			PeerCapable:   func() bool { return true },
			RequireSigned: true,
		}
	}
	if sw.Bridge, err = vdp.NewBridge(econn, bcfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sw.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sw.Agent.Run(ctx) }()
	go func() { defer wg.Done(); _ = sw.Bridge.Run(ctx) }()
	go func() {
		wg.Wait()
		_ = lconn.Close()
		_ = econn.Close()
		for _, c := range sw.closers {
			_ = c()
		}
		close(sw.done)
	}()
	t.Cleanup(sw.Stop)
	return sw
}

// Stop stops the switch (sending a shutdown LLDPDU) and waits for it.
func (sw *Switch) Stop() {
	sw.cancel()
	<-sw.done
}

// record is the bridge's OnEvent.
func (sw *Switch) record(ev vdp.Event) {
	sw.mu.Lock()
	sw.events = append(sw.events, ev)
	sw.mu.Unlock()
	select {
	case sw.seen <- struct{}{}:
	default:
	}
}

// Events returns the bridge's events of kind so far.
func (sw *Switch) Events(kind vdp.EventKind) []vdp.Event {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	var out []vdp.Event
	for _, ev := range sw.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// WaitEvents waits until the bridge reported at least n events of kind.
func (sw *Switch) WaitEvents(t testing.TB, kind vdp.EventKind, n int, timeout time.Duration) []vdp.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if evs := sw.Events(kind); len(evs) >= n {
			return evs
		}
		select {
		case <-sw.seen:
		case <-deadline:
			t.Fatalf("uplinktest: %d %s events after %v, want %d", len(sw.Events(kind)), kind, timeout, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
