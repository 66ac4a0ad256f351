package kvmtest

import (
	"os"
	"strings"
	"testing"
)

// TestInKernelVM runs this package's TestVM* tests inside the kernel VM.
func TestInKernelVM(t *testing.T) {
	out := RunInVM(t, "^TestVM", Options{Env: []string{"TETHER_KVMTEST_PROBE=through"}})
	if !strings.Contains(out, "--- PASS: TestVMKernel") {
		t.Errorf("TestVMKernel did not pass in the VM")
	}
}

// TestVMKernel checks it runs on Debian's kernel with the pinned release,
// as root, with the environment RunInVM passed.
func TestVMKernel(t *testing.T) {
	RequireVM(t)
	v, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(v)); !strings.HasSuffix(got, "-amd64") {
		t.Errorf("kernel %q, want Debian's -amd64 kernel", got)
	}
	if os.Geteuid() != 0 {
		t.Errorf("euid %d, want root", os.Geteuid())
	}
	if got := os.Getenv("TETHER_KVMTEST_PROBE"); got != "through" {
		t.Errorf("TETHER_KVMTEST_PROBE = %q, want %q", got, "through")
	}
}
