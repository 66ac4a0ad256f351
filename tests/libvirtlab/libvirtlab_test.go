package libvirtlab_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/tests/libvirtlab"
)

// recordHook returns a hook script that appends its arguments and the UUID
// of the domain XML on its standard input to the file path.
func recordHook(path string) string {
	return `#!/bin/sh
xml=$(cat)
uuid=$(printf '%s\n' "$xml" | sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' | head -n 1)
echo "$* $uuid" >>'` + path + `'
`
}

// waitLines waits until the file path holds at least the lines want, in
// order (other lines may come between), and returns its lines.
func waitLines(t *testing.T, path string, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		rest := lines
		found := 0
		for _, w := range want {
			i := slices.Index(rest, w)
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			found++
		}
		if found == len(want) {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook log %s:\n%s\nwant, in order:\n%s", path, data, strings.Join(want, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostState describes whether each host path the daemon must not create or
// change exists, and its mtime.
func hostState() string {
	var b strings.Builder
	for _, p := range []string{
		"/run/libvirt", "/run/libvirtd.pid", "/run/mount", "/var/lib/libvirt", "/var/cache/libvirt",
		"/var/log/libvirt", "/etc/libvirt/hooks", "/etc/libvirt/qemu.conf", "/etc/libvirt/libvirtd.conf",
		"/etc/passwd", "/etc/group",
	} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %v\n", p, fi.ModTime())
		} else {
			fmt.Fprintf(&b, "%s absent\n", p)
		}
	}
	return b.String()
}

// ifRow is one row of `virsh -q domiflist`.
type ifRow struct{ dev, typ, source, model, mac string }

// domiflist parses `virsh -q domiflist name`.
func domiflist(t *testing.T, d *libvirtlab.Daemon, name string) []ifRow {
	t.Helper()
	var rows []ifRow
	for _, l := range strings.Split(d.Virsh(t, "domiflist", name), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 5 {
			t.Fatalf("domiflist row %q: want 5 fields", l)
		}
		rows = append(rows, ifRow{f[0], f[1], f[2], f[3], f[4]})
	}
	return rows
}

// defineTiny writes a TinyDomainXML domain to a file and defines it.
func defineTiny(t *testing.T, d *libvirtlab.Daemon, name, uuid string, nics []libvirtlab.NIC) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(path, []byte(libvirtlab.TinyDomainXML(name, uuid, nics)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Virsh(t, "define", path)
}

// timed runs f and returns how long it took.
func timed(f func()) time.Duration {
	begin := time.Now()
	f()
	return time.Since(begin).Round(time.Millisecond)
}

func TestLibvirtdSmoke(t *testing.T) {
	before := hostState()
	var d *libvirtlab.Daemon
	startTime := timed(func() { d = libvirtlab.Start(t, libvirtlab.Options{}) })

	const (
		bridge = "br-lab0"
		name   = "tiny1"
		uuid   = "6a1f3c2e-1b7d-4c55-9b1e-0d2f4a6b8c01"
	)
	d.AddBridge(t, bridge)
	hookLog := filepath.Join(t.TempDir(), "hooks.log")
	d.InstallHook(t, "qemu", "10-record", recordHook(hookLog))

	nics := []libvirtlab.NIC{{MAC: "52:54:00:1a:b0:01", Bridge: bridge}, {MAC: "52:54:00:1a:b0:02", Bridge: bridge}}
	defineTiny(t, d, name, uuid, nics)
	domStart := timed(func() { d.Virsh(t, "start", name) })

	rows := domiflist(t, d, name)
	if len(rows) != len(nics) {
		t.Fatalf("domiflist: %d interfaces, want %d: %+v", len(rows), len(nics), rows)
	}
	links := d.IP(t, "-d", "-o", "link", "show", "master", bridge)
	for i, r := range rows {
		if r.typ != "bridge" || r.source != bridge || r.mac != nics[i].MAC {
			t.Errorf("domiflist row %d = %+v, want type bridge, source %s, MAC %s", i, r, bridge, nics[i].MAC)
		}
		found := false
		for _, l := range strings.Split(links, "\n") {
			if strings.Contains(l, " "+r.dev+": ") && strings.Contains(l, "tun type tap") {
				found = true
			}
		}
		if !found {
			t.Errorf("tap %s is not a tap device on %s:\n%s", r.dev, bridge, links)
		}
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s appeared in the host's network namespace", bridge)
	}
	if after := hostState(); after != before {
		t.Errorf("host paths changed with the daemon running:\nbefore:\n%safter:\n%s", before, after)
	}

	domDestroy := timed(func() { d.Virsh(t, "destroy", name) })
	waitLines(t, hookLog,
		name+" prepare begin - "+uuid,
		name+" start begin - "+uuid,
		name+" started begin - "+uuid,
		name+" stopped end - "+uuid,
		name+" release end - "+uuid,
	)

	// Restart with the domain running: libvirtd reconnects to QEMU.
	d.Virsh(t, "start", name)
	restart := timed(func() { d.Restart(t) })
	lines := waitLines(t, hookLog, name+" reconnect begin - "+uuid)
	if got := d.Virsh(t, "domstate", name); got != "running" {
		t.Errorf("domstate after restart = %q, want running", got)
	}
	if rows := domiflist(t, d, name); len(rows) != len(nics) {
		t.Errorf("domiflist after restart: %+v", rows)
	}
	destroyAfterRestart := timed(func() { d.Virsh(t, "destroy", name) })
	waitLines(t, hookLog, name+" reconnect begin - "+uuid, name+" release end - "+uuid)

	t.Logf("timings: Start %v, domain start %v, destroy %v, Restart (domain running) %v, destroy after restart %v",
		startTime, domStart, domDestroy, restart, destroyAfterRestart)
	t.Logf("hook calls:\n%s", strings.Join(lines, "\n"))
}

// slow skips the test unless TETHER_TEST_ALL=1.
func slow(t *testing.T) {
	t.Helper()
	if os.Getenv("TETHER_TEST_ALL") != "1" {
		t.Skip("slow: set TETHER_TEST_ALL=1 (make test-all)")
	}
}

// eventStream runs `virsh event --all --loop` against d and returns a
// channel of its output lines, closed when virsh exits.
func eventStream(t *testing.T, d *libvirtlab.Daemon) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "virsh", "-c", d.URI(), "event", "--all", "--loop")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	// Give virsh time to connect and register before events happen.
	time.Sleep(500 * time.Millisecond)
	return lines
}

