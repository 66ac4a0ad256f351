package sriov

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tether-net/tether/agent/vnic"
	"github.com/tether-net/tether/internal/nsimtest"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
)

// TestInKernelVM runs the TestVM* tests below inside the kernel VM, where
// netdevsim (built out of tree by tests/kvm/prepare.sh) gives real VFs.
func TestInKernelVM(t *testing.T) {
	out := kvmtest.RunInVM(t, "^TestVM", kvmtest.Options{})
	if i := strings.Index(out, "netdevsim.ko could not be built"); i >= 0 {
		line, _, _ := strings.Cut(out[i:], "\n")
		t.Skip("the kernel VM has no netdevsim: " + line)
	}
	for _, name := range []string{"TestVMEnsureRelease", "TestVMCrashAfterSave", "TestVMReconcileDrift", "TestVMNoVF", "TestVMScale", "TestVMWatchDrift", "TestVMWatchOtherNetNS", "TestVMStatus"} {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the kernel VM", name)
		}
	}
}

// nsimPF creates a netdevsim PF with n VFs for the test (kernel VM only).
func nsimPF(t *testing.T, n int) string {
	t.Helper()
	kvmtest.RequireVM(t)
	return nsimtest.NewPF(t, n)
}

// kernelVF reads a VF through a netlink handle of its own.
func kernelVF(t *testing.T, pf string, idx int) netlink.VfInfo {
	t.Helper()
	return nsimtest.VF(t, pf, idx)
}

// checkVF compares the kernel's VF, field by field, with s.
func checkVF(t *testing.T, what string, v netlink.VfInfo, s Settings) {
	t.Helper()
	n := s.normalize()
	type kv struct {
		name      string
		got, want any
	}
	for _, f := range []kv{
		{"mac", v.Mac.String(), s.MAC.String()},
		{"vlan", v.Vlan, int(s.VLAN)},
		{"qos", v.Qos, int(s.QoS)},
		{"spoofchk", v.Spoofchk, s.SpoofCheck},
		{"trust", v.Trust, map[bool]uint32{false: 0, true: 1}[s.Trust]},
		{"link state", v.LinkState, uint32(s.LinkState)},
		{"min_tx_rate", v.MinTxRate, s.MinTxRate},
		{"max_tx_rate", v.MaxTxRate, s.MaxTxRate},
	} {
		if f.got != f.want {
			t.Errorf("%s: %s = %v, want %v", what, f.name, f.got, f.want)
		}
	}
	if s.VLAN != 0 || s.QoS != 0 {
		if v.VlanProto != int(n.VLANProto) {
			t.Errorf("%s: vlan protocol %#04x, want %#04x", what, v.VlanProto, n.VLANProto)
		}
	}
}

// operatorSet configures a VF the way an operator's `ip link set PF vf N
// ...` would, behind the manager's back.
func operatorSet(t *testing.T, pf string, idx int, s Settings) {
	t.Helper()
	l, err := netlink.LinkByName(pf)
	if err != nil {
		t.Fatal(err)
	}
	n := s.normalize()
	for _, err := range []error{
		netlink.LinkSetVfHardwareAddr(l, idx, s.MAC),
		netlink.LinkSetVfVlanQosProto(l, idx, int(s.VLAN), int(s.QoS), int(n.VLANProto)),
		netlink.LinkSetVfRate(l, idx, int(s.MinTxRate), int(s.MaxTxRate)),
		netlink.LinkSetVfSpoofchk(l, idx, s.SpoofCheck),
		netlink.LinkSetVfTrust(l, idx, s.Trust),
		netlink.LinkSetVfState(l, idx, uint32(s.LinkState)),
	} {
		if err != nil {
			t.Fatalf("operator configures %s vf %d: %v", pf, idx, err)
		}
	}
}

