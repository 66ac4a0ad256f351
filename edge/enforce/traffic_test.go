package enforce

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"

	"github.com/tether-net/tether/edge/enforce/internal/nstest"
)

// tagged returns an 802.1Q tag with vid, for frame.
func tagged(vid uint16) []uint16 { return []uint16{etherTypeCTag, vid} }

// managedLab is a lab whose port sw-a is managed by a fresh Enforcer.
func managedLab(t *testing.T) (*lab, *Enforcer) {
	t.Helper()
	l := newLab(t)
	e := l.enforcer(t, Options{})
	if err := e.ManagePort(l.ctx, portA); err != nil {
		t.Fatalf("ManagePort: %v", err)
	}
	return l, e
}

func TestVerifiedPairsPass(t *testing.T) {
	l, e := managedLab(t)
	vm := testMAC(1)
	for _, vid := range []uint16{0, 100} {
		if err := e.Allow(l.ctx, portA, vm, vid); err != nil {
			t.Fatalf("Allow %d: %v", vid, err)
		}
	}
	var ids []uint64
	for i := 0; i < 5; i++ {
		ids = append(ids, l.send(t, l.txA, l.macB, vm, nil, etherTypeTest))
		ids = append(ids, l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest))
	}
	expectReceived(t, l.rxB, "untagged and VID 100 frames of allowed pairs", ids...)
	waitCount(t, e, portA, "accepted", accepted, uint64(len(ids)))
	if got := dropped(counters(t, e, portA)); got != 0 {
		t.Errorf("dropped = %d, want 0", got)
	}
	if !fdbHas(t, l.sw, vm) {
		t.Errorf("bridge did not learn the allowed MAC %s", vm)
	}
}

func TestUnverifiedDroppedAndCounted(t *testing.T) {
	l, e := managedLab(t)
	vm, spoof := testMAC(1), testMAC(2)
	if err := e.Allow(l.ctx, portA, vm, 100); err != nil {
		t.Fatal(err)
	}
	ids := []uint64{
		l.send(t, l.txA, l.macB, spoof, nil, etherTypeTest),                                        // unknown MAC, untagged
		l.send(t, l.txA, l.macB, spoof, tagged(100), etherTypeTest),                                // unknown MAC, allowed VID
		l.send(t, l.txA, l.macB, vm, nil, etherTypeTest),                                           // allowed MAC, untagged not allowed
		l.send(t, l.txA, l.macB, vm, tagged(200), etherTypeTest),                                   // allowed MAC, other VID
		l.send(t, l.txA, l.macB, vm, []uint16{etherTypeSTag, 100}, etherTypeTest),                  // S-Tag is not the configured TPID
		l.send(t, l.txA, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, spoof, nil, 0x0806), // broadcast ARP-like
		l.send(t, l.txA, l.macB, spoof, nil, etherTypeLLDP),                                        // LLDP EtherType to a unicast MAC
	}
	waitCount(t, e, portA, "dropped", dropped, uint64(len(ids)))
	expectNotReceived(t, l.rxB, "unverified frames", ids...)
	if got := accepted(counters(t, e, portA)); got != 0 {
		t.Errorf("accepted = %d, want 0", got)
	}

	// Dropped in prerouting means dropped before learning: the spoofed
	// source never enters the FDB. The same frame through the unmanaged
	// port C is learned, which shows the check can see it.
	if fdbHas(t, l.sw, spoof) {
		t.Errorf("bridge learned %s from a dropped frame", spoof)
	}
	open := testMAC(3)
	expectReceived(t, l.rxB, "frame through unmanaged port", l.send(t, l.txC, l.macB, open, nil, etherTypeTest))
	if !fdbHas(t, l.sw, open) {
		t.Errorf("bridge did not learn %s through the unmanaged port", open)
	}
}

