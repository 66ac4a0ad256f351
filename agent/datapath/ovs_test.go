package datapath

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/wire"
)

// ovsSchema is the Open_vSwitch schema Debian's openvswitch-common installs.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// startOVS starts a private ovsdb-server and an ovs-vswitchd inside ns
// (userspace datapath), in a short directory under /tmp, and returns it.
// (agent/softswitch/ovs/internal/ovstest does the same for that package;
// it is not importable from here.)
func startOVS(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-ofctl"} {
		netnstest.RequireTool(t, tool, "openvswitch-switch")
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		t.Skipf("no OVS schema: %v", err)
	}
	dir, err := os.MkdirTemp("", "tdovs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	db := filepath.Join(dir, "conf.db")
	if out, err := exec.Command("ovsdb-tool", "create", db, ovsSchema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v\n%s", err, out)
	}
	daemon := func(sock string, argv ...string) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", argv[0], err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		waitFor(t, sock+" accepting", 20*time.Second, func() bool {
			c, err := net.Dial("unix", sock)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	daemon(filepath.Join(dir, "db.sock"), "ovsdb-server", db, "--remote=punix:"+filepath.Join(dir, "db.sock"),
		"--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"), "--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--no-chdir")
	daemon(filepath.Join(dir, "ovs-vswitchd.ctl"), "ip", "netns", "exec", ns.Name, "ovs-vswitchd", "unix:"+filepath.Join(dir, "db.sock"),
		"--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"), "--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "--no-chdir")
	return dir
}

// TestOVSEndToEnd: a VIF appears in a real inventory -> the answer with a
// VID -> the Open vSwitch port (userspace datapath, in a namespace) has
// that VID as its tag, the rate and the MAC allow-list flows, read back
// from OVSDB and OpenFlow -> an operator's change is repaired on resync
// -> the VIF goes -> the port is off the bridge.
func TestOVSEndToEnd(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	dir := startOVS(t, ns)
	netnstest.Run(t, "ip", "-n", ns.Name, "link", "add", "dpv1", "type", "veth", "peer", "name", "dpv1p")
	netnstest.Run(t, "ip", "-n", ns.Name, "link", "set", "dpv1p", "up")
	netnstest.SetUp(t, ns, "dpv1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sw, err := ovs.New(ctx, ovs.Config{DB: "unix:" + filepath.Join(dir, "db.sock"), RunDir: dir, Bridge: "dpbr0", DatapathType: "netdev", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	if err := sw.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	r, err := New(Config{Store: st, Switch: Switch{sw}, Resync: 300 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	v := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindTap, HostDev: "dpv1"})
	want := softswitch.Port{Name: "dpv1", MAC: v.MAC.HardwareAddr(), VID: 100, RateKbps: 8000}
	prof := &wire.TetherProfile{VID: 100, RateKbps: 8000, Name: "web"}
	waitFor(t, "the answer in place", 20*time.Second, func() bool { return r.Granted(v, 100, prof) == nil })
	if d, err := sw.Check(ctx, want); err != nil || d != nil {
		t.Fatalf("OVS port after the answer: %v %v", d, err)
	}
	if p, ok, err := sw.Observe(ctx, "dpv1"); err != nil || !ok || p.VID != 100 {
		t.Fatalf("Observe dpv1 = %+v %v %v", p, ok, err)
	}

	// Drift: an operator changes the tag behind tether's back.
	cmd := exec.Command("ovs-vsctl", "--db=unix:"+filepath.Join(dir, "db.sock"), "--no-wait", "set", "Port", "dpv1", "tag=999")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ovs-vsctl: %v %s", err, out)
	}
	waitFor(t, "the drift repaired", 20*time.Second, func() bool {
		d, err := sw.Check(ctx, want)
		return err == nil && d == nil && r.drifts.Load() > 0
	})

	setGone(t, st, v.MAC)
	waitFor(t, "the port removed and the VIF forgotten", 20*time.Second, func() bool {
		ports, err := sw.Ports(ctx)
		a, aerr := r.Applied(v.MAC)
		return err == nil && !strings.Contains(strings.Join(ports, ","), "dpv1") && a == nil && aerr == nil
	})
}
