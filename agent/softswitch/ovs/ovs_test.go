package ovs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/agent/softswitch/ovs/ovsdb"
	"github.com/tether-net/tether/wire"
)

// allowListOff deletes the port's allow-list rules behind tether's back.
func (l *lab) allowListOff(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("ovs-ofctl", "del-flows", "unix:"+l.ovs.Dir+"/"+l.bridge+".mgmt",
		fmt.Sprintf("cookie=%#x/-1", ovs.Cookie(vmPort))).CombinedOutput(); err != nil {
		t.Fatalf("del-flows: %v\n%s", err, out)
	}
}

// tcpdump captures n incoming frames on the uplink's far end while send
// runs and returns tcpdump's dissection (-e -nn).
func (l *lab) tcpdump(t *testing.T, n int, send func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(l.ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.netns, "tcpdump", "-i", upDev, "-e", "-nn", "-l", "-Q", "in", "-c", fmt.Sprint(n))
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	var head string
	for !strings.Contains(head, "listening on") {
		k, err := stderr.Read(buf)
		if err != nil {
			t.Fatalf("tcpdump did not start: %v: %s", err, head)
		}
		head += string(buf[:k])
	}
	go io.Copy(io.Discard, stderr)
	send()
	if err := cmd.Wait(); err != nil {
		t.Errorf("tcpdump: %v", err)
	}
	return stdout.String()
}

// vsctlGet reads a column with ovs-vsctl, the independent judge of what is
// in OVSDB.
func (l *lab) vsctlGet(t *testing.T, table, record, column string) string {
	t.Helper()
	return strings.TrimSpace(l.ovs.Vsctl("get", table, record, column))
}

// flows lists the bridge's rules as ovs-ofctl prints them.
func (l *lab) flows(t *testing.T) string {
	t.Helper()
	cmd := exec.CommandContext(l.ctx, "ovs-ofctl", "--no-stats", "--no-names", "dump-flows", "unix:"+l.ovs.Dir+"/"+l.bridge+".mgmt")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dump-flows: %v\n%s", err, out)
	}
	return string(out)
}

func (l *lab) check(t *testing.T, p softswitch.Port) []softswitch.Difference {
	t.Helper()
	d, err := l.sw.Check(l.ctx, p)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return d
}

func (l *lab) ensure(t *testing.T, p softswitch.Port) {
	t.Helper()
	if err := l.sw.Ensure(l.ctx, p); err != nil {
		t.Fatalf("Ensure(%+v): %v", p, err)
	}
	if d := l.check(t, p); d != nil {
		t.Fatalf("after Ensure, Check = %v", d)
	}
}

// versions returns the _version of the port's Port and Interface rows.
func (l *lab) versions(t *testing.T, name string) string {
	t.Helper()
	res, err := l.sw.DB().Transact(l.ctx, ovs.Database,
		ovsdb.Operation{Op: "select", Table: "Port", Where: []ovsdb.Condition{ovsdb.Eq("name", name)}, Columns: []string{"_version"}},
		ovsdb.Operation{Op: "select", Table: "Interface", Where: []ovsdb.Condition{ovsdb.Eq("name", name)}, Columns: []string{"_version"}},
		ovsdb.Operation{Op: "select", Table: "Bridge", Columns: []string{"_version"}})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(res[0].Rows, res[1].Rows, res[2].Rows)
}

func hasField(d []softswitch.Difference, field string) bool {
	return slices.ContainsFunc(d, func(x softswitch.Difference) bool { return x.Field == field })
}

