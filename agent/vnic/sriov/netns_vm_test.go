package sriov

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/nsimtest"
)

// TestVMWatchOtherNetNS: the PF lives in a network namespace other than
// the caller's (Options.NetNS). Ensure configures its VF there, and Watch
// subscribes to that namespace's link notifications: an operator's change
// made in the namespace is repaired from its notification alone (the
// periodic resync is off), and the Manager works on after the caller
// closed its own namespace handle.
func TestVMWatchOtherNetNS(t *testing.T) {
	pf := nsimPF(t, 2)
	ns := newNetNS(t)
	// The PF moves into ns, and back before ns goes (netdevsim deletes
	// the device at the end of the test, in whatever namespace it is).
	l, err := netlink.LinkByName(pf)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(l, int(ns)); err != nil {
		t.Fatalf("move %s into the test namespace: %v", pf, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer h.Close()
		rootNS, err := netns.GetFromPid(1)
		if err != nil {
			t.Errorf("pid 1's namespace: %v", err)
			return
		}
		defer rootNS.Close()
		if l, err := h.LinkByName(pf); err == nil {
			if err := h.LinkSetNsFd(l, int(rootNS)); err != nil {
				t.Errorf("move %s back: %v", pf, err)
			}
		}
	})
	if _, err := netlink.LinkByName(pf); err == nil {
		t.Fatalf("%s is still in the caller's namespace", pf)
	}
	l, err = h.LinkByName(pf)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil { // the kernel announces VF changes only for a PF that is up
		t.Fatal(err)
	}
	// The caller's handle is closed right after New: the Manager keeps
	// its own.
	fd, err := unix.Dup(int(ns))
	if err != nil {
		t.Fatal(err)
	}
	callerNS := netns.NsHandle(fd)
	m, err := New(Options{StateDir: t.TempDir(), NetNS: &callerNS})
	callerNS.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vf := VF{PF: pf, Index: 0}
	if err := m.Ensure(ctx, "vm-ns/net0", vf, tetherWant); err != nil {
		t.Fatalf("Ensure in the PF's namespace: %v", err)
	}
	checkVF(t, "after Ensure", nsimtest.VFAt(t, h, pf, 0), tetherWant)

	acts := make(chan Action, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	go func() {
		done <- m.Watch(wctx, WatchOptions{Settle: 20 * time.Millisecond, Resync: -1,
			OnAction: func(a Action) { acts <- a }, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch: %v", err)
	}
	start := time.Now()
	if err := h.LinkSetVfVlanQosProto(l, 0, 300, 0, int(ProtoDot1Q)); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-acts:
		if a.Did != "repaired vlan" || a.Err != nil || a.VF != vf {
			t.Errorf("Watch: %+v, want repaired vlan", a)
		}
		t.Logf("drift in the other namespace repaired %v after the change", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Error("Watch saw no notification of the change in the PF's namespace within 5 s")
	}
	checkVF(t, "after Watch", nsimtest.VFAt(t, h, pf, 0), tetherWant)
	wcancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	if err := m.Release(ctx, "vm-ns/net0", vf); err != nil {
		t.Errorf("Release in the PF's namespace: %v", err)
	}
}

// newNetNS makes a fresh network namespace, closed at the end of the
// test; the calling thread stays in its own.
func newNetNS(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, so the runtime ends it with the
		// goroutine instead of reusing it in the wrong namespace.
		t.Fatal(err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { _ = ns.Close() })
	return ns
}