func newManager(t *testing.T, dir string) *Manager {
	t.Helper()
	m, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// operatorOriginal is what an operator had configured on a VF before
// tether got it: every field away from its default, so a restore that
// forgets one shows.
var operatorOriginal = Settings{
	MAC: mustMAC("02:00:00:00:aa:01"), VLAN: 7, QoS: 1, VLANProto: ProtoDot1Q,
	SpoofCheck: true, Trust: true, LinkState: LinkStateDisable, MinTxRate: 10, MaxTxRate: 100,
}

// tetherWant is what a vNIC's profile asks of its VF: every field
// different from operatorOriginal, with an 802.1ad port VLAN.
var tetherWant = Settings{
	MAC: mustMAC("52:54:00:12:34:56"), VLAN: 100, QoS: 5, VLANProto: ProtoDot1AD,
	SpoofCheck: false, Trust: false, LinkState: LinkStateEnable, MinTxRate: 50, MaxTxRate: 500,
}

func TestVMEnsureRelease(t *testing.T) {
	pf := nsimPF(t, 4)
	ctx := context.Background()
	dir := t.TempDir()
	m := newManager(t, dir)
	vf := VF{PF: pf, Index: 1}

	// A fresh netdevsim VF: all zero (netdevsim reports protocol 0 until set).
	fresh := kernelVF(t, pf, 2)
	t.Logf("fresh VF: %+v", fresh)
	operatorSet(t, pf, 1, operatorOriginal)
	checkVF(t, "operator's original", kernelVF(t, pf, 1), operatorOriginal)

	if err := m.Ensure(ctx, "vm-a/net0", vf, tetherWant); err != nil {
		t.Fatal(err)
	}
	checkVF(t, "after Ensure", kernelVF(t, pf, 1), tetherWant)
	if got, err := m.Observe(ctx, vf); err != nil || !got.Equal(tetherWant) {
		t.Errorf("Observe: %s, %v; want %s", got, err, tetherWant)
	}
	if got := kernelVF(t, pf, 1).VlanProto; got != 0x88a8 {
		t.Errorf("vlan protocol %#04x, want 0x88a8 (802.1ad)", got)
	}
	checkVF(t, "neighbour VF untouched", kernelVF(t, pf, 2), fromKernel(fresh))
	// The original is on disk, exactly.
	recs, errs := m.Records()
	if len(errs) != 0 || len(recs) != 1 {
		t.Fatalf("records %v, errors %v", recs, errs)
	}
	if r := recs[0]; r.VF != vf || r.VNIC != "vm-a/net0" || r.Phase != PhaseConfigured || !r.Original.Equal(operatorOriginal) || !r.Desired.Equal(tetherWant) {
		t.Errorf("record %+v", r)
	}
	statePath := m.st.path(vf)
	before, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := os.Stat(statePath)

	// A repeat writes nothing: no netlink request, no state file.
	w := m.Writes()
	if err := m.Ensure(ctx, "vm-a/net0", vf, tetherWant); err != nil {
		t.Fatal(err)
	}
	if d := m.Writes() - w; d != 0 {
		t.Errorf("repeat Ensure sent %d netlink writes, want 0", d)
	}
	after, _ := os.ReadFile(statePath)
	st1, _ := os.Stat(statePath)
	if !bytes.Equal(before, after) || !st0.ModTime().Equal(st1.ModTime()) || !os.SameFile(st0, st1) {
		t.Errorf("repeat Ensure rewrote the state file")
	}

	// The VF is never given to a second vNIC, and its refusal changes nothing.
	w = m.Writes()
	err = m.Ensure(ctx, "vm-b/net0", vf, operatorOriginal)
	var inUse *InUseError
	if !errors.As(err, &inUse) || !errors.Is(err, ErrInUse) || inUse.Owner != "vm-a/net0" || inUse.Asker != "vm-b/net0" {
		t.Errorf("second vNIC's Ensure: %v, want *InUseError owned by vm-a/net0", err)
	}
	if err := m.Release(ctx, "vm-b/net0", vf); !errors.As(err, &inUse) {
		t.Errorf("second vNIC's Release: %v, want *InUseError", err)
	}
	if d := m.Writes() - w; d != 0 {
		t.Errorf("refused requests sent %d netlink writes", d)
	}
	checkVF(t, "after refusals", kernelVF(t, pf, 1), tetherWant)

	// A profile change to an 802.1Q VLAN writes only what differs (vlan).
	want2 := tetherWant
	want2.VLANProto, want2.VLAN = ProtoDot1Q, 200
	w = m.Writes()
	if err := m.Ensure(ctx, "vm-a/net0", vf, want2); err != nil {
		t.Fatal(err)
	}
	if d := m.Writes() - w; d != 1 {
		t.Errorf("VLAN change sent %d netlink writes, want 1", d)
	}
	checkVF(t, "after VLAN change", kernelVF(t, pf, 1), want2)
	// Only the guaranteed rate changes: one write, and it reads back.
	want2.MinTxRate = 80
	w = m.Writes()
	if err := m.Ensure(ctx, "vm-a/net0", vf, want2); err != nil {
		t.Fatal(err)
	}
	if d := m.Writes() - w; d != 1 {
		t.Errorf("min rate change sent %d netlink writes, want 1", d)
	}
	checkVF(t, "after min rate change", kernelVF(t, pf, 1), want2)
	if r, _ := m.st.load(vf); r == nil || !r.Original.Equal(operatorOriginal) || !r.Desired.Equal(want2) {
		t.Errorf("profile changes lost the original: %+v", r)
	}

	// Release restores the operator's settings exactly and forgets the VF.
	if err := m.Release(ctx, "vm-a/net0", vf); err != nil {
		t.Fatal(err)
	}
	checkVF(t, "after Release", kernelVF(t, pf, 1), operatorOriginal)
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Release: %v", err)
	}
	w = m.Writes()
	if err := m.Release(ctx, "vm-a/net0", vf); err != nil {
		t.Errorf("repeat Release: %v", err)
	}
	if d := m.Writes() - w; d != 0 {
		t.Errorf("repeat Release sent %d netlink writes", d)
	}
	// Now free, the VF can go to the other vNIC.
	if err := m.Ensure(ctx, "vm-b/net0", vf, tetherWant); err != nil {
		t.Errorf("free VF to vm-b: %v", err)
	}
	if err := m.Release(ctx, "vm-b/net0", vf); err != nil {
		t.Error(err)
	}

	// A fresh VF (zero MAC, no VLAN) comes back as it was too.
	vf3 := VF{PF: pf, Index: 3}
	orig3 := fromKernel(kernelVF(t, pf, 3))
	if err := m.Ensure(ctx, "vm-c/net0", vf3, tetherWant); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, "vm-c/net0", vf3); err != nil {
		t.Fatal(err)
	}
	got3 := kernelVF(t, pf, 3)
	checkVF(t, "fresh VF after Release", got3, orig3)
	t.Logf("fresh VF after Release: %+v (protocol reads 0x8100 where netdevsim showed %#x before: restoring 'no VLAN' writes 802.1Q)", got3, fresh.VlanProto)
}

