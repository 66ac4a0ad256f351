package switchd

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// memTiming is the VDP timing of the in-memory tests: ACK timer 41 ms,
// keep-alive 164 ms (RKA 14), so the bridge's keep-alive timeout is about
// 0.7 s.
var memTiming = vdp.Timing{R: 3, RTE: 12, RWD: 20, RKA: 14}

// memPort is one switch port wired to a host with in-memory links. The
// links outlive the daemon, like cables across a restart of switchd.
type memPort struct {
	swLLDP, hostLLDP rawsock.Conn
	swECP, hostECP   *ecptest.PipeEnd
}

// keepConn is a port's Conn that the daemon may not close (the test owns
// the pipe).
type keepConn struct{ rawsock.Conn }

func (keepConn) Close() error { return nil }

// memRig is a Daemon whose ports are in-memory links, with a fake enforcer
// and VM manager.
type memRig struct {
	t      *testing.T
	swKey  *identity.PrivateKey
	enf    *fakeEnforcer
	vmm    *fakeVMM
	cfg    switchconfig.Config
	sign   *identity.MemoryCounterStore
	replay *identity.MemoryCounterStore
	hosts  map[string]ed25519.PublicKey
	ports  map[string]*memPort

	d      *Daemon
	cancel context.CancelFunc
	done   chan error
}

func newMemRig(t *testing.T, ports ...string) *memRig {
	t.Helper()
	k, err := identity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := switchconfig.Default()
	cfg.Name = "tor1"
	cfg.Ports = switchconfig.Ports{Names: ports}
	cfg.EVB = switchconfig.EVB{R: memTiming.R, RTE: memTiming.RTE, RWD: memTiming.RWD, RKA: memTiming.RKA, ReflectiveRelay: true}
	web := uint32(7)
	cfg.Profiles = map[string]switchconfig.Profile{
		"default": {Name: "default", VID: 100, Mode: "switch"},
		"web":     {VID: 200, RateKbps: 5000, Mode: "switch", VSITypeID: &web},
	}
	r := &memRig{t: t, swKey: k, enf: newFakeEnforcer(), vmm: newFakeVMM(), cfg: cfg,
		sign: &identity.MemoryCounterStore{}, replay: &identity.MemoryCounterStore{},
		hosts: map[string]ed25519.PublicKey{}, ports: map[string]*memPort{}}
	for i, name := range ports {
		swMAC := [6]byte{0x02, 0x5e, 0, 0, 0, byte(i + 1)}
		hostMAC := [6]byte{0x02, 0x48, 0, 0, 0, byte(i + 1)}
		a, b := rawsock.Pipe(rawsock.Interface{Name: name, MAC: swMAC}, rawsock.Interface{Name: "eth0", MAC: hostMAC})
		e1, e2 := ecptest.Pipe(0)
		r.ports[name] = &memPort{swLLDP: a, hostLLDP: b, swECP: e1, hostECP: e2}
	}
	return r
}

// enrol enrols host's key.
func (r *memRig) enrol(h *hostID) { r.hosts[h.name] = h.key.Public() }

// start runs a new Daemon (a restart when one ran before).
func (r *memRig) start(tune func(*Options)) {
	r.t.Helper()
	opts := Options{
		Config: r.cfg, Version: "test", Key: r.swKey, SignCounters: r.sign, ReplayCounters: r.replay,
		HostKeys: r.hosts, VMManager: r.vmm, Enforcer: r.enf, Logger: testLogger(),
		OpenPort: func(_ context.Context, name string) (PortConns, error) {
			p := r.ports[name]
			return PortConns{Interface: p.swLLDP.Interface(), LLDP: keepConn{p.swLLDP}, ECP: p.swECP,
				Close: func() error { return nil }}, nil
		},
		ReconcileInterval: 100 * time.Millisecond,
		NeighbourWait:     2 * time.Second,
	}
	if tune != nil {
		tune(&opts)
	}
	d, err := New(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r.d, r.cancel, r.done = d, cancel, done
	r.t.Cleanup(r.stop)
}

// stop stops the running Daemon.
func (r *memRig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run: %v", err)
	}
	r.cancel = nil
}

