package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/vnic"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
	"github.com/tether-net/tether/wire"
)

// TestInKernelVM runs this package's TestVM* tests inside the kernel VM
// (8021q and dummy are not in this machine's kernel).
func TestInKernelVM(t *testing.T) {
	pattern := "^TestVM"
	if p := os.Getenv("TETHER_PARTITION_VM_RUN"); p != "" { // while working on one test
		pattern = p
	}
	var env []string
	for _, k := range []string{"TETHER_PARTITION_N", "TETHER_TEST_ALL"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	timeout := 3 * time.Minute
	if os.Getenv("TETHER_TEST_ALL") == "1" || os.Getenv("TETHER_PARTITION_N") != "" {
		timeout = 10 * time.Minute
	}
	out := kvmtest.RunInVM(t, pattern, kvmtest.Options{MemoryMB: 512, Timeout: timeout, Env: env})
	if pattern != "^TestVM" {
		return
	}
	for _, name := range []string{"TestVMEnsureReadBack", "TestVMSTagBinding", "TestVMRestart", "TestVMDriftRepair",
		"TestVMDriftReportOnly", "TestVMUplinkLater", "TestVMTraffic", "TestVMFigures"} {
		if !strings.Contains(out, "--- PASS: "+name) {
			t.Errorf("%s did not pass in the VM", name)
		}
	}
}

// lab is one network namespace with a netlink handle into it.
type lab struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

// newLab makes a fresh network namespace, closed at the end of the test.
func newLab(t *testing.T) *lab {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	// L2-only lab: no IPv6 link-local addresses, DAD and MLD on every new
	// device (the thread is in the new namespace, so is /proc/sys/net).
	for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return &lab{ns: ns, h: h}
}

// dummy makes an up dummy device.
func (l *lab) dummy(t *testing.T, name string) netlink.Link {
	t.Helper()
	a := netlink.NewLinkAttrs()
	a.Name = name
	a.Flags = net.FlagUp
	if err := l.h.LinkAdd(&netlink.Dummy{LinkAttrs: a}); err != nil {
		t.Fatalf("add dummy %s: %v", name, err)
	}
	return l.link(t, name)
}

func (l *lab) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	lk, err := l.h.LinkByName(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return lk
}

// replace puts a VLAN device of the given protocol and ID, marked with
// alias, in place of the device name, as an operator would: made under
// another name first, then renamed over the deleted one (the repair loop
// may win the race for the name: then again).
func (l *lab) replace(name string, proto netlink.VlanProtocol, vid, parent int, alias string) error {
	a := netlink.NewLinkAttrs()
	a.Name = "tmp-replace"
	a.ParentIndex = parent
	if err := l.h.LinkAdd(&netlink.Vlan{LinkAttrs: a, VlanId: vid, VlanProtocol: proto}); err != nil {
		return err
	}
	tmp, err := l.h.LinkByName("tmp-replace")
	if err != nil {
		return err
	}
	if err := l.h.LinkSetAlias(tmp, alias); err != nil {
		return err
	}
	for try := 0; ; try++ {
		if cur, err := l.h.LinkByName(name); err == nil {
			if err := l.h.LinkDel(cur); err != nil && !isNotFound(err) {
				return err
			}
		}
		err := l.h.LinkSetName(tmp, name)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || try > 100 {
			return err
		}
	}
	if err := l.h.LinkSetUp(tmp); err != nil && !isNotFound(err) {
		return err // not found: the repair loop was quicker and replaced it
	}
	return nil
}

func (l *lab) gone(name string) bool {
	_, err := l.h.LinkByName(name)
	return isNotFound(err)
}

// open opens a manager on the lab with state in dir.
func (l *lab) open(t *testing.T, dir string, policy vnic.DriftPolicy) *Manager {
	t.Helper()
	ns := l.ns
	m, err := Open(context.Background(), Config{StateDir: dir, NetNS: &ns, Drift: policy,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// run runs m's loop until the test ends.
func run(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// checkVLAN asserts a device read back through netlink.
func checkVLAN(t *testing.T, lk netlink.Link, proto netlink.VlanProtocol, vid, parent, mtu int, alias string) {
	t.Helper()
	v, ok := lk.(*netlink.Vlan)
	if !ok {
		t.Fatalf("%s is a %s, want vlan", lk.Attrs().Name, lk.Type())
	}
	a := v.Attrs()
	if v.VlanProtocol != proto || v.VlanId != vid || a.ParentIndex != parent || a.MTU != mtu || a.Alias != alias || a.Flags&net.FlagUp == 0 {
		t.Errorf("%s: protocol %s, VLAN %d, parent %d, MTU %d, alias %q, up %v; want %s, %d, %d, %d, %q, up",
			a.Name, v.VlanProtocol, v.VlanId, a.ParentIndex, a.MTU, a.Alias, a.Flags&net.FlagUp != 0,
			proto, vid, parent, mtu, alias)
	}
}

func TestVMEnsureReadBack(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	up := l.dummy(t, "up0")
	m := l.open(t, t.TempDir(), vnic.DriftRepair)
	ctx := context.Background()

	devs, err := m.Ensure(ctx, Spec{ID: "52:54:00:00:00:0A", Uplink: "up0", STag: 100, CVID: 10})
	if err != nil {
		t.Fatal(err)
	}
	sname, cname := Names(up.Attrs().Index, 100)
	if devs.STag != sname || devs.CVLAN != cname || devs.Top() != cname {
		t.Fatalf("Ensure = %+v, want %s and %s", devs, sname, cname)
	}
	s := l.link(t, sname)
	checkVLAN(t, s, netlink.VLAN_PROTOCOL_8021AD, 100, up.Attrs().Index, 1500, "tether:"+macA)
	checkVLAN(t, l.link(t, cname), netlink.VLAN_PROTOCOL_8021Q, 10, s.Attrs().Index, 1500, "tether:"+macA)
	if st, ok := m.Status(macA); !ok || st.State != StateOK || st.Devices != devs {
		t.Errorf("Status = %+v, %v", st, ok)
	}

	// A repeat is a no-op: reads only.
	w := m.Stats().Writes
	for range 3 {
		if _, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Stats().Writes; got != w {
		t.Errorf("repeated Ensure made %d netlink writes, want 0", got-w)
	}

	// I/O-extender mode: the S-Tag travels on, the vNIC gives up 4 bytes of MTU.
	devsB, err := m.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 200, Mode: wire.TetherSTagIOExtender})
	if err != nil {
		t.Fatal(err)
	}
	if devsB.CVLAN != "" || devsB.Top() != devsB.STag {
		t.Errorf("Ensure without C-VID = %+v, want the S-Tag device only", devsB)
	}
	checkVLAN(t, l.link(t, devsB.STag), netlink.VLAN_PROTOCOL_8021AD, 200, up.Attrs().Index, 1496, "tether:"+macB)
	if _, cb := Names(up.Attrs().Index, 200); !l.gone(cb) {
		t.Errorf("%s exists without a C-VID", cb)
	}

	// Changing the spec in place: a C-VID added, then the S-Tag moved.
	if _, err := m.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 200, CVID: 30, Mode: wire.TetherSTagIOExtender}); err != nil {
		t.Fatal(err)
	}
	_, cb := Names(up.Attrs().Index, 200)
	checkVLAN(t, l.link(t, cb), netlink.VLAN_PROTOCOL_8021Q, 30, l.link(t, devsB.STag).Attrs().Index, 1496, "tether:"+macB)
	moved, err := m.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 201, CVID: 30, Mode: wire.TetherSTagIOExtender})
	if err != nil {
		t.Fatal(err)
	}
	if !l.gone(devsB.STag) || !l.gone(cb) {
		t.Errorf("after moving to S-Tag 201, %s or %s is still there", devsB.STag, cb)
	}
	checkVLAN(t, l.link(t, moved.STag), netlink.VLAN_PROTOCOL_8021AD, 201, up.Attrs().Index, 1496, "tether:"+macB)

	// Release deletes; a repeat is a no-op.
	if err := m.Release(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if !l.gone(sname) || !l.gone(cname) {
		t.Errorf("after Release, %s or %s is still there", sname, cname)
	}
	if _, ok := m.Status(macA); ok {
		t.Error("Status still shows a released vNIC")
	}
	w = m.Stats().Writes
	if err := m.Release(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats().Writes; got != w {
		t.Errorf("repeated Release made %d netlink writes, want 0", got-w)
	}
	// The S-Tag is free again.
	if _, err := m.Ensure(ctx, Spec{ID: "52:54:00:00:00:0c", Uplink: "up0", STag: 100}); err != nil {
		t.Errorf("S-Tag 100 after its release: %v", err)
	}
}

func TestVMSTagBinding(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	l.dummy(t, "up0")
	l.dummy(t, "up1")
	dir := t.TempDir()
	m := l.open(t, dir, vnic.DriftRepair)
	ctx := context.Background()
	if _, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10}); err != nil {
		t.Fatal(err)
	}
	w := m.Stats().Writes
	_, err := m.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 100})
	var bound *STagBoundError
	if !errors.As(err, &bound) || *bound != (STagBoundError{Uplink: "up0", STag: 100, Want: macB, Holder: macA}) {
		t.Fatalf("second vNIC on S-Tag 100: %v, want an *STagBoundError naming %s", err, macA)
	}
	if got := m.Stats().Writes; got != w {
		t.Errorf("the refused Ensure made %d netlink writes", got-w)
	}
	if _, ok := m.Status(macB); ok {
		t.Error("the refused vNIC shows in Status")
	}
	// A restart does not forget the binding.
	m.Close()
	m2 := l.open(t, dir, vnic.DriftRepair)
	if _, err := m2.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 100}); !errors.Is(err, ErrSTagBound) {
		t.Fatalf("after a restart, second vNIC on S-Tag 100: %v, want ErrSTagBound", err)
	}
	// Another uplink is another set of S-channels.
	if _, err := m2.Ensure(ctx, Spec{ID: macB, Uplink: "up1", STag: 100}); err != nil {
		t.Errorf("S-Tag 100 on up1: %v", err)
	}
}

