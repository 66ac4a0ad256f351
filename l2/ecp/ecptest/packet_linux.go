package ecptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
)

// Linux constants not in package syscall.
const (
	solPacket            = 263 // SOL_PACKET
	packetIgnoreOutgoing = 23  // PACKET_IGNORE_OUTGOING, Linux 4.20
)

// PacketLink is an ecp.Link on an AF_PACKET socket bound to one interface
// and EtherType, made with package syscall only. It stands in for
// l2/rawsock in tests. Frames the socket sends are not looped back to it.
type PacketLink struct {
	f   *os.File
	mac [6]byte
}

var _ ecp.Link = (*PacketLink)(nil)

// OpenPacketLink opens an AF_PACKET socket on ifname (in the calling
// thread's network namespace) receiving frames of etherType.
func OpenPacketLink(ifname string, etherType uint16) (*PacketLink, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("ecptest: packet link: %w", err)
	}
	proto := int(htons(etherType))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("ecptest: packet socket on %s: %w", ifname, err)
	}
	if err := syscall.SetsockoptInt(fd, solPacket, packetIgnoreOutgoing, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("ecptest: PACKET_IGNORE_OUTGOING on %s: %w", ifname, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: ifi.Index}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("ecptest: bind packet socket to %s: %w", ifname, err)
	}
	l := &PacketLink{f: os.NewFile(uintptr(fd), "packet:"+ifname)}
	copy(l.mac[:], ifi.HardwareAddr)
	return l, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// MAC returns the interface's address.
func (l *PacketLink) MAC() [6]byte { return l.mac }

// Close closes the socket.
func (l *PacketLink) Close() error { return l.f.Close() }

// WriteFrame implements ecp.Link.
func (l *PacketLink) WriteFrame(_ context.Context, frame []byte) error {
	_, err := l.f.Write(frame)
	return err
}

// ReadFrame implements ecp.Link.
func (l *PacketLink) ReadFrame(ctx context.Context, buf []byte) (int, error) {
	if err := l.f.SetReadDeadline(time.Time{}); err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { _ = l.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	n, err := l.f.Read(buf)
	if err != nil && ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return n, err
}

// VethNS is a network namespace holding a veth pair, for tests that put
// two ECP engines on a real wire.
type VethNS struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// A and B are the names of the veth ends.
	A, B string
}

var vethSeq atomic.Uint64

// NewVethNS creates a namespace with a veth pair, both ends up, and
// removes it when t ends. It skips t when not root or when ip(8) is
// missing.
func NewVethNS(t testing.TB) *VethNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veth and AF_PACKET sockets (run the tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2")
	}
	v := &VethNS{Name: fmt.Sprintf("tecp-%d-%d", os.Getpid(), vethSeq.Add(1)), A: "ecpa", B: "ecpb"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", v.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", v.Name).Run() })
	run("-n", v.Name, "link", "add", v.A, "type", "veth", "peer", "name", v.B)
	run("-n", v.Name, "link", "set", v.A, "up")
	run("-n", v.Name, "link", "set", v.B, "up")
	return v
}

// Open opens a PacketLink for etherType on interface ifname of the
// namespace; the socket stays in the namespace. The link is closed when t
// ends.
func (v *VethNS) Open(t testing.TB, ifname string, etherType uint16) *PacketLink {
	t.Helper()
	var (
		l   *PacketLink
		err error
	)
	if nerr := v.Do(func() error {
		l, err = OpenPacketLink(ifname, etherType)
		return nil
	}); nerr != nil {
		t.Fatal(nerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// Do runs f on an OS thread that has entered the namespace, then returns
// the thread to its namespace. Sockets f opens stay in the namespace.
func (v *VethNS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("ecptest: open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + v.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("ecptest: open netns %s: %w", v.Name, err)
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("ecptest: enter netns %s: %w", v.Name, err)
			return
		}
		ferr := f()
		if err := setns(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of running others in the wrong namespace.
			errc <- fmt.Errorf("ecptest: leave netns %s: %w", v.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// setns moves the calling thread into the network namespace of f.
func setns(f *os.File) error {
	_, _, errno := syscall.Syscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