// station connects host h to port and waits until both sides see each
// other in LLDP.
func (r *memRig) station(h *hostID, port string) *station {
	r.t.Helper()
	p := r.ports[port]
	s := newStation(r.t, h, r.swKey.Public(), p.hostLLDP, p.hostECP, memTiming, 0)
	s.start()
	waitFor(r.t, 5*time.Second, "LLDP both ways on "+port, func() bool {
		nb, ok := r.d.neighbours.Neighbour(port)
		return s.switchNeighbour() && ok && nb.Host == h.name
	})
	return s
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func uuidN(n int) verify.UUID {
	return verify.UUID{0x6f, 0x1d, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, byte(n >> 8), byte(n)}
}

func macN(n int) verify.MAC { return verify.MAC{0x52, 0x54, 0, 0, byte(n >> 8), byte(n)} }

func pairN(n int, vid uint16) enforce.Pair { return enforce.Pair{MAC: macN(n), VID: vid} }

// refusal returns the response error of res, failing when it succeeded.
func refusal(t *testing.T, res vdp.Result) *vdp.ResponseError {
	t.Helper()
	var re *vdp.ResponseError
	if !errors.As(res.Err, &re) {
		t.Fatalf("want a refusal, got %+v", res)
	}
	return re
}

// findReject returns the last refusal of reason on port.
func findReject(d *Daemon, port, reason string) (switchapi.Reject, bool) {
	rs := d.Rejects()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Port == port && rs[i].Reason == reason {
			return rs[i], true
		}
	}
	return switchapi.Reject{}, false
}

// TestAssociateRuleBeforeAnswer: a verified ASSOCIATE with the null VID is
// answered with the profile's VID and a profile TLV, and the enforcer's
// pair is in place before the answer leaves the switch (checked on every
// frame the switch sends).
func TestAssociateRuleBeforeAnswer(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	s := r.station(hv1, "p1")

	// Every VDP response the switch sends: was the rule there already?
	var mu sync.Mutex
	var seen []bool
	r.ports["p1"].swECP.SetTap(func(frame []byte, _ bool) {
		var h wire.EthernetHeader
		pdu, err := h.Parse(frame)
		if err != nil {
			return
		}
		var e wire.ECPDU
		if e.UnmarshalBinary(pdu) != nil || e.VDP == nil {
			return
		}
		for _, v := range e.VDP.VSIs() {
			if v.IsResponse() && v.Mode == wire.VSIAssociate && v.Code() == wire.VDPSuccess {
				mu.Lock()
				seen = append(seen, r.enf.allowed("p1", pairN(1, 100)))
				mu.Unlock()
			}
		}
	})

	res := s.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil {
		t.Fatalf("associate: %v", res.Err)
	}
	if len(res.Filters) != 1 || res.Filters[0].VID != 100 || res.Profile == nil || res.Profile.Name != "default" || res.Profile.VID != 100 {
		t.Fatalf("answer: filters %+v profile %+v", res.Filters, res.Profile)
	}
	if res.Peer == nil || res.Peer.Key != r.swKey.ID() {
		t.Fatalf("answer not signed by the switch key: %+v", res.Peer)
	}
	mu.Lock()
	if len(seen) == 0 || slices.Contains(seen, false) {
		t.Fatalf("rule present when each success response left: %v", seen)
	}
	mu.Unlock()
	vms := r.d.VMs()
	if len(vms) != 1 || vms[0].MAC != macN(1).String() || vms[0].Port != "p1" || vms[0].VID != 100 || vms[0].Host != "hv1" ||
		vms[0].State != "associated" || vms[0].Verified.KeyID != hv1.key.ID().String() ||
		vms[0].Verified.VMManager != "running on hv1 with "+macN(1).String() {
		t.Fatalf("vms: %+v", vms)
	}
	if st := r.d.Status(context.Background()); st.RuleLatency.Count != 1 || st.Accepted != 1 {
		t.Fatalf("status: %+v", st)
	}

	// A VSI type with its own profile.
	r.vmm.set("hv1", uuidN(2), verify.VMRunning, macN(2))
	res = s.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(2), 0, 7))
	if res.Err != nil || res.Filters[0].VID != 200 || res.Profile.Name != "web" || res.Profile.RateKbps != 5000 {
		t.Fatalf("web profile: %+v", res)
	}
	// A VID the profile does not give.
	r.vmm.set("hv1", uuidN(3), verify.VMRunning, macN(3))
	res = s.do(wire.VSIAssociate, vsiOf(uuidN(3), macN(3), 300, 1))
	if re := refusal(t, res); re.Code() != wire.VDPInvalidFormat || !re.Hard() {
		t.Fatalf("vid mismatch answered %v", re)
	}
	if _, ok := findReject(r.d, "p1", reasonVIDMismatch); !ok || r.enf.allowed("p1", pairN(3, 300)) {
		t.Fatalf("vid mismatch: rejects %+v", r.d.Rejects())
	}
}