// TestControlFramesPass sends LLDP and ECP from a MAC nobody verified and
// checks they reach a socket bound to their EtherType on the switch port,
// the way l2/rawsock listens, while the same EtherTypes to other
// destinations are dropped.
func TestControlFramesPass(t *testing.T) {
	l, e := managedLab(t)
	stranger := testMAC(9)
	lldp := listen(t, l.sw, portA, etherTypeLLDP)
	ecp := listen(t, l.sw, portA, etherTypeECP)
	nearestBridge := net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	nonTPMR := net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03}
	customer := net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}

	// 01:80:c2:00:00:0e and :03 the bridge hands to the port's sockets
	// itself; the enforcer must not get in the way.
	expectReceived(t, lldp, "LLDP to nearest bridge", l.send(t, l.txA, nearestBridge, stranger, nil, etherTypeLLDP))
	expectReceived(t, ecp, "ECP to nearest non-TPMR bridge", l.send(t, l.txA, nonTPMR, stranger, nil, etherTypeECP))

	// Neither went through the prerouting hook: nothing counted them.
	before := counters(t, e, portA)
	if before != (PortCounters{}) {
		t.Errorf("counters after link-local frames = %+v, want zero (no prerouting for 01:80:c2:00:00:0e and :03)", before)
	}

	// 01:80:c2:00:00:00 goes through prerouting; the control rule accepts
	// and counts it.
	lldpCustomer := l.send(t, l.txA, customer, stranger, nil, etherTypeLLDP)
	ecpCustomer := l.send(t, l.txA, customer, stranger, nil, etherTypeECP)
	waitCount(t, e, portA, "control", control, before.Control.Packets+2)
	if e.Broute() {
		expectReceived(t, lldp, "LLDP to nearest customer bridge, brouted", lldpCustomer)
		expectReceived(t, ecp, "ECP to nearest customer bridge, brouted", ecpCustomer)
		time.Sleep(20 * time.Millisecond)
		expectNotReceived(t, l.rxB, "brouted control frames bridged to host B", lldpCustomer, ecpCustomer)
	} else {
		// Without broute the bridge (STP off) floods them: accepted,
		// not dropped, but not handed to the port's sockets.
		t.Logf("kernel without meta broute: control frames to %s are bridged (see package doc)", customer)
		expectReceived(t, l.rxB, "accepted control frames flooded by the bridge", lldpCustomer, ecpCustomer)
	}

	// LLDP or ECP EtherType to any other destination is not a control
	// frame.
	bad := []uint64{
		l.send(t, l.txA, l.macB, stranger, nil, etherTypeECP),
		l.send(t, l.txA, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, stranger, nil, etherTypeECP),
		l.send(t, l.txA, net.HardwareAddr{0x01, 0x80, 0xc2, 0x00, 0x00, 0x10}, stranger, nil, etherTypeLLDP),
	}
	waitCount(t, e, portA, "dropped", dropped, before.Dropped.Packets+uint64(len(bad)))
	expectNotReceived(t, l.rxB, "ECP EtherType to non-control destinations", bad...)
}

// TestSTagTPID runs the enforcer for switch-mode ports, where the pair's
// VID is the 802.1ad S-Tag's.
func TestSTagTPID(t *testing.T) {
	l := newLab(t)
	e := l.enforcer(t, Options{TPID: etherTypeSTag})
	if err := e.ManagePort(l.ctx, portA); err != nil {
		t.Fatal(err)
	}
	vm := testMAC(1)
	if err := e.Allow(l.ctx, portA, vm, 100); err != nil {
		t.Fatal(err)
	}
	expectReceived(t, l.rxB, "S-tagged VID 100", l.send(t, l.txA, l.macB, vm, []uint16{etherTypeSTag, 100}, etherTypeTest))
	bad := []uint64{
		l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest), // C-Tag: not the configured TPID
		l.send(t, l.txA, l.macB, vm, []uint16{etherTypeSTag, 101}, etherTypeTest),
		l.send(t, l.txA, l.macB, vm, nil, etherTypeTest),
	}
	waitCount(t, e, portA, "dropped", dropped, uint64(len(bad)))
	expectNotReceived(t, l.rxB, "frames outside the S-tagged pair", bad...)
}

