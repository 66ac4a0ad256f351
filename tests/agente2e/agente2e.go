package agente2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/tests/libvirtlab"
)

// BuildTags are the build tags the binaries are built with: the libvirt
// binding loads libvirt.so.0 at run time, so no libvirt-dev is needed.
const BuildTags = "libvirt_dlopen"

// maxSocketPath is the size of sun_path less its terminating NUL.
const maxSocketPath = 107

// Binaries are the programs [Build] made.
type Binaries struct {
	// Dir is the directory that holds them.
	Dir string
	// Tetherd, Hook and Ctl are the paths of tetherd, tether-hook and
	// tetherctl.
	Tetherd, Hook, Ctl string
}

// built is the one build of the binaries per test binary (the package's
// only global: building takes seconds and every test needs the same
// programs).
var built struct {
	once sync.Once
	bins Binaries
	err  error
}

// Build returns the binaries, building them the first time it is called in
// the process. It skips tb when libvirtlab.Available fails (not root, or
// libvirt missing) and fails it when the build fails. Call [RemoveBuild]
// from TestMain once the tests have run.
func Build(tb testing.TB) Binaries {
	tb.Helper()
	if err := libvirtlab.Available(); err != nil {
		tb.Skipf("agente2e: %v: %s", err, libvirtlab.SkipMessage)
	}
	built.once.Do(func() { built.bins, built.err = build() })
	if built.err != nil {
		tb.Fatalf("agente2e: %v", built.err)
	}
	return built.bins
}

// RemoveBuild deletes the binaries made by [Build], if any.
func RemoveBuild() error {
	if built.bins.Dir == "" {
		return nil
	}
	if err := os.RemoveAll(built.bins.Dir); err != nil {
		return fmt.Errorf("remove built binaries: %w", err)
	}
	return nil
}

// build runs go build for the three programs into a new temp directory.
// It runs in the test's working directory (the package's), which is inside
// the module, so the import paths resolve to this source tree.
func build() (Binaries, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("find the go command: %w", err)
	}
	dir, err := os.MkdirTemp("", "agente2e-bin-")
	if err != nil {
		return Binaries{}, fmt.Errorf("make build directory: %w", err)
	}
	const mod = "github.com/tether-net/tether/cmd/"
	cmd := exec.Command(goCmd, "build", "-tags", BuildTags, "-o", dir+string(filepath.Separator),
		mod+"tetherd", mod+"tether-hook", mod+"tetherctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return Binaries{}, fmt.Errorf("go build -tags %s: %w\n%s", BuildTags, err, out)
	}
	return Binaries{
		Dir:     dir,
		Tetherd: filepath.Join(dir, "tetherd"),
		Hook:    filepath.Join(dir, "tether-hook"),
		Ctl:     filepath.Join(dir, "tetherctl"),
	}, nil
}

// Env is one tetherd installation in a test directory: its configuration
// file, state directory, hook spool and API socket. tetherd processes
// started from one Env ([Env.Start]) share them, one after the other, as
// successive runs of the daemon on one host do.
type Env struct {
	// Bins are the programs.
	Bins Binaries
	// Dir holds everything below.
	Dir string
	// ConfigPath is tetherd's configuration file.
	ConfigPath string
	// StateDir, SpoolDir and Socket are the configured state_dir,
	// spool_dir and socket.
	StateDir, SpoolDir, Socket string

	uri    string
	starts int
	client *api.Client
}

// NewEnv makes an Env in dir whose tetherd follows the libvirt connection
// uri (empty disables the libvirt source), and writes its configuration.
func NewEnv(tb testing.TB, bins Binaries, dir, uri string) *Env {
	tb.Helper()
	e := &Env{
		Bins: bins, Dir: dir,
		ConfigPath: filepath.Join(dir, "tetherd.yaml"),
		StateDir:   filepath.Join(dir, "state"),
		SpoolDir:   filepath.Join(dir, "spool"),
		Socket:     filepath.Join(dir, "tetherd.sock"),
	}
	if len(e.Socket) > maxSocketPath {
		tb.Fatalf("agente2e: socket path %s is over %d bytes: set a shorter TMPDIR", e.Socket, maxSocketPath)
	}
	e.client = &api.Client{Socket: e.Socket}
	e.SetURI(tb, uri)
	return e
}

// SetURI rewrites the configuration so that the next tetherd follows uri.
func (e *Env) SetURI(tb testing.TB, uri string) {
	tb.Helper()
	e.uri = uri
	if err := e.writeConfig(); err != nil {
		tb.Fatalf("agente2e: %v", err)
	}
}

