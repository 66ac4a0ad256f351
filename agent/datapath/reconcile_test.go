package datapath

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/wire"
)

const wait = 10 * time.Second

// newFaked returns a Reconciler over a real inventory with the recording
// fake as the tap VIFs' vNICs and as the soft switch.
func newFaked(t *testing.T, mod func(*Config)) (*Reconciler, *inventory.Store, *recorder, *atomic.Int64) {
	t.Helper()
	st := openStore(t)
	rec := newRecorder()
	var applied atomic.Int64
	cfg := Config{
		Store: st, VNICs: map[inventory.Kind]VNICs{inventory.KindTap: rec}, Switch: rec,
		RetryMin: 20 * time.Millisecond, RetryMax: 80 * time.Millisecond,
		OnApplied: func() { applied.Add(1) }, Logger: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, st, rec, &applied
}

// TestOrder: the vNIC is ensured when the VIF appears, before any answer;
// the answer re-ensures it and then sets the port; Granted is nil only
// after that; a gone VIF has its port removed before its vNIC is released.
func TestOrder(t *testing.T) {
	r, st, rec, applied := newFaked(t, nil)
	run(t, r)
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(1), Kind: inventory.KindTap, HostDev: "vnet1"})
	mac := v.MAC.String()
	waitFor(t, "the vNIC ensured", wait, func() bool { return rec.has("ensure " + mac + " none") })

	prof := &wire.TetherProfile{VID: 100, RateKbps: 5000, Name: "web"}
	err := r.Granted(v, 100, prof)
	var tmp interface{ Temporary() bool }
	if !errors.Is(err, ErrNotApplied) || !errors.As(err, &tmp) || !tmp.Temporary() {
		t.Fatalf("first Granted = %v, want a temporary ErrNotApplied", err)
	}
	waitFor(t, "Granted nil", wait, func() bool { return r.Granted(v, 100, prof) == nil })
	if applied.Load() == 0 {
		t.Error("OnApplied was not called after the answer was put in place")
	}
	setGone(t, st, v.MAC)
	waitFor(t, "the vNIC released", wait, func() bool { return rec.has("release " + mac) })

	want := []string{
		"ensure " + mac + " none",
		"ensure " + mac + " VID 100, profile web",
		"port vnet1 vid 100 mac " + mac + " rate 5000",
		"remove port vnet1",
		"release " + mac,
	}
	got := slices.DeleteFunc(rec.log(), func(c string) bool { return strings.HasPrefix(c, "check ") })
	got = slices.Compact(got) // a full pass may re-ensure: idempotent
	if !slices.Equal(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	waitFor(t, "the VIF forgotten after its release", wait, func() bool {
		a, err := r.Applied(v.MAC)
		return a == nil && err == nil
	})
}

// TestNewAnswer: a changed answer (another VID) is applied and Granted
// refuses the old one's success until then.
func TestNewAnswer(t *testing.T) {
	r, st, rec, _ := newFaked(t, nil)
	run(t, r)
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(2), Kind: inventory.KindTap, HostDev: "vnet2"})
	_ = r.Granted(v, 10, nil)
	waitFor(t, "VID 10 in place", wait, func() bool { return r.Granted(v, 10, nil) == nil })
	if err := r.Granted(v, 20, nil); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("Granted with a new VID = %v, want ErrNotApplied", err)
	}
	waitFor(t, "VID 20 in place", wait, func() bool { return r.Granted(v, 20, nil) == nil })
	if !rec.has("port vnet2 vid 20 mac " + v.MAC.String() + " rate 0") {
		t.Fatalf("port not set to VID 20: %v", rec.log())
	}
}

// TestRetry: a failing vNIC is reported by Granted (not temporary), in the
// source status, retried with backoff, and recovers without a new event.
func TestRetry(t *testing.T) {
	r, st, rec, _ := newFaked(t, nil)
	rec.failEnsure, rec.errEnsure = 3, errors.New("VF busy")
	run(t, r)
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(3), Kind: inventory.KindTap, HostDev: "vnet3"})
	var failed error
	waitFor(t, "the failure reported", wait, func() bool {
		failed = r.Granted(v, 7, nil)
		return failed != nil && !errors.Is(failed, ErrNotApplied)
	})
	var tmp interface{ Temporary() bool }
	if errors.As(failed, &tmp) {
		t.Errorf("a failure is temporary: %v", failed)
	}
	if !strings.HasPrefix(failed.Error(), "ensure tap vNIC: VF busy (retry in ") {
		t.Errorf("Granted = %q", failed)
	}
	if st := r.Status(); !strings.Contains(st.LastError, "VF busy") {
		t.Errorf("status %+v does not name the failure", st)
	}
	waitFor(t, "recovery", wait, func() bool { return r.Granted(v, 7, nil) == nil })
	n := 0
	for _, c := range rec.log() {
		if strings.HasSuffix(c, ": failed") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d failed ensures, want 3: %v", n, rec.log())
	}
}

