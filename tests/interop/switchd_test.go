package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/internal/netnstest"
)

// lldpadHost is the host name lldpad advertises (System Name TLV) in the
// switchd tests: the VM manager's name for the host.
const lldpadHost = "lldpadhv1"

// swLab is a switch namespace with a Linux bridge br0 (STP on, so frames
// to 01:80:c2:00:00:00 stay with the bridge) and one port swL, a veth pair
// to eth0 in the host namespace H.
type swLab struct {
	SW, H *netnstest.NS
	dir   string
}

func newSwLab(t *testing.T) *swLab {
	t.Helper()
	l := &swLab{SW: netnstest.New(t), H: netnstest.New(t), dir: t.TempDir()}
	netnstest.DisableIPv6(t, l.SW)
	netnstest.DisableIPv6(t, l.H)
	netnstest.Run(t, "ip", "link", "add", "swL", "netns", l.SW.Name, "type", "veth", "peer", "name", "eth0", "netns", l.H.Name)
	netnstest.Run(t, "ip", "-n", l.H.Name, "link", "set", "eth0", "up")
	netnstest.Run(t, "ip", "-n", l.SW.Name, "link", "add", "br0", "type", "bridge", "stp_state", "1", "forward_delay", "200")
	netnstest.Run(t, "ip", "-n", l.SW.Name, "link", "set", "swL", "master", "br0")
	netnstest.Run(t, "ip", "-n", l.SW.Name, "link", "set", "swL", "up")
	netnstest.Run(t, "ip", "-n", l.SW.Name, "link", "set", "br0", "up")
	l.SW.WaitUp(t, "swL")
	l.H.WaitUp(t, "eth0")
	return l
}