// crashEnv names the variables TestVMCrashChild reads.
const (
	crashDirEnv = "TETHER_SRIOV_CRASH_DIR"
	crashPFEnv  = "TETHER_SRIOV_CRASH_PF"
)

// TestVMCrashChild is not a test on its own: TestVMCrashAfterSave runs it
// in a child process, which dies (exit 7) right after the original
// settings are saved and before the VF is configured.
func TestVMCrashChild(t *testing.T) {
	dir, pf := os.Getenv(crashDirEnv), os.Getenv(crashPFEnv)
	if dir == "" {
		t.Skip("runs as TestVMCrashAfterSave's child")
	}
	m, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m.afterSave = func(VF) error { os.Exit(7); return nil }
	err = m.Ensure(context.Background(), "vm-crash/net0", VF{PF: pf, Index: 0}, tetherWant)
	t.Fatalf("Ensure returned (%v) instead of crashing", err)
}

// crashAfterSave runs the child that dies between save and configure and
// checks what it left: a record holding the original, phase configuring,
// and an untouched VF.
func crashAfterSave(t *testing.T, dir, pf string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestVMCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPFEnv+"="+pf)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("child: %v, want exit 7\n%s", err, out)
	}
	r, err := (store{dir: dir}).load(VF{PF: pf, Index: 0})
	if err != nil || r == nil {
		t.Fatalf("record after the crash: %v %v", r, err)
	}
	if r.Phase != PhaseConfiguring || !r.Original.Equal(operatorOriginal) || r.VNIC != "vm-crash/net0" {
		t.Errorf("record after the crash: %+v", r)
	}
	checkVF(t, "after the crash", kernelVF(t, pf, 0), operatorOriginal)
}

