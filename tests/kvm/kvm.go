// Package kvm boots Debian's own kernel under QEMU with a small initramfs
// and runs one statically linked program in it: the way tether's tests reach
// kernel features this machine's kernel lacks (8021q, dummy, bridge
// vlan_filtering). See /work/shared/DESIGN.md, "Testing on these machines".
//
// tests/kvm/prepare.sh fills the cache (kernel, modules, busybox, /init);
// Run puts the program (and its arguments, in /test.sh) in a small
// uncompressed cpio archive in front of the cached initramfs per boot, so
// nothing is rebuilt between boots.
//
// Environment: TETHER_KVM_CACHE (cache directory), TETHER_KVM_ACCEL=kvm
// (try KVM instead of TCG; KVM fails on these machines).
package kvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// DefaultCache is where prepare.sh puts its files unless TETHER_KVM_CACHE
// says otherwise.
const DefaultCache = "/var/cache/tether-kvm"

// Console lines /init writes around the program's own output.
const (
	markStart    = "TETHER-KVM-START"
	markExit     = "TETHER-KVM-EXIT="
	markModprobe = "TETHER-KVM-MODPROBE-FAILED"
)

// DefaultTimeout bounds a boot when the context has no deadline.
const DefaultTimeout = 5 * time.Minute

// ErrNotPrepared is returned (wrapped) when the cache lacks a kernel or
// initramfs: run tests/kvm/prepare.sh.
var ErrNotPrepared = errors.New("kvm: cache not prepared (run tests/kvm/prepare.sh)")

// Options tune a boot. The zero value is what Run uses.
type Options struct {
	// Cache is the prepared cache directory; empty means CacheDir().
	Cache string
	// Env is set (as NAME=value) for the program inside the VM, which gets
	// no environment from the host otherwise. TETHER_KVM=1 is always set.
	Env []string
	// Output, if set, receives the console as it arrives (lines, "\r"
	// dropped, harness marker lines left out).
	Output io.Writer
	// MemoryMB is the guest memory; 0 means 256.
	MemoryMB int
	// ExtraQEMU is appended to QEMU's arguments.
	ExtraQEMU []string
	// Dir, if set, is a host directory (a package's, for go test) whose
	// testdata/ subtree is copied to /pkg/testdata in the guest; the
	// program then runs in /pkg instead of /. Regular files and
	// directories only; at most MaxTestdata bytes.
	Dir string
}

// MaxTestdata bounds what Options.Dir may carry into the guest's RAM.
const MaxTestdata = 64 << 20

// CacheDir is $TETHER_KVM_CACHE or DefaultCache.
func CacheDir() string {
	if d := os.Getenv("TETHER_KVM_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// Prepared reports whether dir holds what Run needs.
func Prepared(dir string) bool {
	_, err := kernelPaths(dir)
	return err == nil
}

// PrepareScript is the path of prepare.sh next to this file's source, for
// tests that prepare the cache on demand.
func PrepareScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "prepare.sh")
}

type paths struct{ kernel, initrd string }

func kernelPaths(dir string) (paths, error) {
	p := paths{initrd: filepath.Join(dir, "initramfs-base.cpio.gz")}
	if _, err := os.Stat(p.initrd); err != nil {
		return p, fmt.Errorf("%w: %v", ErrNotPrepared, err)
	}
	// The uncompressed ELF kernel boots through its PVH entry, skipping the
	// bzImage's decompression (about 2 s under TCG).
	for _, k := range []string{"vmlinux", "vmlinuz"} {
		if _, err := os.Stat(filepath.Join(dir, k)); err == nil {
			p.kernel = filepath.Join(dir, k)
			return p, nil
		}
	}
	return p, fmt.Errorf("%w: no vmlinux or vmlinuz in %s", ErrNotPrepared, dir)
}

// Run boots the kernel VM with testBinary as /test, runs it with args and
// returns its exit status and the console output. err is non-nil when the
// status could not be learned (QEMU failed, timeout, guest panic); then
// exitCode is -1. testBinary must be statically linked (CGO_ENABLED=0).
func Run(ctx context.Context, testBinary string, args []string) (exitCode int, output string, err error) {
	return RunOptions(ctx, Options{}, testBinary, args)
}

