package uplink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/agent/uplink/uplinktest"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/wire"
)

// slowAssociate is a switch decider that accepts everything (VID 100, the
// default profile) but answers an ASSOCIATE only after delay: the time the
// switch takes to verify and program the port.
type slowAssociate struct {
	delay time.Duration
	mu    sync.Mutex
	modes []wire.VSIMode
}

func (s *slowAssociate) Decide(ctx context.Context, req vdp.DecideRequest) vdp.Decision {
	s.mu.Lock()
	s.modes = append(s.modes, req.VSI.Mode)
	s.mu.Unlock()
	if req.VSI.Mode == wire.VSIAssociate {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
		}
	}
	return vdp.AcceptAll{VID: 100, Profile: uplinktest.Profile()}.Decide(ctx, req)
}

func (s *slowAssociate) seen() []wire.VSIMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.VSIMode(nil), s.modes...)
}

// startUplinkMode runs an uplink with Config.PostMove set as asked.
func (r *rig) startUplinkMode(postMove bool) *uplink.Uplink {
	r.t.Helper()
	u, err := uplink.New(uplink.Config{
		Interface: "eth0", Store: r.store, Signer: r.id.Signer, Verifier: r.id.Verifier,
		RequireSigned: true, EVB: testEVB, SystemName: "hv1", PostMove: postMove,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		Listen: r.host.Listen, Logger: logger(r.t),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !u.Status().Connected {
		if time.Now().After(deadline) {
			r.t.Fatalf("uplink not connected: %+v", u.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return u
}

const incomingUUID = "6f1d0000-0000-4000-8000-00000000a001"

// incomingXML is a domain's XML as libvirt gives it to the qemu hooks of
// an incoming migration (id set for the live XML of started).
func incomingXML(id string) string {
	if id != "" {
		id = " id='" + id + "'"
	}
	return `<domain type='kvm'` + id + `><name>web-01</name><uuid>` + incomingUUID + `</uuid><devices>
  <interface type='bridge'><mac address='52:54:00:0a:00:01'/><source bridge='br0'/></interface>
  <interface type='network'><mac address='52:54:00:0a:00:02'/><source network='default'/></interface>
</devices></domain>`
}

func hookEvent(op, sub string, xml string) api.HookEvent {
	return api.HookEvent{Driver: "qemu", Object: "web-01", Operation: op, SubOperation: sub, Extra: "-", XML: xml, Received: time.Now()}
}

var incomingMACs = []inventory.MAC{{0x52, 0x54, 0, 0x0a, 0, 1}, {0x52, 0x54, 0, 0x0a, 0, 2}}

// TestMigrationHooksPreAssociate drives the destination's hooks as libvirt
// does on a live migration: migrate records the incoming vNICs and
// PRE-ASSOCIATEs them at once (the VM is not in libvirt yet); prepare and
// start change nothing; started ASSOCIATEs and returns only once the switch
// has answered, so the rule is live when libvirt lets the guest run, even
// with a switch that takes 300 ms to answer.
func TestMigrationHooksPreAssociate(t *testing.T) {
	r := newRig(t)
	dec := &slowAssociate{delay: 300 * time.Millisecond}
	sw := r.startSwitch(true, dec)
	u := r.startUplinkMode(false)
	m, err := uplink.NewMigrations(uplink.MigrationsConfig{Store: r.store, Uplinks: []*uplink.Uplink{u}, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := vdp.Key{Format: wire.VSIIDUUID, ID: mustUUID(t, incomingUUID)}

	consumed, err := m.Hook(ctx, hookEvent("migrate", "begin", incomingXML("")))
	if err != nil || !consumed {
		t.Fatalf("migrate hook: consumed %v, %v", consumed, err)
	}
	vm, err := r.store.VM(key.ID)
	if err != nil || vm.State != inventory.VMStatePaused || vm.Source != uplink.MigrationSource {
		t.Fatalf("incoming VM recorded as %+v, %v; want paused, source %q", vm, err, uplink.MigrationSource)
	}
	got := r.waitState(incomingMACs, inventory.StatePreAssociated, 10*time.Second)
	if v := got[incomingMACs[1]]; v.Kind != inventory.KindTap {
		t.Errorf("the type='network' vNIC is recorded as %s, want tap", v.Kind)
	}
	if info, ok := sw.Bridge.Lookup(key); !ok || info.State != vdp.StatePreAssociated {
		t.Fatalf("bridge holds %+v before the VM runs, want pre-associated", info)
	}
	for _, op := range []string{"prepare", "start"} {
		if consumed, err := m.Hook(ctx, hookEvent(op, "begin", incomingXML("7"))); err != nil || !consumed {
			t.Fatalf("%s hook: consumed %v, %v (the libvirt source must not re-read a domain libvirt does not have yet)", op, consumed, err)
		}
	}

	t0 := time.Now()
	consumed, err = m.Hook(ctx, hookEvent("started", "begin", incomingXML("7")))
	took := time.Since(t0)
	if err != nil || !consumed {
		t.Fatalf("started hook: consumed %v, %v", consumed, err)
	}
	// The property that closes the loss window: when the hook returns,
	// the switch has granted the ASSOCIATE.
	if info, ok := sw.Bridge.Lookup(key); !ok || info.State != vdp.StateAssociated {
		t.Fatalf("bridge holds %+v when the started hook returns (after %v), want associated", info, took)
	}
	if took < 300*time.Millisecond || took > uplink.DefaultStartedWait {
		t.Errorf("started hook took %v; want the switch's 300 ms answer, below %v", took, uplink.DefaultStartedWait)
	}
	t.Logf("started hook returned after %v with the association live (switch answering in 300 ms)", took)
	r.waitState(incomingMACs, inventory.StateVerified, 10*time.Second)
	modes := dec.seen()
	if len(modes) < 2 || modes[0] != wire.VSIPreAssociate || modes[1] != wire.VSIAssociate {
		t.Errorf("the switch saw %v, want PRE-ASSOCIATE then ASSOCIATE", modes)
	}

	// Not an incoming migration: passed on to the libvirt source.
	if consumed, err := m.Hook(ctx, hookEvent("started", "begin", strings.ReplaceAll(incomingXML("8"), "a001", "a002"))); err != nil || consumed {
		t.Errorf("started hook of another VM: consumed %v, %v; want it left to the libvirt source", consumed, err)
	}
}

// TestMigrationHooksPostMove: in post-move mode the migrate hook records
// the vNICs but nothing is pre-associated, and started returns without
// waiting for the switch: the association follows.
func TestMigrationHooksPostMove(t *testing.T) {
	r := newRig(t)
	dec := &slowAssociate{delay: 300 * time.Millisecond}
	sw := r.startSwitch(true, dec)
	u := r.startUplinkMode(true)
	m, err := uplink.NewMigrations(uplink.MigrationsConfig{Store: r.store, Uplinks: []*uplink.Uplink{u}, PostMove: true, Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := vdp.Key{Format: wire.VSIIDUUID, ID: mustUUID(t, incomingUUID)}
	if consumed, err := m.Hook(ctx, hookEvent("migrate", "begin", incomingXML(""))); err != nil || !consumed {
		t.Fatalf("migrate hook: consumed %v, %v", consumed, err)
	}
	// Give a pre-association every chance to go out: none may.
	time.Sleep(300 * time.Millisecond)
	if info, ok := sw.Bridge.Lookup(key); ok {
		t.Fatalf("post-move: the bridge holds %+v before the VM runs, want nothing", info)
	}
	r.waitState(incomingMACs, inventory.StatePending, time.Second)
	t0 := time.Now()
	if consumed, err := m.Hook(ctx, hookEvent("started", "begin", incomingXML("7"))); err != nil || !consumed {
		t.Fatalf("started hook: consumed %v, %v", consumed, err)
	}
	took := time.Since(t0)
	if took >= 300*time.Millisecond {
		t.Errorf("post-move started hook took %v, want no wait for the switch", took)
	}
	r.waitState(incomingMACs, inventory.StateVerified, 10*time.Second)
	if modes := dec.seen(); len(modes) == 0 || modes[0] != wire.VSIAssociate {
		t.Errorf("the switch saw %v, want ASSOCIATE first", modes)
	}
}

// TestMigrationHookMalformed: what the handler refuses, with its exact
// message (HTTP 400: the event's fault), and what it leaves alone.
func TestMigrationHookMalformed(t *testing.T) {
	st := newStoreOnly(t)
	m, err := uplink.NewMigrations(uplink.MigrationsConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ev   api.HookEvent
		want string
	}{
		{"not XML", hookEvent("migrate", "begin", "<domain"),
			"migration: bad hook event: qemu web-01 migrate: domain XML: malformed XML: XML syntax error on line 1: unexpected EOF"},
		{"bad uuid", hookEvent("migrate", "begin", `<domain type='kvm'><name>x</name><uuid>nope</uuid></domain>`),
			`migration: bad hook event: qemu web-01 migrate: domain XML: <uuid>: invalid <uuid> "nope": want 32 hex digits`},
		{"bad mac", hookEvent("migrate", "begin", strings.Replace(incomingXML(""), "52:54:00:0a:00:01", "52:54:00:zz:00:01", 1)),
			`migration: bad hook event: qemu web-01 migrate: domain XML: devices/interface[1] <mac address>: invalid MAC address "52:54:00:zz:00:01": address 52:54:00:zz:00:01: invalid MAC address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			consumed, err := m.Hook(context.Background(), tc.ev)
			var he *uplink.MigrationHookError
			if err == nil || consumed || !errors.As(err, &he) || he.HTTPStatus() != 400 {
				t.Fatalf("Hook = %v, %v; want a 400 MigrationHookError", consumed, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tc.want)
			}
		})
	}
	// Not the handler's business: no error, not consumed, nothing written.
	for _, ev := range []api.HookEvent{
		{Driver: "network", Object: "default", Operation: "started", SubOperation: "begin", Extra: "-", XML: "<network/>"},
		hookEvent("migrate", "begin", ""),
		hookEvent("release", "end", incomingXML("")),
		hookEvent("started", "begin", incomingXML("3")),
	} {
		if consumed, err := m.Hook(context.Background(), ev); err != nil || consumed {
			t.Errorf("%s %s: consumed %v, %v", ev.Driver, ev.Operation, consumed, err)
		}
	}
	if snap, err := st.Snapshot(context.Background()); err != nil || len(snap.VMs)+len(snap.VIFs) != 0 {
		t.Errorf("the inventory holds %+v, %v; want nothing", snap, err)
	}
	// A VM another source owns is not taken over.
	id := mustUUID(t, incomingUUID)
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(inventory.UpsertVM(inventory.VM{UUID: id, Name: "web-01", Source: "cni"}))); err != nil {
		t.Fatal(err)
	}
	_, err = m.Hook(context.Background(), hookEvent("migrate", "begin", incomingXML("")))
	if want := `migration: bad hook event: incoming VM ` + incomingUUID + ` belongs to source "cni"`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// FuzzIncomingDomain: whatever XML a hook brings, IncomingDomain maps it
// without panicking, and every VIF it records validates and belongs to
// the VM.
func FuzzIncomingDomain(f *testing.F) {
	f.Add(incomingXML(""))
	f.Add(`<domain><uuid>` + incomingUUID + `</uuid><devices><interface type='hostdev'><mac address='52:54:00:00:00:09'/></interface></devices></domain>`)
	f.Add("<domain")
	f.Fuzz(func(t *testing.T, xml string) {
		d, err := libvirthooks.ParseDomain([]byte(xml))
		if err != nil {
			return
		}
		dom, _, err := uplink.IncomingDomain(d)
		if err != nil {
			return
		}
		for _, v := range dom.VIFs {
			if verr := v.Validate(); verr != nil || v.VM != dom.VM.UUID {
				t.Fatalf("VIF %+v: %v", v, verr)
			}
		}
		if dom.VM.State != inventory.VMStatePaused {
			t.Fatalf("incoming VM state %v", dom.VM.State)
		}
	})
}

// newStoreOnly opens an inventory without namespaces.
func newStoreOnly(t *testing.T) *inventory.Store {
	t.Helper()
	st, err := inventory.Open(context.Background(), fmt.Sprintf("%s/inventory.db", t.TempDir()), inventory.Options{Logger: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func mustUUID(t *testing.T, s string) inventory.UUID {
	t.Helper()
	id, err := inventory.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