func TestVMCrashAfterSave(t *testing.T) {
	pf := nsimPF(t, 1)
	ctx := context.Background()
	vf := VF{PF: pf, Index: 0}
	operatorSet(t, pf, 0, operatorOriginal)

	t.Run("then Ensure", func(t *testing.T) {
		dir := t.TempDir()
		crashAfterSave(t, dir, pf)
		m := newManager(t, dir)
		if err := m.Ensure(ctx, "vm-crash/net0", vf, tetherWant); err != nil {
			t.Fatal(err)
		}
		checkVF(t, "recovered Ensure", kernelVF(t, pf, 0), tetherWant)
		if r, _ := m.st.load(vf); r == nil || r.Phase != PhaseConfigured || !r.Original.Equal(operatorOriginal) {
			t.Errorf("record: %+v", r)
		}
		if err := m.Release(ctx, "vm-crash/net0", vf); err != nil {
			t.Fatal(err)
		}
		checkVF(t, "released", kernelVF(t, pf, 0), operatorOriginal)
	})
	t.Run("then Release", func(t *testing.T) {
		dir := t.TempDir()
		crashAfterSave(t, dir, pf)
		// The crash could as well have come after part of the
		// configuration: the MAC and VLAN already changed.
		l, _ := netlink.LinkByName(pf)
		if err := netlink.LinkSetVfHardwareAddr(l, 0, tetherWant.MAC); err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetVfVlanQosProto(l, 0, 100, 5, int(ProtoDot1AD)); err != nil {
			t.Fatal(err)
		}
		m := newManager(t, dir)
		if err := m.Release(ctx, "vm-crash/net0", vf); err != nil {
			t.Fatal(err)
		}
		checkVF(t, "released after the crash", kernelVF(t, pf, 0), operatorOriginal)
		if recs, _ := m.Records(); len(recs) != 0 {
			t.Errorf("records after Release: %+v", recs)
		}
	})
	t.Run("then Reconcile", func(t *testing.T) {
		dir := t.TempDir()
		crashAfterSave(t, dir, pf)
		m := newManager(t, dir)
		acts, errs := m.Reconcile(ctx)
		if len(errs) != 0 || len(acts) != 1 || acts[0].Did != "configured" || acts[0].Err != nil {
			t.Fatalf("Reconcile: %+v %v", acts, errs)
		}
		checkVF(t, "reconciled", kernelVF(t, pf, 0), tetherWant)
		if err := m.Release(ctx, "vm-crash/net0", vf); err != nil {
			t.Fatal(err)
		}
		checkVF(t, "released", kernelVF(t, pf, 0), operatorOriginal)
	})
}

func TestVMReconcileDrift(t *testing.T) {
	pf := nsimPF(t, 2)
	ctx := context.Background()
	dir := t.TempDir()
	m := newManager(t, dir)
	vf := VF{PF: pf, Index: 1}
	if err := m.Ensure(ctx, "vm-d/net0", vf, tetherWant); err != nil {
		t.Fatal(err)
	}
	// An operator moves the VF to VLAN 300, 802.1Q, and trusts it.
	l, _ := netlink.LinkByName(pf)
	if err := netlink.LinkSetVfVlanQosProto(l, 1, 300, 0, int(ProtoDot1Q)); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfTrust(l, 1, true); err != nil {
		t.Fatal(err)
	}
	// tetherd restarts: a new manager reads the kernel back and repairs.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, dir)
	acts, errs := m2.Reconcile(ctx)
	if len(errs) != 0 || len(acts) != 1 || acts[0].Err != nil || acts[0].Did != "repaired vlan,trust" {
		t.Fatalf("Reconcile: %+v %v", acts, errs)
	}
	if w := m2.Writes(); w != 2 {
		t.Errorf("repair sent %d netlink writes, want 2", w)
	}
	checkVF(t, "repaired", kernelVF(t, pf, 1), tetherWant)
	acts, _ = m2.Reconcile(ctx)
	if len(acts) != 1 || acts[0].Did != "in sync" || m2.Writes() != 2 {
		t.Errorf("second Reconcile: %+v, %d writes", acts, m2.Writes())
	}
	// A release interrupted after it marked the record is finished.
	r, _ := m2.st.load(vf)
	r.Phase = PhaseReleasing
	if err := m2.st.save(r); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	acts, _ = newManager(t, dir).Reconcile(ctx)
	if len(acts) != 1 || acts[0].Did != "released" || acts[0].Err != nil {
		t.Errorf("Reconcile of a releasing record: %+v", acts)
	}
	checkVF(t, "released by Reconcile", kernelVF(t, pf, 1), fromKernel(kernelVF(t, pf, 0)))
}

