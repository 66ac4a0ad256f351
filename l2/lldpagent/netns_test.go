//go:build linux

package lldpagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// listenIn opens an LLDP socket on ifname inside ns, closed at the end of
// the test.
func listenIn(t *testing.T, ns *netnstest.NS, ifname string) *rawsock.Socket {
	t.Helper()
	var s *rawsock.Socket
	if err := ns.Do(func() error {
		var err error
		s, err = rawsock.Listen(ifname, wire.EtherTypeLLDP, rawsock.Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventLog collects an agent's events.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
	ch  chan Event
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan Event, 1000)} }

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
	select {
	case l.ch <- ev:
	default:
	}
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

// waitEvent returns the next event of kind within d.
func (l *eventLog) waitEvent(t *testing.T, kind EventKind, d time.Duration) Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-l.ch:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event within %v", kind, d)
		}
	}
}

// startAgent runs ag until the test ends (or the returned cancel is
// called); the returned function waits for Run and returns its result.
func startAgent(t *testing.T, ag *Agent) (context.CancelFunc, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = ag.Run(ctx)
	}()
	wait := func() error {
		select {
		case <-done:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("agent did not stop within 5s")
		}
	}
	t.Cleanup(func() {
		cancel()
		if werr := wait(); werr != nil && !errors.Is(werr, rawsock.ErrClosed) {
			t.Error(werr)
		}
	})
	return cancel, wait
}

func macInfo(s *rawsock.Socket, name string) *mutableInfo {
	return newInfo(s.Interface().MAC, s.Interface().Name, name)
}