// TestRefusals: a MAC live on another port for another VM, a VM the VM
// manager does not know, and a host whose key is not enrolled are
// refused with their reasons, and nothing is installed for them.
func TestRefusals(t *testing.T) {
	r := newMemRig(t, "p1", "p2", "p3")
	hv1, hv2, rogue := newHostID(t, "hv1"), newHostID(t, "hv2"), newHostID(t, "hv3")
	r.enrol(hv1)
	r.enrol(hv2)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.vmm.set("hv2", uuidN(2), verify.VMRunning, macN(1)) // a clone with VM1's MAC
	r.start(nil)
	a, b := r.station(hv1, "p1"), r.station(hv2, "p2")
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}

	res := b.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(1), 0, 1))
	if re := refusal(t, res); re.Code() != wire.VDPInvalidAddress {
		t.Fatalf("mac live elsewhere answered %v", re)
	}
	rj, ok := findReject(r.d, "p2", "mac-live-elsewhere")
	if !ok || rj.MAC != macN(1).String() || rj.VM != uuidN(2).String() || rj.Host != "hv2" || rj.Mode != "ASSOCIATE" {
		t.Fatalf("rejects: %+v", r.d.Rejects())
	}
	if r.enf.allowed("p2", pairN(1, 100)) || !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatal("the refused claim changed the rules")
	}

	res = b.do(wire.VSIAssociate, vsiOf(uuidN(9), macN(9), 0, 1))
	refusal(t, res)
	if _, ok := findReject(r.d, "p2", "vm-manager-denies"); !ok {
		t.Fatalf("rejects: %+v", r.d.Rejects())
	}

	// A host whose key is not enrolled: its LLDPDUs are refused, so the
	// port has no neighbour, and its VDP frames are refused outright.
	p := r.ports["p3"]
	c := newStation(t, rogue, r.swKey.Public(), p.hostLLDP, p.hostECP, memTiming, 0)
	c.start()
	waitFor(t, 5*time.Second, "the rogue sees the switch", c.switchNeighbour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.st.Associate(ctx, stationMgr, vsiOf(uuidN(1), macN(1), 0, 1))
	if err == nil {
		t.Fatal("unenrolled host associated")
	}
	waitFor(t, 3*time.Second, "frame refusal recorded", func() bool {
		_, ok := findReject(r.d, "p3", "unknown-key")
		return ok
	})
	if _, ok := r.d.neighbours.Neighbour("p3"); ok {
		t.Fatal("an unenrolled host became the neighbour of p3")
	}
	// The refused LLDP neighbour itself shows in the rejects, so an operator
	// sees why the port has none.
	var lldpRej bool
	for _, rj := range r.d.Rejects() {
		if rj.Port == "p3" && rj.Mode == "LLDP" && rj.Reason == "unknown-key" && strings.Contains(rj.Message, "LLDP neighbour refused") {
			lldpRej = true
		}
	}
	if !lldpRej {
		t.Fatalf("no LLDP reject for the unenrolled neighbour: %+v", r.d.Rejects())
	}
}