func TestVMNoVF(t *testing.T) {
	pf := nsimPF(t, 2)
	ctx := context.Background()
	m := newManager(t, t.TempDir())
	for _, vf := range []VF{{PF: pf, Index: 2}, {PF: "nosuchpf0", Index: 0}} {
		if err := m.Ensure(ctx, "vm-e/net0", vf, tetherWant); !errors.Is(err, ErrNoVF) {
			t.Errorf("Ensure %s: %v, want ErrNoVF", vf, err)
		}
	}
	if recs, _ := m.Records(); len(recs) != 0 {
		t.Errorf("records after failed Ensures: %+v", recs)
	}
	// netdevsim refuses a multicast MAC; Validate refuses it before.
	bad := tetherWant
	bad.MAC = mustMAC("01:00:5e:00:00:01")
	if err := m.Ensure(ctx, "vm-e/net0", VF{PF: pf, Index: 0}, bad); !errors.Is(err, ErrBadMAC) {
		t.Errorf("multicast MAC: %v, want ErrBadMAC", err)
	}
}

// TestVMScale ensures and releases as many VFs as one netdevsim PF is
// given (64) and logs the time each pass takes.
func TestVMScale(t *testing.T) {
	const n = 64
	pf := nsimPF(t, n)
	ctx := context.Background()
	m := newManager(t, t.TempDir())
	orig := make([]Settings, n)
	for i := range orig {
		orig[i] = fromKernel(kernelVF(t, pf, i))
	}
	want := func(i int) Settings {
		s := tetherWant
		s.MAC = net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}
		s.VLAN = uint16(100 + i)
		return s
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := m.Ensure(ctx, fmt.Sprintf("vm-%d/net0", i), VF{PF: pf, Index: i}, want(i)); err != nil {
			t.Fatal(err)
		}
	}
	ensure := time.Since(start)
	writes := m.Writes()
	start = time.Now()
	for i := 0; i < n; i++ {
		if err := m.Ensure(ctx, fmt.Sprintf("vm-%d/net0", i), VF{PF: pf, Index: i}, want(i)); err != nil {
			t.Fatal(err)
		}
	}
	again := time.Since(start)
	if d := m.Writes() - writes; d != 0 {
		t.Errorf("repeat Ensure of %d VFs sent %d netlink writes", n, d)
	}
	for i := 0; i < n; i++ {
		checkVF(t, fmt.Sprintf("vf %d", i), kernelVF(t, pf, i), want(i))
	}
	start = time.Now()
	for i := 0; i < n; i++ {
		if err := m.Release(ctx, fmt.Sprintf("vm-%d/net0", i), VF{PF: pf, Index: i}); err != nil {
			t.Fatal(err)
		}
	}
	release := time.Since(start)
	for i := 0; i < n; i++ {
		checkVF(t, fmt.Sprintf("released vf %d", i), kernelVF(t, pf, i), orig[i])
	}
	if recs, errs := m.Records(); len(recs)+len(errs) != 0 {
		t.Errorf("%d records, %v left in the state directory", len(recs), errs)
	}
	if left, _ := filepath.Glob(filepath.Join(m.st.dir, "*.json")); len(left) != 0 {
		t.Errorf("files left in the state directory: %v", left)
	}
	start = time.Now()
	for i := 0; i < n; i++ {
		if _, err := m.Observe(ctx, VF{PF: pf, Index: i}); err != nil {
			t.Fatal(err)
		}
	}
	observe := time.Since(start)
	t.Logf("figure: %d VFs on one netdevsim PF: Ensure all %v (%v/VF, %d netlink writes), repeat Ensure all %v (%v/VF, 0 writes), Release all %v (%v/VF); one read-back of the PF (RTM_GETLINK, %d VFs) %v",
		n, ensure.Round(time.Millisecond), (ensure / n).Round(time.Microsecond), writes,
		again.Round(time.Millisecond), (again / n).Round(time.Microsecond),
		release.Round(time.Millisecond), (release / n).Round(time.Microsecond),
		n, (observe / n).Round(time.Microsecond))
}