// TestVMRestart checks what Open and Ensure do with what a crash at each
// step leaves behind.
func TestVMRestart(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	up := l.dummy(t, "up0")
	dir := t.TempDir()
	ctx := context.Background()
	m := l.open(t, dir, vnic.DriftRepair)
	if _, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	sname, cname := Names(up.Attrs().Index, 100)

	// Crash after saving, before the devices: desired, no devices.
	if err := l.h.LinkDel(l.link(t, sname)); err != nil {
		t.Fatal(err)
	}
	// Crash after Release saved, before it deleted: marked, not desired.
	stale := netlink.NewLinkAttrs()
	stale.Name = "tp1.999"
	stale.ParentIndex = up.Attrs().Index
	if err := l.h.LinkAdd(&netlink.Vlan{LinkAttrs: stale, VlanId: 999, VlanProtocol: netlink.VLAN_PROTOCOL_8021AD}); err != nil {
		t.Fatal(err)
	}
	if err := l.h.LinkSetAlias(l.link(t, "tp1.999"), "tether:52:54:00:00:00:99"); err != nil {
		t.Fatal(err)
	}
	// Someone else's VLAN device is never touched.
	other := netlink.NewLinkAttrs()
	other.Name = "op.300"
	other.ParentIndex = up.Attrs().Index
	if err := l.h.LinkAdd(&netlink.Vlan{LinkAttrs: other, VlanId: 300, VlanProtocol: netlink.VLAN_PROTOCOL_8021AD}); err != nil {
		t.Fatal(err)
	}

	m2 := l.open(t, dir, vnic.DriftRepair)
	if !l.gone("tp1.999") {
		t.Error("Open did not sweep the marked device no vNIC wants")
	}
	if l.gone("op.300") {
		t.Error("Open deleted a device tether did not mark")
	}
	if got := m2.Stats().Swept; got != 1 {
		t.Errorf("Swept = %d, want 1", got)
	}
	if st, _ := m2.Status(macA); st.State != StatePending {
		t.Errorf("after Open, state %q, want pending", st.State)
	}
	if err := m2.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	s := l.link(t, sname)
	checkVLAN(t, s, netlink.VLAN_PROTOCOL_8021AD, 100, up.Attrs().Index, 1500, "tether:"+macA)
	checkVLAN(t, l.link(t, cname), netlink.VLAN_PROTOCOL_8021Q, 10, s.Attrs().Index, 1500, "tether:"+macA)

	// Crash between creating the S-Tag device and marking it, and before
	// the C-VLAN device: the next Ensure adopts and finishes.
	sB, cB := Names(up.Attrs().Index, 200)
	half := netlink.NewLinkAttrs()
	half.Name = sB
	half.ParentIndex = up.Attrs().Index
	if err := l.h.LinkAdd(&netlink.Vlan{LinkAttrs: half, VlanId: 200, VlanProtocol: netlink.VLAN_PROTOCOL_8021AD}); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Ensure(ctx, Spec{ID: macB, Uplink: "up0", STag: 200, CVID: 20}); err != nil {
		t.Fatal(err)
	}
	s = l.link(t, sB)
	checkVLAN(t, s, netlink.VLAN_PROTOCOL_8021AD, 200, up.Attrs().Index, 1500, "tether:"+macB)
	checkVLAN(t, l.link(t, cB), netlink.VLAN_PROTOCOL_8021Q, 20, s.Attrs().Index, 1500, "tether:"+macB)

	// A device that is not ours under a name we need: a typed error, and
	// the device stays.
	sC, _ := Names(up.Attrs().Index, 300)
	foreign := l.dummy(t, sC)
	_, err := m2.Ensure(ctx, Spec{ID: "52:54:00:00:00:0c", Uplink: "up0", STag: 300})
	var fe *ForeignDeviceError
	if !errors.As(err, &fe) || fe.Name != sC || fe.Kind != "dummy" {
		t.Fatalf("Ensure over a foreign device: %v, want a *ForeignDeviceError for %s", err, sC)
	}
	if l.link(t, sC).Attrs().Index != foreign.Attrs().Index {
		t.Error("the foreign device was replaced")
	}
	if st, _ := m2.Status("52:54:00:00:00:0c"); st.State != StateError || !strings.Contains(st.LastError, "is not tether's") {
		t.Errorf("status of the blocked vNIC: %+v", st)
	}
}

