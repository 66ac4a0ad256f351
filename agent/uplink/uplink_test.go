package uplink_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/agent/uplink/uplinktest"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// testEVB is the station's EVB proposal in tests: ACK timer 41 ms (above
// the scheduling stalls of shared cores), response wait about 17 s,
// keep-alive 42 s (never during a test).
var testEVB = evb.Config{RR: true, R: 3, RTE: 12, RWD: 20, RKA: 22}

// logger returns a logger that writes to the test log with -v and
// TETHER_TEST_LOG set, and nowhere otherwise.
func logger(t testing.TB) *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// rig is a host namespace (eth0) joined to a switch namespace (swp1), an
// inventory, and the host's identity on disk.
type rig struct {
	t      testing.TB
	host   *uplinktest.NS
	sw     *uplinktest.NS
	dir    string
	store  *inventory.Store
	id     *uplink.Identity
	swKey  *identity.PrivateKey
	nextVM uint64
	// listen, when set, opens the uplink's sockets instead of
	// host.Listen.
	listen func(ifname string, etherType uint16) (rawsock.Conn, error)
}

func newRig(t testing.TB) *rig {
	t.Helper()
	uplinktest.Require(t)
	r := &rig{t: t, host: uplinktest.NewNS(t), sw: uplinktest.NewNS(t), dir: t.TempDir()}
	uplinktest.Veth(t, r.host, "eth0", r.sw, "swp1")
	var err error
	r.store, err = inventory.Open(context.Background(), filepath.Join(r.dir, "inventory.db"), inventory.Options{Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Close() })
	// The switch key is enrolled before the identity loads its directory.
	var keys string
	r.swKey, keys = uplinktest.EnrolSwitchKey(t, r.dir)
	r.id, err = uplink.OpenIdentity(uplink.IdentityConfig{
		KeyFile: filepath.Join(r.dir, "host.key"), Counters: filepath.Join(r.dir, "counters"), SwitchKeys: keys,
	}, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.id.Close() })
	return r
}

// startSwitch runs a switch on swp1: signed with the enrolled key when
// signed, a plain 802.1Qbg bridge otherwise.
func (r *rig) startSwitch(signed bool, dec vdp.Decider) *uplinktest.Switch {
	cfg := uplinktest.SwitchConfig{Decider: dec, Logger: logger(r.t), CounterDir: filepath.Join(r.dir, "switch-counters")}
	if signed {
		cfg.Key, cfg.HostKeys = r.swKey, append(cfg.HostKeys, r.id.Key.Public())
	}
	return uplinktest.StartSwitch(r.t, r.sw, "swp1", cfg)
}

// running is an uplink running in the host namespace.
type running struct {
	u    *uplink.Uplink
	stop func()
}