// writeConfig writes the configuration through agent/config, so that the
// keys are the ones tetherd reads: the paths of e, uri, a fast reconnect
// backoff (100 ms to 1 s, so that a libvirtd restart is followed quickly)
// and JSON logs at info level.
func (e *Env) writeConfig() error {
	c := config.Default()
	c.StateDir, c.Socket, c.SpoolDir = e.StateDir, e.Socket, e.SpoolDir
	c.SocketGroup = ""
	// Keep the host key and counters in the test's directory: the defaults
	// are under /etc/tether and /var/lib/tether of the machine.
	c.Identity.KeyFile = filepath.Join(e.StateDir, "host.key")
	c.Identity.Counters = filepath.Join(e.StateDir, "counters")
	c.Identity.SwitchKeys = filepath.Join(e.StateDir, "switch-keys")
	c.Libvirt.URI = e.uri
	c.Libvirt.ReconnectMin = config.Duration(100 * time.Millisecond)
	c.Libvirt.ReconnectMax = config.Duration(time.Second)
	c.Log = config.Log{Level: "info", Format: "json"}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("tetherd configuration: %w", err)
	}
	var b bytes.Buffer
	if err := config.Write(&b, c); err != nil {
		return err
	}
	if err := os.WriteFile(e.ConfigPath, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write tetherd configuration: %w", err)
	}
	return nil
}

// Client returns an API client for e's socket.
func (e *Env) Client() *api.Client { return e.client }

// Status asks tetherd for its status, giving up after two seconds.
func (e *Env) Status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return e.client.Status(ctx)
}

// Snapshot returns tetherd's VMs and VIFs through the API client.
func (e *Env) Snapshot(ctx context.Context) ([]api.VM, []api.VIF, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	vms, err := e.client.VMs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list VMs: %w", err)
	}
	vifs, err := e.client.VIFs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list VIFs: %w", err)
	}
	return vms, vifs, nil
}

// Ctl runs the built tetherctl with args, --socket and -o json, and decodes
// its standard output into out.
func (e *Env) Ctl(ctx context.Context, out any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	args = append(args, "--socket", e.Socket, "-o", "json")
	cmd := exec.CommandContext(ctx, e.Bins.Ctl, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tetherctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("tetherctl %s: decode output: %w", strings.Join(args, " "), err)
	}
	return nil
}

// SpoolFiles returns the names of the events waiting in the spool and of
// the files tetherd moved aside to its bad/ directory as corrupt.
func (e *Env) SpoolFiles() (events, bad []string, err error) {
	list := func(dir string) ([]string, error) {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list spool: %w", err)
		}
		var names []string
		for _, ent := range ents {
			if strings.HasSuffix(ent.Name(), ".event") && !strings.HasPrefix(ent.Name(), ".") {
				names = append(names, ent.Name())
			}
		}
		return names, nil
	}
	if events, err = list(e.SpoolDir); err != nil {
		return nil, nil, err
	}
	if bad, err = list(filepath.Join(e.SpoolDir, "bad")); err != nil {
		return nil, nil, err
	}
	return events, bad, nil
}

// HookRun is the outcome of one run of tether-hook.
type HookRun struct {
	// Took is the time from exec to exit.
	Took time.Duration
	// Code is the exit status.
	Code int
	// Spooled is true when tether-hook said it spooled the event.
	Spooled bool
	// Stderr is what it wrote there.
	Stderr string
}

