package linuxbridge

import (
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/nftbridge"
)

// allowLab is a plain bridge with two ports: p1 (the VM's, sent into from
// its peer p1v) and p2 (the far port, captured on its peer p2v).
type allowLab struct {
	*lab
	br, p1, p1v, p2, p2v string
	tx, rx               *rawSock
}

func newAllowLab(t *testing.T, vlanFiltering bool) *allowLab {
	t.Helper()
	l := newLab(t)
	a := &allowLab{lab: l, br: l.name("br"), p1: l.name("p1"), p1v: l.name("p1v"), p2: l.name("p2"), p2v: l.name("p2v")}
	l.veth(t, a.p1, a.p1v)
	l.veth(t, a.p2, a.p2v)
	if !vlanFiltering {
		l.plainBridge(t, a.br, a.p1, a.p2)
		for _, n := range []string{a.p1, a.p1v, a.p2, a.p2v} {
			l.waitUp(t, n)
		}
	}
	a.tx = l.rawSocket(t, a.p1v)
	a.rx = l.rawSocket(t, a.p2v)
	return a
}

// TestAllowListHost runs the nftables part alone on the host kernel (a
// plain bridge in a namespace): the VM's MAC passes, another is dropped at
// the soft switch and counted, read-back finds tampering and ensure
// repairs it, remove leaves nothing.
func TestAllowListHost(t *testing.T) {
	l := newAllowLab(t, false)
	ctx := l.ctx
	a := newAllowList(l.nsfd, "tether-sw-test")
	t.Cleanup(func() { _ = a.deleteTable(ctx) })
	fixed, err := a.ensureBase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixed) == 0 || fixed[0] != "table missing" {
		t.Errorf("first ensureBase fixed %q, want [table missing]", fixed)
	}
	if fixed, err := a.ensureBase(ctx); err != nil || fixed != nil {
		t.Errorf("second ensureBase fixed %q, %v; want nothing", fixed, err)
	}
	vm, spoof := mac(1), mac(2)
	if fixed, err := a.ensure(ctx, l.p1, vm); err != nil || len(fixed) == 0 {
		t.Fatalf("ensure: fixed %q, %v; want the new port's objects", fixed, err)
	}
	if fixed, err := a.ensure(ctx, l.p1, vm); err != nil || fixed != nil {
		t.Fatalf("second ensure fixed %q, %v; want nothing", fixed, err)
	}
	st, err := a.check(ctx, l.p1, vm)
	if err != nil || len(st.problems) > 0 || len(st.macs) != 1 || st.macs[0].String() != vm.String() {
		t.Fatalf("check: %+v, %v; want set [%s] and no problems", st, err, vm)
	}
	if _, err := exec.LookPath("nft"); err == nil && l.ns != nil {
		// nft itself can list what the library wrote.
		out, err := l.ns.Output(ctx, "nft", "list", "table", "bridge", "tether-sw-test")
		if err != nil {
			t.Errorf("nft list table: %v", err)
		} else if !strings.Contains(string(out), vm.String()) {
			t.Errorf("nft list table does not show %s:\n%s", vm, out)
		}
	}

	sendAndExpect := func(what string, pass, drop []uint32, srcPass, srcDrop net.HardwareAddr) {
		t.Helper()
		for _, id := range pass {
			if err := l.tx.send(testFrame(bcast, srcPass, id)); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range drop {
			if err := l.tx.send(testFrame(bcast, srcDrop, id)); err != nil {
				t.Fatal(err)
			}
		}
		got := l.rx.collect(500 * time.Millisecond)
		for _, id := range pass {
			if _, ok := got[id]; !ok {
				t.Errorf("%s: frame %d from %s did not reach the far port", what, id, srcPass)
			}
		}
		for _, id := range drop {
			if _, ok := got[id]; ok {
				t.Errorf("%s: frame %d from %s reached the far port, want dropped", what, id, srcDrop)
			}
		}
	}
	sendAndExpect("allowed", []uint32{1, 2, 3, 4, 5}, []uint32{101, 102, 103, 104, 105}, vm, spoof)
	pc, err := a.counters(ctx, l.p1)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Accepted.Packets != 5 || pc.Dropped.Packets != 5 {
		t.Errorf("counters: accepted %d dropped %d, want 5 and 5", pc.Accepted.Packets, pc.Dropped.Packets)
	}

	// Tampering, one object at a time: read-back names it, ensure repairs.
	for _, tc := range []struct {
		name, want string
		tamper     func(c *nftables.Conn)
	}{
		{"flushed set", "set allow-" + l.p1 + " holds []", func(c *nftables.Conn) { c.FlushSet(a.allowSet(l.p1)) }},
		{"flushed chain", "chain port-" + l.p1 + ` has rules []`, func(c *nftables.Conn) { c.FlushChain(a.portChain(l.p1)) }},
		{"map element gone", "port missing from the dispatch map", func(c *nftables.Conn) {
			_ = c.SetDeleteElements(a.portsMap(), []nftables.SetElement{{Key: nftbridge.IfnameKey(l.p1)}})
		}},
		{"base chain flushed", "base chain has 0 rules", func(c *nftables.Conn) { c.FlushChain(a.baseChain()) }},
		{"drop rule accepts", "chain port-" + l.p1 + " rules are", func(c *nftables.Conn) {
			// The same comments, but the last rule accepts: every
			// source MAC would pass.
			c.FlushChain(a.portChain(l.p1))
			rules := a.portRules(l.p1)
			rules[1].Exprs[len(rules[1].Exprs)-1] = &expr.Verdict{Kind: expr.VerdictAccept}
			for _, r := range rules {
				c.AddRule(r)
			}
		}},
		{"dispatch rule accepts", "dispatch rule is", func(c *nftables.Conn) {
			c.FlushChain(a.baseChain())
			r := a.dispatchRule()
			r.Exprs = []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
			c.AddRule(r)
		}},
	} {
		if err := a.do(ctx, "tamper", func(c *nftables.Conn) error { tc.tamper(c); return c.Flush() }); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		st, err := a.check(ctx, l.p1, vm)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(st.problems, "; "), tc.want) {
			t.Errorf("%s: problems %q, want one containing %q", tc.name, st.problems, tc.want)
		}
		if _, err := a.ensureBase(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := a.ensure(ctx, l.p1, vm); err != nil {
			t.Fatal(err)
		}
		if st, err := a.check(ctx, l.p1, vm); err != nil || len(st.problems) > 0 {
			t.Errorf("%s: after repair: %q, %v", tc.name, st.problems, err)
		}
	}
	sendAndExpect("after repairs", []uint32{11, 12}, []uint32{111, 112}, vm, spoof)

	// A new MAC replaces the old one.
	if _, err := a.ensure(ctx, l.p1, spoof); err != nil {
		t.Fatal(err)
	}
	sendAndExpect("MAC changed", []uint32{21}, []uint32{121}, spoof, vm)

	if err := a.remove(ctx, l.p1); err != nil {
		t.Fatal(err)
	}
	if err := a.remove(ctx, l.p1); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if ports, err := a.managedPorts(ctx); err != nil || len(ports) != 0 {
		t.Errorf("managed ports after remove: %q, %v", ports, err)
	}
	if st, err := a.check(ctx, l.p1, nil); err != nil || len(st.problems) > 0 {
		t.Errorf("check after remove: %q, %v", st.problems, err)
	}
	// Unmanaged: every source MAC passes.
	sendAndExpect("removed", []uint32{31, 32}, nil, spoof, nil)
	sendAndExpect("removed", []uint32{33}, nil, vm, nil)
}

