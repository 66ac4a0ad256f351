// Package netnstest builds throw-away network namespaces joined by veth
// pairs for tests of the l2 packages, and runs code or commands inside them.
//
// Everything is created through iproute2 (`ip netns add`, `ip link add ...
// type veth peer ...`) and removed in t.Cleanup. Tests that need it call
// Require first, which skips them with the reason when the process is not
// root or the tools are missing.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Require skips t unless the test runs as root with iproute2 available.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, veth, AF_PACKET sockets): run the tests as root, as .ci/run does")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (`ip`): run tests/install-deps.sh")
	}
}

// RequireTool skips t unless the program name is on PATH.
func RequireTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (Debian package %s): run tests/install-deps.sh", name, pkg)
	}
}

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

// New creates a network namespace with its loopback up and deletes it when
// the test ends. The name is unique across concurrent test processes.
func New(t testing.TB) *NS {
	t.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("netnstest: random name: %v", err)
	}
	name := fmt.Sprintf("tl2-%d-%x", os.Getpid(), rnd)
	Run(t, "ip", "netns", "add", name)
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("netnstest: delete namespace %s: %v: %s", name, err, out)
		}
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return ns
}

// DisableIPv6 switches IPv6 off in ns, so that no router or neighbour
// solicitation adds frames a test would have to tell apart from its own.
func DisableIPv6(t testing.TB, ns *NS) {
	t.Helper()
	for _, k := range []string{"all", "default"} {
		Run(t, "ip", "netns", "exec", ns.Name, "sysctl", "-q", "-w", "net.ipv6.conf."+k+".disable_ipv6=1")
	}
}

// Veth creates a veth pair with end aName in a and end bName in b, both up.
// They disappear with the namespaces. extra is appended to both `ip link
// set` commands (for example "mtu", "9000").
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string, extra ...string) {
	t.Helper()
	Run(t, "ip", "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
	Run(t, append([]string{"ip", "-n", a.Name, "link", "set", aName, "up"}, extra...)...)
	Run(t, append([]string{"ip", "-n", b.Name, "link", "set", bName, "up"}, extra...)...)
	// Until linkwatch has seen the carrier (up to a second), the kernel's
	// noop qdisc silently drops every frame sent on the link.
	a.waitUp(t, aName)
	b.waitUp(t, bName)
}

// WaitUp waits until ifname in ns is operationally UP and can pass frames.
func (ns *NS) WaitUp(t testing.TB, ifname string) {
	t.Helper()
	ns.waitUp(t, ifname)
}

// SetUp brings an interface of ns up and waits until frames can pass.
func SetUp(t testing.TB, ns *NS, ifname string) {
	t.Helper()
	Run(t, "ip", "-n", ns.Name, "link", "set", ifname, "up")
	ns.waitUp(t, ifname)
}

// waitUp waits until the interface's operational state is UP and its
// qdisc is no longer the noop one.
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
		// A bridge or other carrier-less device reports UNKNOWN when up.
		if (links[0].OperState == "UP" || links[0].OperState == "UNKNOWN") && links[0].Qdisc != "noop" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s not UP after 5s (operstate %s)", ifname, ns.Name, links[0].OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// Command returns a command that runs argv inside the namespace (`ip netns
// exec`).
func (ns *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
}

// Output runs argv inside the namespace and returns its standard output.
func (ns *NS) Output(ctx context.Context, argv ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := ns.Command(ctx, argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), ns.Name, err, stderr.Bytes())
	}
	return out, nil
}

// Do runs fn on an OS thread switched into the namespace, then switches the
// thread back. Sockets opened by fn stay in the namespace after Do returns
// and may be used from any goroutine.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine, so that if switching back fails the thread can
	// be left locked and die with the goroutine.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnstest: open current namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnstest: open namespace %s: %w", ns.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netnstest: enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			errc <- fmt.Errorf("netnstest: leave namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
