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

	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/internal/ovstest"
	"github.com/tether-net/tether/internal/pkttest"
)

// Names in the lab: the VM's end of its veth (vm1) and the port on the
// bridge (vm1p); the uplink port (up0p) and the edge switch's end (up0),
// where frames are captured.
const (
	vmDev, vmPort = "vm1", "vm1p"
	upDev, upPort = "up0", "up0p"
	tpidCTag      = pkttest.TPIDCTag
	tpidSTag      = pkttest.TPIDSTag
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

// rawSock is a pkttest socket on one interface of the lab: the bytes it
// reads are the bytes on the wire, VLAN tags included.
type rawSock struct {
	s *pkttest.Sock
}

// openSock opens the socket in the lab's namespace.
func (l *lab) openSock(t testing.TB, ifname string) *rawSock {
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

// send writes one frame.
func (s *rawSock) send(frame []byte) error { return s.s.Send(frame) }

// recv returns the next incoming frame, read into buf, with its tag
// restored, or nil after 50 ms.
func (s *rawSock) recv(buf []byte) ([]byte, error) {
	f, err := s.s.Recv(buf, 50*time.Millisecond)
	if errors.Is(err, pkttest.ErrTimeout) {
		return nil, nil
	}
	return f, err
}

// testFrame builds a frame from src with the tags (TPID, VID pairs) and
// a payload carrying seq.
func testFrame(src net.HardwareAddr, seq uint64, tags ...uint16) []byte {
	return pkttest.Frame(dstMAC, src, binary.BigEndian.AppendUint64([]byte("tether-ovs"), seq), tags...)
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
func parseTestFrame(b []byte) (parsed, bool) {
	f, ok := pkttest.Parse(b)
	if !ok || len(f.Payload) < 18 || string(f.Payload[:10]) != "tether-ovs" {
		return parsed{}, false
	}
	p := parsed{src: f.Src.String(), seq: binary.BigEndian.Uint64(f.Payload[10:])}
	for _, tg := range f.Tags {
		p.tags = append(p.tags, tg[0], tg[1])
	}
	return p, true
}

// collect reads test frames from s until quiet has passed with none, or
// the context ends.
func collect(ctx context.Context, s *rawSock, quiet time.Duration) ([]parsed, error) {
	buf := make([]byte, 9000)
	var out []parsed
	last := time.Now()
	for time.Since(last) < quiet && ctx.Err() == nil {
		f, err := s.recv(buf)
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
