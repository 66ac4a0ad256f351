package ovs_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/agent/softswitch/ovs/internal/ovstest"
	"github.com/tether-net/tether/internal/netnstest"
)

// Names in the lab: the VM's end of its veth (vm1) and the port on the
// bridge (vm1p); the uplink port (up0p) and the edge switch's end (up0),
// where frames are captured.
const (
	vmDev, vmPort = "vm1", "vm1p"
	upDev, upPort = "up0", "up0p"
	// etherTypeTest is IEEE 802's local experimental EtherType.
	etherTypeTest = 0x88b5
	tpidCTag      = 0x8100
	tpidSTag      = 0x88a8
)

var (
	vmMAC      = net.HardwareAddr{0x52, 0x54, 0x00, 0x0a, 0x00, 0x01}
	foreignMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x0b, 0xad, 0x01}
	dstMAC     = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe}
)

// lab is a private ovsdb-server and ovs-vswitchd with a bridge and two
// veth pairs: the VM's and the uplink's.
type lab struct {
	ctx    context.Context
	ovs    *ovstest.OVS
	sw     *ovs.Switch
	do     func(func() error) error // runs fn in the lab's network namespace
	netns  string                   // its name, "" for the current one
	bridge string
}

// newLab starts the daemons and the bridge. On the host everything runs in
// a fresh network namespace with the userspace (netdev) datapath; inside
// the kernel VM (datapath "system") in the VM's own namespace.
func newLab(t *testing.T, datapath string) *lab {
	t.Helper()
	ovstest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	l := &lab{ctx: ctx, bridge: fmt.Sprintf("tb%d", os.Getpid()%100000)}
	netns := ""
	if datapath == "system" {
		l.do = func(fn func() error) error { return fn() }
	} else {
		netnstest.Require(t)
		ns := netnstest.New(t)
		netnstest.DisableIPv6(t, ns)
		l.do, netns = ns.Do, ns.Name
	}
	l.netns = netns
	for _, pair := range [][2]string{{vmDev, vmPort}, {upDev, upPort}} {
		if err := l.do(func() error { return veth(pair[0], pair[1]) }); err != nil {
			t.Fatal(err)
		}
	}
	if datapath == "system" {
		t.Cleanup(func() {
			for _, n := range []string{vmDev, upDev} {
				if link, err := netlink.LinkByName(n); err == nil {
					netlink.LinkDel(link)
				}
			}
		})
	}
	l.ovs = ovstest.Start(t)
	l.ovs.StartVSwitchd(netns)
	sw, err := ovs.New(ctx, ovs.Config{DB: l.ovs.DB, RunDir: l.ovs.Dir, Bridge: l.bridge, DatapathType: datapath, Uplink: upPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	if err := sw.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	l.sw = sw
	return l
}

// veth creates a veth pair, both ends up, and waits for the carrier.
func veth(a, b string) error {
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		return fmt.Errorf("veth %s/%s: %w", a, b, err)
	}
	for _, n := range []string{a, b} {
		link, err := netlink.LinkByName(n)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("up %s: %w", n, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range []string{a, b} {
		for {
			link, err := netlink.LinkByName(n)
			if err != nil {
				return err
			}
			if link.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no carrier after 5s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// linkwatch: frames sent before the qdisc is attached are dropped.
	time.Sleep(100 * time.Millisecond)
	return nil
}

// rawSock is an AF_PACKET socket on one interface that sees every frame
// with its VLAN tag put back where the kernel had taken it out
// (PACKET_AUXDATA), so the bytes are the bytes on the wire.
type rawSock struct {
	fd int
}

// openSock opens the socket in the lab's namespace.
func (l *lab) openSock(t testing.TB, ifname string) *rawSock {
	t.Helper()
	var s rawSock
	err := l.do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("PACKET_AUXDATA: %w", err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if s.fd > 0 {
			unix.Close(s.fd)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return &s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// send writes one frame.
func (s *rawSock) send(frame []byte) error {
	_, err := unix.Write(s.fd, frame)
	return err
}

// recv returns the next incoming frame with its tag restored, or nil
// after the socket's 50 ms timeout.
func (s *rawSock) recv(buf, oob []byte) ([]byte, error) {
	for {
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		frame := buf[:n]
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			// struct tpacket_auxdata: status, len, snaplen (u32), mac, net,
			// vlan_tci, vlan_tpid (u16).
			if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
				continue
			}
			status := binary.NativeEndian.Uint32(m.Data[0:4])
			if status&unix.TP_STATUS_VLAN_VALID == 0 {
				continue
			}
			tci := binary.NativeEndian.Uint16(m.Data[16:18])
			tpid := uint16(tpidCTag)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				tpid = binary.NativeEndian.Uint16(m.Data[18:20])
			}
			tagged := make([]byte, 0, len(frame)+4)
			tagged = append(tagged, frame[:12]...)
			tagged = binary.BigEndian.AppendUint16(tagged, tpid)
			tagged = binary.BigEndian.AppendUint16(tagged, tci)
			frame = append(tagged, frame[12:]...)
		}
		return frame, nil
	}
}

// testFrame builds a frame from src with the tags (TPID, VID pairs) and
// a payload carrying seq.
func testFrame(src net.HardwareAddr, seq uint64, tags ...uint16) []byte {
	f := make([]byte, 0, 64)
	f = append(f, dstMAC...)
	f = append(f, src...)
	for i := 0; i+1 < len(tags); i += 2 {
		f = binary.BigEndian.AppendUint16(f, tags[i])
		f = binary.BigEndian.AppendUint16(f, tags[i+1])
	}
	f = binary.BigEndian.AppendUint16(f, etherTypeTest)
	f = append(f, "tether-ovs"...)
	f = binary.BigEndian.AppendUint64(f, seq)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// parsed is a captured test frame: its source, its tags in order, and its
// sequence number.
type parsed struct {
	src  string
	tags []uint16 // TPID, VID, TPID, VID...
	seq  uint64
}

// parseTestFrame reads back a frame testFrame built (after the switch
// added or removed tags); ok is false for any other frame.
func parseTestFrame(f []byte) (parsed, bool) {
	if len(f) < 14 {
		return parsed{}, false
	}
	p := parsed{src: net.HardwareAddr(f[6:12]).String()}
	off := 12
	for off+4 <= len(f) {
		et := binary.BigEndian.Uint16(f[off:])
		if et != tpidCTag && et != tpidSTag {
			break
		}
		p.tags = append(p.tags, et, binary.BigEndian.Uint16(f[off+2:])&0x0fff)
		off += 4
	}
	if off+2+10+8 > len(f) || binary.BigEndian.Uint16(f[off:]) != etherTypeTest || string(f[off+2:off+12]) != "tether-ovs" {
		return parsed{}, false
	}
	p.seq = binary.BigEndian.Uint64(f[off+12:])
	return p, true
}

// collect reads test frames from s until quiet has passed with none, or
// the context ends.
func collect(ctx context.Context, s *rawSock, quiet time.Duration) ([]parsed, error) {
	buf, oob := make([]byte, 9000), make([]byte, 256)
	var out []parsed
	last := time.Now()
	for time.Since(last) < quiet && ctx.Err() == nil {
		f, err := s.recv(buf, oob)
		if err != nil {
			return out, err
		}
		if p, ok := parseTestFrame(f); ok {
			out = append(out, p)
			last = time.Now()
		}
	}
	return out, nil
}