func (r *rig) startUplink(requireSigned bool) *running {
	r.t.Helper()
	listen := r.host.Listen
	if r.listen != nil {
		listen = r.listen
	}
	u, err := uplink.New(uplink.Config{
		Interface: "eth0", Store: r.store, Signer: r.id.Signer, Verifier: r.id.Verifier,
		RequireSigned: requireSigned, EVB: testEVB, SystemName: "hv1",
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		Listen: listen, Logger: logger(r.t),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("uplink Run: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return &running{u: u, stop: stop}
}

// addVM adds a running VM with one VIF per C-VID in cvids and returns the
// VIFs' MACs.
func (r *rig) addVM(cvids ...uint16) (inventory.UUID, []inventory.MAC) {
	r.t.Helper()
	r.nextVM++
	i := r.nextVM
	var id inventory.UUID
	id[0] = 0xa5
	binary.BigEndian.PutUint64(id[8:], i)
	c := inventory.Change{}.Add(inventory.UpsertVM(inventory.VM{UUID: id, Name: fmt.Sprintf("vm-%d", i), State: inventory.VMStateRunning, Source: "test"}))
	var macs []inventory.MAC
	for j, cvid := range cvids {
		mac := inventory.MAC{0x52, 0x54, byte(i >> 16), byte(i >> 8), byte(i), byte(j)}
		macs = append(macs, mac)
		c = c.Add(inventory.UpsertVIF(inventory.VIF{MAC: mac, VM: id, HostDev: fmt.Sprintf("vnet%d", 4*i+uint64(j)), Kind: inventory.KindTap, CVID: cvid}))
	}
	if _, err := r.store.Apply(context.Background(), c); err != nil {
		r.t.Fatal(err)
	}
	return id, macs
}

// setState moves a VIF as a source would (gone) or as a previous run did.
func (r *rig) setState(mac inventory.MAC, to inventory.State, reason string) {
	r.t.Helper()
	if _, err := r.store.Apply(context.Background(), inventory.Change{}.Add(inventory.SetState(mac, to, reason))); err != nil {
		r.t.Fatal(err)
	}
}

// waitFor polls the inventory until cond holds for every MAC, and returns
// the VIFs then.
func (r *rig) waitFor(what string, macs []inventory.MAC, timeout time.Duration, cond func(v inventory.VIF, err error) bool) map[inventory.MAC]inventory.VIF {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := map[inventory.MAC]inventory.VIF{}
		ok := true
		var last string
		for _, m := range macs {
			v, err := r.store.VIF(m)
			if !cond(v, err) {
				ok = false
				last = fmt.Sprintf("%s: state %s, reason %q, err %v", m, v.State, v.Last.Reason, err)
				break
			}
			out[m] = v
		}
		if ok {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not reached after %v; %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) waitState(macs []inventory.MAC, st inventory.State, timeout time.Duration) map[inventory.MAC]inventory.VIF {
	r.t.Helper()
	return r.waitFor("state "+st.String(), macs, timeout, func(v inventory.VIF, err error) bool { return err == nil && v.State == st })
}

func (r *rig) waitRemoved(macs []inventory.MAC, timeout time.Duration) {
	r.t.Helper()
	r.waitFor("removed", macs, timeout, func(_ inventory.VIF, err error) bool { return err != nil })
}

func contains(t testing.TB, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s %q does not contain %q", what, s, sub)
	}
}

// TestAssociateVerifyAndGone: VIFs go pending -> associated -> verified
// with the switch's VID and signed profile; a gone VIF of a VM with two
// VIFs is re-associated away and removed; the gone last VIF of a VM is
// DE-ASSOCIATEd and removed.
func TestAssociateVerifyAndGone(t *testing.T) {
	r := newRig(t)
	sw := r.startSwitch(true, nil)
	sub := r.store.Subscribe(1024)
	defer sub.Close()
	vm1, m1 := r.addVM(0)
	_, m2 := r.addVM(0, 0)
	_, m3 := r.addVM(200) // the switch keeps the asked VID; the profile says 100
	up := r.startUplink(true)

	all := append(append([]inventory.MAC{}, m1...), m2...)
	got := r.waitState(all, inventory.StateVerified, 10*time.Second)
	want := "VDP ASSOCIATE accepted by switch " + r.swKey.ID().String() + ": VID 100, profile web"
	for _, v := range got {
		if v.Last.Reason != want || v.Last.From != inventory.StateAssociated {
			t.Errorf("VIF %s: last transition %s -> %s %q, want from associated %q", v.MAC, v.Last.From, v.Last.To, v.Last.Reason, want)
		}
	}
	v3 := r.waitState(m3, inventory.StateAssociated, 5*time.Second)[m3[0]]
	contains(t, "VID 200 reason", v3.Last.Reason, "VID 200, profile web; not verified: the profile's VID 100 is not the granted VID 200")

	// Every VIF went through associated before verified, from pending.
	seen := map[inventory.MAC][]string{}
	func() {
		timeout := time.After(2 * time.Second)
		for {
			select {
			case ev := <-sub.Events():
				if ev.Type == inventory.EventVIFState {
					seen[ev.VIF.MAC] = append(seen[ev.VIF.MAC], ev.Transition.From.String()+">"+ev.Transition.To.String())
				}
			case <-timeout:
				return
			default:
				done := true
				for _, m := range all {
					done = done && len(seen[m]) >= 2
				}
				if done {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	for _, m := range all {
		if got := strings.Join(seen[m], " "); got != "pending>associated associated>verified" {
			t.Errorf("VIF %s transitions %q", m, got)
		}
	}
	if n := len(sw.Events(vdp.EventAssociated)); n != 3 {
		t.Errorf("switch associated %d VSIs, want 3 (one per VM)", n)
	}
	checkDigest(t, r, sw, 4)

	// The second VIF of VM 2 goes: re-ASSOCIATE with the first only, then
	// removed.
	before := len(sw.Events(vdp.EventAssociated))
	r.setState(m2[1], inventory.StateGone, "detached")
	r.waitRemoved(m2[1:], 5*time.Second)
	if n := len(sw.Events(vdp.EventAssociated)); n != before+1 {
		t.Errorf("switch associated %d times after the detach, want %d", n, before+1)
	}
	info, ok := up.u.Station().Lookup(vdp.Key{Format: wire.VSIIDUUID, ID: inventory.UUID(sw.Events(vdp.EventAssociated)[before].Key.ID)})
	if !ok || len(info.VSI.Filters) != 1 || info.VSI.Filters[0].MAC != m2[0] {
		t.Errorf("station holds %+v after the detach, want only %s", info, m2[0])
	}
	if v, _ := r.store.VIF(m2[0]); v.State != inventory.StateVerified {
		t.Errorf("remaining VIF %s is %s", m2[0], v.State)
	}

	// VM 1's only VIF goes: DE-ASSOCIATE, then removed.
	r.setState(m1[0], inventory.StateGone, "VM stopped")
	evs := sw.WaitEvents(t, vdp.EventDeassociated, 1, 5*time.Second)
	if evs[0].Key.ID != vm1 {
		t.Errorf("switch de-associated %s, want VM %s", evs[0].Key, vm1)
	}
	r.waitRemoved(m1, 5*time.Second)
	if _, ok := up.u.Station().Lookup(vdp.Key{Format: wire.VSIIDUUID, ID: vm1}); ok {
		t.Error("station still holds VM 1")
	}
	st := up.u.Status()
	if st.Name != "uplink eth0" || !st.Connected {
		t.Errorf("status %+v", st)
	}
	checkDigest(t, r, sw, 2)
}

// checkDigest waits until the switch's LLDP neighbour (the host) carries
// the inventory digest of the store with n VIFs, a signed LLDPDU, the host
// key in its capability TLV and an EVB TLV in station mode.
func checkDigest(t *testing.T, r *rig, sw *uplinktest.Switch, n uint32) {
	t.Helper()
	snap, err := r.store.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, wantN := uplink.Digest(snap.VIFs)
	if wantN != n {
		t.Fatalf("store has %d live VIFs, want %d", wantN, n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var inv *wire.TetherInventory
		var capa *wire.TetherCapability
		ns := sw.Agent.Neighbors()
		if len(ns) == 1 {
			for _, tlv := range ns[0].PDU.TLVs {
				switch x := tlv.(type) {
				case *wire.TetherInventory:
					inv = x
				case *wire.TetherCapability:
					capa = x
				}
			}
		}
		if inv != nil && inv.Digest == want && inv.VIFs == n {
			if capa == nil || capa.KeyID != r.id.Key.ID() || !ns[0].Check.Signed || ns[0].EVB() == nil || ns[0].EVB().Mode != wire.EVBModeStation {
				t.Errorf("host LLDPDU: capability %+v, signed %v, EVB %+v", capa, ns[0].Check.Signed, ns[0].EVB())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("switch's neighbour table %d entries, inventory TLV %+v; want %d VIFs, digest %x", len(ns), inv, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPreAssociateOnMigrateIn: a paused VM that is not associated yet
// (the destination of a live migration) is PRE-ASSOCIATEd; once running,
// ASSOCIATEd and verified.
func TestPreAssociateOnMigrateIn(t *testing.T) {
	r := newRig(t)
	sw := r.startSwitch(true, nil)
	id, macs := r.addVM(0)
	vm := inventory.VM{UUID: id, Name: "vm-1", State: inventory.VMStatePaused, Source: "test"}
	if _, err := r.store.Apply(context.Background(), inventory.Change{}.Add(inventory.UpsertVM(vm))); err != nil {
		t.Fatal(err)
	}
	r.startUplink(true)
	v := r.waitState(macs, inventory.StatePreAssociated, 10*time.Second)[macs[0]]
	contains(t, "reason", v.Last.Reason, "VDP PRE-ASSOCIATE accepted by switch "+r.swKey.ID().String()+": VID 100")
	if info, ok := sw.Bridge.Lookup(vdp.Key{Format: wire.VSIIDUUID, ID: id}); !ok || info.State != vdp.StatePreAssociated {
		t.Errorf("bridge holds %+v", info)
	}
	vm.State = inventory.VMStateRunning
	if _, err := r.store.Apply(context.Background(), inventory.Change{}.Add(inventory.UpsertVM(vm))); err != nil {
		t.Fatal(err)
	}
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	if info, ok := sw.Bridge.Lookup(vdp.Key{Format: wire.VSIIDUUID, ID: id}); !ok || info.State != vdp.StateAssociated {
		t.Errorf("bridge holds %+v", info)
	}
}

// TestSwitchGoneAndBack: when the switch leaves (shutdown LLDPDU), the
// VIFs go back to pending; a switch that comes back (having lost its
// state) gets every VSI again.
func TestSwitchGoneAndBack(t *testing.T) {
	r := newRig(t)
	sw := r.startSwitch(true, nil)
	_, macs := r.addVM(0, 0)
	r.startUplink(true)
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	sw.Stop()
	v := r.waitState(macs, inventory.StatePending, 5*time.Second)[macs[0]]
	contains(t, "reason", v.Last.Reason, "no tether switch on eth0")
	sw = r.startSwitch(true, nil)
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	sw.WaitEvents(t, vdp.EventAssociated, 1, 5*time.Second)
}

// TestRejected: a switch that refuses with code 4 leaves the VIFs
// rejected with its reason, and the uplink retries with backoff.
func TestRejected(t *testing.T) {
	r := newRig(t)
	refuse := vdp.DeciderFunc(func(context.Context, vdp.DecideRequest) vdp.Decision {
		return vdp.Decision{Code: wire.VDPOtherFailure}
	})
	sw := r.startSwitch(true, refuse)
	_, macs := r.addVM(0, 0)
	r.startUplink(true)
	got := r.waitState(macs, inventory.StateRejected, 10*time.Second)
	for _, v := range got {
		contains(t, "reason", v.Last.Reason, "rejected by switch "+r.swKey.ID().String()+": code 4 other failure (VDP ASSOCIATE on eth0; retry in ")
	}
	// Retried after the backoff (100 ms, doubling).
	sw.WaitEvents(t, vdp.EventRejected, 3, 10*time.Second)
}

// TestRequireSignedRefusesPlainBridge: with require_signed, a plain
// 802.1Qbg bridge gets no VDP at all and the VIFs say why; without it the
// VIFs associate in interop mode and are never verified.
func TestRequireSignedRefusesPlainBridge(t *testing.T) {
	r := newRig(t)
	sw := r.startSwitch(false, nil)
	_, macs := r.addVM(0)
	up := r.startUplink(true)
	got := r.waitState(macs, inventory.StateRejected, 10*time.Second)
	want := `require_signed: switch "tor1" on eth0 does not advertise tether's capability; plain VDP refused`
	if v := got[macs[0]]; v.Last.Reason != want {
		t.Errorf("reason %q, want %q", v.Last.Reason, want)
	}
	time.Sleep(500 * time.Millisecond)
	if s := sw.Bridge.Engine().Stats(); s.RxRequests != 0 {
		t.Errorf("the bridge received %d VDP requests", s.RxRequests)
	}
	if v, _ := r.store.VIF(macs[0]); v.State != inventory.StateRejected {
		t.Errorf("VIF is %s", v.State)
	}
	if st := up.u.Status(); st.Connected || st.LastError != want {
		t.Errorf("status %+v", st)
	}
	up.stop()

	// Interop mode: plain VDP, associated, never verified.
	r.startUplink(false)
	v := r.waitState(macs, inventory.StateAssociated, 10*time.Second)[macs[0]]
	contains(t, "reason", v.Last.Reason, "VDP ASSOCIATE accepted by switch (unsigned): VID 100, profile web; not verified: plain VDP (interop mode)")
}

// TestRestartRelearns: a new uplink session trusts nothing: every VIF goes
// back to pending and is associated again.
func TestRestartRelearns(t *testing.T) {
	r := newRig(t)
	r.startSwitch(true, nil)
	var macs []inventory.MAC
	for range 4 {
		_, m := r.addVM(0)
		macs = append(macs, m...)
	}
	up := r.startUplink(true)
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	up.stop()
	for _, m := range macs {
		if v, _ := r.store.VIF(m); v.State != inventory.StateVerified {
			t.Fatalf("VIF %s is %s after the stop", m, v.State)
		}
	}
	sub := r.store.Subscribe(1024)
	defer sub.Close()
	up = r.startUplink(true)
	relearnt := map[inventory.MAC]bool{}
	timeout := time.After(5 * time.Second)
	for len(relearnt) < len(macs) {
		select {
		case ev := <-sub.Events():
			if ev.Type == inventory.EventVIFState && ev.Transition.To == inventory.StatePending &&
				strings.Contains(ev.Transition.Reason, "uplink started, associations are re-learnt") {
				relearnt[ev.VIF.MAC] = true
			}
		case <-timeout:
			t.Fatalf("%d of %d VIFs went back to pending on restart", len(relearnt), len(macs))
		}
	}
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	if n := len(up.u.Station().VSIs()); n != 4 {
		t.Errorf("the new station holds %d VSIs, want 4", n)
	}
}

// TestNoSwitch: without a switch the VIFs stay pending, and a VIF a
// previous run verified goes back to pending with the reason.
func TestNoSwitch(t *testing.T) {
	r := newRig(t)
	_, fresh := r.addVM(0)
	_, old := r.addVM(0)
	r.setState(old[0], inventory.StateAssociated, "previous run")
	r.setState(old[0], inventory.StateVerified, "previous run")
	up := r.startUplink(true)
	v := r.waitState(old, inventory.StatePending, 5*time.Second)[old[0]]
	contains(t, "reason", v.Last.Reason, "no tether switch on eth0")
	time.Sleep(300 * time.Millisecond)
	if v, _ := r.store.VIF(fresh[0]); v.State != inventory.StatePending {
		t.Errorf("fresh VIF is %s", v.State)
	}
	if st := up.u.Status(); st.Connected || st.LastError != "no tether switch on eth0" || !up.u.Ready() {
		t.Errorf("status %+v, ready %v", st, up.u.Ready())
	}
}

// TestFigure4096 measures the time from uplink start to every one of 4,096
// VIFs (one per VM) verified against the l2 bridge peer on a veth, signed
// both ways. The switch is already up, so the time includes LLDP discovery
// and the EVB exchange.
func TestFigure4096(t *testing.T) {
	if testing.Short() {
		t.Skip("figure run; -short skips it")
	}
	const n = 4096
	r := newRig(t)
	sw := r.startSwitch(true, nil)
	c := inventory.Change{}
	macs := make(map[inventory.MAC]bool, n)
	for i := range uint64(n) {
		var id inventory.UUID
		id[0] = 0xb7
		binary.BigEndian.PutUint64(id[8:], i)
		mac := inventory.MAC{0x52, 0x54, 0x01, byte(i >> 16), byte(i >> 8), byte(i)}
		macs[mac] = true
		c = c.Add(inventory.UpsertVM(inventory.VM{UUID: id, Name: fmt.Sprintf("vm-%d", i), State: inventory.VMStateRunning, Source: "test"}),
			inventory.UpsertVIF(inventory.VIF{MAC: mac, VM: id, HostDev: fmt.Sprintf("vnet%d", i), Kind: inventory.KindTap}))
	}
	if _, err := r.store.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	sub := r.store.Subscribe(1 << 16)
	defer sub.Close()
	start := time.Now()
	up := r.startUplink(true)
	verified := 0
	var firstAssoc time.Duration
	timeout := time.After(30 * time.Second)
	for verified < n {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			if ev.Type != inventory.EventVIFState || !macs[ev.VIF.MAC] {
				continue
			}
			switch ev.Transition.To {
			case inventory.StateAssociated:
				if firstAssoc == 0 {
					firstAssoc = time.Since(start)
				}
			case inventory.StateVerified:
				verified++
			case inventory.StateRejected:
				t.Fatalf("VIF %s rejected: %s", ev.VIF.MAC, ev.Transition.Reason)
			}
		case <-timeout:
			t.Fatalf("%d of %d verified after 30s", verified, n)
		}
	}
	took := time.Since(start)
	ss, bs := up.u.Station().Engine().Stats(), sw.Bridge.Engine().Stats()
	t.Logf("%d VIFs: uplink start to all verified in %v (first association written after %v); station sent %d ECPDUs (%d retransmitted), bridge %d (%d retransmitted); %d uplink outcomes",
		n, took.Round(time.Millisecond), firstAssoc.Round(time.Millisecond), ss.TxRequests, ss.TxRetransmits, bs.TxRequests, bs.TxRetransmits, up.u.Status().Events)
}

// TestLinkFlap: the link going down ends the session (ECP reports
// ENETDOWN); the next session re-learns everything once the link is back.
func TestLinkFlap(t *testing.T) {
	r := newRig(t)
	r.startSwitch(true, nil)
	_, macs := r.addVM(0)
	up := r.startUplink(true)
	r.waitState(macs, inventory.StateVerified, 10*time.Second)
	if err := exec.Command("ip", "-n", r.host.Name, "link", "set", "eth0", "down").Run(); err != nil {
		t.Fatal(err)
	}
	r.waitState(macs, inventory.StatePending, 10*time.Second)
	if err := exec.Command("ip", "-n", r.host.Name, "link", "set", "eth0", "up").Run(); err != nil {
		t.Fatal(err)
	}
	r.waitState(macs, inventory.StateVerified, 15*time.Second)
	if st := up.u.Status(); !st.Connected {
		t.Errorf("status %+v", st)
	}
}