// waitEvent waits for a line containing every one of want.
func waitEvent(t *testing.T, lines <-chan string, want ...string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("virsh event exited before %q", want)
			}
			match := true
			for _, w := range want {
				match = match && strings.Contains(l, w)
			}
			if match {
				return
			}
		case <-timeout:
			t.Fatalf("no event with %q", want)
		}
	}
}

// TestLibvirtdEventsAcrossRestart checks what an event client sees around a
// daemon restart: its connection drops, a new connection gets the events of
// the domain libvirtd reconnected to.
func TestLibvirtdEventsAcrossRestart(t *testing.T) {
	slow(t)
	d := libvirtlab.Start(t, libvirtlab.Options{})
	d.AddBridge(t, "br-ev0")
	defineTiny(t, d, "ev1", "", []libvirtlab.NIC{{Bridge: "br-ev0"}})

	events := eventStream(t, d)
	d.Virsh(t, "start", "ev1")
	waitEvent(t, events, "lifecycle", "'ev1'", "Started")

	d.Restart(t)
	timeout := time.After(15 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-timeout:
			t.Fatal("virsh event still running 15 s after the daemon restarted")
		}
	}

	events = eventStream(t, d)
	d.Virsh(t, "destroy", "ev1")
	waitEvent(t, events, "lifecycle", "'ev1'", "Stopped", "Destroyed")
}

// TestLibvirtdNamedNetNS runs the daemon in a network namespace made with
// `ip netns add`, as a lab with other namespaces does.
func TestLibvirtdNamedNetNS(t *testing.T) {
	slow(t)
	if err := libvirtlab.Available(); err != nil {
		t.Skipf("libvirtlab: %v: %s", err, libvirtlab.SkipMessage)
	}
	ns := fmt.Sprintf("lvlab-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v: %s", err, out)
		}
	})
	d := libvirtlab.Start(t, libvirtlab.Options{NetNS: ns})
	d.AddBridge(t, "br-ns0")
	defineTiny(t, d, "ns1", "", []libvirtlab.NIC{{MAC: "52:54:00:1a:b1:01", Bridge: "br-ns0"}})
	d.Virsh(t, "start", "ns1")
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "master", "br-ns0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fe:54:00:1a:b1:01") {
		t.Fatalf("ip -n %s link show master br-ns0: %v:\n%s", ns, err, out)
	}
	d.Virsh(t, "destroy", "ns1")
}
