package libvirtlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SkipMessage is what [Start] skips with when [Available] fails.
const SkipMessage = "needs root and libvirt-daemon: run .ci/run or tests/install-deps.sh"

// maxSocketPath is the size of sun_path less its terminating NUL.
const maxSocketPath = 107

// searchPath is where the tools are looked for (root's PATH may lack sbin
// directories when go test runs under sudo or env -i), and the PATH the
// daemon runs with.
const searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configures [Start]. The zero value is a daemon in a fresh network
// namespace of its own.
type Options struct {
	// NetNS names an existing network namespace (as made by `ip netns add`)
	// to run libvirtd and its domains in, for tests that join the domains'
	// bridge to other lab namespaces. Empty means a fresh namespace that lives
	// as long as the daemon: its links vanish with it.
	NetNS string
	// StartTimeout bounds how long Start and Restart wait for libvirtd to
	// answer. Zero means 30 s.
	StartTimeout time.Duration
	// Debug sets libvirtd's log to debug level (large; slower).
	Debug bool
	// LibvirtdConf and QEMUConf are appended to the generated libvirtd.conf
	// and qemu.conf (later settings win).
	LibvirtdConf, QEMUConf string
}

// Daemon is a running libvirtd started by [Start]. Its methods that take a
// testing.TB must be called from the test's goroutine.
type Daemon struct {
	opts  Options
	tools tools
	dir   string // the state directory, on the host
	pid   int    // tini's pid; tini lives across Restart
	netNS string // a path for nsenter --net
	mntNS string // the "mnt:[inode]" link of the namespace, once known
	done  chan struct{}
	// waitErr is the supervisor's exit, valid once done is closed.
	waitErr error
	// logShown is set once a failure message carried libvirtd's log tail.
	logShown bool
}

// tools holds the absolute paths of the programs libvirtlab runs.
type tools struct {
	libvirtd, virsh, qemu, tini, unshare, nsenter, ip, sh string
}

// findTools looks up every program libvirtlab needs.
func findTools() (tools, error) {
	var t tools
	var missing []string
	for _, p := range []struct {
		dst  *string
		name string
	}{
		{&t.libvirtd, "libvirtd"}, {&t.virsh, "virsh"}, {&t.qemu, "qemu-system-x86_64"},
		{&t.tini, "tini"}, {&t.unshare, "unshare"}, {&t.nsenter, "nsenter"},
		{&t.ip, "ip"}, {&t.sh, "sh"},
	} {
		path, err := lookPath(p.name)
		if err != nil {
			missing = append(missing, p.name)
			continue
		}
		*p.dst = path
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return t, nil
}

// lookPath finds name in $PATH, then in searchPath.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range filepath.SplitList(searchPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// Available reports why [Start] would skip: not root, or a program missing
// (libvirtd, virsh, qemu-system-x86_64, tini, unshare, nsenter, ip).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	_, err := findTools()
	return err
}

// Start starts libvirtd in private namespaces (see the package
// documentation), waits until it answers `virsh version`, and registers a
// cleanup that stops it, kills whatever it left running and removes its
// state. It skips the test when [Available] fails and fails it, with the
// tail of libvirtd's log, when the daemon does not come up in time.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("libvirtlab: not root: %s", SkipMessage)
	}
	tl, err := findTools()
	if err != nil {
		t.Skipf("libvirtlab: %v: %s", err, SkipMessage)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "libvirtlab-")
	if err != nil {
		t.Fatalf("libvirtlab: make state directory: %v", err)
	}
	d := &Daemon{opts: opts, tools: tl, dir: dir, done: make(chan struct{})}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("libvirtlab: remove state directory: %v", err)
		}
	})
	if strings.HasPrefix(dir, "/var/") || strings.HasPrefix(dir, "/run/") {
		t.Fatalf("libvirtlab: state directory %s is under /var or /run, which the daemon's namespace replaces: set TMPDIR elsewhere", dir)
	}
	if n := len(d.socketPath()); n > maxSocketPath {
		t.Fatalf("libvirtlab: socket path %s is %d bytes, over the %d of a unix socket: set a shorter TMPDIR", d.socketPath(), n, maxSocketPath)
	}
	if err := writeState(dir, opts); err != nil {
		t.Fatalf("libvirtlab: %v", err)
	}

	begin := time.Now()
	if err := d.launch(); err != nil {
		t.Fatalf("libvirtlab: %v", err)
	}
	t.Cleanup(func() { d.stop(t) })
	if err := d.waitReady(0); err != nil {
		d.fatalf(t, "%v", err)
	}
	mnt, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.pid))
	if err != nil {
		t.Fatalf("libvirtlab: read the daemon's mount namespace: %v", err)
	}
	d.mntNS = mnt
	if opts.NetNS != "" {
		d.netNS = filepath.Join("/run/netns", opts.NetNS)
	} else {
		d.netNS = fmt.Sprintf("/proc/%d/ns/net", d.pid)
	}
	t.Logf("libvirtlab: libvirtd up in %v (state %s)", time.Since(begin).Round(time.Millisecond), dir)
	return d
}

