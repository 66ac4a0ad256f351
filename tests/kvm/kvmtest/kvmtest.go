// Package kvmtest lets a package's own tests run inside the kernel VM of
// tests/kvm, for kernel features this machine's kernel lacks (8021q,
// vlan_filtering, dummy, openvswitch, netdevsim).
//
// A package has two kinds of tests. Tests that need the VM start with
// RequireVM and are skipped on the host. One host test calls RunInVM: it
// builds the package's test binary statically, boots the VM once with it
// and the pattern of the in-VM tests, and fails with the console when the
// run fails:
//
//	func TestInKernelVM(t *testing.T) { kvmtest.RunInVM(t, "^TestVM", kvmtest.Options{}) }
//
//	func TestVMPartitionEnsure(t *testing.T) {
//		kvmtest.RequireVM(t)
//		...
//	}
package kvmtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/tests/kvm"
)

// InVM reports whether the program runs inside the kernel VM.
func InVM() bool { return os.Getenv("TETHER_KVM") == "1" }

// RequireVM skips t unless it runs inside the kernel VM.
func RequireVM(t testing.TB) {
	t.Helper()
	if !InVM() {
		t.Skip("runs inside the kernel VM only (see RunInVM in this package's tests)")
	}
}

// Options tune RunInVM.
type Options struct {
	// Tags are extra build tags for the test binary.
	Tags []string
	// Env is passed to the tests inside the VM (NAME=value).
	Env []string
	// MemoryMB is the guest's memory; 0 means the harness default (256).
	MemoryMB int
	// Timeout bounds build plus boot plus run; 0 means 5 minutes.
	Timeout time.Duration
	// Args are extra test flags (for example "-test.bench=.").
	Args []string
}

// RunInVM builds the test binary of the package in the current directory
// (go test runs tests there) with CGO_ENABLED=0, boots the kernel VM with
// it running the tests that match pattern (verbose), logs the console and
// fails t unless the run exits 0. It skips when the harness cannot run on
// this machine (no QEMU, cache not preparable) and does nothing inside the
// VM itself. The console is returned for extra checks.
func RunInVM(t *testing.T, pattern string, o Options) string {
	t.Helper()
	if InVM() {
		t.Skip("already inside the kernel VM")
	}
	if testing.Short() {
		t.Skip("boots a kernel VM; not in -short")
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := kvm.Ensure(ctx); err != nil {
		if errors.Is(err, kvm.ErrNoQEMU) || errors.Is(err, kvm.ErrNotPrepared) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(wd)+".test")
	args := []string{"test", "-c", "-o", bin}
	if len(o.Tags) > 0 {
		args = append(args, "-tags", strings.Join(o.Tags, ","))
	}
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test binary for the kernel VM: %v\n%s", err, out)
	}
	targs := append([]string{"-test.run", pattern, "-test.v", "-test.count=1"}, o.Args...)
	code, out, err := kvm.RunOptions(ctx, kvm.Options{
		Env:      o.Env,
		MemoryMB: o.MemoryMB,
		Dir:      wd,
	}, bin, targs)
	if err != nil {
		t.Fatalf("kernel VM: %v\nconsole:\n%s", err, out)
	}
	t.Logf("kernel VM console:\n%s", out)
	if code != 0 {
		t.Fatalf("tests in the kernel VM exited %d (console above)", code)
	}
	if !strings.Contains(out, "=== RUN") {
		t.Fatalf("no test ran in the kernel VM (pattern %q); console above", pattern)
	}
	return out
}