// TestAllowListFPSHost measures frames per second through a plain bridge
// in a namespace with the allow-list on versus off, same run.
func TestAllowListFPSHost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	l := newAllowLab(t, false)
	a := newAllowList(l.nsfd, "tether-sw-fps")
	t.Cleanup(func() { _ = a.deleteTable(l.ctx) })
	if _, err := a.ensureBase(l.ctx); err != nil {
		t.Fatal(err)
	}
	measureFPS(t, l, a, 8, 250*time.Millisecond)
}

// measureFPS alternates rounds with the allow-list off and on, sending
// 60-byte frames with the VM's MAC from p1v as fast as one sender can for
// d, and counts frames received at p2v (its interface counter). It logs
// frames per second of each mode over all rounds, and the median of the
// on/off ratios of adjacent round pairs (steadier on a shared machine).
func measureFPS(t *testing.T, l *allowLab, a *allowList, pairs int, d time.Duration) (off, on float64) {
	t.Helper()
	vm := mac(1)
	frame := testFrame(net.HardwareAddr{0x52, 0x54, 0, 0xbb, 0, 1}, vm, 7)
	var tOff, tOn, cOff, cOn time.Duration
	var nOff, nOn, sOff, sOn uint64
	var ratios []float64
	var lastOff float64
	for r := 0; r < 2*pairs; r++ {
		allow := r%2 == 1
		if allow {
			if _, err := a.ensure(l.ctx, l.p1, vm); err != nil {
				t.Fatal(err)
			}
		} else if err := a.remove(l.ctx, l.p1); err != nil {
			t.Fatal(err)
		}
		before := l.rxPackets(t, l.p2v)
		sent, el, cpu := sendFor(l.tx, frame, d)
		time.Sleep(20 * time.Millisecond) // let the last frames land
		got := l.rxPackets(t, l.p2v) - before
		fps := float64(got) / el.Seconds()
		if allow {
			cOn += cpu
			tOn += el
			nOn += got
			sOn += sent
			if lastOff > 0 {
				ratios = append(ratios, fps/lastOff)
			}
		} else {
			cOff += cpu
			tOff += el
			nOff += got
			sOff += sent
			lastOff = fps
		}
	}
	pc, err := a.counters(l.ctx, l.p1)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Accepted.Packets == 0 {
		t.Errorf("allow-list accepted no frame in the last on round")
	}
	if nOff == 0 || nOn == 0 {
		t.Fatalf("no frames counted: off %d on %d", nOff, nOn)
	}
	off = float64(nOff) / tOff.Seconds()
	on = float64(nOn) / tOn.Seconds()
	slices.Sort(ratios)
	t.Logf("FIGURE soft switch frames/s, 60-byte frames, one sender, %d off/on pairs of %v rounds: allow-list off %.0f fps (%d sent, %d received), on %.0f fps (%d sent, %d received), on/off %.3f overall, median of pairs %.3f (min %.3f, max %.3f)",
		pairs, d, off, sOff, nOff, on, sOn, nOn, on/off, ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	// Per CPU-second of the sending thread (the bridge and nftables work
	// runs in its softirq context, unless the kernel accounts softirq time
	// apart): less sensitive to other load on a shared machine.
	cpuOff, cpuOn := float64(nOff)/cOff.Seconds(), float64(nOn)/cOn.Seconds()
	t.Logf("FIGURE soft switch frames per CPU-second of the sender: allow-list off %.0f, on %.0f, on/off %.3f (CPU %v off, %v on)",
		cpuOff, cpuOn, cpuOn/cpuOff, cOff, cOn)
	return off, on
}

// sendFor sends frame on s as fast as it can for d, on one locked OS
// thread, and returns the frames sent, the wall time and the thread's CPU
// time (user + system).
func sendFor(s *rawSock, frame []byte, d time.Duration) (sent uint64, wall, cpu time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var r0, r1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &r0)
		start := time.Now()
		for time.Since(start) < d {
			for i := 0; i < 256; i++ {
				if s.send(frame) == nil {
					sent++
				}
			}
		}
		wall = time.Since(start)
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &r1)
		tv := func(r unix.Rusage) time.Duration {
			return time.Duration(r.Utime.Nano() + r.Stime.Nano())
		}
		cpu = tv(r1) - tv(r0)
	}()
	<-done
	return sent, wall, cpu
}
