package lldpagent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0xa, 1}
	macB = [6]byte{0x02, 0, 0, 0, 0xb, 1}
)

// quiet returns a logger that drops everything below Error.
func quiet() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// mutableInfo is a LocalInfo whose system name can change under a lock.
type mutableInfo struct {
	mu   sync.Mutex
	info LocalInfo
}

func (m *mutableInfo) setName(n string) {
	m.mu.Lock()
	m.info.SystemName = n
	m.mu.Unlock()
}

func (m *mutableInfo) build() (wire.LLDPDU, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info.LLDPDU()
}

func newInfo(mac [6]byte, port, name string) *mutableInfo {
	return &mutableInfo{info: LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: append([]byte(nil), mac[:]...)},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(port)},
		SystemName: name,
	}}
}

// readAll reads the frames waiting on c.
func readAll(t *testing.T, c rawsock.Conn) []wire.LLDPDU {
	t.Helper()
	var out []wire.LLDPDU
	buf := make([]byte, 2000)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		n, err := c.ReadFrame(ctx, buf)
		cancel()
		if err != nil {
			return out
		}
		var h wire.EthernetHeader
		p, err := h.Parse(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if n < minFrameLen {
			t.Fatalf("frame of %d bytes, not padded to %d", n, minFrameLen)
		}
		var du wire.LLDPDU
		if err := du.UnmarshalBinary(append([]byte(nil), p...)); err != nil {
			t.Fatalf("agent sent an undecodable LLDPDU: %v", err)
		}
		out = append(out, du)
	}
}

// settle waits until the agent is idle again after a wake-up.
func settle(t *testing.T, idle <-chan struct{}) {
	t.Helper()
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not settle")
	}
	// Drain any further iteration.
	for {
		select {
		case <-idle:
		case <-time.After(10 * time.Millisecond):
			return
		}
	}
}

func sysName(du wire.LLDPDU) string {
	n := Neighbor{PDU: du}
	return n.SystemName()
}