// waitFor polls cond every millisecond until it holds or d passes, and
// returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestVMDriftRepair(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	up := l.dummy(t, "up0")
	br := netlink.NewLinkAttrs()
	br.Name = "br0"
	br.Flags = net.FlagUp
	if err := l.h.LinkAdd(&netlink.Bridge{LinkAttrs: br}); err != nil {
		t.Fatal(err)
	}
	brIdx := l.link(t, "br0").Attrs().Index
	m := l.open(t, t.TempDir(), vnic.DriftRepair)
	run(t, m)
	ctx := context.Background()
	devs, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10, Master: "br0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.link(t, devs.CVLAN).Attrs().MasterIndex; got != brIdx {
		t.Fatalf("top device's master %d, want br0 (%d)", got, brIdx)
	}
	healthy := func() bool {
		s, err := l.h.LinkByName(devs.STag)
		if err != nil {
			return false
		}
		c, err := l.h.LinkByName(devs.CVLAN)
		if err != nil {
			return false
		}
		sv, ok1 := s.(*netlink.Vlan)
		cv, ok2 := c.(*netlink.Vlan)
		return ok1 && ok2 && sv.VlanId == 100 && sv.VlanProtocol == netlink.VLAN_PROTOCOL_8021AD &&
			sv.ParentIndex == up.Attrs().Index && s.Attrs().Flags&net.FlagUp != 0 && s.Attrs().MTU == 1500 &&
			s.Attrs().MasterIndex == 0 && cv.VlanId == 10 && cv.ParentIndex == s.Attrs().Index &&
			c.Attrs().Flags&net.FlagUp != 0 && c.Attrs().MTU == 1500 && c.Attrs().MasterIndex == brIdx
	}
	for _, c := range []struct {
		name  string
		drift func() error
	}{
		{"S-Tag device down", func() error { return l.h.LinkSetDown(l.link(t, devs.STag)) }},
		{"C-VLAN device MTU", func() error { return l.h.LinkSetMTU(l.link(t, devs.CVLAN), 1400) }},
		{"C-VLAN device released from its bridge", func() error { return l.h.LinkSetNoMaster(l.link(t, devs.CVLAN)) }},
		{"S-Tag device enslaved", func() error { return l.h.LinkSetMasterByIndex(l.link(t, devs.STag), brIdx) }},
		{"S-Tag device deleted", func() error { return l.h.LinkDel(l.link(t, devs.STag)) }},
		{"S-Tag device re-made with VLAN 101", func() error {
			return l.replace(devs.STag, netlink.VLAN_PROTOCOL_8021AD, 101, up.Attrs().Index, "tether:"+macA)
		}},
		{"S-Tag device re-made as 802.1Q", func() error {
			return l.replace(devs.STag, netlink.VLAN_PROTOCOL_8021Q, 100, up.Attrs().Index, "tether:"+macA)
		}},
	} {
		waitFor(t, 10*time.Second, "healthy before "+c.name, healthy)
		before := m.Stats().Repairs
		if err := c.drift(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		took := waitFor(t, 10*time.Second, c.name+": not repaired", func() bool { return healthy() && m.Stats().Repairs > before })
		t.Logf("%s: repaired in %v", c.name, took)
	}
	st, _ := m.Status(macA)
	if st.State != StateOK || st.Repairs < 7 || st.Drifts < 7 {
		t.Errorf("status after the repairs: %+v", st)
	}
}