// RunHook execs the built tether-hook with args (DRIVER OBJECT OP SUBOP
// EXTRA) and xml on its standard input, with TETHER_SOCKET and
// TETHER_SPOOL_DIR set to e's, and times it from exec to exit. The error is
// for a hook that could not be run at all; a non-zero exit is in Code.
func (e *Env) RunHook(args []string, xml []byte) (HookRun, error) {
	cmd := exec.Command(e.Bins.Hook, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TETHER_SOCKET=" + e.Socket, "TETHER_SPOOL_DIR=" + e.SpoolDir}
	cmd.Stdin = bytes.NewReader(xml)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	begin := time.Now()
	err := cmd.Run()
	run := HookRun{Took: time.Since(begin), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		run.Code = ee.ExitCode()
	case err != nil:
		return run, fmt.Errorf("run tether-hook %s: %w", strings.Join(args, " "), err)
	}
	run.Spooled = strings.Contains(run.Stderr, " spooled in ")
	return run, nil
}

// HookScript returns the hook script for driver that runs the built
// tether-hook for e. It is the shipped two-line script
// (libvirthooks.ScriptContent: "#!/bin/sh" and
// `exec /usr/bin/tether-hook DRIVER "$@"`) with the built binary's path in
// place of /usr/bin/tether-hook and TETHER_SOCKET and TETHER_SPOOL_DIR set
// on the exec line: the test's tetherd listens in the test's directory, not
// at the default socket, and libvirtd runs hooks with a scrubbed
// environment, so the script itself has to say where.
func (e *Env) HookScript(driver libvirthooks.Driver) (string, error) {
	b, err := libvirthooks.ScriptContent(driver)
	if err != nil {
		return "", fmt.Errorf("hook script: %w", err)
	}
	const shipped = "exec /usr/bin/tether-hook " // followed by the driver and "$@"
	s := string(b)
	if !strings.Contains(s, shipped) {
		return "", fmt.Errorf("hook script for %s does not exec /usr/bin/tether-hook:\n%s", driver, s)
	}
	repl := "TETHER_SOCKET=" + shellQuote(e.Socket) + " TETHER_SPOOL_DIR=" + shellQuote(e.SpoolDir) +
		" exec " + shellQuote(e.Bins.Hook) + " "
	return strings.Replace(s, shipped, repl, 1), nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Tetherd is one tetherd process started by [Env.Start].
type Tetherd struct {
	// Env is the installation it runs from.
	Env *Env
	// LogPath is its log (its standard error: JSON lines).
	LogPath string
	// Began is when it was exec'd.
	Began time.Time
	// PID is its process id.
	PID int

	proc    *os.Process
	done    chan struct{}
	waitErr error // valid once done is closed
}

// Start starts tetherd with e's configuration, its standard output and
// error to a new log file in e.Dir, and registers a cleanup that kills it
// and, when the test failed, logs the tail of its log. It does not wait for
// tetherd to be ready ([Tetherd.WaitReady]).
//
// The process gets SIGKILL if the thread that started it exits, so that a
// test binary that dies (a timeout panic) leaves no tetherd behind; the
// thread is held, locked, by a goroutine until tetherd exits.
func (e *Env) Start(tb testing.TB) *Tetherd {
	tb.Helper()
	e.starts++
	d := &Tetherd{Env: e, LogPath: filepath.Join(e.Dir, fmt.Sprintf("tetherd-%02d.log", e.starts)), done: make(chan struct{})}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		tb.Fatalf("agente2e: create tetherd log: %v", err)
	}
	cmd := exec.Command(e.Bins.Tetherd, "--config", e.ConfigPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		defer close(d.done)
		defer logf.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		d.Began = time.Now()
		if err := cmd.Start(); err != nil {
			d.waitErr = err
			started <- err
			return
		}
		started <- nil
		d.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		tb.Fatalf("agente2e: start tetherd: %v", err)
	}
	d.proc, d.PID = cmd.Process, cmd.Process.Pid
	tb.Cleanup(func() {
		d.signal(syscall.SIGKILL)
		<-d.done
		if tb.Failed() {
			tb.Logf("agente2e: tetherd %d log %s (tail):\n%s", d.PID, d.LogPath, d.LogTail(40))
		}
	})
	return d
}

// Exited reports whether the process has exited.
func (d *Tetherd) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the process has exited. os.Process.Signal
// never reaches another process that reused the pid once this one was
// reaped (it uses a pidfd, and knows when Wait has returned).
func (d *Tetherd) signal(sig syscall.Signal) {
	if !d.Exited() {
		_ = d.proc.Signal(sig)
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (d *Tetherd) Kill(tb testing.TB) {
	tb.Helper()
	d.signal(syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("agente2e: tetherd %d survived SIGKILL for 10 s", d.PID)
	}
}

// Stop sends SIGTERM and waits until tetherd exits; it fails tb if tetherd
// does not exit within 10 s or exits with an error.
func (d *Tetherd) Stop(tb testing.TB) {
	tb.Helper()
	d.signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("agente2e: tetherd %d did not stop within 10 s of SIGTERM", d.PID)
	}
	if d.waitErr != nil {
		tb.Errorf("agente2e: tetherd %d exited: %v", d.PID, d.waitErr)
	}
}

// WaitReady waits until tetherd answers GET /v1/status with ready true and
// returns that status. It fails tb, with the log, when tetherd exits first
// or timeout passes.
func (d *Tetherd) WaitReady(tb testing.TB, timeout time.Duration) api.Status {
	tb.Helper()
	st, err := d.waitReady(timeout, 20*time.Millisecond)
	if err != nil {
		tb.Fatalf("agente2e: %v\ntetherd log %s:\n%s", err, d.LogPath, d.LogTail(40))
	}
	return st
}

// waitReady polls the status every interval until ready.
func (d *Tetherd) waitReady(timeout, interval time.Duration) (api.Status, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if d.Exited() {
			return api.Status{}, fmt.Errorf("tetherd %d exited before it was ready: %v", d.PID, d.waitErr)
		}
		st, err := d.Env.Status(context.Background())
		if err == nil && st.Ready {
			return st, nil
		}
		if err == nil {
			err = errors.New("not ready")
		}
		last = err
		if time.Now().After(deadline) {
			return api.Status{}, fmt.Errorf("tetherd %d not ready within %v: %v", d.PID, timeout, last)
		}
		time.Sleep(interval)
	}
}

// ReadyTime starts tetherd and returns the time from exec to the first
// status that says ready, polling every 2 ms, and the process (still
// running).
func (e *Env) ReadyTime(tb testing.TB, timeout time.Duration) (time.Duration, *Tetherd) {
	tb.Helper()
	d := e.Start(tb)
	if _, err := d.waitReady(timeout, 2*time.Millisecond); err != nil {
		tb.Fatalf("agente2e: %v\ntetherd log %s:\n%s", err, d.LogPath, d.LogTail(40))
	}
	return time.Since(d.Began), d
}

// LogTail returns the last n lines of the log.
func (d *Tetherd) LogTail(n int) string {
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.SplitAfter(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"...\n"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// LogRecord is one line of tetherd's JSON log.
type LogRecord map[string]any

// Msg returns the record's message.
func (r LogRecord) Msg() string { s, _ := r["msg"].(string); return s }

// Level returns the record's level (INFO, WARN, ...).
func (r LogRecord) Level() string { s, _ := r["level"].(string); return s }

// Num returns the numeric attribute key.
func (r LogRecord) Num(key string) (float64, bool) { f, ok := r[key].(float64); return f, ok }

// Time returns the record's time.
func (r LogRecord) Time() (time.Time, error) {
	s, _ := r["time"].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("log record time: %w", err)
	}
	return t, nil
}

// String returns the record as JSON, for messages.
func (r LogRecord) String() string {
	b, _ := json.Marshal(map[string]any(r))
	return string(b)
}

// Records parses the log. A line that is not JSON (a Go runtime panic, for
// example) is returned as a record with level "RAW" and the line as msg; a
// last line cut short by SIGKILL is dropped.
func (d *Tetherd) Records() ([]LogRecord, error) {
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		return nil, fmt.Errorf("read tetherd log: %w", err)
	}
	var recs []LogRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	complete := bytes.HasSuffix(data, []byte("\n"))
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r LogRecord
		if err := json.Unmarshal(line, &r); err != nil {
			r = LogRecord{"level": "RAW", "msg": string(line)}
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tetherd log: %w", err)
	}
	if !complete && len(recs) > 0 && recs[len(recs)-1].Level() == "RAW" {
		recs = recs[:len(recs)-1]
	}
	return recs, nil
}

// Find returns the records whose message is msg.
func Find(recs []LogRecord, msg string) []LogRecord {
	var out []LogRecord
	for _, r := range recs {
		if r.Msg() == msg {
			out = append(out, r)
		}
	}
	return out
}

// Source returns the status of the source name ("hooks", "libvirt") and
// whether it was listed.
func Source(st api.Status, name string) (api.SourceStatus, bool) {
	for _, s := range st.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return api.SourceStatus{}, false
}

// ProcMemory is a process's memory as /proc/PID/status reports it, in KiB.
type ProcMemory struct {
	// RSS is VmRSS, the resident set; HWM is VmHWM, its peak.
	RSS, HWM int64
	// Anon and File split RSS: anonymous memory (heaps, stacks) and
	// file-backed pages (the binary and the shared libraries, which other
	// processes may share).
	Anon, File int64
}

// ReadMemory returns the memory of process pid.
func ReadMemory(pid int) (ProcMemory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, fmt.Errorf("read process status: %w", err)
	}
	var m ProcMemory
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "VmRSS:":
			dst = &m.RSS
		case "VmHWM:":
			dst = &m.HWM
		case "RssAnon:":
			dst = &m.Anon
		case "RssFile:":
			dst = &m.File
		default:
			continue
		}
		if *dst, err = strconv.ParseInt(f[1], 10, 64); err != nil {
			return ProcMemory{}, fmt.Errorf("parse %s of process %d: %w", f[0], pid, err)
		}
	}
	if m.RSS == 0 {
		return ProcMemory{}, fmt.Errorf("process %d: no VmRSS in its status (a zombie?)", pid)
	}
	return m, nil
}

// Eventually calls check until it returns nil and fails tb with check's
// last error if timeout passes first. It polls every 20 ms: the sleep paces
// the polling and is never what a test asserts.
func Eventually(tb testing.TB, timeout time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("agente2e: %s: not so within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Percentile returns the p-th percentile (0 < p <= 1) of sorted by the
// nearest-rank method.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
