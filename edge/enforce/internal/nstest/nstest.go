// Package nstest builds the throw-away lab the enforce tests run in: network
// namespaces joined by veth pairs, a Linux bridge, and raw AF_PACKET
// sockets opened inside a namespace.
//
// It follows l2/internal/netnstest (which edge/ cannot import: it is
// internal to l2/). Everything is created through iproute2 and removed in
// t.Cleanup. IPv6 is switched off in every namespace, so that no router or
// neighbour solicitation adds frames a test would have to tell apart from
// its own.
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Require skips t unless the test runs as root with iproute2 available.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, nftables, AF_PACKET sockets): run the tests as root, as .ci/run does")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (`ip`): run tests/install-deps.sh")
	}
}

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

// New creates a network namespace with loopback up and IPv6 off, and
// deletes it when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("nstest: random name: %v", err)
	}
	name := fmt.Sprintf("tenf-%d-%x", os.Getpid(), rnd)
	Run(t, "ip", "netns", "add", name)
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("nstest: delete namespace %s: %v: %s", name, err, out)
		}
	})
	for _, k := range []string{"all", "default"} {
		Run(t, "ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf."+k+".disable_ipv6=1")
	}
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return ns
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
	Run(t, "ip", "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
	Run(t, "ip", "-n", a.Name, "link", "set", aName, "up")
	Run(t, "ip", "-n", b.Name, "link", "set", bName, "up")
	a.waitUp(t, aName)
	b.waitUp(t, bName)
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
		ns.waitUp(t, p)
	}
}

// SetUp brings an interface of ns up and waits until frames can pass.
func SetUp(t testing.TB, ns *NS, ifname string) {
	t.Helper()
	Run(t, "ip", "-n", ns.Name, "link", "set", ifname, "up")
	ns.waitUp(t, ifname)
}

// waitUp waits until the interface's operational state is UP and its qdisc
// is no longer the noop one (until linkwatch has seen the carrier, the noop
// qdisc silently drops every frame sent on the link).
func (ns *NS) waitUp(t testing.TB, ifname string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := Run(t, "ip", "-n", ns.Name, "-j", "link", "show", ifname)
		var links []struct {
			OperState string `json:"operstate"`
			Qdisc     string `json:"qdisc"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
			t.Fatalf("ip -j link show %s: %v\n%s", ifname, err, out)
		}
		if (links[0].OperState == "UP" || links[0].OperState == "UNKNOWN") && links[0].Qdisc != "noop" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not UP after 5s (operstate %s)", ifname, ns.Name, links[0].OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
func Run(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs argv inside ns (`ip netns exec`) and returns its combined
// output, failing t when it fails.
func (ns *NS) Exec(t testing.TB, argv ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns.Name}, argv...)...)
}

// Do runs fn on an OS thread switched into the namespace, then switches the
// thread back. Sockets opened by fn stay in the namespace.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine, so that if switching back fails the thread can be
	// left locked and die with the goroutine.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nstest: open current namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nstest: open namespace %s: %w", ns.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nstest: enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("nstest: leave namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