// TestDriftReportOnly: with report-only a resync that finds drift changes
// nothing and reports it through Granted; with repair it ensures again.
func TestDriftReportOnly(t *testing.T) {
	for _, policy := range []DriftPolicy{DriftReportOnly, DriftRepair} {
		r, st, rec, _ := newFaked(t, func(c *Config) { c.Drift = policy; c.Resync = 50 * time.Millisecond })
		run(t, r)
		v := addVIF(t, st, inventory.VIF{MAC: testMAC(4), Kind: inventory.KindTap, HostDev: "vnet4"})
		_ = r.Granted(v, 30, nil)
		waitFor(t, "VID 30 in place", wait, func() bool { return r.Granted(v, 30, nil) == nil })
		rec.mu.Lock()
		rec.drift = []softswitch.Difference{{Port: "vnet4", Field: "VID", Want: "30", Got: "1"}}
		rec.mu.Unlock()
		if policy == DriftReportOnly {
			var err error
			waitFor(t, "drift reported", wait, func() bool { err = r.Granted(v, 30, nil); return err != nil })
			if !strings.Contains(err.Error(), "soft-switch port vnet4 drifted (drift: report-only): vnet4: VID: want 30, got 1") {
				t.Errorf("Granted = %v", err)
			}
			n := 0
			for _, c := range rec.log() {
				if strings.HasPrefix(c, "port vnet4") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("report-only set the port %d times, want 1", n)
			}
			continue
		}
		waitFor(t, "drift repaired", wait, func() bool {
			n := 0
			for _, c := range rec.log() {
				if strings.HasPrefix(c, "port vnet4") {
					n++
				}
			}
			return n >= 2
		})
		if r.drifts.Load() == 0 {
			t.Error("no drift counted")
		}
	}
}

// TestSweepHeld: what the vNIC managers hold for a VIF the inventory no
// longer has is released by the first pass.
func TestSweepHeld(t *testing.T) {
	r, st, rec, _ := newFaked(t, nil)
	rec.held = []inventory.MAC{testMAC(5), testMAC(6)}
	addVIF(t, st, inventory.VIF{MAC: testMAC(6), Kind: inventory.KindTap, HostDev: "vnet6"})
	run(t, r)
	waitFor(t, "the orphan released", wait, func() bool { return rec.has("release " + testMAC(5).String()) })
	waitFor(t, "the live VIF ensured", wait, func() bool { return rec.has("ensure " + testMAC(6).String() + " none") })
	if rec.has("release " + testMAC(6).String()) {
		t.Errorf("a VIF still in the inventory was released: %v", rec.log())
	}
}

// TestNoPortForOtherKinds: a macvtap VIF has no soft-switch port and no
// vNIC manager; its answer is in place at once.
func TestNoPortForOtherKinds(t *testing.T) {
	r, st, rec, _ := newFaked(t, nil)
	run(t, r)
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(7), Kind: inventory.KindMacvtap, HostDev: "macvtap0"})
	_ = r.Granted(v, 5, nil)
	waitFor(t, "answer in place", wait, func() bool { return r.Granted(v, 5, nil) == nil })
	if len(rec.log()) != 0 {
		t.Errorf("calls for a macvtap VIF: %v", rec.log())
	}
}

// TestRecordStates: without an uplink the Reconciler records a failure as
// the VIF's state and reason itself, and puts it back to pending once the
// retry succeeded.
func TestRecordStates(t *testing.T) {
	r, st, rec, _ := newFaked(t, func(c *Config) { c.RecordStates = true })
	rec.failEnsure, rec.errEnsure = 2, errors.New("VF busy")
	sub := st.Subscribe(64)
	defer sub.Close()
	run(t, r)
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(8), Kind: inventory.KindTap, HostDev: "vnet8"})
	var seen []string
	waitFor(t, "back to pending", wait, func() bool {
		for {
			select {
			case ev := <-sub.Events():
				if ev.Type == inventory.EventVIFState && ev.VIF.MAC == v.MAC {
					seen = append(seen, ev.Transition.To.String()+": "+ev.Transition.Reason)
				}
				continue
			default:
			}
			break
		}
		return len(seen) >= 2
	})
	if len(seen) != 2 || !strings.HasPrefix(seen[0], "rejected: datapath failed: ensure tap vNIC: VF busy (retry in ") ||
		seen[1] != "pending: datapath in place" {
		t.Fatalf("transitions %q", seen)
	}
}

// TestSweepPorts: the first pass removes the soft-switch ports no VIF of
// the inventory wants (their VIFs went while tetherd was down), and keeps
// the port of a present VIF the switch has not answered yet.
func TestSweepPorts(t *testing.T) {
	r, st, rec, _ := newFaked(t, nil)
	rec.ports["vnet-stale"] = softswitch.Port{Name: "vnet-stale"}
	rec.ports["vnet9"] = softswitch.Port{Name: "vnet9"}
	v := addVIF(t, st, inventory.VIF{MAC: testMAC(9), Kind: inventory.KindTap, HostDev: "vnet9"})
	run(t, r)
	waitFor(t, "the stale port removed", wait, func() bool { return rec.has("remove port vnet-stale") })
	waitFor(t, "the live VIF ensured", wait, func() bool { return rec.has("ensure " + v.MAC.String() + " none") })
	if rec.has("remove port vnet9") {
		t.Errorf("the port of a VIF in the inventory was removed: %v", rec.log())
	}
	// Later passes leave ports alone: a port set by someone else after
	// the start is not swept again.
	rec.mu.Lock()
	rec.ports["vnet-later"] = softswitch.Port{Name: "vnet-later"}
	rec.mu.Unlock()
	r.Kick()
	_ = r.Granted(v, 11, nil)
	waitFor(t, "VID 11 in place", wait, func() bool { return r.Granted(v, 11, nil) == nil })
	if rec.has("remove port vnet-later") {
		t.Errorf("a later pass swept ports: %v", rec.log())
	}
}