// launch starts tini and the supervisor in new namespaces. The process is
// started from a goroutine locked to its OS thread, which stays until the
// process exits, because the parent-death signal (SIGTERM, so that the daemon
// stops if the test binary dies) follows the thread that forked, not the
// process.
func (d *Daemon) launch() error {
	out, err := os.OpenFile(filepath.Join(d.dir, "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open supervisor log: %w", err)
	}
	var args []string
	if d.opts.NetNS != "" {
		args = append(args, d.tools.nsenter, "--net="+filepath.Join("/run/netns", d.opts.NetNS), "--",
			d.tools.unshare, "--mount", "--propagation", "private", "--")
	} else {
		args = append(args, d.tools.unshare, "--net", "--mount", "--propagation", "private", "--")
	}
	args = append(args, d.tools.tini, "-s", "--", d.tools.sh, filepath.Join(d.dir, "supervisor.sh"), d.dir)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + searchPath, "LC_ALL=C", "HOME=/root"}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	started := make(chan error, 1)
	go func() {
		defer close(d.done)
		defer out.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			d.waitErr = err
			return
		}
		started <- nil
		d.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", strings.Join(args, " "), err)
	}
	d.pid = cmd.Process.Pid
	return nil
}

// exited reports whether the supervisor (and so the daemon) has exited.
func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady waits until a libvirtd other than oldPID (0: any) has written
// its pid and answers `virsh version`.
func (d *Daemon) waitReady(oldPID int) error {
	deadline := time.Now().Add(d.opts.StartTimeout)
	var last error
	for {
		if d.exited() {
			return fmt.Errorf("libvirtd exited before answering: %v", d.waitErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("libvirtd did not answer within %v: %v", d.opts.StartTimeout, last)
		}
		pid, err := d.libvirtdPID()
		switch {
		case err != nil:
			last = err
		case pid == oldPID:
			last = fmt.Errorf("old libvirtd %d still registered", oldPID)
		default:
			if _, err := os.Stat(d.socketPath()); err != nil {
				last = err
				break
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := d.RunVirsh(ctx, "version")
			cancel()
			if err == nil {
				return nil
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// libvirtdPID returns the pid of the current libvirtd, as written by the
// supervisor.
func (d *Daemon) libvirtdPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, "libvirtd.pid"))
	if err != nil {
		return 0, fmt.Errorf("read libvirtd pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse libvirtd pid: %w", err)
	}
	return pid, nil
}

// PID returns the pid of the running libvirtd (it changes on Restart).
func (d *Daemon) PID(t testing.TB) int {
	t.Helper()
	pid, err := d.libvirtdPID()
	if err != nil {
		t.Fatalf("libvirtlab: %v", err)
	}
	return pid
}

// socketPath is the read-write socket of the monolithic daemon, on the host.
func (d *Daemon) socketPath() string { return filepath.Join(d.dir, "run", "libvirt-sock") }

// URI returns the connection URI for the daemon, for virsh -c and for
// libvirt.NewConnect: qemu:///system?socket=STATE/run/libvirt-sock.
func (d *Daemon) URI() string { return "qemu:///system?socket=" + d.socketPath() }

// HooksDir returns the host path of the daemon's /etc/libvirt/hooks, with
// empty qemu.d/, network.d/ and daemon.d/ in it. libvirtd only notices
// scripts added after Start on Reload or Restart; see [Daemon.InstallHook].
func (d *Daemon) HooksDir() string { return filepath.Join(d.dir, "etc", "hooks") }

// StateDir returns the host path of the daemon's state directory: run/,
// lib/, cache/, log/ and etc/ are its /run/libvirt, /var/lib/libvirt,
// /var/cache/libvirt, /var/log/libvirt and /etc/libvirt.
func (d *Daemon) StateDir() string { return d.dir }

// NetNSPath returns a path naming the daemon's network namespace, for
// nsenter --net= or setns(2). It stays valid until the daemon is cleaned up.
func (d *Daemon) NetNSPath() string { return d.netNS }

// Command returns a command that runs name in the daemon's network namespace
// (not in its mount namespace: the host's /run, /var and /etc are seen).
func (d *Daemon) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, d.tools.nsenter, append([]string{"--net=" + d.netNS, "--", name}, args...)...)
}

// IP runs ip(8) with args in the daemon's network namespace and returns its
// output; it fails the test if ip fails.
func (d *Daemon) IP(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := d.Command(ctx, d.tools.ip, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("libvirtlab: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// AddBridge creates the Linux bridge name, up, in the daemon's network
// namespace, and deletes it at cleanup.
func (d *Daemon) AddBridge(t testing.TB, name string) {
	t.Helper()
	d.IP(t, "link", "add", name, "type", "bridge")
	t.Cleanup(func() {
		if d.exited() && d.opts.NetNS == "" {
			return // the namespace went with the daemon
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := d.Command(ctx, d.tools.ip, "link", "del", name).CombinedOutput(); err != nil {
			t.Logf("libvirtlab: delete bridge %s: %v: %s", name, err, out)
		}
	})
	d.IP(t, "link", "set", name, "up")
}

// RunVirsh runs virsh -c URI args and returns its standard output; the error
// carries its standard error.
func (d *Daemon) RunVirsh(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.tools.virsh, append([]string{"-q", "-c", d.URI()}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("virsh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Virsh runs virsh -c URI -q args and returns its standard output without
// trailing white space; it fails the test, with the tail of libvirtd's log,
// if virsh fails or takes over a minute.
func (d *Daemon) Virsh(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.RunVirsh(ctx, args...)
	if err != nil {
		d.fatalf(t, "%v", err)
	}
	return strings.TrimRight(out, " \t\n")
}

// InstallHook writes script as the executable HooksDir()/DRIVER.d/NAME
// (driver is "qemu", "network" or "daemon") and makes libvirtd rescan its
// hooks with [Daemon.Reload]. The script runs inside the daemon's mount
// namespace; see the package documentation for which paths it shares.
func (d *Daemon) InstallHook(t testing.TB, driver, name, script string) {
	t.Helper()
	path := filepath.Join(d.HooksDir(), driver+".d", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("libvirtlab: install hook: %v", err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatalf("libvirtlab: install hook: %v", err)
	}
	d.Reload(t)
}

// Reload sends libvirtd SIGHUP and returns once libvirtd has rescanned its
// hooks (which it does first on SIGHUP); the drivers' reload may still be
// going on. It tells by installing, for the duration, a daemon hook that
// records the "reload begin SIGHUP" call; tests with daemon hooks of their
// own see that reload too.
func (d *Daemon) Reload(t testing.TB) {
	t.Helper()
	marker := filepath.Join(d.dir, "reloaded")
	_ = os.Remove(marker)
	hook := filepath.Join(d.HooksDir(), "daemon.d", "zz-libvirtlab-reload")
	script := "#!/bin/sh\n[ \"$2\" = reload ] && : >'" + marker + "'\nexit 0\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatalf("libvirtlab: reload: %v", err)
	}
	defer os.Remove(hook)
	deadline := time.Now().Add(d.opts.StartTimeout)
	var nextHUP time.Time
	for {
		if _, err := os.Stat(marker); err == nil {
			return
		}
		if d.exited() {
			d.fatalf(t, "libvirtd exited during reload: %v", d.waitErr)
		}
		if time.Now().After(deadline) {
			d.fatalf(t, "libvirtd did not reload within %v", d.opts.StartTimeout)
		}
		// SIGHUP is ignored while the drivers are (re)initialising: resend.
		if time.Now().After(nextHUP) {
			pid := d.PID(t)
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatalf("libvirtlab: signal libvirtd %d: %v", pid, err)
			}
			nextHUP = time.Now().Add(2 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops libvirtd (SIGTERM, which leaves running domains running) and
// starts it again with the same state, in the same namespaces, so that it
// reconnects to its domains (the qemu hook's "reconnect begin") and event
// clients see the connection drop. It returns once the new libvirtd answers.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	begin := time.Now()
	old := d.PID(t)
	if err := os.WriteFile(filepath.Join(d.dir, "restart"), nil, 0o644); err != nil {
		t.Fatalf("libvirtlab: restart: %v", err)
	}
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		t.Fatalf("libvirtlab: signal libvirtd %d: %v", old, err)
	}
	if err := d.waitReady(old); err != nil {
		d.fatalf(t, "restart: %v", err)
	}
	t.Logf("libvirtlab: libvirtd restarted in %v", time.Since(begin).Round(time.Millisecond))
}

// stop ends the daemon at cleanup: SIGTERM to tini (forwarded to the
// supervisor, which stops libvirtd and kills the domains), then SIGKILL to
// anything left in the daemon's mount namespace and to tini's process group.
// On a failed test it logs the tail of libvirtd's log first.
func (d *Daemon) stop(t testing.TB) {
	if t.Failed() && !d.logShown {
		t.Logf("libvirtlab: libvirtd log tail:\n%s", d.logTail(40))
	}
	_ = os.Remove(filepath.Join(d.dir, "restart"))
	if !d.exited() {
		_ = syscall.Kill(d.pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			t.Logf("libvirtlab: libvirtd did not stop within 15 s of SIGTERM; killing it")
		}
	}
	d.killNamespace()
	if !d.exited() {
		_ = syscall.Kill(-d.pid, syscall.SIGKILL)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("libvirtlab: supervisor %d survived SIGKILL", d.pid)
		}
	}
}

// killNamespace sends SIGKILL to every process in the daemon's mount
// namespace but tini, then waits up to a second for them to be reaped (by
// tini, while it lives).
func (d *Daemon) killNamespace() {
	if d.mntNS == "" {
		return
	}
	for range 50 {
		pids := d.namespacePIDs()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// namespacePIDs lists the processes, other than tini, whose mount namespace
// is the daemon's, zombies included (tini reaps those).
func (d *Daemon) namespacePIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == d.pid {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == d.mntNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Log returns libvirtd's log file followed by the supervisor's output
// (libvirtd's and the supervisor's standard output and error).
func (d *Daemon) Log() string { return d.logTail(0) }

// DomainLog returns QEMU's log for the domain name (its command line and
// standard error), or an empty string if there is none yet.
func (d *Daemon) DomainLog(name string) string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "log", "qemu", name+".log"))
	return string(data)
}

// fatalf fails the test with the message and the tail of libvirtd's log.
func (d *Daemon) fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	d.logShown = true
	t.Fatalf("libvirtlab: %s\n%s", fmt.Sprintf(format, args...), d.logTail(40))
}

// logTail returns the last n lines (all if n is 0) of libvirtd's log file
// and of the supervisor's output, each under a header.
func (d *Daemon) logTail(n int) string {
	var b strings.Builder
	for _, f := range []string{"log/libvirtd.log", "supervisor.log"} {
		data, err := os.ReadFile(filepath.Join(d.dir, f))
		if err != nil {
			fmt.Fprintf(&b, "==> %s: %v\n", f, err)
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n", f)
		lines := strings.SplitAfter(string(data), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if n > 0 && len(lines) > n {
			b.WriteString("...\n")
			lines = lines[len(lines)-n:]
		}
		for _, l := range lines {
			b.WriteString(l)
		}
		if len(lines) > 0 && !strings.HasSuffix(lines[len(lines)-1], "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
