//go:build linux

package lldpagent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/wire"
)

// lldpcliNeighbor is one neighbour in `lldpcli show neighbors -f json`.
type lldpcliNeighbor struct {
	Chassis map[string]struct {
		ID struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"id"`
		Descr string `json:"descr"`
	} `json:"chassis"`
	Port struct {
		ID struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"id"`
		TTL string `json:"ttl"`
	} `json:"port"`
}

// lldpcliNeighbors parses lldpcli's JSON: "interface" is an object with one
// key per interface, or a list of such objects when there are several
// neighbours.
func lldpcliNeighbors(out []byte) (map[string][]lldpcliNeighbor, error) {
	var top struct {
		LLDP struct {
			Interface json.RawMessage `json:"interface"`
		} `json:"lldp"`
	}
	if err := json.Unmarshal(out, &top); err != nil {
		return nil, fmt.Errorf("lldpcli JSON: %w", err)
	}
	res := map[string][]lldpcliNeighbor{}
	if len(top.LLDP.Interface) == 0 {
		return res, nil
	}
	var one map[string]lldpcliNeighbor
	if err := json.Unmarshal(top.LLDP.Interface, &one); err == nil {
		for k, v := range one {
			res[k] = append(res[k], v)
		}
		return res, nil
	}
	var many []map[string]lldpcliNeighbor
	if err := json.Unmarshal(top.LLDP.Interface, &many); err != nil {
		return nil, fmt.Errorf("lldpcli JSON interfaces: %w", err)
	}
	for _, m := range many {
		for k, v := range m {
			res[k] = append(res[k], v)
		}
	}
	return res, nil
}

// startLogged starts cmd with its output in a file of dir and stops it
// (SIGTERM, then SIGKILL) when the test ends.
func startLogged(t *testing.T, cmd *exec.Cmd, dir, name string) *os.File {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { stopCmd(cmd); logf.Close() })
	return logf
}

