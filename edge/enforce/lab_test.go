package enforce

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/edge/enforce/internal/nstest"
)

// The lab: a "switch" namespace with bridge br0 and ports sw-a, sw-b, sw-c,
// each a veth to eth0 in host namespace A, B or C.
//
//	host A eth0 ---- sw-a \
//	host B eth0 ---- sw-b -- br0   (switch namespace, enforcer's table)
//	host C eth0 ---- sw-c /
const (
	portA = "sw-a"
	portB = "sw-b"
	portC = "sw-c"
	// etherTypeTest is IEEE 802 local experimental EtherType 1, carried
	// by the data frames the tests send.
	etherTypeTest = 0x88b5
)

// testMagic starts the payload of every frame a test sends; an 8-byte
// frame ID follows it.
var testMagic = []byte("tether-enforce-test:")

type lab struct {
	sw       *nstest.NS
	a, b, c  *nstest.NS
	swFD     int
	macB     net.HardwareAddr
	txA, txC *packet.Conn
	rxB      *receiver
	nextID   atomic.Uint64
	ctx      context.Context
}

func newLab(t *testing.T) *lab {
	t.Helper()
	nstest.Require(t)
	l := &lab{ctx: context.Background()}
	l.sw, l.a, l.b, l.c = nstest.New(t), nstest.New(t), nstest.New(t), nstest.New(t)
	nstest.Veth(t, l.sw, portA, l.a, "eth0")
	nstest.Veth(t, l.sw, portB, l.b, "eth0")
	nstest.Veth(t, l.sw, portC, l.c, "eth0")
	nstest.Bridge(t, l.sw, "br0", portA, portB, portC)
	l.swFD = int(l.sw.Open(t).Fd())
	l.macB = l.b.MAC(t, "eth0")
	// The senders are bound to an EtherType nobody sends, so they never
	// queue frames they are not read for.
	l.txA = l.a.Listen(t, "eth0", 0x88b6)
	l.txC = l.c.Listen(t, "eth0", 0x88b6)
	l.rxB = listen(t, l.b, "eth0", unix.ETH_P_ALL)
	return l
}

// enforcer returns a new Enforcer on the switch namespace, closed when the
// test ends.
func (l *lab) enforcer(t testing.TB, opts Options) *Enforcer {
	t.Helper()
	opts.NetNS = l.swFD
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	e, err := New(l.ctx, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// frame builds an Ethernet frame carrying testMagic and id. A non-nil tag
// adds VLAN tags, outer first: tag[0] is the TPID, tag[1] the VID, tag[2]
// and tag[3] those of a second tag.
func frame(dst, src net.HardwareAddr, tag []uint16, etherType uint16, id uint64) []byte {
	b := make([]byte, 0, 64)
	b = append(b, dst...)
	b = append(b, src...)
	for i := 0; i+1 < len(tag); i += 2 { // one tag per (TPID, VID)
		b = binary.BigEndian.AppendUint16(b, tag[i])
		b = binary.BigEndian.AppendUint16(b, tag[i+1]&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	b = append(b, testMagic...)
	b = binary.BigEndian.AppendUint64(b, id)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// frameID finds testMagic and the ID in a received frame, tagged or not.
// AF_PACKET hands received frames over with the VLAN tag moved to ancillary
// data, so a tagged frame usually arrives without it.
func frameID(b []byte) (uint64, bool) {
	off := 14
	if len(b) >= 18 && (binary.BigEndian.Uint16(b[12:]) == etherTypeCTag || binary.BigEndian.Uint16(b[12:]) == etherTypeSTag) {
		off = 18
	}
	if len(b) < off+len(testMagic)+8 || !bytes.Equal(b[off:off+len(testMagic)], testMagic) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[off+len(testMagic):]), true
}

// send sends one frame from conn (host A or C) and returns its ID.
func (l *lab) send(t testing.TB, conn *packet.Conn, dst, src net.HardwareAddr, tag []uint16, etherType uint16) uint64 {
	t.Helper()
	id := l.nextID.Add(1)
	if _, err := conn.WriteTo(frame(dst, src, tag, etherType, id), &packet.Addr{HardwareAddr: dst}); err != nil {
		t.Fatalf("send frame: %v", err)
	}
	return id
}

// receiver records the IDs of the test frames a socket receives.
type receiver struct {
	mu   sync.Mutex
	seen map[uint64]bool
}

func listen(t testing.TB, ns *nstest.NS, ifname string, proto int) *receiver {
	t.Helper()
	c := ns.Listen(t, ifname, proto)
	r := &receiver{seen: map[uint64]bool{}}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return // closed at the end of the test
			}
			if id, ok := frameID(buf[:n]); ok {
				r.mu.Lock()
				r.seen[id] = true
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *receiver) has(id uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

// waitAll waits until r has seen every ID and reports the ones missing
// after timeout.
func (r *receiver) waitAll(ids []uint64, timeout time.Duration) []uint64 {
	deadline := time.Now().Add(timeout)
	for {
		var missing []uint64
		for _, id := range ids {
			if !r.has(id) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(time.Millisecond)
	}
}

// expectReceived fails t unless r gets every frame in ids within a second.
func expectReceived(t testing.TB, r *receiver, what string, ids ...uint64) {
	t.Helper()
	if missing := r.waitAll(ids, time.Second); len(missing) > 0 {
		t.Errorf("%s: %d of %d frames never arrived (IDs %v)", what, len(missing), len(ids), missing)
	}
}

// expectNotReceived fails t if r has any frame in ids. Call it after the
// frames are known to have been dealt with (their drops counted).
func expectNotReceived(t testing.TB, r *receiver, what string, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		if r.has(id) {
			t.Errorf("%s: frame %d arrived, want it dropped", what, id)
		}
	}
}

// counters reads one port's counters.
func counters(t testing.TB, e *Enforcer, port string) PortCounters {
	t.Helper()
	all, err := e.Counters(context.Background())
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	pc, ok := all[port]
	if !ok {
		t.Fatalf("Counters: no entry for %s in %v", port, all)
	}
	return pc
}

// waitCount polls a counter until it reaches want, then checks, after a
// short settling time, that it did not go beyond.
func waitCount(t testing.TB, e *Enforcer, port, what string, get func(PortCounters) uint64, want uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	var got uint64
	for {
		got = get(counters(t, e, port))
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if got = get(counters(t, e, port)); got != want {
		t.Fatalf("%s counter on %s = %d, want %d", what, port, got, want)
	}
}

func dropped(c PortCounters) uint64  { return c.Dropped.Packets }
func accepted(c PortCounters) uint64 { return c.Accepted.Packets }
func control(c PortCounters) uint64  { return c.Control.Packets }

// fdbHas reports whether the bridge in ns has learned mac on any port.
func fdbHas(t testing.TB, ns *nstest.NS, mac net.HardwareAddr) bool {
	t.Helper()
	out := nstest.Run(t, "bridge", "-n", ns.Name, "-j", "fdb", "show", "br", "br0")
	var entries []struct {
		MAC string `json:"mac"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("bridge -j fdb show: %v\n%s", err, out)
	}
	for _, e := range entries {
		if strings.EqualFold(e.MAC, mac.String()) {
			return true
		}
	}
	return false
}

// testLogger sends an Enforcer's logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testMAC returns the locally administered unicast MAC 02:00:00:00:0e:<n>.
func testMAC(n byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0x0e, n} }

func mustPair(t testing.TB, mac net.HardwareAddr, vid uint16) Pair {
	t.Helper()
	p, err := NewPair(mac, vid)
	if err != nil {
		t.Fatalf("NewPair: %v", err)
	}
	return p
}