// TestPreAssociateActivate: PRE-ASSOCIATE installs the pair held back,
// ASSOCIATE activates it; DE-ASSOCIATE revokes it and frees the MAC for
// another port.
func TestPreAssociateActivate(t *testing.T) {
	r := newMemRig(t, "p1", "p2")
	hv1, hv2 := newHostID(t, "hv1"), newHostID(t, "hv2")
	r.enrol(hv1)
	r.enrol(hv2)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	a := r.station(hv1, "p1")

	if res := a.do(wire.VSIPreAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !r.enf.pending("p1", pairN(1, 100)) || r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("after PRE-ASSOCIATE: %v", r.enf.callList())
	}
	if vms := r.d.VMs(); len(vms) != 1 || vms[0].State != "pre-associated" {
		t.Fatalf("vms: %+v", vms)
	}
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if r.enf.pending("p1", pairN(1, 100)) || !r.enf.allowed("p1", pairN(1, 100)) ||
		!slices.Contains(r.enf.callList(), "activate p1 "+pairN(1, 100).String()) {
		t.Fatalf("after ASSOCIATE: %v", r.enf.callList())
	}

	if res := a.do(wire.VSIDeAssociate, vsiOf(uuidN(1), macN(1), 100, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, 2*time.Second, "the pair revoked", func() bool { return !r.enf.allowed("p1", pairN(1, 100)) })
	if vms := r.d.VMs(); len(vms) != 0 {
		t.Fatalf("vms after DE-ASSOCIATE: %+v", vms)
	}
	// The MAC is free: the VM, now on hv2 behind p2, may claim it.
	r.vmm.set("hv2", uuidN(1), verify.VMRunning, macN(1))
	b := r.station(hv2, "p2")
	if res := b.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("after release: %v", res.Err)
	}
}

// migrationRig is a live migration of VM 1 (MAC 1) from hv1 behind p1
// to hv2 behind p2 in progress: associated on p1, the VM manager reporting
// it migrating out of hv1 and into hv2, pre-associated on p2 and then
// associated there (libvirt's started hook on the destination, in the
// migration's Prepare phase, while the guest still runs on hv1). A third
// host hv3 sits behind p3.
type migrationRig struct {
	*memRig
	a, b *station
}

func newMigrationRig(t *testing.T, tune func(*switchconfig.Config)) *migrationRig {
	t.Helper()
	r := newMemRig(t, "p1", "p2", "p3")
	hv1, hv2 := newHostID(t, "hv1"), newHostID(t, "hv2")
	r.enrol(hv1)
	r.enrol(hv2)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	if tune != nil {
		tune(&r.cfg)
	}
	r.start(nil)
	m := &migrationRig{memRig: r}
	m.a, m.b = r.station(hv1, "p1"), r.station(hv2, "p2")
	if res := m.a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	r.vmm.set("hv1", uuidN(1), verify.VMMigratingOut, macN(1))
	r.vmm.set("hv2", uuidN(1), verify.VMMigratingIn, macN(1))
	if res := m.b.do(wire.VSIPreAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("pre-associate at the destination: %v", res.Err)
	}
	if !r.enf.pending("p2", pairN(1, 100)) || r.enf.allowed("p2", pairN(1, 100)) || !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("after PRE-ASSOCIATE: %v", r.enf.callList())
	}
	if res := m.b.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("associate at the destination: %v", res.Err)
	}
	if !r.enf.allowed("p2", pairN(1, 100)) || !slices.Contains(r.enf.callList(), "activate p2 "+pairN(1, 100).String()) {
		t.Fatalf("destination not activated: %v", r.enf.callList())
	}
	return m
}

// vmPorts returns "port:note" of every pair of VM 1 the API lists.
func vmPorts(d *Daemon) []string {
	var out []string
	for _, v := range d.VMs() {
		if v.VM == uuidN(1).String() {
			out = append(out, v.Port+":"+v.Verified.Note)
		}
	}
	slices.Sort(out)
	return out
}

// overlapping reports whether the API lists VM 1 on p1 (noted as the
// migration's source) and on p2.
func overlapping(d *Daemon) bool {
	ps := vmPorts(d)
	return len(ps) == 2 && strings.HasPrefix(ps[0], "p1:migrating: source until de-associate (destination port p2") &&
		strings.HasPrefix(ps[1], "p2:")
}