// stopCmd ends a command politely, then by force.
func stopCmd(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// TestLLDPDInterop runs lldpd (Debian's) against the agent on a veth pair:
// lldpd sees tether's chassis ID, port ID, system name and TTL and drops it
// on its shutdown LLDPDU; the agent sees lldpd's. tcpdump captures the
// agent's frames and tshark and tcpdump read back the expected fields. It
// runs twice: plain LLDP to the nearest bridge, and tether's full signed
// LLDPDU (EVB, CDCP, ETS, PFC, capability, inventory, signature) to the
// nearest customer bridge.
func TestLLDPDInterop(t *testing.T) {
	netnstest.Require(t)
	netnstest.RequireTool(t, "lldpd", "lldpd")
	netnstest.RequireTool(t, "tcpdump", "tcpdump")
	netnstest.RequireTool(t, "tshark", "tshark")
	t.Parallel()
	t.Run("nearest-bridge", func(t *testing.T) {
		t.Parallel()
		testLLDPDInterop(t, wire.NearestBridge, false)
	})
	t.Run("nearest-customer-bridge-signed", func(t *testing.T) {
		t.Parallel()
		testLLDPDInterop(t, wire.NearestCustomerBridge, true)
	})
}

func testLLDPDInterop(t *testing.T, dest [6]byte, full bool) {
	dir := t.TempDir()
	// lldpd runs lldpcli as _lldpd to apply the configuration: it must
	// reach the control socket.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	sA := listenIn(t, nsA, "a0")
	macA := sA.Interface().MAC
	macAStr := net.HardwareAddr(macA[:]).String()
	var macB net.HardwareAddr
	if err := nsB.Do(func() error {
		ifi, err := net.InterfaceByName("b0")
		if err == nil {
			macB = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// tcpdump first, so it sees the first LLDPDU.
	pcap := filepath.Join(dir, "tether.pcap")
	tcpdump := nsA.Command(ctx, "tcpdump", "-i", "a0", "--immediate-mode", "-U", "-n", "-w", pcap, "ether proto 0x88cc and ether src "+macAStr)
	stderr, err := tcpdump.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tcpdump.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopCmd(tcpdump) })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening")
	}

	info := newInfo(macA, "a0", "tether-interop")
	info.info.SystemDescription = "tether host agent (interop test)"
	info.info.Capabilities = &wire.SystemCapabilities{System: wire.SysCapStationOnly, Enabled: wire.SysCapStationOnly}
	info.info.ManagementAddresses = []*wire.ManagementAddress{wire.NewManagementAddress(netip.MustParseAddr("192.0.2.10"), 2)}
	cfg := Config{Build: info.build, Logger: quiet(), Dest: dest, Accept: [][6]byte{wire.NearestBridge, wire.NearestCustomerBridge}}
	if full {
		key, err := identity.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Sign = SignWith(signer, "a0")
		_, evbTLV, err := evb.Station(evb.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cdcp, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		info.info.EVB, info.info.CDCP = &evbTLV, &cdcp
		info.info.ETS = &wire.ETSConfiguration{MaxTCs: 3, ETSTables: wire.ETSTables{Bandwidth: [8]uint8{60, 40}, TSA: [8]wire.TSA{wire.TSAETS, wire.TSAETS}}}
		info.info.PFC = &wire.PFC{Cap: 8, Enable: 1 << 3}
		info.info.Tether = &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleHostAgent, KeyID: key.ID()}
		info.info.Inventory = &wire.TetherInventory{Alg: wire.TetherDigestSHA256, VIFs: 3, Generation: 9}
	}
	logA := newEventLog()
	cfg.OnEvent = logA.add
	a, err := New(sA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cancelA, doneA := startAgent(t, a)

	// lldpd in B, with its own control socket, sending every second.
	conf := filepath.Join(dir, "lldpd.conf")
	if err := os.WriteFile(conf, []byte("configure system hostname lldpd-peer\nconfigure lldp tx-interval 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "lldpd.sock")
	startLogged(t, nsB.Command(ctx, "lldpd", "-d", "-u", sock, "-I", "b0", "-O", conf), dir, "lldpd")

	lldpcli := func() map[string][]lldpcliNeighbor {
		out, err := nsB.Output(ctx, "lldpcli", "-u", sock, "show", "neighbors", "-f", "json")
		if err != nil {
			return nil // not up yet
		}
		ns, err := lldpcliNeighbors(out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return ns
	}
	var seen *lldpcliNeighbor
	deadline := time.Now().Add(10 * time.Second)
	for seen == nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "lldpd.log"))
			t.Fatalf("lldpd did not list tether within 10s; lldpd log:\n%s", log)
		}
		for _, n := range lldpcli()["b0"] {
			if c, ok := n.Chassis["tether-interop"]; ok && c.ID.Value == macAStr {
				seen = &n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c := seen.Chassis["tether-interop"]
	if c.ID.Type != "mac" || c.Descr != "tether host agent (interop test)" {
		t.Errorf("lldpd sees chassis %+v", c)
	}
	if seen.Port.ID.Type != "ifname" || seen.Port.ID.Value != "a0" || seen.Port.TTL != "121" {
		t.Errorf("lldpd sees port %+v", seen.Port)
	}

	// The agent sees lldpd: chassis ID = b0's MAC, system name, TTL =
	// tx-interval 1 s * tx-hold 4.
	ev := logA.waitEvent(t, NeighborAdded, 5*time.Second)
	n := ev.Neighbor
	if n.ChassisID.Subtype != lldp.ChassisIDSubtypeMACAddress || net.HardwareAddr(n.ChassisID.ID).String() != macB.String() ||
		n.SystemName() != "lldpd-peer" || n.TTL != 4 {
		t.Fatalf("agent sees chassis %v %s, name %q, TTL %d; want mac %s, lldpd-peer, 4",
			n.ChassisID.Subtype, net.HardwareAddr(n.ChassisID.ID), n.SystemName(), n.TTL, macB)
	}
	if s := a.Stats(); s.Malformed != 0 || s.FramesIn == 0 {
		t.Fatalf("agent stats %+v", s)
	}

	// The shutdown LLDPDU makes lldpd drop tether at once.
	cancelA()
	if err := doneA(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for {
		found := false
		for _, n := range lldpcli()["b0"] {
			if _, ok := n.Chassis["tether-interop"]; ok {
				found = true
			}
		}
		if !found {
			break
		}
		if time.Since(stopped) > 2*time.Second {
			t.Fatal("lldpd still lists tether 2s after its shutdown LLDPDU (TTL 121)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lldpd dropped tether %v after shutdown", time.Since(stopped))

	// What tcpdump captured, read back by tshark and tcpdump.
	time.Sleep(100 * time.Millisecond)
	stopCmd(tcpdump)
	out, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-T", "fields", "-E", "separator=|",
		"-e", "eth.dst", "-e", "lldp.chassis.id.mac", "-e", "lldp.port.id", "-e", "lldp.tlv.system.name", "-e", "lldp.time_to_live").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sent := a.Stats().FramesOut
	if uint64(len(lines)) != sent || len(lines) < 2 {
		td, _ := exec.CommandContext(ctx, "tcpdump", "-r", pcap, "-nn", "-v").CombinedOutput()
		t.Fatalf("tshark read %d frames, the agent sent %d:\n%s\ntcpdump:\n%s", len(lines), sent, out, td)
	}
	for i, l := range lines {
		dst := net.HardwareAddr(dest[:]).String()
		want := dst + "|" + macAStr + "|a0|tether-interop|121"
		if i == len(lines)-1 {
			want = dst + "|" + macAStr + "|a0||0" // the shutdown LLDPDU
		}
		if l != want {
			t.Errorf("tshark frame %d: %q, want %q", i+1, l, want)
		}
	}
	if out, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("tshark finds malformed frames or warnings: %v\n%s", err, out)
	}
	td, err := exec.CommandContext(ctx, "tcpdump", "-r", pcap, "-nn", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, td)
	}
	for _, want := range []string{
		"Chassis ID TLV (1), length 7\n\t  Subtype MAC address (4): " + macAStr,
		"Port ID TLV (2), length 3\n\t  Subtype Interface Name (5): a0",
		"Time to Live TLV (3), length 2: TTL 121s",
		"System Name TLV (5), length 14: tether-interop",
		"Time to Live TLV (3), length 2: TTL 0s",
	} {
		if !strings.Contains(string(td), want) {
			t.Errorf("tcpdump output lacks %q:\n%s", want, td)
			break
		}
	}
	if strings.Contains(string(td), "malformed") || strings.Contains(string(td), "[|LLDP]") {
		t.Errorf("tcpdump finds a malformed frame:\n%s", td)
	}
}
