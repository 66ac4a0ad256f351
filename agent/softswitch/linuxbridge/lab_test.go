package linuxbridge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
)

// etherTypeTest is the IEEE 802 local experimental EtherType the test
// frames carry, so nothing else the kernel sends is taken for them.
const etherTypeTest = 0x88b5

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

// rawSock is an AF_PACKET socket bound to one interface, with
// PACKET_AUXDATA on so that a VLAN tag the kernel took out of the frame
// (receive offload, or the bridge's hardware-accelerated tag) is put back
// into the captured bytes where it was on the wire, as libpcap does.
type rawSock struct {
	fd int
}

func (l *lab) rawSocket(t *testing.T, ifname string) *rawSock {
	t.Helper()
	var s *rawSock
	err := l.do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("PACKET_AUXDATA: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		s = &rawSock{fd: fd}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *rawSock) send(frame []byte) error {
	_, err := unix.Write(s.fd, frame)
	return err
}

// recv returns the next frame received (outgoing copies skipped), with any
// offloaded tag reinserted, or an error after timeout.
func (s *rawSock) recv(timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 9216)
	oob := make([]byte, 256)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, errTimeout
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		frame := append([]byte(nil), buf[:n]...)
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			// struct tpacket_auxdata: status, len, snaplen (u32), mac,
			// net, vlan_tci, vlan_tpid (u16), host byte order.
			if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
				continue
			}
			status := binary.NativeEndian.Uint32(m.Data[0:4])
			if status&unix.TP_STATUS_VLAN_VALID == 0 || len(frame) < 12 {
				continue
			}
			// Without TP_STATUS_VLAN_TPID_VALID the TPID is unknown: 0,
			// which no test accepts.
			var tpid uint16
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = binary.NativeEndian.Uint16(m.Data[18:20])
			}
			tci := binary.NativeEndian.Uint16(m.Data[16:18])
			tag := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tpid), tci)
			frame = append(frame[:12], append(tag, frame[12:]...)...)
		}
		return frame, nil
	}
}

var errTimeout = errors.New("receive timeout")

// testFrame builds a frame with the given tags (TPID, VID pairs, outer
// first), EtherType etherTypeTest and id in its payload, padded to 60 bytes.
func testFrame(dst, src net.HardwareAddr, id uint32, tags ...uint16) []byte {
	b := append(append([]byte(nil), dst...), src...)
	for i := 0; i+1 < len(tags); i += 2 {
		b = binary.BigEndian.AppendUint16(b, tags[i])
		b = binary.BigEndian.AppendUint16(b, tags[i+1])
	}
	b = binary.BigEndian.AppendUint16(b, etherTypeTest)
	b = append(b, "tether"...)
	b = binary.BigEndian.AppendUint32(b, id)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// parsed is a captured test frame's header.
type parsed struct {
	src  net.HardwareAddr
	tags [][2]uint16 // (TPID, VID), outer first
	id   uint32
}

// parseTest decodes a test frame; ok is false for anything else.
func parseTest(b []byte) (parsed, bool) {
	if len(b) < 14 {
		return parsed{}, false
	}
	p := parsed{src: net.HardwareAddr(b[6:12])}
	i := 12
	for i+4 <= len(b) {
		et := binary.BigEndian.Uint16(b[i:])
		if et != tpidCTag && et != tpidSTag {
			break
		}
		p.tags = append(p.tags, [2]uint16{et, binary.BigEndian.Uint16(b[i+2:]) & 0x0fff})
		i += 4
	}
	if i+2+6+4 > len(b) || binary.BigEndian.Uint16(b[i:]) != etherTypeTest || string(b[i+2:i+8]) != "tether" {
		return parsed{}, false
	}
	p.id = binary.BigEndian.Uint32(b[i+8:])
	return p, true
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