// TestMigration: a live migration from hv1 (port p1) to hv2 (port p2)
// that the VM manager confirms in progress: the destination's ASSOCIATE
// makes p2 pass without revoking p1 (the guest still runs on hv1 until
// the switchover); meanwhile another claim on the MAC is still refused;
// the source's DE-ASSOCIATE (its stopped hook) then removes p1's pair
// only.
func TestMigration(t *testing.T) {
	m := newMigrationRig(t, nil)
	r := m.memRig
	waitFor(t, 2*time.Second, "the API listing the VM on both ports, p1 as the migration's source", func() bool { return overlapping(r.d) })
	if !r.enf.allowed("p1", pairN(1, 100)) || !r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("during the overlap both ports must pass: %v", r.enf.callList())
	}
	if slices.Contains(r.enf.callList(), "revoke p1 "+pairN(1, 100).String()) {
		t.Fatalf("the source's pair was revoked at the destination's ASSOCIATE: %v", r.enf.callList())
	}

	// A third host claiming the VM (a clone its VM manager reports
	// running) is not a confirmed migration: refused, nothing installed.
	hv3 := newHostID(t, "hv3")
	r.enrol(hv3)
	if err := r.d.SetHostKeys(context.Background(), r.hosts); err != nil {
		t.Fatal(err)
	}
	r.vmm.set("hv3", uuidN(1), verify.VMRunning, macN(1))
	c := r.station(hv3, "p3")
	re := refusal(t, c.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)))
	if rj, ok := findReject(r.d, "p3", "mac-live-elsewhere"); !ok || !strings.Contains(rj.Message, "not a confirmed migration") {
		t.Fatalf("third claim: %v; rejects %+v", re, r.d.Rejects())
	}
	// Nor may another VM with the MAC claim it.
	r.vmm.set("hv3", uuidN(9), verify.VMRunning, macN(1))
	refusal(t, c.do(wire.VSIAssociate, vsiOf(uuidN(9), macN(1), 0, 1)))
	if r.enf.allowed("p3", pairN(1, 100)) || r.enf.pending("p3", pairN(1, 100)) {
		t.Fatalf("p3 got the pair: %v", r.enf.callList())
	}
	if !r.enf.allowed("p1", pairN(1, 100)) || !r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("the refused claims disturbed the overlap: %v", r.enf.callList())
	}

	// The switchover; the source's stopped hook de-associates.
	r.vmm.set("hv2", uuidN(1), verify.VMMigratedIn, macN(1))
	if res := m.a.do(wire.VSIDeAssociate, vsiOf(uuidN(1), macN(1), 100, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, 2*time.Second, "the source port's pair revoked", func() bool { return !r.enf.allowed("p1", pairN(1, 100)) })
	if !r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("the source's DE-ASSOCIATE revoked the destination's pair: %v", r.enf.callList())
	}
	vms := r.d.VMs()
	if len(vms) != 1 || vms[0].Port != "p2" || vms[0].Host != "hv2" || !vms[0].Verified.Migration {
		t.Fatalf("vms: %+v", vms)
	}
	// The MAC is live on p2 only: the verifier's table says so.
	if rj := refusal(t, m.a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))); rj == nil {
		t.Fatal("unreachable")
	}
}

// TestMigrationOverlapTimeout: a source that never de-associates (its
// keep-alives flow, its VM manager still reports the VM migrating out)
// loses its pair migration_overlap after the destination's ASSOCIATE, and
// its station is told; the destination keeps its pair.
func TestMigrationOverlapTimeout(t *testing.T) {
	const overlap = 600 * time.Millisecond
	// start precedes the rig's migration (the destination's ASSOCIATE
	// happens inside newMigrationRig), so took is an upper bound of the
	// time since that ASSOCIATE and took < overlap means revoked early.
	start := time.Now()
	m := newMigrationRig(t, func(c *switchconfig.Config) { c.MigrationOverlap = switchconfig.Duration(overlap) })
	r := m.memRig
	waitFor(t, 2*time.Second, "the overlap", func() bool { return overlapping(r.d) })
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatal("source revoked before the bound")
	}
	m.a.waitEvent(vdp.EventBridgeDeassociated, 5*time.Second)
	took := time.Since(start)
	if r.enf.allowed("p1", pairN(1, 100)) || !r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("after the bound: %v", r.enf.callList())
	}
	if took < overlap {
		t.Fatalf("the source was revoked %v after the destination's ASSOCIATE, before migration_overlap (%v)", took, overlap)
	}
	if ps := vmPorts(r.d); len(ps) != 1 || !strings.HasPrefix(ps[0], "p2:") {
		t.Fatalf("vms: %v", ps)
	}
	t.Logf("source revoked %v after the destination's ASSOCIATE (migration_overlap %v)", took.Round(time.Millisecond), overlap)
}