func TestVMDriftReportOnly(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	l.dummy(t, "up0")
	m := l.open(t, t.TempDir(), vnic.DriftReportOnly)
	run(t, m)
	ctx := context.Background()
	devs, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "ok", func() bool { st, _ := m.Status(macA); return st.State == StateOK })
	w := m.Stats().Writes
	if err := l.h.LinkSetDown(l.link(t, devs.STag)); err != nil {
		t.Fatal(err)
	}
	if err := l.h.LinkSetMTU(l.link(t, devs.CVLAN), 1300); err != nil {
		t.Fatal(err)
	}
	want := []string{devs.STag + ": down", devs.CVLAN + ": MTU 1300, want 1500"}
	waitFor(t, 10*time.Second, "drift reported", func() bool {
		st, _ := m.Status(macA)
		return st.State == StateDrifted && strings.Join(st.Drift, "|") == strings.Join(want, "|")
	})
	st, _ := m.Status(macA)
	t.Logf("report-only status: %+v", st)
	s := m.Stats()
	if s.Writes != w || s.Repairs != 0 || s.Drifts == 0 {
		t.Errorf("report-only: writes %d (want %d), repairs %d (want 0), drifts %d (want > 0)", s.Writes, w, s.Repairs, s.Drifts)
	}
	if l.link(t, devs.STag).Attrs().Flags&net.FlagUp != 0 || l.link(t, devs.CVLAN).Attrs().MTU != 1300 {
		t.Error("report-only changed the devices")
	}
	// An explicit Ensure still makes the devices as desired.
	if _, err := m.Ensure(ctx, Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "ok after Ensure", func() bool { st, _ := m.Status(macA); return st.State == StateOK })
}