// RunOptions is Run with Options.
func RunOptions(ctx context.Context, o Options, testBinary string, args []string) (int, string, error) {
	if o.Cache == "" {
		o.Cache = CacheDir()
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 256
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	p, err := kernelPaths(o.Cache)
	if err != nil {
		return -1, "", err
	}
	if err := checkStatic(testBinary); err != nil {
		return -1, "", err
	}
	tmp, err := os.MkdirTemp("", "tether-kvm-")
	if err != nil {
		return -1, "", err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd")
	var extra []file
	if o.Dir != "" {
		if extra, err = testdataFiles(o.Dir); err != nil {
			return -1, "", err
		}
	}
	wd := "/"
	if len(extra) > 0 {
		wd = "/pkg"
	}
	if err := buildInitrd(initrd, p.initrd, testBinary, testScript(wd, o.Env, args), extra); err != nil {
		return -1, "", err
	}

	qargs := []string{
		"-kernel", p.kernel,
		"-initrd", initrd,
		// Arguments travel in /test.sh, not here: the kernel command line
		// is capped at 2048 bytes and 32 init arguments and cannot carry
		// every character a -test.run pattern may hold.
		"-append", "console=ttyS0 quiet panic=-1",
		"-m", strconv.Itoa(o.MemoryMB),
		"-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio", "-monitor", "none",
		"-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-nic", "none",
	}
	// TCG unless asked: /dev/kvm exists on these machines but a KVM guest
	// dies with "KVM internal error. Suberror: 1" early in boot.
	if os.Getenv("TETHER_KVM_ACCEL") == "kvm" {
		qargs = append(qargs, "-accel", "kvm", "-cpu", "host")
	} else {
		qargs = append(qargs, "-accel", "tcg")
	}
	qargs = append(qargs, o.ExtraQEMU...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qargs...)
	cmd.WaitDelay = 2 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var console bytes.Buffer
	done := make(chan struct{})
	status := -1
	modprobeFailed := false
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			// Markers may share a line with output that ended without a
			// newline (SeaBIOS, the program's last line).
			if i := strings.Index(line, markExit); i >= 0 {
				if n, err := strconv.Atoi(line[i+len(markExit):]); err == nil {
					status = n
				}
				line = line[:i]
			}
			if i := strings.Index(line, markStart); i >= 0 {
				line = line[:i] + line[i+len(markStart):]
			}
			if strings.Contains(line, markModprobe) {
				modprobeFailed = true
			}
			if line == "" {
				continue
			}
			console.WriteString(line)
			console.WriteByte('\n')
			if o.Output != nil {
				fmt.Fprintln(o.Output, line)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		<-done
		return -1, "", fmt.Errorf("kvm: start qemu: %w", err)
	}
	werr := cmd.Wait()
	pw.Close()
	<-done
	out := console.String()
	if ctx.Err() != nil {
		return -1, out, fmt.Errorf("kvm: %w (guest still running; console above)", ctx.Err())
	}
	if modprobeFailed {
		return -1, out, errors.New("kvm: modprobe failed in the guest")
	}
	// isa-debug-exit makes QEMU exit with (byte<<1)|1. The console marker
	// carries the full status; the port confirms the guest got that far.
	qstatus := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		qstatus = ee.ExitCode()
	} else if werr != nil {
		return -1, out, fmt.Errorf("kvm: qemu: %w", werr)
	}
	if status >= 0 {
		return status, out, nil
	}
	if qstatus&1 == 1 {
		return (qstatus - 1) / 2, out, nil
	}
	return -1, out, fmt.Errorf("kvm: guest ended without reporting a status (qemu exit %d; kernel panic or /init died)", qstatus)
}

// testScript is /test.sh: the environment and the command line, quoted for
// busybox sh.
func testScript(wd string, env, args []string) []byte {
	var b strings.Builder
	b.WriteString("export TETHER_KVM=1\n")
	valid := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !valid.MatchString(k) {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, shQuote(v))
	}
	fmt.Fprintf(&b, "cd %s\nexec /test", shQuote(wd))
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shQuote(a))
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkStatic rejects dynamically linked programs: the initramfs has no
// libc and no loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("kvm: %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("kvm: %s is %v, not x86-64", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("kvm: %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// buildInitrd writes an uncompressed newc archive holding /test, /test.sh
// and /dev/console followed by the cached base archive. The kernel unpacks
// concatenated archives in order; uncompressed first, compressed after is
// the early-microcode layout every kernel handles.
func buildInitrd(dst, base, testBinary string, script []byte, extra []file) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	bin, err := os.ReadFile(testBinary)
	if err != nil {
		return err
	}
	w := &cpioWriter{w: out, ino: 1 << 20}
	w.entry("dev", 0o040755, 0, nil)
	w.entry("dev/console", 0o020600, 5<<8|1, nil)
	w.entry("test", 0o100755, 0, bin)
	w.entry("test.sh", 0o100755, 0, script)
	for _, f := range extra {
		w.entry(f.name, f.mode, 0, f.data)
	}
	w.entry("TRAILER!!!", 0, 0, nil)
	if w.err != nil {
		return w.err
	}
	b, err := os.Open(base)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := io.Copy(out, b); err != nil {
		return err
	}
	return out.Close()
}