func TestRevoke(t *testing.T) {
	l, e := managedLab(t)
	vm := testMAC(1)
	for _, vid := range []uint16{0, 100} {
		if err := e.Allow(l.ctx, portA, vm, vid); err != nil {
			t.Fatal(err)
		}
	}
	expectReceived(t, l.rxB, "before Revoke", l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest))
	if err := e.Revoke(l.ctx, portA, vm, 100); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	// Revoke returns once the kernel committed: the very next frame drops.
	gone := l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest)
	still := l.send(t, l.txA, l.macB, vm, nil, etherTypeTest)
	waitCount(t, e, portA, "dropped", dropped, 1)
	expectNotReceived(t, l.rxB, "revoked VID 100", gone)
	expectReceived(t, l.rxB, "untagged pair untouched by the revoke", still)
	// Revoking again, or a pair never allowed, is a no-op.
	if err := e.Revoke(l.ctx, portA, vm, 100); err != nil {
		t.Errorf("second Revoke: %v", err)
	}
	if err := e.Revoke(l.ctx, portA, testMAC(7), 7); err != nil {
		t.Errorf("Revoke of an unknown pair: %v", err)
	}
	assertObserved(t, e, State{portA: {Allowed: []Pair{mustPair(t, vm, 0)}}})
}

func TestPendingActivate(t *testing.T) {
	l, e := managedLab(t)
	vm := testMAC(4)
	for _, vid := range []uint16{0, 100} {
		if err := e.Pending(l.ctx, portA, vm, vid); err != nil {
			t.Fatalf("Pending %d: %v", vid, err)
		}
	}
	assertObserved(t, e, State{portA: {Pending: []Pair{mustPair(t, vm, 0), mustPair(t, vm, 100)}}})
	held := []uint64{
		l.send(t, l.txA, l.macB, vm, nil, etherTypeTest),
		l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest),
	}
	waitCount(t, e, portA, "dropped", dropped, 2)
	expectNotReceived(t, l.rxB, "pending pairs before Activate", held...)

	for _, vid := range []uint16{0, 100} {
		if err := e.Activate(l.ctx, portA, vm, vid); err != nil {
			t.Fatalf("Activate %d: %v", vid, err)
		}
	}
	assertObserved(t, e, State{portA: {Allowed: []Pair{mustPair(t, vm, 0), mustPair(t, vm, 100)}}})
	expectReceived(t, l.rxB, "activated pairs",
		l.send(t, l.txA, l.macB, vm, nil, etherTypeTest),
		l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest))

	// Pending on an allowed pair does not take it back.
	if err := e.Pending(l.ctx, portA, vm, 0); err != nil {
		t.Fatal(err)
	}
	expectReceived(t, l.rxB, "allowed pair after Pending", l.send(t, l.txA, l.macB, vm, nil, etherTypeTest))
	// Revoke takes a pair out of both sets.
	if err := e.Revoke(l.ctx, portA, vm, 0); err != nil {
		t.Fatal(err)
	}
	assertObserved(t, e, State{portA: {Allowed: []Pair{mustPair(t, vm, 100)}}})
}