// TestEnsureReadBackRepair: ensure a port, read it back through OVSDB
// (ours and ovs-vsctl's view), ensure again without a write, repair drift
// an operator made behind tether's back, change the VLAN setting through
// every mode, remove.
func TestEnsureReadBackRepair(t *testing.T) {
	l := newLab(t, "netdev")
	p := softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10, RateKbps: 10000, Priority: 3}
	l.ensure(t, p)

	got, ok, err := l.sw.Observe(l.ctx, vmPort)
	if err != nil || !ok {
		t.Fatalf("Observe: %v, %v", ok, err)
	}
	want := p
	want.Priority = 0 // OVS does not hold the priority
	if d := softswitch.Compare(want, got); d != nil {
		t.Errorf("Observe differs: %v", d)
	}
	for _, c := range [][4]string{
		{"Port", vmPort, "tag", "10"},
		{"Port", vmPort, "vlan_mode", "access"},
		{"Port", vmPort, "external_ids:" + ovs.KeyVIF, `"` + vmMAC.String() + `"`},
		{"Interface", vmPort, "ingress_policing_rate", "10000"},
		{"Interface", vmPort, "ingress_policing_burst", "1000"},
		{"Bridge", l.bridge, "datapath_type", "netdev"},
		{"Open_vSwitch", ".", "other_config:vlan-limit", `"2"`},
	} {
		if g := l.vsctlGet(t, c[0], c[1], c[2]); g != c[3] {
			t.Errorf("ovs-vsctl get %s %s %s = %s, want %s", c[0], c[1], c[2], g, c[3])
		}
	}
	ofport := l.vsctlGet(t, "Interface", vmPort, "ofport")
	flows := l.flows(t)
	for _, f := range []string{
		fmt.Sprintf("priority=200,in_port=%s,dl_src=%s actions=NORMAL", ofport, vmMAC),
		fmt.Sprintf("priority=190,in_port=%s actions=drop", ofport),
	} {
		if !strings.Contains(flows, f) {
			t.Errorf("flows lack %q:\n%s", f, flows)
		}
	}
	if ports, err := l.sw.Ports(l.ctx); err != nil || !slices.Equal(ports, []string{vmPort}) {
		t.Errorf("Ports = %v, %v; want [%s] (the uplink is not a VM port)", ports, err, vmPort)
	}

	// Idempotent: a second Ensure writes nothing.
	before := l.versions(t, vmPort)
	l.ensure(t, p)
	if after := l.versions(t, vmPort); after != before {
		t.Errorf("second Ensure changed rows: %s -> %s", before, after)
	}

	// Drift 1: an operator retags the port.
	l.ovs.Vsctl("set", "Port", vmPort, "tag=20")
	if d := l.check(t, p); !hasField(d, "VID") {
		t.Errorf("after retag, Check = %v, want a VID difference", d)
	}
	l.ensure(t, p)
	if g := l.vsctlGet(t, "Port", vmPort, "tag"); g != "10" {
		t.Errorf("after repair tag = %s, want 10", g)
	}
	// Drift 2: the allow-list rules are flushed (as an ovs-vswitchd
	// restart does).
	l.allowListOff(t)
	if d := l.check(t, p); !hasField(d, "allow-list") {
		t.Errorf("after del-flows, Check = %v, want an allow-list difference", d)
	}
	l.ensure(t, p)
	// Drift 3: the rate and the mark are changed, the port is deleted.
	l.ovs.Vsctl("set", "Interface", vmPort, "ingress_policing_rate=5")
	if d := l.check(t, p); !hasField(d, "RateKbps") {
		t.Errorf("after rate change, Check = %v, want RateKbps", d)
	}
	l.ensure(t, p)
	l.ovs.Vsctl("del-port", l.bridge, vmPort)
	if d := l.check(t, p); !hasField(d, "present") {
		t.Errorf("after del-port, Check = %v, want present", d)
	}
	l.ensure(t, p)

	// Every VLAN mode, and back.
	modes := []struct {
		p                softswitch.Port
		mode, tag, extra string
	}{
		{softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10, Trunks: []uint16{30, 20}}, "native-untagged", "10", "trunks=[20, 30]"},
		{softswitch.Port{Name: vmPort, MAC: vmMAC}, "trunk", "[]", "trunks=[0]"},
		{softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10, STag: 100, Mode: wire.TetherSTagSwitch}, "dot1q-tunnel", "100", "cvlans=[10]"},
		{softswitch.Port{Name: vmPort, MAC: vmMAC, STag: 200, Mode: wire.TetherSTagIOExtender}, "dot1q-tunnel", "200", "cvlans=[]"},
		{p, "access", "10", "trunks=[]"},
	}
	for _, m := range modes {
		l.ensure(t, m.p)
		col, val, _ := strings.Cut(m.extra, "=")
		if g := l.vsctlGet(t, "Port", vmPort, "vlan_mode"); g != m.mode {
			t.Errorf("%+v: vlan_mode %s, want %s", m.p, g, m.mode)
		}
		if g := l.vsctlGet(t, "Port", vmPort, "tag"); g != m.tag {
			t.Errorf("%+v: tag %s, want %s", m.p, g, m.tag)
		}
		if g := l.vsctlGet(t, "Port", vmPort, col); g != val {
			t.Errorf("%+v: %s %s, want %s", m.p, col, g, val)
		}
		wantQ := "[]"
		if m.p.STag != 0 {
			wantQ = `"802.1ad"`
		}
		if g := strings.TrimSpace(l.ovs.Vsctl("--if-exists", "get", "Port", vmPort, "other_config:qinq-ethtype")); g != strings.Trim(wantQ, "[]") {
			t.Errorf("%+v: qinq-ethtype %q, want %s", m.p, g, wantQ)
		}
	}

	// Remove, twice; an operator's own port is refused.
	if err := l.sw.Remove(l.ctx, vmPort); err != nil {
		t.Fatal(err)
	}
	if err := l.sw.Remove(l.ctx, vmPort); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if ports, _ := l.sw.Ports(l.ctx); len(ports) != 0 {
		t.Errorf("after Remove, Ports = %v", ports)
	}
	if f := l.flows(t); strings.Contains(f, "priority=190") || strings.Contains(f, "priority=200") {
		t.Errorf("after Remove, rules left:\n%s", f)
	}
	if d := l.check(t, p); !hasField(d, "present") {
		t.Errorf("after Remove, Check = %v", d)
	}
	l.ovs.Vsctl("add-port", l.bridge, vmPort)
	if err := l.sw.Remove(l.ctx, vmPort); !errors.Is(err, ovs.ErrNotOurs) {
		t.Errorf("Remove of an operator's port = %v, want ErrNotOurs", err)
	}
	// An invalid port is refused before anything changes.
	err = l.sw.Ensure(l.ctx, softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 5000})
	if !errors.Is(err, softswitch.ErrInvalidPort) {
		t.Errorf("Ensure of VID 5000 = %v, want ErrInvalidPort", err)
	}

	// The bridge: tether's goes (with its ports), twice; an operator's
	// bridge is refused.
	if err := l.sw.RemoveBridge(l.ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.sw.RemoveBridge(l.ctx); err != nil {
		t.Errorf("second RemoveBridge: %v", err)
	}
	if brs := l.ovs.Vsctl("list-br"); strings.Contains(brs, l.bridge) {
		t.Errorf("after RemoveBridge, bridges:\n%s", brs)
	}
	if err := l.sw.Remove(l.ctx, vmPort); err != nil {
		t.Errorf("Remove without the bridge: %v", err)
	}
	l.ovs.Vsctl("add-br", "opbr", "--", "set", "Bridge", "opbr", "datapath_type=netdev")
	op, err := ovs.New(l.ctx, ovs.Config{DB: l.ovs.DB, RunDir: l.ovs.Dir, Bridge: "opbr"})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.RemoveBridge(l.ctx); !errors.Is(err, ovs.ErrNotOurs) {
		t.Errorf("RemoveBridge of an operator's bridge = %v, want ErrNotOurs", err)
	}
}