// file is one archive member besides /test and /test.sh.
type file struct {
	name string // no leading slash
	mode int    // full st_mode
	data []byte
}

// testdataFiles lists dir/testdata as pkg/testdata/... members; none if
// there is no testdata directory.
func testdataFiles(dir string) ([]file, error) {
	root := filepath.Join(dir, "testdata")
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, nil
	}
	files := []file{{name: "pkg", mode: 0o040755}}
	var total int64
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		name := "pkg/" + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			files = append(files, file{name: name, mode: 0o040755})
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if total += fi.Size(); total > MaxTestdata {
				return fmt.Errorf("kvm: %s holds more than %d bytes", root, MaxTestdata)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files = append(files, file{name: name, mode: 0o100000 | int(fi.Mode().Perm()), data: data})
		}
		return nil
	})
	return files, err
}

// cpioWriter writes the "newc" (070701) format the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino int
	off int64
	err error
}

// entry writes one member; rdev is major<<8|minor for device nodes.
func (c *cpioWriter) entry(name string, mode, rdev int, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if p := (4 - c.off%4) % 4; p > 0 {
		c.write(make([]byte, p))
	}
}

// ErrNoQEMU is returned (wrapped) by Ensure when qemu-system-x86_64 is not
// installed.
var ErrNoQEMU = errors.New("kvm: qemu-system-x86_64 not installed (tests/install-deps.sh installs qemu-system-x86)")

// Stale reports whether the cache in dir was prepared by another version of
// prepare.sh (its stamp carries the script's checksum), so a change to the
// pin, the module lists or /init is picked up without a manual rerun.
func Stale(dir string) bool {
	have, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		return true
	}
	script, err := os.ReadFile(PrepareScript())
	if err != nil {
		return false // no source tree: trust the cache
	}
	sum := sha256.Sum256(script)
	return !strings.HasSuffix(strings.TrimSpace(string(have)), " script "+hex.EncodeToString(sum[:])[:16])
}

// Ensure prepares the cache (CacheDir) when it is missing or stale by
// running prepare.sh, which takes one lock, so concurrent callers wait for
// one preparation. Errors wrap ErrNoQEMU or ErrNotPrepared when the harness
// cannot run here (no QEMU, no network to the Debian mirror).
func Ensure(ctx context.Context) error {
	dir := CacheDir()
	if Prepared(dir) && !Stale(dir) {
		return nil
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return ErrNoQEMU
	}
	cmd := exec.CommandContext(ctx, "bash", PrepareScript())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: prepare.sh: %v\n%s", ErrNotPrepared, err, out)
	}
	if !Prepared(dir) || Stale(dir) {
		return fmt.Errorf("prepare.sh succeeded but %s is not prepared:\n%s", dir, out)
	}
	return nil
}