// TestMigrationSourceGone: once the VM manager no longer reports the VM on
// the source (the switchover happened and libvirt dropped the domain
// there), the source's pair goes at the source port's next reconcile,
// before its stopped hook's DE-ASSOCIATE.
func TestMigrationSourceGone(t *testing.T) {
	m := newMigrationRig(t, nil)
	r := m.memRig
	waitFor(t, 2*time.Second, "the overlap", func() bool { return overlapping(r.d) })
	r.vmm.set("hv1", uuidN(1), verify.VMInactive)
	r.vmm.set("hv2", uuidN(1), verify.VMMigratedIn, macN(1))
	m.a.waitEvent(vdp.EventBridgeDeassociated, 3*time.Second)
	if r.enf.allowed("p1", pairN(1, 100)) || !r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("after the source lost the VM: %v", r.enf.callList())
	}
}

// TestMigrationDestinationGone: a migration that fails after the
// destination's ASSOCIATE (the destination de-associates): the source is
// told to associate again, so that its MACs are live in the verifier's
// table again, and is accepted.
func TestMigrationDestinationGone(t *testing.T) {
	m := newMigrationRig(t, nil)
	r := m.memRig
	waitFor(t, 2*time.Second, "the overlap", func() bool { return overlapping(r.d) })
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.vmm.set("hv2", uuidN(1), verify.VMInactive)
	if res := m.b.do(wire.VSIDeAssociate, vsiOf(uuidN(1), macN(1), 100, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	m.a.waitEvent(vdp.EventBridgeDeassociated, 3*time.Second)
	if r.enf.allowed("p2", pairN(1, 100)) {
		t.Fatalf("destination still allowed: %v", r.enf.callList())
	}
	if res := m.a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("the source associating again: %v", res.Err)
	}
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("source not allowed again: %v", r.enf.callList())
	}
}

// TestMigrationNoOverlap: a confirmed migration that is not in progress
// (the destination reports the VM already migrated in, the source running:
// nothing says the guest still runs there as part of a migration), or
// with migration_overlap 0, revokes the source's pair at the
// destination's ASSOCIATE, as before, and the source's station is told.
func TestMigrationNoOverlap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlap time.Duration
		src     verify.VMState
		dst     verify.VMState
	}{
		{"migrated-in", time.Minute, verify.VMRunning, verify.VMMigratedIn},
		{"overlap-0", 0, verify.VMMigratingOut, verify.VMMigratingIn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMemRig(t, "p1", "p2")
			r.cfg.MigrationOverlap = switchconfig.Duration(tc.overlap)
			hv1, hv2 := newHostID(t, "hv1"), newHostID(t, "hv2")
			r.enrol(hv1)
			r.enrol(hv2)
			r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
			r.start(nil)
			a, b := r.station(hv1, "p1"), r.station(hv2, "p2")
			if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
				t.Fatal(res.Err)
			}
			r.vmm.set("hv1", uuidN(1), tc.src, macN(1))
			r.vmm.set("hv2", uuidN(1), tc.dst, macN(1))
			if res := b.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
				t.Fatalf("associate at the destination: %v", res.Err)
			}
			a.waitEvent(vdp.EventBridgeDeassociated, 2*time.Second)
			if r.enf.allowed("p1", pairN(1, 100)) || !r.enf.allowed("p2", pairN(1, 100)) {
				t.Fatalf("after the move: %v", r.enf.callList())
			}
			if ps := vmPorts(r.d); len(ps) != 1 || !strings.HasPrefix(ps[0], "p2:") {
				t.Fatalf("vms: %v", ps)
			}
		})
	}
}

// TestKeepaliveTimeout: a station that stops sending keep-alives loses
// its rule once the bridge's keep-alive timeout passes, and not before.
// The bridge runs with RKA 16 (timeout about 1.4 s) while the station
// keeps memTiming's 164 ms keep-alives: only a stall of more than a second
// of the whole process (not a slow scheduler under -race on a loaded
// machine) can make the keep-alives miss it.
func TestKeepaliveTimeout(t *testing.T) {
	r := newMemRig(t, "p1")
	bridgeTiming := memTiming
	bridgeTiming.RKA = 16
	r.cfg.EVB.RKA = bridgeTiming.RKA
	timeout := bridgeTiming.KeepAliveTimeout()
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	a := r.station(hv1, "p1")
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	// Keep-alives hold it well past the timeout.
	time.Sleep(2 * timeout)
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("rule lost while keep-alives flowed (rejects %+v)", r.d.Rejects())
	}
	a.stopVDP()
	start := time.Now()
	// The wait is generous (a loaded machine delays the timer); the
	// lower bound below is what the timeout promises.
	waitFor(t, 10*timeout, "the pair revoked after the keep-alive timeout", func() bool {
		return !r.enf.allowed("p1", pairN(1, 100))
	})
	took := time.Since(start)
	t.Logf("revoked %v after the keep-alives stopped (timeout %v)", took.Round(time.Millisecond), timeout)
	// The last keep-alive went at most one station period before the
	// stop.
	if early := timeout - memTiming.KeepAlive() - 50*time.Millisecond; took < early {
		t.Errorf("revoked %v after the keep-alives stopped, before the %v timeout", took, timeout)
	}
}