// TestVMUplinkLater checks that a vNIC whose uplink is missing stays
// desired, shows the error, and is made when the uplink appears.
func TestVMUplinkLater(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	m := l.open(t, t.TempDir(), vnic.DriftRepair)
	run(t, m)
	_, err := m.Ensure(context.Background(), Spec{ID: macA, Uplink: "late0", STag: 100, CVID: 10})
	if err == nil || !strings.Contains(err.Error(), "uplink late0") {
		t.Fatalf("Ensure on a missing uplink: %v", err)
	}
	st, ok := m.Status(macA)
	if !ok || st.State != StateError {
		t.Fatalf("status %+v, %v; want state error", st, ok)
	}
	up := l.dummy(t, "late0")
	sname, cname := Names(up.Attrs().Index, 100)
	took := waitFor(t, 10*time.Second, "devices made once the uplink appeared", func() bool {
		st, _ := m.Status(macA)
		return !l.gone(sname) && !l.gone(cname) && st.State == StateOK
	})
	t.Logf("made %v after the uplink appeared", took)
	checkVLAN(t, l.link(t, sname), netlink.VLAN_PROTOCOL_8021AD, 100, up.Attrs().Index, 1500, "tether:"+macA)
}

// TestVMFigures measures Ensure of 1,000 partition vNICs from empty
// (TETHER_TEST_ALL=1; 200 otherwise, TETHER_PARTITION_N to choose) and the
// repair of one drifted vNIC among them, with the reconcile loop and its
// subscription running as in tetherd.
func TestVMFigures(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	up := l.dummy(t, "up0")
	dir := t.TempDir()
	m := l.open(t, dir, vnic.DriftRepair)
	run(t, m)
	ctx := context.Background()
	n := 200 // make test; the figure for the note is make test-all's 1,000
	if os.Getenv("TETHER_TEST_ALL") == "1" {
		n = 1000
	}
	if v, err := strconv.Atoi(os.Getenv("TETHER_PARTITION_N")); err == nil && v > 0 && v <= 4093 {
		n = v
	}
	specs := make([]Spec, n)
	for i := range specs {
		specs[i] = Spec{ID: fmt.Sprintf("52:54:01:00:%02x:%02x", i>>8, i&0xff), Uplink: "up0", STag: uint16(2 + i), CVID: uint16(1 + i%4000)}
	}
	start := time.Now()
	var blocks []time.Duration // per 100 vNICs: does the cost grow with n?
	last := start
	for i, s := range specs {
		if _, err := m.Ensure(ctx, s); err != nil {
			t.Fatal(err)
		}
		if (i+1)%100 == 0 {
			blocks = append(blocks, time.Since(last).Round(time.Millisecond))
			last = time.Now()
		}
	}
	took := time.Since(start)
	links, err := l.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var s8021ad, c8021q int
	for _, lk := range links {
		if v, ok := lk.(*netlink.Vlan); ok && strings.HasPrefix(v.Alias, AliasPrefix) {
			if v.VlanProtocol == netlink.VLAN_PROTOCOL_8021AD {
				s8021ad++
			} else {
				c8021q++
			}
		}
	}
	if s8021ad != n || c8021q != n {
		t.Fatalf("%d S-Tag and %d C-VLAN devices, want %d each", s8021ad, c8021q, n)
	}
	st := m.Stats()
	t.Logf("FIGURE ensure %d partition vNICs (S-Tag + C-VLAN device each) from empty: %v total, %v per vNIC, %d netlink writes; of which saving the state file %v; per 100 vNICs %v; %d link notifications",
		n, took.Round(time.Millisecond), (took / time.Duration(n)).Round(time.Microsecond), st.Writes, time.Duration(m.saveTime.Load()).Round(time.Millisecond), blocks, st.Events)

	w := m.Stats().Writes
	start = time.Now()
	for _, s := range specs {
		if _, err := m.Ensure(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	again := time.Since(start)
	if got := m.Stats().Writes - w; got != 0 {
		t.Errorf("re-ensuring %d unchanged vNICs made %d netlink writes", n, got)
	}
	t.Logf("FIGURE re-ensure %d unchanged vNICs (no-op): %v total, %v per vNIC", n, again.Round(time.Millisecond), (again / time.Duration(n)).Round(time.Microsecond))

	// Let the loop settle the events of the creation, then drift one.
	waitFor(t, 60*time.Second, "all ok", func() bool {
		for _, st := range m.Statuses() {
			if st.State != StateOK {
				return false
			}
		}
		return true
	})
	victim := specs[n/2]
	sname, cname := Names(up.Attrs().Index, victim.STag)
	old := l.link(t, sname).Attrs().Index
	var rounds []time.Duration
	for range 5 {
		cur := l.link(t, sname)
		oldC := l.link(t, cname).Attrs().Index
		start = time.Now()
		if err := l.h.LinkDel(cur); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "repair", func() bool {
			c, err := l.h.LinkByName(cname)
			return err == nil && c.Attrs().Index != oldC && c.Attrs().Flags&net.FlagUp != 0 && c.Attrs().Alias == AliasPrefix+victim.ID
		})
		rounds = append(rounds, time.Since(start).Round(10*time.Microsecond)) // from the delete request
		time.Sleep(50 * time.Millisecond)
	}
	if l.link(t, sname).Attrs().Index == old {
		t.Error("the S-Tag device was not re-made")
	}
	t.Logf("FIGURE repair of one drifted vNIC among %d (from the request deleting its S-Tag device until its C-VLAN device is back up): %v (5 rounds)", n, rounds)

	start = time.Now()
	saved := m.saveTime.Load()
	for _, s := range specs {
		if err := m.Release(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("FIGURE release %d partition vNICs: %v total, %v per vNIC; of which saving the state file %v", n, time.Since(start).Round(time.Millisecond),
		(time.Since(start) / time.Duration(n)).Round(time.Microsecond), time.Duration(m.saveTime.Load()-saved).Round(time.Millisecond))
	if ents, err := os.ReadDir(filepath.Join(dir, StateDir)); err != nil || len(ents) != 0 {
		t.Errorf("state directory after releasing all: %d files, %v", len(ents), err)
	}
}

// inNS runs f on a thread in ns (sockets f opens stay in ns).
func inNS(t *testing.T, ns netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // the thread must not go back to the pool in ns
		}
	}()
	f()
}

// packetSocket opens an AF_PACKET socket for every EtherType bound to
// ifindex, with PACKET_AUXDATA on (the kernel moves a received frame's
// outer VLAN tag into the skb's metadata; auxdata gives it back, as
// libpcap does).
func packetSocket(t *testing.T, ifindex int) int {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 0, Usec: 200000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recvWire reads one frame and returns it as it was on the wire: with the
// tag the kernel reported in auxdata put back after the MAC addresses.
func recvWire(fd int) ([]byte, error) {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return nil, err
	}
	frame := buf[:n]
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < auxdataLen {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:4])
		tci := binary.NativeEndian.Uint16(m.Data[16:18])
		tpid := binary.NativeEndian.Uint16(m.Data[18:20])
		if status&unix.TP_STATUS_VLAN_VALID == 0 || len(frame) < 12 {
			continue
		}
		if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
			tpid = wire.EtherTypeVLAN
		}
		out := make([]byte, 0, len(frame)+4)
		out = append(out, frame[:12]...)
		out = append(out, byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci))
		frame = append(out, frame[12:]...)
	}
	return frame, nil
}

