// Package ovstest starts private Open vSwitch daemons for tests (the soft
// switch's, agent/softswitch/ovs, and the datapath loop's): an
// ovsdb-server on a fresh database in a temporary directory, and an
// ovs-vswitchd on it (optionally inside a network namespace), each with
// its own run, log and database directories so nothing touches the
// system's /var/run/openvswitch. Everything is stopped and removed when
// the test ends.
package ovstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Schema is the Open_vSwitch schema Debian's openvswitch-common installs.
const Schema = "/usr/share/openvswitch/vswitch.ovsschema"

// Tools are the programs the tests run.
var tools = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-ofctl"}

// Missing names what is absent for OVS tests, "" when all is there.
func Missing() string {
	var miss []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			miss = append(miss, tool)
		}
	}
	if _, err := os.Stat(Schema); err != nil {
		miss = append(miss, Schema)
	}
	if len(miss) == 0 {
		return ""
	}
	return strings.Join(miss, ", ")
}

// Require skips t unless the OVS programs and schema are installed and the
// test runs as root.
func Require(t testing.TB) {
	t.Helper()
	if m := Missing(); m != "" {
		t.Skipf("Open vSwitch not installed (missing %s): apt-get install openvswitch-switch (tests/install-deps.sh)", m)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ovs-vswitchd opens raw sockets)")
	}
}

// OVS is one private set of daemons.
type OVS struct {
	// Dir holds the database, sockets, pid and log files; it is also
	// ovs-vswitchd's OVS_RUNDIR, so bridge BR's OpenFlow management socket
	// is Dir/BR.mgmt.
	Dir string
	// DB is the ovsdb-server socket address, "unix:Dir/db.sock".
	DB string
	t  testing.TB
}

// Start creates a database from Schema and starts ovsdb-server on it. The
// directory is short (under /tmp) because unix socket paths are limited
// to 107 bytes.
func Start(t testing.TB) *OVS {
	t.Helper()
	dir, err := os.MkdirTemp("", "tovs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"ovsdb-server.log", "ovs-vswitchd.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("%s:\n%s", f, tail(b, 16000))
				}
			}
		}
		os.RemoveAll(dir)
	})
	o := &OVS{Dir: dir, DB: "unix:" + filepath.Join(dir, "db.sock"), t: t}
	db := filepath.Join(dir, "conf.db")
	if out, err := exec.Command("ovsdb-tool", "create", db, Schema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v\n%s", err, out)
	}
	o.daemon("ovsdb-server", db,
		"--remote=punix:"+filepath.Join(dir, "db.sock"),
		"--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"),
		"--no-chdir")
	waitSocket(t, filepath.Join(dir, "db.sock"))
	return o
}

// StartVSwitchd starts ovs-vswitchd on the database, inside network
// namespace netns (by name, `ip netns exec`) or in the current one when
// netns is "". extra are further ovs-vswitchd options.
func (o *OVS) StartVSwitchd(netns string, extra ...string) {
	o.t.Helper()
	var argv []string
	if netns != "" {
		argv = []string{"ip", "netns", "exec", netns}
	}
	argv = append(argv, "ovs-vswitchd", o.DB,
		"--unixctl="+filepath.Join(o.Dir, "ovs-vswitchd.ctl"),
		"--pidfile="+filepath.Join(o.Dir, "ovs-vswitchd.pid"),
		"--log-file="+filepath.Join(o.Dir, "ovs-vswitchd.log"),
		"--no-chdir")
	argv = append(argv, extra...)
	o.daemon(argv...)
	waitSocket(o.t, filepath.Join(o.Dir, "ovs-vswitchd.ctl"))
}

// Env is the environment the daemons and OVS command-line tools get:
// every OVS directory points into Dir.
func (o *OVS) Env() []string {
	return append(os.Environ(),
		"OVS_RUNDIR="+o.Dir, "OVS_DBDIR="+o.Dir, "OVS_LOGDIR="+o.Dir,
		"OVS_SYSCONFDIR="+o.Dir, "OVS_PKGDATADIR=/usr/share/openvswitch")
}

// Vsctl runs ovs-vsctl against the private database (as an operator would
// behind tether's back) and returns its output.
func (o *OVS) Vsctl(args ...string) string {
	o.t.Helper()
	argv := append([]string{"--db=" + o.DB, "--no-wait", "--timeout=10"}, args...)
	cmd := exec.Command("ovs-vsctl", argv...)
	cmd.Env = o.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		o.t.Fatalf("ovs-vsctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Appctl runs ovs-appctl against ovs-vswitchd's control socket and
// returns its output (or the error text), for diagnostics.
func (o *OVS) Appctl(args ...string) string {
	argv := append([]string{"-t", filepath.Join(o.Dir, "ovs-vswitchd.ctl")}, args...)
	cmd := exec.Command("ovs-appctl", argv...)
	cmd.Env = o.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ovs-appctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// daemon starts argv in the foreground and stops it (SIGTERM, then
// SIGKILL) at cleanup.
func (o *OVS) daemon(argv ...string) {
	o.t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = o.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		o.t.Fatalf("start %s: %v", strings.Join(argv, " "), err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	o.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// waitSocket waits until a unix socket accepts connections.
func waitSocket(t testing.TB, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never accepted connections: %v", path, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// String describes the instance for logs.
func (o *OVS) String() string { return fmt.Sprintf("ovs(%s)", o.Dir) }
