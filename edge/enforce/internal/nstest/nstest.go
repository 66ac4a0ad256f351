// Package nstest builds the throw-away lab the enforce tests run in: network
// namespaces joined by veth pairs, a Linux bridge, and raw AF_PACKET
// sockets opened inside a namespace.
//
// It builds on internal/netnstest and adds what the enforcer's tests need.
// Everything is created through iproute2 and removed in t.Cleanup. IPv6 is
// switched off in every namespace, so that no router or neighbour
// solicitation adds frames a test would have to tell apart from its own.
package nstest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlayher/packet"
	"github.com/tether-net/tether/internal/netnstest"
)

// Require skips t unless the test runs as root with iproute2 available.
func Require(t testing.TB) { t.Helper(); netnstest.Require(t) }

// NS is a network namespace created for one test.
type NS struct{ *netnstest.NS }

// New creates a network namespace with loopback up and IPv6 off, and
// deletes it when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	ns := netnstest.New(t)
	netnstest.DisableIPv6(t, ns)
	return &NS{ns}
}

// Open returns an open file of the namespace, for Options.NetNS. It is
// closed when the test ends.
func (ns *NS) Open(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		t.Fatalf("nstest: open namespace %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Veth creates a veth pair with end aName in a and end bName in b, both up.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	netnstest.Veth(t, a.NS, aName, b.NS, bName)
}

// Bridge creates a Linux bridge named br in ns (no STP, no VLAN
// filtering: the kernel under test may lack it), enslaves ports to it and
// brings everything up. With STP off the ports forward at once.
func Bridge(t testing.TB, ns *NS, br string, ports ...string) {
	t.Helper()
	Run(t, "ip", "-n", ns.Name, "link", "add", br, "type", "bridge")
	for _, p := range ports {
		Run(t, "ip", "-n", ns.Name, "link", "set", p, "master", br)
	}
	SetUp(t, ns, br)
	for _, p := range ports {
		ns.WaitUp(t, p)
	}
}

// SetUp brings an interface of ns up and waits until frames can pass.
func SetUp(t testing.TB, ns *NS, ifname string) {
	t.Helper()
	netnstest.SetUp(t, ns.NS, ifname)
}

// MAC returns the hardware address of an interface of ns.
func (ns *NS) MAC(t testing.TB, ifname string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	}); err != nil {
		t.Fatalf("nstest: MAC of %s in %s: %v", ifname, ns.Name, err)
	}
	return mac
}

// Listen opens an AF_PACKET raw socket on ifname inside ns, bound to the
// EtherType proto (unix.ETH_P_ALL for every frame). The socket works from
// any goroutine and is closed when the test ends.
func (ns *NS) Listen(t testing.TB, ifname string, proto int) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, proto, nil)
		return err
	}); err != nil {
		t.Fatalf("nstest: packet socket on %s in %s: %v", ifname, ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Run runs a command and fails t with its output when it fails.
func Run(t testing.TB, args ...string) string { t.Helper(); return netnstest.Run(t, args...) }

// Exec runs argv inside ns (`ip netns exec`) and returns its combined
// output, failing t when it fails.
func (ns *NS) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns.Name}, argv...)...)
}