// TestVethNeighbors: two agents on a veth pair see each other within the
// fast transmission time, a changed system name reaches the peer at once
// and is followed by exactly txFastInit LLDPDUs, and the shutdown LLDPDU
// removes the neighbour immediately.
func TestVethNeighbors(t *testing.T) {
	netnstest.Require(t)
	t.Parallel()
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	sA, sB := listenIn(t, nsA, "a0"), listenIn(t, nsB, "b0")

	infoA := macInfo(sA, "host-a")
	infoA.info.SystemDescription = "tether test station"
	infoA.info.Capabilities = &wire.SystemCapabilities{System: wire.SysCapStationOnly, Enabled: wire.SysCapStationOnly}
	infoA.info.ManagementAddresses = []*wire.ManagementAddress{wire.NewManagementAddress(netip.MustParseAddr("192.0.2.10"), 2)}
	logB := newEventLog()
	a, err := New(sA, Config{Build: infoA.build, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(sB, Config{Build: macInfo(sB, "host-b").build, Logger: quiet(), OnEvent: logB.add})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancelA, doneA := startAgent(t, a)
	startAgent(t, b)

	ev := logB.waitEvent(t, NeighborAdded, 2*time.Second)
	n := ev.Neighbor
	macA := sA.Interface().MAC
	if !bytes.Equal(n.ChassisID.ID, macA[:]) || n.ChassisID.Subtype != lldp.ChassisIDSubtypeMACAddress ||
		string(n.PortID.ID) != "a0" || n.SystemName() != "host-a" || n.TTL != 121 || n.Source != sA.Interface().MAC || ev.Port != "b0" {
		t.Fatalf("b sees %+v", n)
	}
	waitFor(t, func() bool { return len(a.Neighbors()) == 1 })
	if got := a.Neighbors()[0].SystemName(); got != "host-b" {
		t.Fatalf("a sees %q", got)
	}
	t.Logf("neighbours up after %v", time.Since(start))

	// Let the fast transmissions that the new neighbours started end.
	time.Sleep(time.Until(start.Add(3700 * time.Millisecond)))
	before := b.Stats().FramesIn
	changed := time.Now()
	infoA.setName("host-a-renamed")
	a.Update()
	ev = logB.waitEvent(t, NeighborUpdated, time.Second)
	if ev.Neighbor.SystemName() != "host-a-renamed" {
		t.Fatalf("update carries %q", ev.Neighbor.SystemName())
	}
	t.Logf("rename seen after %v", time.Since(changed))
	// Fast transmission: at +0, +1, +2 and +3 s, then not before +33 s.
	time.Sleep(time.Until(changed.Add(3600 * time.Millisecond)))
	if got := b.Stats().FramesIn - before; got != 4 {
		t.Fatalf("%d LLDPDUs in the 3.6 s after the change, want txFastInit = 4", got)
	}

	cancelA()
	if err := doneA(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	stopped := time.Now()
	ev = logB.waitEvent(t, NeighborShutdown, 500*time.Millisecond)
	t.Logf("shutdown seen after %v", time.Since(stopped))
	if len(b.Neighbors()) != 0 {
		t.Fatal("neighbour still listed after its shutdown LLDPDU")
	}
	if s := a.Stats(); s.ShutdownFramesOut != 1 || s.TxErrors != 0 {
		t.Fatalf("a stats %+v", s)
	}
	if s := b.Stats(); s.Malformed != 0 || s.Rejected != 0 || s.Deletes != 1 || s.Ageouts != 0 {
		t.Fatalf("b stats %+v", s)
	}
}

// TestVethExpiry: an agent that stops without a shutdown LLDPDU is aged out
// TTL seconds after its last LLDPDU.
func TestVethExpiry(t *testing.T) {
	netnstest.Require(t)
	t.Parallel()
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	sA, sB := listenIn(t, nsA, "a0"), listenIn(t, nsB, "b0")
	// TTL = 1 s * 1 + 1 = 2 s.
	a, err := New(sA, Config{Build: macInfo(sA, "short-lived").build, Logger: quiet(), TxInterval: time.Second, TxHold: 1})
	if err != nil {
		t.Fatal(err)
	}
	logB := newEventLog()
	b, err := New(sB, Config{Build: macInfo(sB, "watcher").build, Logger: quiet(), OnEvent: logB.add})
	if err != nil {
		t.Fatal(err)
	}
	_, doneA := startAgent(t, a)
	startAgent(t, b)
	if ev := logB.waitEvent(t, NeighborAdded, 2*time.Second); ev.Neighbor.TTL != 2 {
		t.Fatalf("TTL %d, want 2", ev.Neighbor.TTL)
	}
	// Stays up across several TTLs while A transmits.
	time.Sleep(2500 * time.Millisecond)
	if len(b.Neighbors()) != 1 {
		t.Fatal("neighbour lost while it was transmitting")
	}
	// A's port fails: no shutdown LLDPDU.
	sA.Close()
	if err := doneA(); !errors.Is(err, rawsock.ErrClosed) {
		t.Fatalf("Run after the socket closed = %v", err)
	}
	last := b.Neighbors()[0].LastSeen
	ev := logB.waitEvent(t, NeighborExpired, 3*time.Second)
	if d := ev.At.Sub(last); d < 2*time.Second || d > 2*time.Second+500*time.Millisecond {
		t.Fatalf("expired %v after the last LLDPDU, want TTL = 2s", d)
	}
	for _, e := range logB.all() {
		if e.Kind == NeighborShutdown {
			t.Fatal("shutdown event without a shutdown LLDPDU")
		}
	}
	if s := b.Stats(); s.Ageouts != 1 {
		t.Fatalf("ageouts %d", s.Ageouts)
	}
}

// TestVethSigned: LLDPDUs to the nearest customer bridge carrying EVB,
// CDCP, DCBX and tether's TLVs, signed with identity.Signer, verify on the
// other side with identity.Verifier; replayed, tampered and unsigned frames
// are refused; the signed shutdown LLDPDU is accepted.
func TestVethSigned(t *testing.T) {
	netnstest.Require(t)
	t.Parallel()
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	sA, sB := listenIn(t, nsA, "a0"), listenIn(t, nsB, "b0")
	inject := listenIn(t, nsA, "a0") // an attacker on A's side of the link

	key, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.NewStaticKeys(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}

	_, evbTLV, err := evb.Station(evb.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cdcp, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	infoA := macInfo(sA, "signed-host")
	infoA.info.EVB = &evbTLV
	infoA.info.CDCP = &cdcp
	infoA.info.ETS = &wire.ETSConfiguration{MaxTCs: 3, ETSTables: wire.ETSTables{Bandwidth: [8]uint8{50, 50}, TSA: [8]wire.TSA{wire.TSAETS, wire.TSAETS}}}
	infoA.info.PFC = &wire.PFC{Cap: 8, Enable: 1 << 3}
	keyID := key.ID()
	infoA.info.Tether = &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleHostAgent, KeyID: keyID}
	infoA.info.Inventory = &wire.TetherInventory{Alg: wire.TetherDigestSHA256, VIFs: 2, Generation: 7}

	a, err := New(sA, Config{Build: infoA.build, Logger: quiet(), Dest: wire.NearestCustomerBridge, Sign: SignWith(signer, "a0")})
	if err != nil {
		t.Fatal(err)
	}
	logB := newEventLog()
	b, err := New(sB, Config{Build: macInfo(sB, "switch").build, Logger: quiet(), Dest: wire.NearestCustomerBridge,
		Check: VerifyWith(verifier, "b0", true), OnEvent: logB.add})
	if err != nil {
		t.Fatal(err)
	}
	cancelA, doneA := startAgent(t, a)
	startAgent(t, b)

	n := logB.waitEvent(t, NeighborAdded, 2*time.Second).Neighbor
	if !n.Check.Signed || n.Check.KeyID != keyID {
		t.Fatalf("check result %+v, want signed by %s", n.Check, keyID)
	}
	if n.EVB() == nil || n.EVB().Mode != wire.EVBModeStation || n.CDCP() == nil || len(n.CDCP().Channels) != 3 || n.Tether() == nil {
		t.Fatalf("TLVs missing: %+v", n.PDU.TLVs)
	}
	if _, ok := n.PDU.TLVs[len(n.PDU.TLVs)-1].(*wire.TetherSignature); !ok {
		t.Fatalf("last TLV is %T, want the signature", n.PDU.TLVs[len(n.PDU.TLVs)-1])
	}
	if h := n.Frame[:6]; !bytes.Equal(h, wire.NearestCustomerBridge[:]) {
		t.Fatalf("sent to %x", h)
	}
	// An independent Verifier with a fresh replay window accepts the
	// frame as received.
	v2, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2.Verify(context.Background(), "independent", n.Frame); err != nil || got.Key != keyID {
		t.Fatalf("independent verify: %+v, %v", got, err)
	}

	ctx := context.Background()
	rejected := b.Stats().Rejected
	// Replay of a frame B already accepted.
	if err := inject.WriteFrame(ctx, n.Frame); err != nil {
		t.Fatal(err)
	}
	// Tampered: the system name changed, signature kept.
	tampered := bytes.Replace(n.Frame, []byte("signed-host"), []byte("evil!-host!"), 1)
	if bytes.Equal(tampered, n.Frame) {
		t.Fatal("system name not found in the frame")
	}
	if err := inject.WriteFrame(ctx, tampered); err != nil {
		t.Fatal(err)
	}
	// Unsigned, from a chassis nobody enrolled.
	unsigned := frameFor(t, wire.NearestCustomerBridge, [6]byte{2, 9, 9, 9, 9, 9}, testPDU("intruder", "x", "intruder", 120))
	if err := inject.WriteFrame(ctx, unsigned); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Stats().Rejected == rejected+3 })
	if len(b.Neighbors()) != 1 {
		t.Fatalf("%d neighbours after the attacks", len(b.Neighbors()))
	}
	if nb := b.Neighbors()[0]; nb.SystemName() != "signed-host" {
		t.Fatalf("neighbour now named %q", nb.SystemName())
	}

	cancelA()
	if err := doneA(); err != nil {
		t.Fatal(err)
	}
	ev := logB.waitEvent(t, NeighborShutdown, time.Second)
	if ev.Neighbor.SystemName() != "signed-host" {
		t.Fatalf("shutdown of %q", ev.Neighbor.SystemName())
	}
}