// writeNode writes a libvirt test driver node file (test:///PATH) where
// every domain runs, each with one interface of MAC macs[i].
func writeNode(t *testing.T, path string, names, uuids []string, macs [][6]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<node>\n")
	for i := range names {
		fmt.Fprintf(&b, "<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type></os><devices>\n"+
			"<interface type='network'><mac address='%s'/><source network='default'/></interface>\n</devices></domain>\n",
			names[i], uuids[i], macString(macs[i]))
	}
	b.WriteString("</node>\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// config is tether-switchd's configuration for the lab: br0's port swL,
// no host key enrolled, the VM manager of lldpadHost a test driver node
// file, lldpad's EVB timers, a default profile with VID testVID.
func (l *swLab) config(t *testing.T, requireSigned bool, tag string) switchconfig.Config {
	t.Helper()
	cfg := switchconfig.Default()
	cfg.Name = "tor-interop"
	cfg.Ports = switchconfig.Ports{Names: []string{"swL"}}
	cfg.KeyFile = filepath.Join(l.dir, "switch.key")
	cfg.HostKeys = switchconfig.HostKeys{Inline: map[string]string{}}
	cfg.VMManagers = map[string]string{lldpadHost: "test://" + filepath.Join(l.dir, "node.xml")}
	cfg.RequireSigned = requireSigned
	cfg.EVB = switchconfig.EVB{R: evbConfig.R, RTE: evbConfig.RTE, RWD: evbConfig.RWD, RKA: evbConfig.RKA, ReflectiveRelay: true}
	cfg.Profiles = map[string]switchconfig.Profile{"default": {Name: "tenant-interop", VID: testVID, Mode: "switch"}}
	cfg.Socket = filepath.Join(l.dir, "switchd-"+tag+".sock")
	cfg.SocketGroup = ""
	cfg.StateDir = filepath.Join(l.dir, "state")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runSwitchd runs tether-switchd (RunConfig, the code of the binary: real
// nftables in the switch namespace, AF_PACKET taps on the bridge port, the
// libvirt VM manager) until stop, which also runs when the test ends.
func (l *swLab) runSwitchd(t *testing.T, cfg switchconfig.Config) (d *switchd.Daemon, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *switchd.Daemon, 1)
	done := make(chan error, 1)
	go func() {
		done <- switchd.RunConfig(ctx, cfg, switchd.RunOptions{Version: "interop-test", Logger: quiet(),
			NetNS: filepath.Join("/run/netns", l.SW.Name), Started: func(d *switchd.Daemon) { started <- d }})
	}()
	select {
	case d = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("tether-switchd: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("tether-switchd did not start within 15s")
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tether-switchd: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("tether-switchd did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	return d, stop
}

// observed reads the switch's nftables table from the kernel.
func (l *swLab) observed(t *testing.T, table string) enforce.State {
	t.Helper()
	f, err := os.Open(filepath.Join("/run/netns", l.SW.Name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enf, err := enforce.New(context.Background(), enforce.Options{Table: table, NetNS: int(f.Fd()), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer enf.Close()
	st, err := enf.Observed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestLLDPADStationAgainstSwitchd: lldpad as the EVB/VDP station against
// the whole tether-switchd (RunConfig: a Linux bridge in a switch
// namespace, real nftables, AF_PACKET taps, libvirt's test driver as the
// VM manager) in interop mode (require_signed: false). lldpad runs in a UTS
// namespace as host lldpadhv1 and advertises that System Name. Asserts:
// switchd sees the unsigned neighbour lldpadhv1 and negotiates EVB with it;
// vdptool's ASSOCIATE of a VM the VM manager runs on lldpadhv1 with that
// MAC gets success (lldpad prints the response with the profile's VID),
// the kernel's table allows (MAC, VID) on swL, GET /v1/switch/vms lists
// the VM on swL, host lldpadhv1, no key, "running on lldpadhv1"; an
// ASSOCIATE of a VM the VM manager does not know there is refused
// (vm-manager-denies in GET /v1/switch/rejects) and installs nothing;
// DE-ASSOCIATE removes the rule. Then tether-switchd with require_signed:
// true: the same ASSOCIATE is refused (unsigned-refused in the rejects),
// no rule, no VM.
func TestLLDPADStationAgainstSwitchd(t *testing.T) {
	requireLLDPAD(t)
	if _, err := os.Stat("/usr/bin/unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	l := newSwLab(t)
	vmUUID, otherUUID := vsiUUID(5, 1), vsiUUID(5, 2)
	vmMAC, otherMAC := vsiMAC(501), vsiMAC(502)
	// The VM manager: VM 1 runs on lldpadhv1 with vmMAC. VM 2 is not
	// there at all.
	writeNode(t, filepath.Join(l.dir, "node.xml"), []string{"vm1"}, []string{uuidString(vmUUID)}, [][6]byte{vmMAC})

	cfg := l.config(t, false, "interop")
	d, stop := l.runSwitchd(t, cfg)
	client := &switchapi.Client{Socket: cfg.Socket}

	sta := startLLDPADWith(t, l.H, "eth0", "station", true, lldpadHost)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "switchd sees lldpad's unsigned LLDP neighbour "+lldpadHost+" with its EVB TLV", func() bool {
		ps, err := client.Ports(ctx)
		return err == nil && len(ps) == 1 && ps[0].Neighbor != nil && ps[0].Neighbor.SystemName == lldpadHost && ps[0].EVB.PeerSeen
	})
	ps, _ := client.Ports(ctx)
	if ps[0].Neighbor.Signed || ps[0].Neighbor.Tether {
		t.Fatalf("lldpad's neighbour entry: %+v, want unsigned and not tether-capable", *ps[0].Neighbor)
	}
	seen := sta.waitPeerEVB(t, "bridge", 15*time.Second)
	sta.waitVDP(t, 15*time.Second)
	t.Logf("lldpad sees switchd's EVB TLV:\n%s", seen)

	// ASSOCIATE of VM 1: verified (VM manager), rule, answer.
	uuid := uuidString(vmUUID)
	var out string
	waitFor(t, 20*time.Second, "lldpad accepts the ASSOCIATE command (VDP up)", func() bool {
		var err error
		out, err = sta.associate(mgrName, typeID, uuid, testVID, vmMAC)
		if err != nil && !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("vdptool associate: %v", err)
		}
		return err == nil
	})
	t.Logf("vdptool -T -W assoc:\n%s", out)
	pair := enforce.Pair{MAC: vmMAC, VID: testVID}
	waitFor(t, 15*time.Second, "VM 1 verified in GET /v1/switch/vms", func() bool {
		vms, err := client.VMs(ctx)
		return err == nil && len(vms) == 1
	})
	vms, _ := client.VMs(ctx)
	v := vms[0]
	if v.Port != "swL" || v.VM != uuid || v.MAC != macString(vmMAC) || v.VID != testVID || v.Host != lldpadHost ||
		v.State != "associated" || v.Profile != "default" || v.Verified.KeyID != "" || !strings.HasPrefix(v.Verified.VMManager, "running on "+lldpadHost) {
		t.Fatalf("GET /v1/switch/vms: %+v", v)
	}
	if st := l.observed(t, cfg.NFTTable); !slices.Contains(st["swL"].Allowed, pair) {
		t.Fatalf("the kernel's table does not allow %v on swL: %+v", pair, st["swL"])
	}
	q, err := sta.tool("vdptool", "-i", "eth0", "-t", "-V", "assoc", "-c", "uuid="+uuid)
	if err != nil || !strings.Contains(q, "mode = assoc") || !strings.Contains(strings.ToLower(q), fmt.Sprintf("filter = %d-%s", testVID, macString(vmMAC))) {
		t.Errorf("lldpad does not hold VM 1 as associated with VID %d: %v\n%s", testVID, err, q)
	}
	t.Logf("GET /v1/switch/vms: %+v", v)

	// ASSOCIATE of VM 2, unknown to the VM manager on lldpadhv1: refused.
	other := uuidString(otherUUID)
	if out, err := sta.associate(mgrName, typeID, other, testVID, otherMAC, false); err != nil {
		t.Fatalf("vdptool associate VM 2: %v\n%s", err, out)
	}
	waitFor(t, 15*time.Second, "VM 2's refusal in GET /v1/switch/rejects", func() bool {
		rjs, err := client.Rejects(ctx)
		return err == nil && slices.ContainsFunc(rjs, func(r switchapi.Reject) bool {
			return r.VM == other && r.Reason == "vm-manager-denies" && r.Port == "swL" && r.Host == lldpadHost
		})
	})
	if st := l.observed(t, cfg.NFTTable); slices.Contains(st["swL"].Allowed, enforce.Pair{MAC: otherMAC, VID: testVID}) ||
		slices.Contains(st["swL"].Pending, enforce.Pair{MAC: otherMAC, VID: testVID}) {
		t.Fatal("VM 2's refused ASSOCIATE installed a rule")
	}
	if st := d.Status(ctx); st.Refused["vm-manager-denies"] == 0 || st.Accepted == 0 {
		t.Errorf("switchd status: %+v", st)
	}

	// DE-ASSOCIATE: the rule goes.
	if out, err := sta.deassociate(mgrName, typeID, uuid, testVID, vmMAC); err != nil {
		t.Fatalf("vdptool deassociate: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "VM 1's rule removed after DE-ASSOCIATE", func() bool {
		vms, err := client.VMs(ctx)
		return err == nil && len(vms) == 0 && !slices.Contains(l.observed(t, cfg.NFTTable)["swL"].Allowed, pair)
	})
	stop()

	// require_signed: true: the same request is refused.
	cfg2 := l.config(t, true, "signed")
	d2, _ := l.runSwitchd(t, cfg2)
	client2 := &switchapi.Client{Socket: cfg2.Socket}
	if out, err := sta.associate(mgrName, typeID, uuid, testVID, vmMAC, false); err != nil {
		t.Fatalf("vdptool associate under require_signed: %v\n%s", err, out)
	}
	var rjs []switchapi.Reject
	waitFor(t, 20*time.Second, "the unsigned ASSOCIATE refused under require_signed", func() bool {
		rjs, err = client2.Rejects(ctx)
		return err == nil && slices.ContainsFunc(rjs, func(r switchapi.Reject) bool {
			return r.Port == "swL" && r.Reason == "unsigned-refused" && r.Mode != "LLDP"
		})
	})
	lldpRefused := slices.ContainsFunc(rjs, func(r switchapi.Reject) bool {
		return r.Port == "swL" && r.Mode == "LLDP" && r.Reason == "unsigned-refused" && r.Host == lldpadHost
	})
	// lldpad's next LLDPDU (every 30 s) is refused too; it may not have
	// come yet.
	t.Logf("lldpad's unsigned LLDPDU refused by now: %v", lldpRefused)
	time.Sleep(500 * time.Millisecond)
	if vms, err := client2.VMs(ctx); err != nil || len(vms) != 0 {
		t.Fatalf("GET /v1/switch/vms under require_signed: %+v %v", vms, err)
	}
	if st := l.observed(t, cfg2.NFTTable); slices.Contains(st["swL"].Allowed, pair) || slices.Contains(st["swL"].Pending, pair) {
		t.Fatal("the refused unsigned ASSOCIATE installed a rule")
	}
	if st := d2.Status(ctx); st.Accepted != 0 || st.VMs != 0 {
		t.Errorf("switchd status under require_signed: %+v", st)
	}
	for _, r := range rjs {
		if r.Port == "swL" {
			t.Logf("reject under require_signed: %s %s %s %s", r.Mode, r.Reason, r.VM, r.Message)
		}
	}
}