func TestAgentFakeClockFastTxOnChange(t *testing.T) {
	conn, peer := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
	clock := newFakeClock(t0)
	info := newInfo(macA, "p0", "one")
	a, err := New(conn, Config{Build: info.build, Clock: clock, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	idle := make(chan struct{}, 1000)
	a.idle = idle
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	settle(t, idle)

	// frames[s] counts the LLDPDUs sent at second s.
	frames := map[int][]wire.LLDPDU{}
	sec := 0
	collect := func() { frames[sec] = append(frames[sec], readAll(t, peer)...) }
	step := func() {
		sec++
		if clock.Advance(time.Second) > 0 {
			settle(t, idle)
		}
		collect()
	}
	collect()
	for sec < 5 {
		step()
	}
	// An Update that changes nothing sends nothing.
	a.Update()
	settle(t, idle)
	collect()
	info.setName("two")
	a.Update()
	settle(t, idle)
	collect()
	for sec < 45 {
		step()
	}
	var got []int
	for s := 0; s <= sec; s++ {
		for range frames[s] {
			got = append(got, s)
		}
	}
	want := []int{0, 5, 6, 7, 8, 38}
	if !equalInts(got, want) {
		t.Fatalf("LLDPDUs at seconds %v, want %v", got, want)
	}
	if n := sysName(frames[0][0]); n != "one" {
		t.Fatalf("first LLDPDU names %q", n)
	}
	for _, s := range want[1:] {
		du := frames[s][0]
		if n := sysName(du); n != "two" || du.TTL != 121 {
			t.Fatalf("LLDPDU at %d s: name %q TTL %d", s, n, du.TTL)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	sd := readAll(t, peer)
	if len(sd) != 1 || sd[0].TTL != 0 || len(sd[0].TLVs) != 0 || string(sd[0].PortID.ID) != "p0" {
		t.Fatalf("shutdown LLDPDUs %+v, want one with TTL 0 and no optional TLVs", sd)
	}
	if s := a.Stats(); s.FramesOut != 7 || s.ShutdownFramesOut != 1 || s.TxErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

func TestAgentFakeClockNeighbors(t *testing.T) {
	connA, connB := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
	clock := newFakeClock(t0)
	events := make(chan Event, 100)
	mk := func(c rawsock.Conn, mac [6]byte, port, name string, onEvent func(Event)) *Agent {
		ag, err := New(c, Config{Build: newInfo(mac, port, name).build, Clock: clock, Logger: quiet(), OnEvent: onEvent,
			TxInterval: 10 * time.Second, TxHold: 2})
		if err != nil {
			t.Fatal(err)
		}
		return ag
	}
	a := mk(connA, macA, "p0", "alpha", nil)
	b := mk(connB, macB, "p1", "beta", func(ev Event) { events <- ev })
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	go b.Run(ctxB)

	ev := nextEvent(t, events)
	if ev.Kind != NeighborAdded || ev.Neighbor.SystemName() != "alpha" || ev.Neighbor.TTL != 21 || ev.Neighbor.Source != macA || ev.Port != "p1" {
		t.Fatalf("first event %v %+v", ev.Kind, ev.Neighbor)
	}
	waitFor(t, func() bool { return len(a.Neighbors()) == 1 })
	if n := a.Neighbors()[0]; n.SystemName() != "beta" {
		t.Fatalf("a sees %q", n.SystemName())
	}
	// Ten minutes of simulated time: the neighbours keep each other alive.
	for i := 0; i < 600; i++ {
		clock.Advance(time.Second)
		time.Sleep(200 * time.Microsecond)
	}
	if len(b.Neighbors()) != 1 || len(a.Neighbors()) != 1 {
		t.Fatalf("neighbours lost: a %d, b %d", len(a.Neighbors()), len(b.Neighbors()))
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected event %v", ev.Kind)
	default:
	}
	// A dies without a shutdown LLDPDU: B ages it out TTL (21 s) after its
	// last LLDPDU.
	connA.Close()
	if err := <-doneA; !errors.Is(err, rawsock.ErrClosed) {
		t.Fatalf("Run after its Conn closed = %v, want ErrClosed", err)
	}
	last := b.Neighbors()[0].LastSeen
	for i := 0; i < 30; i++ {
		clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
		if len(b.Neighbors()) == 0 {
			break
		}
	}
	ev = nextEvent(t, events)
	if ev.Kind != NeighborExpired || ev.At.Sub(last) != 21*time.Second {
		t.Fatalf("event %v at +%v after the last LLDPDU, want expired at +21s", ev.Kind, ev.At.Sub(last))
	}
	if s := b.Stats(); s.Ageouts != 1 || s.Neighbors != 0 || s.Malformed != 0 {
		t.Fatalf("b stats %+v", s)
	}
}

func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAgentBuildErrors(t *testing.T) {
	conn, peer := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
	clock := newFakeClock(t0)
	var fail sync.Mutex
	broken := true
	build := func() (wire.LLDPDU, error) {
		fail.Lock()
		defer fail.Unlock()
		if broken {
			return wire.LLDPDU{}, errors.New("inventory unavailable")
		}
		return newInfo(macA, "p0", "ok").build()
	}
	a, err := New(conn, Config{Build: build, Clock: clock, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	idle := make(chan struct{}, 1000)
	a.idle = idle
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	settle(t, idle)
	if got := readAll(t, peer); len(got) != 0 {
		t.Fatalf("sent %d LLDPDUs from a failing builder", len(got))
	}
	if s := a.Stats(); s.TxErrors != 1 {
		t.Fatalf("TxErrors %d, want 1", s.TxErrors)
	}
	fail.Lock()
	broken = false
	fail.Unlock()
	clock.Advance(30 * time.Second)
	settle(t, idle)
	if got := readAll(t, peer); len(got) != 1 {
		t.Fatalf("%d LLDPDUs after the builder recovered, want 1", len(got))
	}
	// An LLDPDU that does not encode (empty chassis ID) is an error, not
	// a panic.
	a.cfg.Build = func() (wire.LLDPDU, error) { return wire.LLDPDU{}, nil }
	clock.Advance(30 * time.Second)
	settle(t, idle)
	if s := a.Stats(); s.TxErrors != 2 {
		t.Fatalf("TxErrors %d, want 2", s.TxErrors)
	}
	cancel()
	<-done
}