// TestNeighbourLost: the LLDP neighbour going away (shutdown LLDPDU)
// revokes every rule of the port and de-associates the station's VSIs.
func TestNeighbourLost(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.vmm.set("hv1", uuidN(2), verify.VMRunning, macN(2))
	r.start(nil)
	a := r.station(hv1, "p1")
	for _, n := range []int{1, 2} {
		if res := a.do(wire.VSIAssociate, vsiOf(uuidN(n), macN(n), 0, 1)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	a.stopLLDP()
	waitFor(t, 2*time.Second, "both pairs revoked", func() bool {
		return !r.enf.allowed("p1", pairN(1, 100)) && !r.enf.allowed("p1", pairN(2, 100))
	})
	a.waitEvent(vdp.EventBridgeDeassociated, 2*time.Second)
	// And with no neighbour, a new claim is refused.
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	refusal(t, res)
	if _, ok := findReject(r.d, "p1", "no-lldp-neighbour"); !ok {
		t.Fatalf("rejects: %+v", r.d.Rejects())
	}
}

// TestEnforceFailure: when the enforcer fails, the request is refused
// (nothing half-installed, the verifier's claim released).
func TestEnforceFailure(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	a := r.station(hv1, "p1")
	r.enf.setFail(errInjected)
	if re := refusal(t, a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))); re.Code() != wire.VDPInsufficientResources {
		t.Fatalf("answered %v", re)
	}
	if _, ok := findReject(r.d, "p1", reasonEnforceFailed); !ok {
		t.Fatalf("rejects: %+v", r.d.Rejects())
	}
	r.enf.setFail(nil)
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("after the enforcer recovered: %v", res.Err)
	}
}

// TestRestartGrace: after a restart, the rules found in the enforcer are
// kept through the grace period while the stations' keep-alives
// re-associate; then the enforcer is synchronized: what was re-learnt
// stays, what was not goes.
func TestRestartGrace(t *testing.T) {
	r := newMemRig(t, "p1", "p2")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.cfg.RestartGrace = switchconfig.Duration(1500 * time.Millisecond)
	r.start(nil)
	a := r.station(hv1, "p1")
	a.mu.Lock()
	a.reassociate = true
	a.mu.Unlock()
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	// A pair an earlier instance left on p2 that no station will claim.
	stale := pairN(9, 100)
	if err := r.enf.Allow(context.Background(), "p2", stale.MAC[:], stale.VID); err != nil {
		t.Fatal(err)
	}

	r.stop()
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatal("stopping switchd removed a verified rule")
	}
	started := time.Now()
	r.start(nil)
	if r.enf.allowed("p1", pairN(1, 100)) != true || !r.enf.allowed("p2", stale) {
		t.Fatal("a restart removed rules at start")
	}
	// The keep-alives re-associate VM1 within the grace period.
	waitFor(t, 1500*time.Millisecond, "VM1 re-learnt", func() bool { return len(r.d.VMs()) == 1 })
	relearnt := time.Since(started)
	if !r.enf.allowed("p2", stale) {
		t.Fatal("stale pair removed before the end of the grace period")
	}
	select {
	case <-r.d.Synced():
	case <-time.After(5 * time.Second):
		t.Fatal("no synchronization after the grace period")
	}
	if !r.enf.allowed("p1", pairN(1, 100)) || r.enf.allowed("p2", stale) {
		t.Fatalf("after the grace period: %v", r.enf.callList())
	}
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatal("re-learnt pair removed")
	}
	st := r.d.Status(context.Background())
	if !st.Grace.Done || st.Grace.Inherited != 2 || st.Grace.Removed != 1 {
		t.Fatalf("grace: %+v", st.Grace)
	}
	for _, c := range r.enf.callList() {
		if c == "revoke p1 "+pairN(1, 100).String() {
			t.Fatalf("the verified pair was revoked at some point: %v", r.enf.callList())
		}
	}
	t.Logf("VM1 re-learnt %v after the restart", relearnt.Round(time.Millisecond))
}