// TestVMWatchDrift changes a VF behind the manager's back while Watch
// runs: drift is repaired within moments, or only reported.
func TestVMWatchDrift(t *testing.T) {
	pf := nsimPF(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := newManager(t, t.TempDir())
	vf := VF{PF: pf, Index: 0}
	if err := m.Ensure(ctx, "vm-w/net0", vf, tetherWant); err != nil {
		t.Fatal(err)
	}
	watch := func(reportOnly bool) (<-chan Action, func()) {
		acts := make(chan Action, 16)
		wctx, wcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() {
			drift := vnic.DriftRepair
			if reportOnly {
				drift = vnic.DriftReportOnly
			}
			done <- m.Watch(wctx, WatchOptions{Drift: drift, Settle: 20 * time.Millisecond,
				OnAction: func(a Action) { acts <- a }, Ready: func() { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("Watch: %v", err)
		}
		return acts, func() {
			wcancel()
			if err := <-done; err != nil {
				t.Errorf("Watch: %v", err)
			}
		}
	}
	next := func(acts <-chan Action) Action {
		t.Helper()
		select {
		case a := <-acts:
			return a
		case <-time.After(5 * time.Second):
			t.Fatal("no action from Watch within 5 s")
			return Action{}
		}
	}
	l, _ := netlink.LinkByName(pf)

	acts, stop := watch(false)
	start := time.Now()
	if err := netlink.LinkSetVfVlanQosProto(l, 0, 300, 0, int(ProtoDot1Q)); err != nil {
		t.Fatal(err)
	}
	if a := next(acts); a.Did != "repaired vlan" || a.Err != nil || a.VF != vf {
		t.Errorf("Watch: %+v, want repaired vlan", a)
	}
	t.Logf("drift repaired %v after the operator's change", time.Since(start).Round(time.Millisecond))
	checkVF(t, "repaired by Watch", kernelVF(t, pf, 0), tetherWant)
	// A change to another VF (no record) is no drift.
	if err := netlink.LinkSetVfTrust(l, 1, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case a := <-acts:
		t.Errorf("Watch acted on a change to a VF without record: %+v", a)
	default:
	}
	stop()

	acts, stop = watch(true)
	if err := netlink.LinkSetVfTrust(l, 0, true); err != nil {
		t.Fatal(err)
	}
	if a := next(acts); a.Did != "drifted trust" || a.Err != nil {
		t.Errorf("report-only Watch: %+v, want drifted trust", a)
	}
	if v := kernelVF(t, pf, 0); v.Trust != 1 {
		t.Errorf("report-only Watch repaired trust")
	}
	stop()

	// A PF that is down announces nothing: the periodic resync finds it.
	if err := netlink.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	racts := make(chan Action, 16)
	acts = racts
	wctx, wcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	// Both drifts (trust from the report-only pass, and the link state)
	// are in place before Watch starts, so its first resync finds both.
	if err := netlink.LinkSetVfState(l, 0, uint32(LinkStateDisable)); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- m.Watch(wctx, WatchOptions{Resync: 200 * time.Millisecond, OnAction: func(a Action) { racts <- a }})
	}()
	if a := next(acts); a.Did != "repaired trust,link state" || a.Err != nil {
		t.Errorf("resync: %+v, want repaired trust,link state", a)
	}
	wcancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	checkVF(t, "repaired by resync", kernelVF(t, pf, 0), tetherWant)
	if err := m.Release(ctx, "vm-w/net0", vf); err != nil {
		t.Fatal(err)
	}
}
