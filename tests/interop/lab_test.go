package interop

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// evbConfig is what both sides propose in every test: tether's defaults
// (evb.DefaultConfig: R 3, RTE 14, RWD 20, RKA 20), which the lldpad
// configurations below match, so both implementations run the same
// timers.
var evbConfig = evb.DefaultConfig()

func quiet() *slog.Logger {
	if os.Getenv("TETHER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// requireLLDPAD skips t unless the test can run namespaces and lldpad.
func requireLLDPAD(t *testing.T) {
	t.Helper()
	netnstest.Require(t)
	for _, p := range []string{"lldpad", "lldptool", "vdptool"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("lldpad not available: run tests/install-deps.sh (%s: %v)", p, err)
		}
	}
}

// pair is two namespaces joined by a veth pair: interface "s0" in S (the
// station's side) and "b0" in B (the bridge's side).
type pair struct {
	S, B         *netnstest.NS
	macS, macB   [6]byte
	sName, bName string
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{S: netnstest.New(t), B: netnstest.New(t), sName: "s0", bName: "b0"}
	netnstest.DisableIPv6(t, p.S)
	netnstest.DisableIPv6(t, p.B)
	netnstest.Veth(t, p.S, p.sName, p.B, p.bName)
	p.macS = macOf(t, p.S, p.sName)
	p.macB = macOf(t, p.B, p.bName)
	return p
}

func macOf(t *testing.T, ns *netnstest.NS, ifname string) [6]byte {
	t.Helper()
	var mac [6]byte
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		copy(mac[:], ifi.HardwareAddr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// listen opens an AF_PACKET socket for etherType on ifname inside ns,
// closed when the test ends.
func listen(t *testing.T, ns *netnstest.NS, ifname string, etherType uint16) *rawsock.Socket {
	t.Helper()
	var s *rawsock.Socket
	if err := ns.Do(func() error {
		var err error
		s, err = rawsock.Listen(ifname, etherType, rawsock.Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lldpad is one lldpad process in a namespace.
type lldpad struct {
	ns     *netnstest.NS
	ifname string
	role   string
	debug  bool
	dir    string
	cmd    *exec.Cmd
}

// startLLDPAD writes lldpad's configuration for ifname (nearest customer
// bridge agent in rx/tx, EVB TLV with evbmode role, RTE evbConfig.RTE,
// reflective relay requested or offered) and starts lldpad in ns on its
// own tmpfs /dev/shm. debug turns on lldpad's debug log (-V 7), which
// costs time. It waits until lldpad answers lldptool and stops it when the
// test ends.
func startLLDPAD(t *testing.T, ns *netnstest.NS, ifname, role string, debug bool) *lldpad {
	t.Helper()
	return startLLDPADWith(t, ns, ifname, role, debug, "")
}

// startLLDPADWith is startLLDPAD; a non-empty hostname runs lldpad in a
// UTS namespace of its own with that host name, which it advertises in the
// System Name TLV.
func startLLDPADWith(t *testing.T, ns *netnstest.NS, ifname, role string, debug bool, hostname string) *lldpad {
	t.Helper()
	dir := t.TempDir()
	rr := "evbrrreq"
	if role == "bridge" {
		rr = "evbrrcap"
	}
	conf := fmt.Sprintf(`nearest_customer_bridge :
{
  %s :
  {
    adminStatus = 3;
    tlvid0080c20d :
    {
      enableTx = true;
      evbmode = "%s";
      %s = true;
      ecpretries = %d;
      ecprte = %d;
      vdprwd = %d;
      vdprka = %d;
    };
  };
};
`, ifname, role, rr, evbConfig.R, evbConfig.RTE, evbConfig.RWD, evbConfig.RKA)
	if hostname != "" {
		// The System Name TLV (tlvid00000005) on the nearest customer
		// bridge agent: lldpad sends only the mandatory TLVs there
		// otherwise.
		conf = strings.Replace(conf, "adminStatus = 3;", "adminStatus = 3;\n    tlvid00000005 :\n    {\n      enableTx = true;\n    };", 1)
	}
	confPath := filepath.Join(dir, "lldpad.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := "-p -t"
	if debug {
		args += " -V 7"
	}
	logPath := filepath.Join(dir, "lldpad.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// ip netns exec gives the command its own mount namespace, so the
	// tmpfs is this lldpad's alone and goes with it; exec keeps the pid.
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "sh", "-c",
		"mount -t tmpfs tmpfs /dev/shm && exec lldpad "+args+" -f "+confPath)
	if hostname != "" {
		// unshare --uts: the host name is this lldpad's alone.
		cmd = exec.Command("ip", "netns", "exec", ns.Name, "unshare", "--uts", "sh", "-c",
			"hostname "+hostname+" && mount -t tmpfs tmpfs /dev/shm && exec lldpad "+args+" -f "+confPath)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("lldpad is installed but did not start: %v", err)
	}
	l := &lldpad{ns: ns, ifname: ifname, role: role, debug: debug, dir: dir, cmd: cmd}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				const keep = 6000
				if len(b) > keep {
					b = b[len(b)-keep:]
				}
				t.Logf("lldpad (%s, %s) log tail:\n%s", role, ns.Name, b)
			}
		}
	})
	// lldpad is installed (requireLLDPAD): one that exits or does not
	// answer is a failure, not a missing tool. The wait is generous: a
	// loaded machine starts it slowly.
	const answerWait = 30 * time.Second
	deadline := time.Now().Add(answerWait)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("lldpad exited at once: %s", b)
		default:
		}
		if out, err := l.tool("lldptool", "-t", "-i", ifname, "-g", "ncb", "-V", "evb", "-c", "evbmode"); err == nil &&
			strings.Contains(out, "evbmode="+role) {
			return l
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("lldpad: no answer to lldptool in %v; log: %.2000s", answerWait, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tool runs lldptool or vdptool (argv) inside lldpad's namespace.
func (l *lldpad) tool(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.ns.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// peerEVB returns what lldpad prints about the EVB TLV it last received
// (lldptool -n), "" when it has none.
func (l *lldpad) peerEVB() string {
	out, err := l.tool("lldptool", "-t", "-n", "-i", l.ifname, "-g", "ncb", "-V", "evb")
	if err != nil {
		return ""
	}
	return out
}

// waitPeerEVB waits until lldpad has received an EVB TLV in mode.
func (l *lldpad) waitPeerEVB(t *testing.T, mode string, within time.Duration) string {
	t.Helper()
	var out string
	waitFor(t, within, "lldpad receives an EVB TLV in mode "+mode, func() bool {
		out = l.peerEVB()
		return strings.Contains(out, "mode:"+mode)
	})
	return out
}

// waitVDP waits until lldpad has started VDP on its port: lldpad starts
// ECP and VDP once the port has been stable for a while (evb22_timer), and
// refuses VSI commands before ("VDP protocol not supported on
// interface"), while vdptool's query already works. It reads lldpad's
// debug log, so l must have been started with debug.
func (l *lldpad) waitVDP(t *testing.T, within time.Duration) {
	t.Helper()
	if !l.debug {
		t.Fatal("waitVDP needs lldpad's debug log")
	}
	want := "vdp22_create:" + l.ifname + " role:2" // VDP22_STATION
	if l.role == "bridge" {
		want = "vdp22_create:" + l.ifname + " role:1" // VDP22_BRIDGE
	}
	waitFor(t, within, "lldpad starts VDP on "+l.ifname+" ("+want+")", func() bool {
		b, _ := os.ReadFile(filepath.Join(l.dir, "lldpad.log"))
		return strings.Contains(string(b), want)
	})
}

// vsiArgs are vdptool's arguments for one VSI with a VID-MAC filter.
func vsiArgs(mode, mgr string, typeID uint32, uuid string, vid uint16, mac [6]byte) []string {
	return []string{"-c", "mode=" + mode, "-c", "mgrid2=" + mgr, "-c", fmt.Sprintf("typeid=%d", typeID),
		"-c", "typeidver=1", "-c", "uuid=" + uuid, "-c", "hints=none",
		"-c", fmt.Sprintf("filter=%d-%s", vid, macString(mac))}
}

// associate runs vdptool -T -W: lldpad as station sends ASSOCIATE and
// vdptool waits for a VDP event, which it prints after "Response from
// VDP". The event is not necessarily the response to this VSI: vdptool
// takes the first event lldpad sends its clients, so callers check the
// printed uuid (or the wire). Without wait, vdptool returns once lldpad
// has queued the request.
func (l *lldpad) associate(mgr string, typeID uint32, uuid string, vid uint16, mac [6]byte, wait ...bool) (string, error) {
	argv := []string{"vdptool", "-i", l.ifname, "-T", "-W", "-V", "assoc"}
	if len(wait) > 0 && !wait[0] {
		argv = []string{"vdptool", "-i", l.ifname, "-T", "-V", "assoc"}
	}
	return l.tool(append(argv, vsiArgs("assoc", mgr, typeID, uuid, vid, mac)...)...)
}

// deassociate runs vdptool -T -W with a DE-ASSOCIATE.
func (l *lldpad) deassociate(mgr string, typeID uint32, uuid string, vid uint16, mac [6]byte) (string, error) {
	argv := append([]string{"vdptool", "-i", l.ifname, "-T", "-W", "-V", "deassoc"}, vsiArgs("deassoc", mgr, typeID, uuid, vid, mac)...)
	return l.tool(argv...)
}

// waitFor polls cond every 20 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// evbAgent is tether's LLDP agent on one port with the EVB TLV of one
// role, renegotiated (package evb) whenever the peer's EVB TLV changes.
type evbAgent struct {
	agent *lldpagent.Agent
	role  wire.EVBMode

	mu   sync.Mutex
	info lldpagent.LocalInfo
	peer *wire.EVB
	op   evb.Operating
	err  error
}

// startEVBAgent runs an lldpagent on ifname in ns, sending to and
// accepting from the nearest customer bridge address (where lldpad's EVB
// agent lives), as role (wire.EVBModeStation or wire.EVBModeBridge).
func startEVBAgent(t *testing.T, ns *netnstest.NS, ifname string, role wire.EVBMode) *evbAgent {
	t.Helper()
	sock := listen(t, ns, ifname, wire.EtherTypeLLDP)
	mac := sock.Interface().MAC
	a := &evbAgent{role: role, info: lldpagent.LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: append([]byte(nil), mac[:]...)},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(ifname)},
		SystemName: "tether-interop-" + role.String(),
	}}
	a.negotiate(nil)
	agent, err := lldpagent.New(sock, lldpagent.Config{
		Build: func() (wire.LLDPDU, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.info.LLDPDU()
		},
		Dest:    wire.NearestCustomerBridge,
		Accept:  [][6]byte{wire.NearestCustomerBridge},
		OnEvent: a.onEvent,
		Logger:  quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.agent = agent
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// negotiate recomputes the local EVB TLV from the peer's; the caller
// holds mu or has not started the agent yet.
func (a *evbAgent) negotiate(peer *wire.EVB) {
	var (
		op  evb.Operating
		tlv wire.EVB
		err error
	)
	if a.role == wire.EVBModeBridge {
		op, tlv, err = evb.Bridge(evbConfig, peer)
	} else {
		op, tlv, err = evb.Station(evbConfig, peer)
	}
	a.op, a.err = op, err
	a.info.EVB = &tlv
}

func (a *evbAgent) onEvent(ev lldpagent.Event) {
	if ev.Kind != lldpagent.NeighborAdded && ev.Kind != lldpagent.NeighborUpdated {
		return
	}
	e := ev.Neighbor.EVB()
	if e == nil {
		return
	}
	c := *e
	a.mu.Lock()
	a.peer = &c
	a.negotiate(&c)
	a.mu.Unlock()
	a.agent.Update()
}

// state returns the peer's last EVB TLV, the operating parameters and the
// negotiation error.
func (a *evbAgent) state() (*wire.EVB, evb.Operating, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peer, a.op, a.err
}

// uuidString formats 16 bytes as a dashed UUID.
func uuidString(id [16]byte) string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// vsiUUID is the VSIID of VSI i of a run.
func vsiUUID(run byte, i int) [16]byte {
	return [16]byte{0x6f, 0x1c, 0x2b, 0x3a, run, 0x11, 0x42, 0x22, 0x83, 0x33, 0, 0, 0, 0, byte(i >> 8), byte(i)}
}

// vsiMAC is the MAC of VSI i.
func vsiMAC(i int) [6]byte { return [6]byte{0x52, 0x54, 0x00, 0x12, byte(i >> 8), byte(i)} }

// macString formats a MAC as vdptool prints it.
func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }

// responseWatcher reads the ECP frames arriving at a station's port (its
// own AF_PACKET socket, beside the station's) and notes when the bridge's
// first success response to ASSOCIATE arrived for each VSIID. It is the
// wire's word on lldpad's station, whose vdptool -W returns on any VDP
// event (one response wakes every waiting vdptool, whichever VSI it is
// for).
type responseWatcher struct {
	mu     sync.Mutex
	first  map[[16]byte]time.Time
	frames int
	other  []string // non-success responses
}

func watchResponses(t *testing.T, ns *netnstest.NS, ifname string) *responseWatcher {
	t.Helper()
	sock := listen(t, ns, ifname, wire.EtherTypeECP)
	w := &responseWatcher{first: map[[16]byte]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, err := sock.ReadFrame(ctx, buf)
			if err != nil {
				return
			}
			now := time.Now()
			var h wire.EthernetHeader
			payload, err := h.Parse(buf[:n])
			if err != nil {
				continue
			}
			var du wire.ECPDU
			if du.UnmarshalBinary(payload) != nil || du.Op != wire.ECPRequest || du.VDP == nil {
				continue
			}
			w.mu.Lock()
			w.frames++
			for _, v := range du.VDP.VSIs() {
				if !v.IsResponse() {
					continue
				}
				if v.Mode == wire.VSIDeAssociate && v.Code() == wire.VDPSuccess {
					continue
				}
				if v.Mode != wire.VSIAssociate || v.Code() != wire.VDPSuccess {
					w.other = append(w.other, fmt.Sprintf("%s %s status %#02x", v.Mode, uuidString(v.VSIID), uint8(v.Status)))
					continue
				}
				if _, ok := w.first[v.VSIID]; !ok {
					w.first[v.VSIID] = now
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitAll waits until a success response for every id has arrived and
// returns the arrival of the last one.
func (w *responseWatcher) waitAll(t *testing.T, ids [][16]byte, within time.Duration) time.Time {
	t.Helper()
	var last time.Time
	waitFor(t, within, fmt.Sprintf("success responses to %d ASSOCIATEs on the wire", len(ids)), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		last = time.Time{}
		for _, id := range ids {
			at, ok := w.first[id]
			if !ok {
				return false
			}
			if at.After(last) {
				last = at
			}
		}
		return true
	})
	return last
}

// stats returns how many VDP request frames the bridge sent and the
// non-success responses seen.
func (w *responseWatcher) stats() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.frames, append([]string(nil), w.other...)
}

// capture runs tcpdump on ifname inside ns, writing frames of EtherType
// etherType to a pcap file; stop ends it (idempotent, also at test end)
// and returns the file's path.
func capture(t *testing.T, ns *netnstest.NS, ifname string, etherType uint16) (stop func() string) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return nil
	}
	path := filepath.Join(t.TempDir(), "ecp.pcap")
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "tcpdump", "-i", ifname, "--immediate-mode", "-U", "-n",
		"-w", path, fmt.Sprintf("ether proto %#04x", etherType))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		var seen strings.Builder
		closed := false
		for {
			n, err := stderr.Read(buf)
			seen.Write(buf[:n])
			if !closed && strings.Contains(seen.String(), "listening on") {
				close(ready)
				closed = true
			}
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		return path
	}
	t.Cleanup(func() { stop() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening")
	}
	return stop
}