// sendAndCapture sends n frames from each source MAC with tags from the
// VM side and returns what arrives on the uplink's far end.
func (l *lab) sendAndCapture(t *testing.T, n int, srcs []string, tags ...uint16) []parsed {
	t.Helper()
	tx := l.openSock(t, vmDev)
	rx := l.openSock(t, upDev)
	for i := 0; i < n; i++ {
		for j, s := range srcs {
			mac := vmMAC
			if s == "foreign" {
				mac = foreignMAC
			}
			if err := tx.send(testFrame(mac, uint64(i*len(srcs)+j), tags...)); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	got, err := collect(l.ctx, rx, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTrafficAllowListAndTags: through the userspace datapath, the VM's
// frames leave the uplink with the port's VLAN tag; frames with a foreign
// source MAC are dropped at the soft switch; a dot1q-tunnel port puts an
// 0x88a8 S-Tag outside the VM's own 0x8100 C-Tag.
func TestTrafficAllowListAndTags(t *testing.T) {
	l := newLab(t, "netdev")
	runTraffic(t, l)
}

func runTraffic(t *testing.T, l *lab) {
	l.ensure(t, softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10})
	got := l.sendAndCapture(t, 20, []string{"vm", "foreign"})
	var ours int
	for _, p := range got {
		if p.src == foreignMAC.String() {
			t.Errorf("frame %d with foreign source MAC %s crossed the soft switch", p.seq, p.src)
			continue
		}
		ours++
		if !slices.Equal(p.tags, []uint16{tpidCTag, 10}) {
			t.Errorf("frame %d tags %x, want 8100/10", p.seq, p.tags)
		}
	}
	if ours != 20 {
		t.Errorf("%d of 20 frames with the VM's MAC arrived", ours)
	}
	t.Logf("access VID 10: %d frames with the VM's MAC passed tagged 0x8100/10, 0 of 20 foreign", ours)

	// Control: without the allow-list rules the same foreign frames do
	// cross, so the capture above would have seen them.
	l.allowListOff(t)
	got = l.sendAndCapture(t, 5, []string{"foreign"})
	if len(got) != 5 {
		t.Errorf("allow-list off: %d of 5 foreign frames arrived, want all (the capture is blind?)", len(got))
	}
	if d := l.check(t, softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10}); !hasField(d, "allow-list") {
		t.Errorf("allow-list off: Check = %v", d)
	}

	// QinQ: S-Tag 100 in 802.1ad, C-VLAN 10 inside.
	l.ensure(t, softswitch.Port{Name: vmPort, MAC: vmMAC, VID: 10, STag: 100, Mode: wire.TetherSTagSwitch})
	got = l.sendAndCapture(t, 10, []string{"vm", "foreign"}, tpidCTag, 10)
	ours = 0
	for _, p := range got {
		if p.src == foreignMAC.String() {
			t.Errorf("QinQ: frame %d with foreign source MAC crossed", p.seq)
			continue
		}
		ours++
		if !slices.Equal(p.tags, []uint16{tpidSTag, 100, tpidCTag, 10}) {
			t.Errorf("QinQ: frame %d tags %x, want 88a8/100 8100/10", p.seq, p.tags)
		}
	}
	if ours != 10 {
		t.Errorf("QinQ: %d of 10 C-tagged frames arrived", ours)
	}
	// The C-VLAN filter: a C-Tag other than the port's is not carried.
	got = l.sendAndCapture(t, 5, []string{"vm"}, tpidCTag, 11)
	if len(got) != 0 {
		t.Errorf("QinQ: %d frames of C-VLAN 11 crossed a port of C-VLAN 10", len(got))
	}
	// An independent judge: tcpdump on the uplink's far end dissects the
	// same headers (host only: the kernel VM has no tcpdump).
	if l.netns != "" {
		if _, err := exec.LookPath("tcpdump"); err == nil {
			out := l.tcpdump(t, 3, func() { l.sendAndCapture(t, 3, []string{"vm"}, tpidCTag, 10) })
			for _, want := range []string{"ethertype 802.1Q-QinQ (0x88a8), length 64: vlan 100, p 0, ethertype 802.1Q (0x8100), vlan 10, p 0, ethertype Unknown (0x88b5)"} {
				if !strings.Contains(out, want) {
					t.Errorf("tcpdump on %s lacks %q:\n%q", upDev, want, out)
				}
			}
		}
	}
	// Untagged frames of a port with a C-VID are not the VM's VLAN either.
	if got := l.sendAndCapture(t, 5, []string{"vm"}); len(got) != 0 {
		t.Errorf("QinQ: %d untagged frames crossed a port of C-VLAN 10", len(got))
	}
	t.Logf("dot1q-tunnel S-Tag 100: %d C-tagged frames left as 88a8/100 + 8100/10 on the wire", ours)

	// Without a C-VID, untagged frames get the S-Tag only.
	l.ensure(t, softswitch.Port{Name: vmPort, MAC: vmMAC, STag: 200, Mode: wire.TetherSTagIOExtender})
	got = l.sendAndCapture(t, 5, []string{"vm", "foreign"})
	if len(got) != 5 {
		t.Errorf("QinQ untagged: %d of 5 frames arrived, want the VM's 5", len(got))
	}
	for _, p := range got {
		if p.src != vmMAC.String() || !slices.Equal(p.tags, []uint16{tpidSTag, 200}) {
			t.Errorf("QinQ untagged: frame %d from %s tags %x, want the VM's with 88a8/200", p.seq, p.src, p.tags)
		}
	}
}
