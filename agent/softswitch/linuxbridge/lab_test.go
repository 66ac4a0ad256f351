package linuxbridge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/internal/pkttest"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
)

// lab is where a test builds bridges and veth pairs: a fresh network
// namespace on the host, the VM's own namespace in the kernel VM (busybox
// has no `ip netns`; each boot is fresh, names carry a per-test suffix).
type lab struct {
	ctx    context.Context
	ns     *netnstest.NS // nil in the VM
	nsfd   int           // 0 in the VM: the current namespace
	h      *netlink.Handle
	suffix string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	l := &lab{ctx: ctx, suffix: hex.EncodeToString(rnd[:])}
	if kvmtest.InVM() {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		l.h = h
		t.Cleanup(h.Close)
		return l
	}
	netnstest.Require(t)
	l.ns = netnstest.New(t)
	f, err := os.Open(filepath.Join("/run/netns", l.ns.Name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.nsfd = int(f.Fd())
	h, err := netlink.NewHandleAt(nsHandle(l.nsfd), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	l.h = h
	t.Cleanup(h.Close)
	return l
}

// name is base with the lab's suffix (at most 15 bytes for base <= 10).
func (l *lab) name(base string) string { return base + l.suffix }

// do runs fn inside the lab's namespace.
func (l *lab) do(fn func() error) error {
	if l.ns == nil {
		return fn()
	}
	return l.ns.Do(fn)
}

// veth creates the pair a-b, both up, deleted when the test ends.
func (l *lab) veth(t *testing.T, a, b string) {
	t.Helper()
	if err := l.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		t.Fatalf("add veth %s-%s: %v", a, b, err)
	}
	t.Cleanup(func() {
		if lk, err := l.h.LinkByName(a); err == nil {
			_ = l.h.LinkDel(lk)
		}
	})
	for _, n := range []string{a, b} {
		l.disableIPv6(n)
		lk, err := l.h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.h.LinkSetUp(lk); err != nil {
			t.Fatal(err)
		}
	}
}

// disableIPv6 keeps router and neighbour solicitations off the link.
func (l *lab) disableIPv6(ifname string) {
	_ = l.do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1"), 0o644)
	})
}

// waitUp waits until ifname passes frames (carrier seen, qdisc attached).
func (l *lab) waitUp(t *testing.T, ifname string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		lk, err := l.h.LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		if lk.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up after 5s (%s)", ifname, lk.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// plainBridge creates a bridge without vlan_filtering (the host kernel has
// none) with the given ports, all up.
func (l *lab) plainBridge(t *testing.T, name string, ports ...string) {
	t.Helper()
	if err := l.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	t.Cleanup(func() {
		if lk, err := l.h.LinkByName(name); err == nil {
			_ = l.h.LinkDel(lk)
		}
	})
	br, err := l.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	l.disableIPv6(name)
	for _, p := range ports {
		lk, err := l.h.LinkByName(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.h.LinkSetMaster(lk, br); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) rxPackets(t testing.TB, ifname string) uint64 {
	t.Helper()
	lk, err := l.h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return lk.Attrs().Statistics.RxPackets
}

// rawSock is a pkttest socket on one interface of the lab.
type rawSock struct {
	s *pkttest.Sock
}

func (l *lab) rawSocket(t *testing.T, ifname string) *rawSock {
	t.Helper()
	var s *pkttest.Sock
	err := l.do(func() (err error) {
		s, err = pkttest.Open(ifname)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &rawSock{s: s}
}

func (s *rawSock) send(frame []byte) error { return s.s.Send(frame) }

// recv returns the next frame received (outgoing copies skipped), with any
// offloaded tag reinserted, or an error after timeout.
func (s *rawSock) recv(timeout time.Duration) ([]byte, error) {
	f, err := s.s.Recv(make([]byte, 9216), timeout)
	if err != nil {
		return nil, err
	}
	return slices.Clip(f), nil
}

// testFrame builds a frame with the given tags (TPID, VID pairs, outer
// first), EtherType pkttest.EtherTypeTest and id in its payload, padded to 60 bytes.
func testFrame(dst, src net.HardwareAddr, id uint32, tags ...uint16) []byte {
	return pkttest.Frame(dst, src, binary.BigEndian.AppendUint32([]byte("tether"), id), tags...)
}

// parsed is a captured test frame's header.
type parsed struct {
	src  net.HardwareAddr
	tags [][2]uint16 // (TPID, VID), outer first
	id   uint32
}

// parseTest decodes a test frame; ok is false for anything else.
func parseTest(b []byte) (parsed, bool) {
	f, ok := pkttest.Parse(b)
	if !ok || len(f.Payload) < 10 || string(f.Payload[:6]) != "tether" {
		return parsed{}, false
	}
	return parsed{src: f.Src, tags: f.Tags, id: binary.BigEndian.Uint32(f.Payload[6:])}, true
}

// collect reads test frames for d and returns them by id.
func (s *rawSock) collect(d time.Duration) map[uint32]parsed {
	out := map[uint32]parsed{}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, err := s.recv(time.Until(deadline))
		if err != nil {
			break
		}
		if p, ok := parseTest(b); ok {
			out[p.id] = p
		}
	}
	return out
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func mac(n byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, n} }

var bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func nsHandle(fd int) netns.NsHandle { return netns.NsHandle(fd) }
