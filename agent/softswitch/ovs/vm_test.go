package ovs_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/tests/kvm/kvmtest"
)

// TestInKernelVM runs the TestVM* tests inside the kernel VM, whose
// Debian kernel has the openvswitch module this machine's kernel lacks.
func TestInKernelVM(t *testing.T) {
	out := kvmtest.RunInVM(t, "^TestVM", kvmtest.Options{MemoryMB: 512, Tags: []string{"libvirt_dlopen"}})
	if strings.Contains(out, "--- SKIP: TestVMKernelDatapath") {
		t.Skip("TestVMKernelDatapath skipped in the VM (reason on the console above)")
	}
	if !strings.Contains(out, "--- PASS: TestVMKernelDatapath") {
		t.Errorf("TestVMKernelDatapath did not pass in the VM (console above)")
	}
}

// TestVMKernelDatapath: the same port, allow-list and QinQ checks with the
// bridge on the openvswitch kernel module's datapath ("system"): frames
// are switched in the kernel, not by ovs-vswitchd.
func TestVMKernelDatapath(t *testing.T) {
	kvmtest.RequireVM(t)
	if why, err := os.ReadFile("/etc/tether-kvm/ovs.missing"); err == nil {
		t.Skip(strings.TrimSpace(string(why)))
	}
	start := time.Now()
	waitUptime(t, 11*time.Second)
	l := newLab(t, "system")
	t.Cleanup(func() {
		if t.Failed() {
			for _, cmd := range [][]string{{"dpctl/show", "-s"}, {"dpctl/dump-flows"}, {"dpif-netlink/dispatch-mode"}, {"upcall/show"}, {"ofproto/trace", l.bridge, "in_port=" + vmPort + ",dl_src=" + vmMAC.String()}} {
				t.Logf("ovs-appctl %v:\n%s", cmd, l.ovs.Appctl(cmd...))
			}
			if out, err := exec.Command("dmesg").CombinedOutput(); err == nil {
				t.Logf("dmesg:\n%s", out)
			}
		}
	})
	t.Logf("daemons and bridge up in %v", time.Since(start).Round(time.Millisecond))
	runTraffic(t, l)
	// The frames went through the kernel datapath: ovs-vswitchd created it
	// through the module's generic netlink families (its local port is the
	// ovs-system device) and the ports are vports of it.
	for _, dev := range []string{"ovs-system", vmPort, upPort} {
		b, err := os.ReadFile("/sys/class/net/" + dev + "/ifindex")
		if err != nil {
			t.Errorf("%s: %v", dev, err)
			continue
		}
		if dev == "ovs-system" {
			continue
		}
		if _, err := os.Stat("/sys/class/net/" + dev + "/master"); err != nil {
			t.Errorf("%s (ifindex %s) is not enslaved to the kernel datapath: %v", dev, strings.TrimSpace(string(b)), err)
		}
	}
	if g := l.vsctlGet(t, "Bridge", l.bridge, "datapath_type"); g != "system" {
		t.Errorf("datapath_type %s, want system", g)
	}
	t.Logf("kernel datapath run took %v", time.Since(start).Round(time.Millisecond))
}

// waitUptime waits until the system has been up for d. ovs-vswitchd 3.1
// counts the CPUs for its upcall handlers only once CLOCK_MONOTONIC has
// passed 10 s (count_cpu_cores compares the time with a last update of 0):
// started earlier, as in a freshly booted VM, it runs the kernel
// datapath's per-CPU upcall dispatch with 0 handlers, every upcall is
// lost ("lookups: missed:N lost:N") and nothing is forwarded, even after
// the count is later corrected.
func waitUptime(t *testing.T, d time.Duration) {
	t.Helper()
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	var up float64
	if _, err := fmt.Sscan(string(b), &up); err != nil {
		t.Fatalf("/proc/uptime %q: %v", b, err)
	}
	if wait := d - time.Duration(up*float64(time.Second)); wait > 0 {
		t.Logf("uptime %.1fs: waiting %v before starting ovs-vswitchd", up, wait.Round(time.Millisecond))
		time.Sleep(wait)
	}
}
