package switchd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// hostID is a host's identity in the tests: its name, key and signer. The
// signer's counters live as long as the test, as a host's would across a
// restart of its agent.
type hostID struct {
	name   string
	key    *identity.PrivateKey
	signer *identity.Signer
}

func newHostID(t testing.TB, name string) *hostID {
	t.Helper()
	k, err := identity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.NewSigner(k, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &hostID{name: name, key: k, signer: s}
}

// station is the station side of one host uplink, built from the l2
// pieces as tetherd would (the real agent/uplink needs tetherd's
// inventory): an LLDP agent (station, nearest customer bridge, signed,
// tether capability, EVB station TLV, CDCP request) and a VDP station on
// ECP, signing with the host key and checking the switch's key.
type station struct {
	t      testing.TB
	id     *hostID
	mac    [6]byte
	agent  *lldpagent.Agent
	lldpC  rawsock.Conn
	lldpCf lldpagent.Config
	st     *vdp.Station
	events chan vdp.Event

	mu            sync.Mutex
	lldpCancel    context.CancelFunc
	lldpDone      chan error
	vdpCancel     context.CancelFunc
	vdpDone       chan error
	reassociate   bool
	associateReqs []wire.VSI
}

// stationMgr is the VSI Manager ID the test stations use.
var stationMgr = func() wire.VSIManagerID {
	m, err := wire.ManagerIDFromString("tether")
	if err != nil {
		panic(err)
	}
	return m
}()

// newStation builds a station on lldpConn and ecpLink; start runs it.
func newStation(t testing.TB, id *hostID, switchPub ed25519.PublicKey, lldpConn rawsock.Conn, ecpLink ecp.Link,
	timing vdp.Timing, lldpTx time.Duration) *station {
	t.Helper()
	keys, err := identity.NewStaticKeys(switchPub)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ifi := lldpConn.Interface()
	evbTLV := func() *wire.EVB {
		_, tlv, _ := evb.Station(evb.Config{R: timing.R, RTE: timing.RTE, RWD: timing.RWD, RKA: timing.RKA}, nil)
		return &tlv
	}()
	cdcp, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: 1})
	if err != nil {
		t.Fatal(err)
	}
	info := &lldpagent.LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: append([]byte(nil), ifi.MAC[:]...)},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(ifi.Name)},
		SystemName: id.name,
		EVB:        evbTLV,
		CDCP:       &cdcp,
		Tether: &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleHostAgent,
			KeyID: id.key.ID(), Flags: wire.TetherFlagRequiresSignature},
	}
	s := &station{t: t, id: id, mac: ifi.MAC, events: make(chan vdp.Event, 1024)}
	s.lldpC = lldpConn
	s.lldpCf = lldpagent.Config{
		Build:      info.LLDPDU,
		Dest:       wire.NearestCustomerBridge,
		TxInterval: lldpTx,
		Sign:       lldpagent.SignWith(id.signer, ifi.Name),
		Check:      lldpagent.VerifyWith(ver, ifi.Name, true),
		Logger:     testLogger(),
	}
	s.agent, err = lldpagent.New(lldpConn, s.lldpCf)
	if err != nil {
		t.Fatal(err)
	}
	ch := ifi.Name + "/svid=1"
	s.st, err = vdp.NewStation(ecpLink, vdp.StationConfig{
		Name: ch, LocalMAC: ifi.MAC, Timing: &timing, Logger: testLogger(),
		Security: vdp.Security{
			Sign:          vdp.IdentitySigner(id.signer, ch),
			Verify:        vdp.IdentityVerifier(ver, ch),
			PeerCapable:   func() bool { return true },
			RequireSigned: true,
		},
		OnEvent: s.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs the LLDP agent and the VDP station until stopped or the test
// ends.
func (s *station) start() {
	s.startLLDP()
	s.startVDP()
	s.t.Cleanup(func() {
		s.stopVDP()
		s.stopLLDP()
	})
}

func (s *station) startLLDP() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s.mu.Lock()
	ag := s.agent
	s.mu.Unlock()
	go func() { done <- ag.Run(ctx) }()
	s.mu.Lock()
	s.lldpCancel, s.lldpDone = cancel, done
	s.mu.Unlock()
}

func (s *station) startVDP() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.st.Run(ctx) }()
	s.mu.Lock()
	s.vdpCancel, s.vdpDone = cancel, done
	s.mu.Unlock()
}

// restartLLDP stops the LLDP agent and starts a new one on the same port,
// as a restart of the host agent would.
func (s *station) restartLLDP() {
	s.stopLLDP()
	ag, err := lldpagent.New(s.lldpC, s.lldpCf)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.agent = ag
	s.mu.Unlock()
	s.startLLDP()
}

// stopLLDP stops the LLDP agent, which sends its shutdown LLDPDU.
func (s *station) stopLLDP() {
	s.mu.Lock()
	cancel, done := s.lldpCancel, s.lldpDone
	s.lldpCancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// stopVDP stops the VDP station: its keep-alives stop.
func (s *station) stopVDP() {
	s.mu.Lock()
	cancel, done := s.vdpCancel, s.vdpDone
	s.vdpCancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// onEvent records the station's events and, when asked to, associates a
// VSI again after a failed keep-alive, as tetherd's reconcile loop does.
func (s *station) onEvent(ev vdp.Event) {
	select {
	case s.events <- ev:
	default:
	}
	s.mu.Lock()
	re := s.reassociate
	var v *wire.VSI
	for i := range s.associateReqs {
		if vdp.KeyOf(&s.associateReqs[i]) == ev.Key {
			v = &s.associateReqs[i]
		}
	}
	s.mu.Unlock()
	if re && v != nil && (ev.Kind == vdp.EventKeepaliveFailed || ev.Kind == vdp.EventBridgeDeassociated) && ev.State == vdp.StateNone {
		req := vdp.Request{Mode: wire.VSIAssociate, Manager: stationMgr, VSI: *v}
		go func() {
			for i := 0; i < 50; i++ {
				err := s.st.Submit(req, nil)
				if err == nil || !errors.Is(err, vdp.ErrBusy) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
}

// vsiOf is the VSI of VM vm with one MAC/VID filter.
func vsiOf(vm verify.UUID, mac verify.MAC, vid uint16, typeID uint32) wire.VSI {
	return wire.VSI{VSITypeID: typeID, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: vm,
		FilterFormat: wire.FilterMACVID, Filters: []wire.Filter{{MAC: mac, VID: vid}}}
}

// do sends one request and waits for its result.
func (s *station) do(mode wire.VSIMode, v wire.VSI) vdp.Result {
	s.t.Helper()
	if mode == wire.VSIAssociate {
		s.mu.Lock()
		s.associateReqs = append(s.associateReqs, v)
		s.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.st.Do(ctx, vdp.Request{Mode: mode, Manager: stationMgr, VSI: v})
	if errors.Is(err, context.DeadlineExceeded) {
		s.t.Fatalf("%s: no result within 20s", mode)
	}
	return res
}

// waitEvent waits for the station's next event of kind.
func (s *station) waitEvent(kind vdp.EventKind, d time.Duration) vdp.Event {
	s.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-s.events:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			s.t.Fatalf("station %s: no %v event within %v", s.id.name, kind, d)
		}
	}
}

// switchNeighbour reports whether the station's LLDP agent sees the switch.
func (s *station) switchNeighbour() bool {
	s.mu.Lock()
	ag := s.agent
	s.mu.Unlock()
	for _, n := range ag.Neighbors() {
		if n.Check.Signed && n.Tether() != nil {
			return true
		}
	}
	return false
}
