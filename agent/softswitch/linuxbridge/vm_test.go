package linuxbridge

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/tests/kvm/kvmtest"
	"github.com/tether-net/tether/wire"
)

// TestInKernelVM runs this package's TestVM* tests in the kernel VM
// (vlan_filtering, 802.1ad bridges, tc police: this machine's kernel has
// none of them).
func TestInKernelVM(t *testing.T) {
	out := kvmtest.RunInVM(t, "^TestVM", kvmtest.Options{MemoryMB: 512})
	for _, name := range []string{"TestVMEnsure8021Q", "TestVMEnsure8021ad", "TestVMDriftRepair", "TestVMRate", "TestVMRemove", "TestVMAllowListFPS", "TestVMPorts"} {
		if !strings.Contains(out, "--- PASS: "+name) {
			t.Errorf("%s did not pass in the kernel VM", name)
		}
	}
}

// vmLab is a vlan_filtering bridge managed by a Switch, its uplink up (the
// edge's side upw is captured) and VM ports vN (sent into from vNp).
type vmLab struct {
	*lab
	opts    Options
	sw      *Switch
	up, upw string
}

func newVMLab(t *testing.T, stag bool, nports int) *vmLab {
	t.Helper()
	kvmtest.RequireVM(t)
	l := newLab(t)
	v := &vmLab{lab: l, up: l.name("up"), upw: l.name("upw")}
	l.veth(t, v.up, v.upw)
	for i := 1; i <= nports; i++ {
		l.veth(t, v.port(i), v.peer(i))
	}
	v.opts = Options{Bridge: l.name("br"), Uplink: v.up, STag: stag, Logger: testLogger(t)}
	sw, err := New(l.ctx, v.opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	v.sw = sw
	t.Cleanup(func() {
		_ = sw.allow.deleteTable(l.ctx)
		if lk, err := l.h.LinkByName(v.opts.Bridge); err == nil {
			_ = l.h.LinkDel(lk)
		}
		sw.Close()
	})
	return v
}

func (v *vmLab) port(i int) string { return v.name(fmt.Sprintf("v%d", i)) }
func (v *vmLab) peer(i int) string { return v.name(fmt.Sprintf("v%dp", i)) }

func (v *vmLab) ensure(t *testing.T, p softswitch.Port) {
	t.Helper()
	d, err := v.sw.EnsurePort(v.ctx, p)
	if err != nil {
		t.Fatalf("EnsurePort %s: %v", p.Name, err)
	}
	if len(d) == 0 {
		t.Errorf("EnsurePort %s on a fresh port repaired nothing", p.Name)
	}
	if d, err := v.sw.EnsurePort(v.ctx, p); err != nil || d != nil {
		t.Errorf("second EnsurePort %s: %v, %v; want no change", p.Name, d, err)
	}
	if d, err := v.sw.Check(v.ctx, p); err != nil || d != nil {
		t.Errorf("Check %s after Ensure: %v, %v; want consistent", p.Name, d, err)
	}
}

// vlans returns ifname's bridge VLANs as `bridge vlan show` renders them.
func (v *vmLab) vlans(t *testing.T, ifname string) string {
	t.Helper()
	lk, err := v.h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	all, err := v.h.BridgeVlanList()
	if err != nil {
		t.Fatal(err)
	}
	return observedVLANs(all[int32(lk.Attrs().Index)]).String()
}

func (v *vmLab) waitAllUp(t *testing.T, n int) {
	t.Helper()
	v.waitUp(t, v.up)
	v.waitUp(t, v.upw)
	for i := 1; i <= n; i++ {
		v.waitUp(t, v.port(i))
		v.waitUp(t, v.peer(i))
	}
}

func tagsString(p parsed) string {
	var s []string
	for _, tg := range p.tags {
		s = append(s, fmt.Sprintf("%#04x/%d", tg[0], tg[1]))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// expectFrames checks which ids arrived and with which tags.
func expectFrames(t *testing.T, where string, got map[uint32]parsed, want map[uint32]string, absent ...uint32) {
	t.Helper()
	for id, tags := range want {
		p, ok := got[id]
		if !ok {
			t.Errorf("%s: frame %d missing", where, id)
			continue
		}
		if s := tagsString(p); s != tags {
			t.Errorf("%s: frame %d carries tags %s, want %s", where, id, s, tags)
		}
	}
	for _, id := range absent {
		if _, ok := got[id]; ok {
			t.Errorf("%s: frame %d arrived, want dropped", where, id)
		}
	}
}

func TestVMEnsure8021Q(t *testing.T) {
	v := newVMLab(t, false, 3)
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100, Trunks: []uint16{200}}
	p2 := softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 100}
	p3 := softswitch.Port{Name: v.port(3), MAC: mac(3)} // untagged
	for _, p := range []softswitch.Port{p1, p2, p3} {
		v.ensure(t, p)
	}
	bi := v.bridgeInfo(t)
	if !bi.vlanFiltering || bi.vlanProtocol != tpidCTag {
		t.Errorf("bridge: vlan_filtering %v vlan_protocol %#04x, want on and 0x8100", bi.vlanFiltering, bi.vlanProtocol)
	}
	for ifname, want := range map[string]string{
		p1.Name: "100 pvid untagged, 200",
		p2.Name: "100 pvid untagged",
		p3.Name: "1 pvid untagged",
		v.up:    "1 pvid untagged, 100, 200",
	} {
		if got := v.vlans(t, ifname); got != want {
			t.Errorf("bridge vlan show dev %s: %s, want %s", ifname, got, want)
		}
	}
	v.waitAllUp(t, 3)
	tx := v.rawSocket(t, v.peer(1))
	rxUp, rx2, rx3 := v.rawSocket(t, v.upw), v.rawSocket(t, v.peer(2)), v.rawSocket(t, v.peer(3))
	spoof := mac(9)
	for id := uint32(1); id <= 3; id++ {
		mustSend(t, tx, testFrame(bcast, p1.MAC, id))
		mustSend(t, tx, testFrame(bcast, spoof, 10+id))
	}
	mustSend(t, tx, testFrame(bcast, p1.MAC, 21, tpidCTag, 200)) // on the trunk
	mustSend(t, tx, testFrame(bcast, spoof, 22, tpidCTag, 200))
	expectFrames(t, "uplink", rxUp.collect(time.Second),
		map[uint32]string{1: "[0x8100/100]", 2: "[0x8100/100]", 3: "[0x8100/100]", 21: "[0x8100/200]"}, 11, 12, 13, 22)
	expectFrames(t, "port 2 (VLAN 100)", rx2.collect(200*time.Millisecond),
		map[uint32]string{1: "[]", 2: "[]", 3: "[]"}, 11, 12, 13, 21, 22)
	expectFrames(t, "port 3 (untagged VLAN 1)", rx3.collect(200*time.Millisecond), nil, 1, 2, 3, 11, 12, 13, 21, 22)
	pc, err := v.sw.Counters(v.ctx, p1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Dropped.Packets != 4 || pc.Accepted.Packets != 4 {
		t.Errorf("counters of %s: accepted %d dropped %d, want 4 and 4", p1.Name, pc.Accepted.Packets, pc.Dropped.Packets)
	}
	// From the edge: VID 100 reaches ports 1 and 2 untagged, untagged
	// frames reach port 3 alone.
	mustSend(t, rxUp, testFrame(bcast, mac(50), 31, tpidCTag, 100))
	mustSend(t, rxUp, testFrame(bcast, mac(50), 32))
	expectFrames(t, "port 1 from the edge", tx.collect(300*time.Millisecond), map[uint32]string{31: "[]"}, 32)
	expectFrames(t, "port 2 from the edge", rx2.collect(100*time.Millisecond), map[uint32]string{31: "[]"}, 32)
	expectFrames(t, "port 3 from the edge", rx3.collect(100*time.Millisecond), map[uint32]string{32: "[]"}, 31)
}

func mustSend(t *testing.T, s *rawSock, frame []byte) {
	t.Helper()
	if err := s.send(frame); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func (v *vmLab) bridgeInfo(t *testing.T) bridgeInfo {
	t.Helper()
	lk, err := v.h.LinkByName(v.opts.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := readBridgeInfo(v.ctx, 0, lk.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	return bi
}

func TestVMEnsure8021ad(t *testing.T) {
	v := newVMLab(t, true, 2)
	prof := wire.TetherProfile{VID: 100, Mode: wire.TetherSTagSwitch, Name: "qinq"}
	p1, err := softswitch.FromProfile(prof, v.port(1), mac(1), 2001)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := softswitch.FromProfile(wire.TetherProfile{Mode: wire.TetherSTagIOExtender, Name: "x"}, v.port(2), mac(2), 2002)
	if err != nil {
		t.Fatal(err)
	}
	v.ensure(t, p1)
	v.ensure(t, p2)
	if bi := v.bridgeInfo(t); !bi.vlanFiltering || bi.vlanProtocol != tpidSTag {
		t.Errorf("bridge: vlan_filtering %v vlan_protocol %#04x, want on and 0x88a8", bi.vlanFiltering, bi.vlanProtocol)
	}
	if got := v.vlans(t, v.up); got != "2001, 2002" {
		t.Errorf("uplink VLANs %s, want 2001, 2002 tagged", got)
	}
	// An 802.1Q port has no place on an 802.1ad bridge.
	_, err = v.sw.EnsurePort(v.ctx, softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 5})
	want := fmt.Sprintf("linuxbridge: invalid port: %s has no S-Tag but bridge %s is an 802.1ad bridge", v.port(2), v.opts.Bridge)
	if err == nil || err.Error() != want {
		t.Errorf("EnsurePort without S-Tag: %v, want %q", err, want)
	}

	v.waitAllUp(t, 2)
	tx, rxUp, rx2 := v.rawSocket(t, v.peer(1)), v.rawSocket(t, v.upw), v.rawSocket(t, v.peer(2))
	mustSend(t, tx, testFrame(bcast, p1.MAC, 1, tpidCTag, 100)) // the VM's C-VLAN 100
	mustSend(t, tx, testFrame(bcast, p1.MAC, 2))                // untagged
	mustSend(t, tx, testFrame(bcast, mac(9), 3, tpidCTag, 100)) // spoofed
	expectFrames(t, "uplink", rxUp.collect(time.Second),
		map[uint32]string{1: "[0x88a8/2001 0x8100/100]", 2: "[0x88a8/2001]"}, 3)
	// Another S-VLAN: port 2 sees nothing.
	expectFrames(t, "port 2 (S-VLAN 2002)", rx2.collect(100*time.Millisecond), nil, 1, 2, 3)
	// From the edge, S-Tag 2002 is popped toward port 2, the C-Tag stays.
	mustSend(t, rxUp, testFrame(bcast, mac(50), 11, tpidSTag, 2002, tpidCTag, 7))
	expectFrames(t, "port 2 from the edge", rx2.collect(300*time.Millisecond), map[uint32]string{11: "[0x8100/7]"})
	expectFrames(t, "port 1 from the edge", tx.collect(100*time.Millisecond), nil, 11)
	if pc, err := v.sw.Counters(v.ctx, p1.Name); err != nil || pc.Dropped.Packets != 1 {
		t.Errorf("counters of %s: %+v, %v; want 1 dropped", p1.Name, pc, err)
	}
}

func diffFields(d []softswitch.Difference) []string {
	var f []string
	for _, x := range d {
		f = append(f, x.Field)
	}
	slices.Sort(f)
	return slices.Compact(f)
}

func TestVMDriftRepair(t *testing.T) {
	v := newVMLab(t, false, 3)
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100, Trunks: []uint16{200}, RateKbps: 5000}
	v.ensure(t, p1)
	l1, err := v.h.LinkByName(p1.Name)
	if err != nil {
		t.Fatal(err)
	}
	br, err := v.h.LinkByName(v.opts.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	// An operator changes everything at once.
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("tamper %s: %v", what, err)
		}
	}
	must("vlan add 300", v.h.BridgeVlanAdd(l1, 300, true, true, false, false)) // PVID moves to 300
	must("vlan del 200", v.h.BridgeVlanDel(l1, 200, false, false, false, false))
	must("rate", delRateFilters(v.h, l1))
	must("allow-list", v.sw.allow.do(v.ctx, "tamper", func(c *nftables.Conn) error {
		c.FlushSet(v.sw.allow.allowSet(p1.Name))
		if err := c.SetAddElements(v.sw.allow.allowSet(p1.Name), []nftables.SetElement{{Key: mac(9)}}); err != nil {
			return err
		}
		return c.Flush()
	}))
	must("vlan_protocol", setBridgeVLANProtocol(v.ctx, 0, br.Attrs().Index, tpidSTag))
	d, err := v.sw.Check(v.ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := diffFields(d), []string{"MAC", "RateKbps", "Trunks", "VID", "allow-list", "bridge", "bridge vlans"}; !slices.Equal(got, want) {
		t.Errorf("Check after tampering: fields %q, want %q\n%v", got, want, d)
	}
	if fixed, err := v.sw.EnsurePort(v.ctx, p1); err != nil || len(fixed) != len(d) {
		t.Errorf("EnsurePort: %d repaired, %v; want the %d differences", len(fixed), err, len(d))
	}
	if d, err := v.sw.Check(v.ctx, p1); err != nil || d != nil {
		t.Errorf("Check after repair: %v, %v", d, err)
	}
	if got := v.vlans(t, p1.Name); got != "100 pvid untagged, 200" {
		t.Errorf("VLANs after repair: %s", got)
	}

	// The port is taken off the bridge.
	must("nomaster", v.h.LinkSetNoMaster(l1))
	d, _ = v.sw.Check(v.ctx, p1)
	if got := diffFields(d); !slices.Contains(got, "master") {
		t.Errorf("Check after nomaster: %v, want a master difference", d)
	}
	if _, err := v.sw.EnsurePort(v.ctx, p1); err != nil {
		t.Fatal(err)
	}
	if d, err := v.sw.Check(v.ctx, p1); err != nil || d != nil {
		t.Errorf("Check after re-enslaving: %v, %v", d, err)
	}

	// The bridge itself is deleted: Ensure builds it again.
	must("delete bridge", v.h.LinkDel(br))
	d, _ = v.sw.Check(v.ctx, p1)
	if got := diffFields(d); !slices.Contains(got, "bridge") || !slices.Contains(got, "master") {
		t.Errorf("Check without the bridge: %v, want bridge and master differences", d)
	}
	if _, err := v.sw.EnsurePort(v.ctx, p1); err != nil {
		t.Fatal(err)
	}
	if d, err := v.sw.Check(v.ctx, p1); err != nil || d != nil {
		t.Errorf("Check after rebuilding the bridge: %v, %v", d, err)
	}
	if bi := v.bridgeInfo(t); !bi.vlanFiltering || bi.vlanProtocol != tpidCTag {
		t.Errorf("rebuilt bridge: %+v", bi)
	}

	// Restart: a new Switch on the same bridge reads everything back.
	// p1 is consistent; v2, left by the old instance, is not desired; v3's
	// VM is gone with its interface, its allow-list objects are left.
	p2 := softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 400}
	p3 := softswitch.Port{Name: v.port(3), MAC: mac(3), VID: 500}
	v.ensure(t, p2)
	v.ensure(t, p3)
	if got := v.vlans(t, v.up); got != "100, 200, 400, 500" {
		t.Errorf("uplink before restart: %s", got)
	}
	l3, err := v.h.LinkByName(p3.Name)
	if err != nil {
		t.Fatal(err)
	}
	must("delete v3", v.h.LinkDel(l3))
	v.sw.Close()
	sw2, err := New(v.ctx, v.opts)
	if err != nil {
		t.Fatal(err)
	}
	v.sw = sw2
	rep, err := sw2.Sync(v.ctx, []softswitch.Port{p1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Repaired) != 0 || !slices.Equal(rep.Removed, []string{p2.Name, p3.Name}) {
		t.Errorf("Sync: repaired %v removed %v; want nothing repaired, %s and %s removed", rep.Repaired, rep.Removed, p2.Name, p3.Name)
	}
	if got := v.vlans(t, v.up); got != "100, 200" {
		t.Errorf("uplink after Sync: %s, want 400 and 500 pruned", got)
	}
	if ports, err := sw2.allow.managedPorts(v.ctx); err != nil || !slices.Equal(ports, []string{p1.Name}) {
		t.Errorf("allow-list ports after Sync: %q, %v; want [%s]", ports, err, p1.Name)
	}
	if l2, _ := v.h.LinkByName(p2.Name); l2 == nil || l2.Attrs().MasterIndex != 0 {
		t.Errorf("%s still on a bridge after Sync", p2.Name)
	}
}

func TestVMRate(t *testing.T) {
	v := newVMLab(t, false, 1)
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100, RateKbps: 2000}
	v.ensure(t, p1)
	l1, err := v.h.LinkByName(p1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if rate, probs, err := readRate(v.h, l1); err != nil || rate != 2000 || probs != nil {
		t.Errorf("readRate: %d %q %v, want 2000 kbit/s", rate, probs, err)
	}
	v.waitAllUp(t, 1)
	tx := v.rawSocket(t, v.peer(1))
	// burst returns the frames sent and passed, the sending time, and the
	// time until the counter was read: every frame was policed within it
	// (a veth queues to the backlog, so policing can lag the send).
	burst := func() (sent, got uint64, el, window time.Duration) {
		before := v.rxPackets(t, v.upw)
		frame := make([]byte, 1000)
		copy(frame, testFrame(bcast, p1.MAC, 1))
		start := time.Now()
		for i := 0; i < 3000; i++ {
			if tx.send(frame) == nil {
				sent++
			}
		}
		el = time.Since(start)
		time.Sleep(50 * time.Millisecond)
		got = v.rxPackets(t, v.upw) - before
		return sent, got, el, time.Since(start)
	}
	sentL, gotL, elL, winL := burst()
	// Unlimited.
	p1.RateKbps = 0
	v.ensure(t, p1)
	if rate, _, _ := readRate(v.h, l1); rate != 0 {
		t.Errorf("rate after removing the limit: %d", rate)
	}
	sentU, gotU, elU, _ := burst()
	t.Logf("FIGURE police 2000 kbit/s: %d of %d 1000-byte frames passed in %v (%.0f kbit/s offered); unlimited: %d of %d in %v",
		gotL, sentL, elL, float64(sentL)*8000/elL.Seconds()/1000, gotU, sentU, elU)
	// 2 Mbit/s (250 1000-byte frames/s) over the window plus the 16 KiB
	// bucket (17 frames), and a little slack.
	if limit := uint64(winL.Seconds()*250) + 17 + 10; gotL > limit {
		t.Errorf("limited: %d frames passed, at most %d fit 2 Mbit/s for %v plus the bucket", gotL, limit, winL)
	}
	if gotU <= 2*gotL {
		t.Errorf("unlimited passed %d frames, limited %d: the police action did not limit", gotU, gotL)
	}
}

func TestVMRemove(t *testing.T) {
	v := newVMLab(t, false, 2)
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100, RateKbps: 1000}
	p2 := softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 200}
	v.ensure(t, p1)
	v.ensure(t, p2)
	if err := v.sw.Remove(v.ctx, p1.Name); err != nil {
		t.Fatal(err)
	}
	if err := v.sw.Remove(v.ctx, p1.Name); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := v.sw.Remove(v.ctx, v.name("gone")); err != nil {
		t.Errorf("Remove of a missing interface: %v", err)
	}
	l1, err := v.h.LinkByName(p1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if l1.Attrs().MasterIndex != 0 {
		t.Errorf("%s still enslaved", p1.Name)
	}
	if rate, _, _ := readRate(v.h, l1); rate != 0 {
		t.Errorf("police filter left: %d kbit/s", rate)
	}
	if st, err := v.sw.allow.check(v.ctx, p1.Name, nil); err != nil || st.problems != nil || st.managed {
		t.Errorf("allow-list after Remove: %+v %v", st, err)
	}
	if ports, _ := v.sw.allow.managedPorts(v.ctx); !slices.Equal(ports, []string{p2.Name}) {
		t.Errorf("managed ports %q, want [%s]", ports, p2.Name)
	}
	if got := v.vlans(t, v.up); got != "200" {
		t.Errorf("uplink after Remove: %s, want 200", got)
	}
	d, err := v.sw.Check(v.ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	if got := diffFields(d); !slices.Contains(got, "master") || !slices.Contains(got, "allow-list") {
		t.Errorf("Check of a removed port: %v", d)
	}
	if d, err := v.sw.Check(v.ctx, p2); err != nil || d != nil {
		t.Errorf("Check of the other port: %v, %v", d, err)
	}
	// Ensuring a port whose interface does not exist fails and says so.
	_, err = v.sw.EnsurePort(v.ctx, softswitch.Port{Name: v.name("gone"), MAC: mac(3), VID: 5})
	if err == nil || !strings.Contains(err.Error(), "Link not found") {
		t.Errorf("EnsurePort of a missing interface: %v", err)
	}
}

// TestVMAllowListFPS is the figure in the kernel VM: frames per second
// through the vlan_filtering bridge (VLAN 100, port 1 to port 2) with the
// MAC allow-list on versus off.
func TestVMAllowListFPS(t *testing.T) {
	v := newVMLab(t, false, 2)
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100}
	p2 := softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 100}
	v.ensure(t, p1)
	v.ensure(t, p2)
	v.waitAllUp(t, 2)
	al := &allowLab{lab: v.lab, p1: p1.Name, p1v: v.peer(1), p2: p2.Name, p2v: v.peer(2)}
	al.tx = v.rawSocket(t, al.p1v)
	measureFPS(t, al, v.sw.allow, 6, 250*time.Millisecond)
	// The last round left the allow-list on: the port is consistent.
	if d, err := v.sw.Check(v.ctx, p1); err != nil || d != nil {
		t.Errorf("Check after the measurement: %v, %v", d, err)
	}
}
