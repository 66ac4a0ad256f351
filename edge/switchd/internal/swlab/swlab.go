// Package swlab builds the throw-away lab that tether-switchd's real-traffic
// tests run in: a switch network namespace with a Linux bridge (STP on, so
// frames to 01:80:c2:00:00:00 stay with the bridge) whose ports swA and swB
// are veth pairs to eth0 in host namespaces A and B, raw AF_PACKET sockets
// opened inside a namespace, test frames sent from host A and seen (or not)
// by host B, and libvirt test driver node files for the VM manager.
//
//	host A eth0 ---- swA \
//	                      br0   (switch namespace: tether-switchd, nftables)
//	host B eth0 ---- swB /
//
// It follows l2/internal/netnstest and edge/enforce/internal/nstest, which
// edge/switchd cannot import. Everything is created with iproute2 and removed
// in t.Cleanup; IPv6 is off in every namespace so no router or neighbour
// solicitation adds frames.
package swlab

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/tether-net/tether/internal/netnstest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/l2/rawsock"
)

// EtherTypeTest is IEEE 802 local experimental EtherType 1, carried by the
// test frames.
const EtherTypeTest = 0x88b5

// Require skips t unless it runs as root with iproute2.
func Require(t testing.TB) { t.Helper(); netnstest.Require(t) }

// Run runs a command and fails t with its output when it fails.
func Run(t testing.TB, args ...string) string { t.Helper(); return netnstest.Run(t, args...) }

// WaitFor polls cond until it holds, failing t after d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NS is a network namespace created for one test.
type NS struct{ *netnstest.NS }

// NewNS creates a namespace with loopback up and IPv6 off, deleted when t
// ends.
func NewNS(t testing.TB) *NS {
	t.Helper()
	ns := netnstest.New(t)
	netnstest.DisableIPv6(t, ns)
	return &NS{ns}
}

// Path is the namespace's file.
func (n *NS) Path() string { return filepath.Join("/run/netns", n.Name) }