// TestRestart stops one Enforcer and starts another on the same namespace
// while host A streams frames of allowed pairs: not one may drop. The new
// Enforcer reads the state back, a Sync with it changes nothing, a Sync
// without one pair removes exactly that pair.
func TestRestart(t *testing.T) {
	l, e := managedLab(t)
	if err := e.ManagePort(l.ctx, portC); err != nil {
		t.Fatal(err)
	}
	vmU, vmT, vmP := testMAC(1), testMAC(2), testMAC(3)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Allow(l.ctx, portA, vmU, 0))
	must(e.Allow(l.ctx, portA, vmT, 100))
	must(e.Allow(l.ctx, portA, vmP, 0))
	must(e.Pending(l.ctx, portC, vmP, 300))
	want := State{
		portA: normalise([]Pair{mustPair(t, vmU, 0), mustPair(t, vmT, 100), mustPair(t, vmP, 0)}, nil),
		portC: normalise(nil, []Pair{mustPair(t, vmP, 300)}),
	}

	// Stream allowed frames from A, about one every 100 µs.
	var sent []uint64
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var n atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		srcs := []struct {
			mac net.HardwareAddr
			tag []uint16
		}{{vmU, nil}, {vmT, tagged(100)}, {vmP, nil}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := srcs[i%len(srcs)]
			id := l.nextID.Add(1)
			if _, err := l.txA.WriteTo(frame(l.macB, s.mac, s.tag, etherTypeTest, id), &packet.Addr{HardwareAddr: l.macB}); err != nil {
				t.Errorf("stream: send: %v", err)
				return
			}
			mu.Lock()
			sent = append(sent, id)
			mu.Unlock()
			n.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	waitFrames := func(min int64) {
		for deadline := time.Now().Add(2 * time.Second); n.Load() < min && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	waitFrames(50)
	dropsBefore := dropped(counters(t, e, portA))

	// The restart: the old Enforcer goes away, leaving its rules.
	must(e.Close())
	waitFrames(n.Load() + 20)
	e2 := l.enforcer(t, Options{})
	got, err := e2.Observed(l.ctx)
	must(err)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Observed after restart:\n got %v\nwant %v", got, want)
	}
	for i := 0; i < 3; i++ {
		st, err := e2.Sync(l.ctx, got)
		must(err)
		if st != (SyncStats{}) {
			t.Errorf("Sync with the observed state changed %+v, want nothing", st)
		}
		must(e2.ManagePort(l.ctx, portA)) // idempotent, keeps pairs
		waitFrames(n.Load() + 20)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	ids := append([]uint64(nil), sent...)
	mu.Unlock()
	if missing := l.rxB.waitAll(ids, 2*time.Second); len(missing) > 0 {
		t.Errorf("%d of %d frames of allowed pairs lost across the restart", len(missing), len(ids))
	}
	if d := dropped(counters(t, e2, portA)) - dropsBefore; d != 0 {
		t.Errorf("%d frames dropped across the restart, want 0", d)
	}
	t.Logf("%d frames streamed across Close, New, Observed and 3 × (Sync, ManagePort): all delivered", len(ids))

	// Sync without vmP on port A removes exactly that pair, and keeps
	// the pending one on C.
	desired := State{
		portA: {Allowed: []Pair{mustPair(t, vmU, 0), mustPair(t, vmT, 100)}},
		portC: want[portC],
	}
	st, err := e2.Sync(l.ctx, desired)
	must(err)
	if st != (SyncStats{Removed: 1}) {
		t.Errorf("Sync without one pair: %+v, want exactly one removal", st)
	}
	assertObserved(t, e2, desired)
	dropsBefore = dropped(counters(t, e2, portA))
	gone := l.send(t, l.txA, l.macB, vmP, nil, etherTypeTest)
	waitCount(t, e2, portA, "dropped", dropped, dropsBefore+1)
	expectNotReceived(t, l.rxB, "pair removed by Sync", gone)
	expectReceived(t, l.rxB, "pairs kept by Sync",
		l.send(t, l.txA, l.macB, vmU, nil, etherTypeTest),
		l.send(t, l.txA, l.macB, vmT, tagged(100), etherTypeTest))

	// Sync promotes a pending pair, adds a port and removes one.
	desired = State{
		portB: {},
		portC: {Allowed: []Pair{mustPair(t, vmP, 300)}},
	}
	st, err = e2.Sync(l.ctx, desired)
	must(err)
	if want := (SyncStats{PortsSetUp: 1, PortsRemoved: 1, Added: 1, Removed: 1}); st != want {
		t.Errorf("Sync: %+v, want %+v", st, want)
	}
	assertObserved(t, e2, desired)
}

func TestManageIdempotentRepairUnmanage(t *testing.T) {
	l, e := managedLab(t)
	vm, stranger := testMAC(1), testMAC(2)
	if err := e.Allow(l.ctx, portA, vm, 0); err != nil {
		t.Fatal(err)
	}
	ruleset := func() string { return l.sw.Exec(t, "nft", "list", "table", "bridge", DefaultTable) }
	requireNft(t)
	before := ruleset()
	for i := 0; i < 3; i++ {
		if err := e.ManagePort(l.ctx, portA); err != nil {
			t.Fatal(err)
		}
		again := l.enforcer(t, Options{})
		if err := again.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := ruleset(); after != before {
		t.Errorf("ManagePort and New are not idempotent:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Someone flushes the port chain: the port is open. ManagePort
	// repairs it and keeps the pair.
	l.sw.Exec(t, "nft", "flush", "chain", "bridge", DefaultTable, portChainPrefix+portA)
	expectReceived(t, l.rxB, "stranger through the flushed chain", l.send(t, l.txA, l.macB, stranger, nil, etherTypeTest))
	if err := e.ManagePort(l.ctx, portA); err != nil {
		t.Fatal(err)
	}
	if after := ruleset(); after != before {
		t.Errorf("repaired ruleset differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	d := dropped(counters(t, e, portA))
	blocked := l.send(t, l.txA, l.macB, stranger, nil, etherTypeTest)
	waitCount(t, e, portA, "dropped", dropped, d+1)
	expectNotReceived(t, l.rxB, "stranger after repair", blocked)
	expectReceived(t, l.rxB, "allowed pair after repair", l.send(t, l.txA, l.macB, vm, nil, etherTypeTest))

	// Unmanaging opens the port and removes its pairs and counters.
	if err := e.UnmanagePort(l.ctx, portA); err != nil {
		t.Fatal(err)
	}
	if err := e.UnmanagePort(l.ctx, portA); err != nil {
		t.Errorf("second UnmanagePort: %v", err)
	}
	expectReceived(t, l.rxB, "stranger on an unmanaged port", l.send(t, l.txA, l.macB, stranger, nil, etherTypeTest))
	assertObserved(t, e, State{})
	if err := e.Allow(l.ctx, portA, vm, 0); !errors.Is(err, ErrNotManaged) {
		t.Errorf("Allow on an unmanaged port: %v, want ErrNotManaged", err)
	}

	// Remove takes the whole table away.
	if err := e.Remove(l.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(l.ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if out := l.sw.Exec(t, "nft", "list", "tables", "bridge"); strings.Contains(out, DefaultTable) {
		t.Errorf("table still there after Remove:\n%s", out)
	}
}

// TestConcurrentOps runs per-pair operations on several ports while Sync,
// Observed and Counters run in a loop (for the race detector, and to show
// that a stale Sync plan never fails a batch), then converges.
func TestConcurrentOps(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	ctx := context.Background()
	e, err := New(ctx, Options{NetNS: int(ns.Open(t).Fd()), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ports := []string{"p0", "p1", "p2", "p3"}
	desired := State{}
	for _, p := range ports {
		if err := e.ManagePort(ctx, p); err != nil {
			t.Fatal(err)
		}
		desired[p] = PortPairs{Allowed: []Pair{mustPair(t, testMAC(200), 1)}}
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.Sync(ctx, desired); err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
			if _, err := e.Observed(ctx); err != nil {
				t.Errorf("Observed: %v", err)
				return
			}
			if _, err := e.Counters(ctx); err != nil {
				t.Errorf("Counters: %v", err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for _, p := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				mac, vid := testMAC(byte(i)), uint16(i%3)
				var err error
				switch i % 4 {
				case 0:
					err = e.Allow(ctx, p, mac, vid)
				case 1:
					err = e.Pending(ctx, p, mac, vid)
				case 2:
					err = e.Activate(ctx, p, mac, vid)
				case 3:
					err = e.Revoke(ctx, p, mac, vid)
				}
				if err != nil {
					t.Errorf("%s op %d: %v", p, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	if _, err := e.Sync(ctx, desired); err != nil {
		t.Fatal(err)
	}
	assertObserved(t, e, desired)
}

func TestInvalidInput(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	e, err := New(context.Background(), Options{NetNS: int(ns.Open(t).Fd()), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
		run  func() error
	}{
		{"empty port", ErrInvalidPort, func() error { return e.ManagePort(ctx, "") }},
		{"long port", ErrInvalidPort, func() error { return e.ManagePort(ctx, "a-very-long-name0") }},
		{"port with space", ErrInvalidPort, func() error { return e.Allow(ctx, "a b", testMAC(1), 0) }},
		{"short MAC", ErrInvalidPair, func() error { return e.Allow(ctx, "p", net.HardwareAddr{1, 2}, 0) }},
		{"nil MAC", ErrInvalidPair, func() error { return e.Revoke(ctx, "p", nil, 0) }},
		{"group MAC", ErrInvalidPair, func() error { return e.Pending(ctx, "p", net.HardwareAddr{1, 0, 0, 0, 0, 1}, 0) }},
		{"zero MAC", ErrInvalidPair, func() error { return e.Activate(ctx, "p", make(net.HardwareAddr, 6), 0) }},
		{"VID 4095", ErrInvalidPair, func() error { return e.Allow(ctx, "p", testMAC(1), 4095) }},
		{"unmanaged port", ErrNotManaged, func() error { return e.Allow(ctx, "p", testMAC(1), 1) }},
		{"unmanaged port revoke", ErrNotManaged, func() error { return e.Revoke(ctx, "p", testMAC(1), 1) }},
		{"bad desired", ErrInvalidPair, func() error {
			_, err := e.Sync(ctx, State{"p": {Allowed: []Pair{{VID: 5000}}}})
			return err
		}},
	} {
		if err := tc.run(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	// The Enforcer still works after the errors.
	if err := e.ManagePort(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := e.Allow(ctx, "p", testMAC(1), 1); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Allow(cctx, "p", testMAC(1), 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Allow with a cancelled context: %v", err)
	}
	if _, err := New(ctx, Options{NetNS: int(ns.Open(t).Fd()), TPID: 0x9100, Logger: testLogger(t)}); err == nil {
		t.Error("New accepted TPID 0x9100")
	}
}

// TestNftListsRuleset checks that the nft CLI (Debian package nftables)
// can print what the Enforcer writes: operators debug with it.
func TestNftListsRuleset(t *testing.T) {
	nstest.Require(t)
	requireNft(t)
	ns := nstest.New(t)
	e, err := New(context.Background(), Options{NetNS: int(ns.Open(t).Fd()), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if err := e.ManagePort(ctx, "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := e.Allow(ctx, "eth1", testMAC(1), 100); err != nil {
		t.Fatal(err)
	}
	if err := e.Pending(ctx, "eth1", testMAC(2), 0); err != nil {
		t.Fatal(err)
	}
	if err := e.AllowPair(ctx, "eth1", Pair{MAC: [6]byte(testMAC(3)), SVID: 5, VID: 100}); err != nil {
		t.Fatal(err)
	}
	out := ns.Exec(t, "nft", "list", "ruleset")
	for _, want := range []string{
		`"eth1" : jump port-eth1`,
		"02:00:00:00:0e:01 . 0 . 100",
		"02:00:00:00:0e:02 . 0 . 0",
		"02:00:00:00:0e:03 . 5 . 100",
		`counter name "drop-eth1" drop`,
		". vlan id @allow-eth1",
		"ether type 8021ad vlan type 8021q ether saddr . vlan id . vlan id @allow-eth1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, out)
		}
	}
	ns.Exec(t, "nft", "-j", "list", "ruleset")
}

func requireNft(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables): run tests/install-deps.sh")
	}
}

func assertObserved(t testing.TB, e *Enforcer, want State) {
	t.Helper()
	got, err := e.Observed(context.Background())
	if err != nil {
		t.Fatalf("Observed: %v", err)
	}
	norm := State{}
	for port, pp := range want {
		norm[port] = normalise(pp.Allowed, pp.Pending)
	}
	if !reflect.DeepEqual(got, norm) {
		t.Errorf("Observed:\n got %v\nwant %v", got, norm)
	}
}