// TestAPI serves the handler and checks each path, the 404 and the 405.
func TestAPI(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	a := r.station(hv1, "p1")
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	srv := httptest.NewServer(r.d.Handler())
	defer srv.Close()
	get := func(path string, out any) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	var ports []switchapi.Port
	if get(switchapi.PathPorts, &ports) != 200 || len(ports) != 1 {
		t.Fatalf("ports: %+v", ports)
	}
	p := ports[0]
	if !p.Running || p.Neighbor == nil || p.Neighbor.SystemName != "hv1" || !p.Neighbor.Signed ||
		p.Neighbor.KeyID != hv1.key.ID().String() || !p.Neighbor.Tether || !p.EVB.PeerSeen || p.EVB.RKA != memTiming.RKA ||
		p.Associated != 1 || p.Counters == nil || len(p.SChannels) != 1 || p.ECP.RxRequests == 0 {
		t.Fatalf("port: %+v", p)
	}
	var vms []switchapi.VM
	if get(switchapi.PathVMs, &vms) != 200 || len(vms) != 1 {
		t.Fatalf("vms: %+v", vms)
	}
	var rjs []switchapi.Reject
	if get(switchapi.PathRejects, &rjs) != 200 || len(rjs) != 0 {
		t.Fatalf("rejects: %+v", rjs)
	}
	var st switchapi.Status
	if get(switchapi.PathStatus, &st) != 200 || st.Switch != "tor1" || st.KeyID != r.swKey.ID().String() || st.Ports != 1 || st.VMs != 1 {
		t.Fatalf("status: %+v", st)
	}
	if code := get("/v1/nothing", nil); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
	resp, err := http.Post(srv.URL+switchapi.PathVMs, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

// TestRejectsRing keeps the last N refusals, oldest first.
func TestRejectsRing(t *testing.T) {
	rj := newRejects(3)
	for i := 0; i < 5; i++ {
		rj.add(switchapi.Reject{Message: fmt.Sprint(i)})
	}
	got := rj.list()
	if len(got) != 3 || got[0].Message != "2" || got[2].Message != "4" {
		t.Fatalf("%+v", got)
	}
	l := newLatencies(4)
	for _, d := range []time.Duration{4, 1, 3, 2, 100} {
		l.add(d * time.Microsecond)
	}
	if s := l.summary(); s.Count != 4 || s.P50 != 2 || s.Max != 100 {
		t.Fatalf("%+v", s)
	}
}

// TestHostKeyRevoked: reloading the host keys without hv1's ends hv1's
// associations at once; enrolling it again lets it associate again.
func TestHostKeyRevoked(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	a := r.station(hv1, "p1")
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := r.d.SetHostKeys(context.Background(), map[string]ed25519.PublicKey{}); err != nil {
		t.Fatal(err)
	}
	if r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatal("rule kept after the key was revoked")
	}
	a.waitEvent(vdp.EventBridgeDeassociated, 2*time.Second)
	if err := r.d.SetHostKeys(context.Background(), map[string]ed25519.PublicKey{"hv1": hv1.key.Public()}); err != nil {
		t.Fatal(err)
	}
	// hv1's LLDPDUs are accepted again from its next one: restart its
	// agent rather than wait 30 s for it.
	a.restartLLDP()
	waitFor(t, 5*time.Second, "hv1 the neighbour again", func() bool {
		nb, ok := r.d.neighbours.Neighbour("p1")
		return ok && nb.Host == "hv1"
	})
	// The neighbour entry may still be replaced once (the old agent's
	// shutdown against the new agent's first LLDPDU); the refusal for
	// that is not hard, so the station retries, as tetherd's uplink does.
	var lastErr error
	waitFor(t, 5*time.Second, "hv1 associated again", func() bool {
		res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
		lastErr = res.Err
		return res.Err == nil
	})
	_ = lastErr
}