// Listen opens an AF_PACKET socket on ifname in n, bound to etherType
// (unix.ETH_P_ALL for every frame), or, with bridgePort, a tap filtered to
// it; the socket is closed when t ends.
func (n *NS) Listen(t testing.TB, ifname string, etherType uint16, bridgePort bool) *rawsock.Socket {
	t.Helper()
	var s *rawsock.Socket
	if err := n.Do(func() error {
		var err error
		s, err = rawsock.Listen(ifname, etherType, rawsock.Options{Groups: [][6]byte{}, BridgePort: bridgePort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Lab is the switch and its two hosts.
type Lab struct {
	// SW is the switch namespace (bridge br0, ports swA and swB); A and B
	// the hosts (eth0 each).
	SW, A, B *NS
	// TxA sends test frames from host A; RxB collects host B's.
	TxA *rawsock.Socket
	RxB *FrameSink

	revOnce sync.Once
	txB     *rawsock.Socket // host B's sender (SendFromB)
	rxA     *FrameSink      // host A's sink (SendFromB)
}

// NewLab builds the namespaces and the bridge. STP is on with the smallest
// forward delay (2 s): the ports forward data after 4 s (WaitForwarding);
// LLDP and ECP pass at once.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	Require(t)
	l := &Lab{SW: NewNS(t), A: NewNS(t), B: NewNS(t)}
	for _, h := range []struct {
		host *NS
		port string
	}{{l.A, "swA"}, {l.B, "swB"}} {
		Run(t, "ip", "link", "add", h.port, "netns", l.SW.Name, "type", "veth", "peer", "name", "eth0", "netns", h.host.Name)
		Run(t, "ip", "-n", h.host.Name, "link", "set", "eth0", "up")
	}
	Run(t, "ip", "-n", l.SW.Name, "link", "add", "br0", "type", "bridge", "stp_state", "1", "forward_delay", "200")
	for _, p := range []string{"swA", "swB"} {
		Run(t, "ip", "-n", l.SW.Name, "link", "set", p, "master", "br0")
		Run(t, "ip", "-n", l.SW.Name, "link", "set", p, "up")
	}
	Run(t, "ip", "-n", l.SW.Name, "link", "set", "br0", "up")
	for _, p := range []string{"swA", "swB"} {
		l.SW.WaitUp(t, p)
	}
	l.A.WaitUp(t, "eth0")
	l.B.WaitUp(t, "eth0")
	l.TxA = l.A.Listen(t, "eth0", 0x88b6, false) // an EtherType nobody sends: a sender only
	l.RxB = NewFrameSink(t, l.B.Listen(t, "eth0", unix.ETH_P_ALL, false))
	return l
}

// WaitForwarding waits until STP has moved swA and swB to forwarding.
func (l *Lab) WaitForwarding(t testing.TB) {
	t.Helper()
	WaitFor(t, 10*time.Second, "STP forwarding on swA and swB", func() bool {
		for _, p := range []string{"swA", "swB"} {
			out, err := exec.Command("ip", "netns", "exec", l.SW.Name, "cat", "/sys/class/net/"+p+"/brport/state").Output()
			if err != nil || strings.TrimSpace(string(out)) != "3" {
				return false
			}
		}
		return true
	})
}

// FrameSink collects the IDs of the test frames a socket receives.
type FrameSink struct {
	mu  sync.Mutex
	got map[uint64]bool
}

var testMagic = []byte("tether-switchd-test:")

// NewFrameSink reads s until t ends.
func NewFrameSink(t testing.TB, s *rawsock.Socket) *FrameSink {
	fs := &FrameSink{got: map[uint64]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, err := s.ReadFrame(ctx, buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			if i := bytes.Index(buf[:n], testMagic); i >= 0 && i+len(testMagic)+8 <= n {
				id := binary.BigEndian.Uint64(buf[i+len(testMagic):])
				fs.mu.Lock()
				fs.got[id] = true
				fs.mu.Unlock()
			}
		}
	}()
	return fs
}

// Has reports whether frame id arrived.
func (fs *FrameSink) Has(id uint64) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.got[id]
}

var frameID struct {
	sync.Mutex
	n uint64
}

// Send sends a broadcast test frame from host A with source mac, tagged
// with vid (0: untagged), and reports whether host B received it within
// wait.
func (l *Lab) Send(t testing.TB, mac [6]byte, vid uint16, wait time.Duration) bool {
	t.Helper()
	var tags [][2]uint16
	if vid != 0 {
		tags = append(tags, [2]uint16{0x8100, vid})
	}
	return l.SendTags(t, mac, tags, wait)
}

// SendTags is Send with the VLAN tags given, outer first, each a (TPID,
// VID): {{0x88a8, 5}, {0x8100, 100}} is C-VID 100 inside S-VID 5.
func (l *Lab) SendTags(t testing.TB, mac [6]byte, tags [][2]uint16, wait time.Duration) bool {
	t.Helper()
	return sendVia(t, l.TxA, l.RxB, mac, tags, wait)
}

// SendFromB is Send the other way: from host B, received on host A. The
// first call opens host B's sender and host A's sink (kept until t ends).
func (l *Lab) SendFromB(t testing.TB, mac [6]byte, vid uint16, wait time.Duration) bool {
	t.Helper()
	l.revOnce.Do(func() {
		l.txB = l.B.Listen(t, "eth0", 0x88b6, false)
		l.rxA = NewFrameSink(t, l.A.Listen(t, "eth0", unix.ETH_P_ALL, false))
	})
	var tags [][2]uint16
	if vid != 0 {
		tags = append(tags, [2]uint16{0x8100, vid})
	}
	return sendVia(t, l.txB, l.rxA, mac, tags, wait)
}

// sendVia sends one test frame on tx and reports whether rx got it within
// wait.
func sendVia(t testing.TB, tx *rawsock.Socket, rx *FrameSink, mac [6]byte, tags [][2]uint16, wait time.Duration) bool {
	t.Helper()
	frameID.Lock()
	frameID.n++
	id := frameID.n
	frameID.Unlock()
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	f = append(f, mac[:]...)
	for _, tag := range tags {
		f = binary.BigEndian.AppendUint16(f, tag[0])
		f = binary.BigEndian.AppendUint16(f, tag[1])
	}
	f = binary.BigEndian.AppendUint16(f, EtherTypeTest)
	f = append(f, testMagic...)
	f = binary.BigEndian.AppendUint64(f, id)
	for len(f) < 60 {
		f = append(f, 0)
	}
	if err := tx.WriteFrame(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if rx.Has(id) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rx.Has(id)
}

// Domain is one running domain of a libvirt test driver node file.
type Domain struct {
	Name string
	UUID string
	MACs []string
}

// WriteNode writes a libvirt test driver node file (test:///PATH) whose
// domains all run.
func WriteNode(t testing.TB, path string, doms []Domain) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<node>\n")
	for _, d := range doms {
		fmt.Fprintf(&b, "<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type></os><devices>\n", d.Name, d.UUID)
		for _, m := range d.MACs {
			fmt.Fprintf(&b, "<interface type='network'><mac address='%s'/><source network='default'/></interface>\n", m)
		}
		b.WriteString("</devices></domain>\n")
	}
	b.WriteString("</node>\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