// auxdataLen is the size of struct tpacket_auxdata: status, len, snaplen
// (u32), mac, net, vlan_tci, vlan_tpid (u16), in host order.
const auxdataLen = 20

// TestVMTraffic sends a frame from each partition's top device and checks
// on the uplink's veth peer that the 802.1ad S-Tag (and the 802.1Q C-Tag)
// are on the wire, in both modes.
func TestVMTraffic(t *testing.T) {
	kvmtest.RequireVM(t)
	l := newLab(t)
	a := netlink.NewLinkAttrs()
	a.Name = "up0"
	a.Flags = net.FlagUp
	if err := l.h.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "peer0"}); err != nil {
		t.Fatal(err)
	}
	peer := l.link(t, "peer0")
	if err := l.h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	m := l.open(t, t.TempDir(), vnic.DriftRepair)
	ctx := context.Background()
	for _, c := range []struct {
		spec Spec
	}{
		{Spec{ID: macA, Uplink: "up0", STag: 100, CVID: 10, Mode: wire.TetherSTagSwitch}},
		{Spec{ID: macB, Uplink: "up0", STag: 200, CVID: 20, Mode: wire.TetherSTagIOExtender}},
		{Spec{ID: "52:54:00:00:00:0c", Uplink: "up0", STag: 300, Mode: wire.TetherSTagSwitch}},
	} {
		devs, err := m.Ensure(ctx, c.spec)
		if err != nil {
			t.Fatal(err)
		}
		top := l.link(t, devs.Top())
		var tx, rx int
		inNS(t, l.ns, func() {
			tx = packetSocket(t, top.Attrs().Index)
			rx = packetSocket(t, peer.Attrs().Index)
		})
		mac, _ := net.ParseMAC(c.spec.ID)
		marker := []byte("tether partition " + c.spec.ID)
		h := wire.EthernetHeader{EtherType: 0x88b5} // IEEE local experimental
		copy(h.Dst[:], peer.Attrs().HardwareAddr)
		copy(h.Src[:], mac)
		frame := append(h.Append(nil), marker...)
		if _, err := unix.Write(tx, frame); err != nil {
			t.Fatalf("send on %s: %v", devs.Top(), err)
		}
		var got []byte
		deadline := time.Now().Add(5 * time.Second)
		for got == nil && time.Now().Before(deadline) {
			f, err := recvWire(rx)
			if err != nil {
				continue // timeout: read again
			}
			if strings.Contains(string(f), string(marker)) {
				got = f
			}
		}
		if got == nil {
			t.Fatalf("%s: frame from %s not seen on peer0", ModeName(c.spec.Mode), devs.Top())
		}
		t.Logf("%s S-Tag %d C-VID %d: on the wire % x", ModeName(c.spec.Mode), c.spec.STag, c.spec.CVID, got[:min(len(got), 24)])
		// Outer tag, by bytes: 0x88a8 and the S-VID.
		var outer wire.EthernetHeader
		if _, err := outer.Parse(got); err != nil {
			t.Fatal(err)
		}
		if outer.EtherType != 0x88a8 || outer.Tagged {
			t.Fatalf("outer EtherType %#04x (tagged %v), want 0x88a8", outer.EtherType, outer.Tagged)
		}
		if stci := uint16(got[14])<<8 | uint16(got[15]); stci&0x0fff != c.spec.STag {
			t.Errorf("S-VID %d, want %d", stci&0x0fff, c.spec.STag)
		}
		// What follows the S-Tag, as an Ethernet header: the C-Tag if any.
		inner := append(append([]byte{}, got[:12]...), got[16:]...)
		var ih wire.EthernetHeader
		payload, err := ih.Parse(inner)
		if err != nil {
			t.Fatal(err)
		}
		if c.spec.CVID != 0 && (!ih.Tagged || ih.VID() != c.spec.CVID) {
			t.Errorf("inner tag: tagged %v VID %d, want 0x8100 with C-VID %d", ih.Tagged, ih.VID(), c.spec.CVID)
		}
		if c.spec.CVID == 0 && ih.Tagged {
			t.Errorf("a C-Tag (VID %d) on a partition without a C-VID", ih.VID())
		}
		if ih.EtherType != 0x88b5 || !strings.HasPrefix(string(payload), string(marker)) {
			t.Errorf("inner EtherType %#04x payload %q, want 0x88b5 %q", ih.EtherType, payload, marker)
		}
		if ih.Src != h.Src {
			t.Errorf("source %x, want %x", ih.Src, h.Src)
		}
	}
}
