//go:build linux

package switchd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/tether-net/tether/cli"
	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// netTiming is the VDP timing of the real-wire tests: ACK timer 41 ms,
// keep-alive 1.3 s (RKA 17), so the bridge's keep-alive timeout is 2.4 s
// and the restart grace period 2.6 s. The margin between keep-alive and
// timeout (1.1 s) absorbs the fsync of the replay mark on a loaded disk;
// with RKA 16 (0.75 s of margin) a shared two-core machine running other
// tests occasionally missed it.
var netTiming = vdp.Timing{R: 3, RTE: 12, RWD: 20, RKA: 17}

// lab is swlab's switch and two hosts, with tether-switchd's
// configuration and the hosts' identities.
type lab struct {
	*swlab.Lab
	dir   string
	cfg   switchconfig.Config
	hostA *hostID
	hostB *hostID
	enf   *enforce.Enforcer // the test's own view of the switch's table
	// logger, when set, receives switchd's logs instead of testLogger().
	logger *slog.Logger
}

// newLab builds the namespaces, the bridge with STP (forwarding after
// 2 × forward_delay = 4 s; LLDP and ECP work at once) and the
// configuration of tether-switchd. Host A runs VMs 1 to vmsOnA (VM n has
// MAC n); host B runs VM 2 with VM 1's MAC.
func newLab(t *testing.T, vmsOnA int) *lab {
	t.Helper()
	l := &lab{Lab: swlab.NewLab(t), dir: t.TempDir()}
	l.hostA, l.hostB = newHostID(t, "hostA"), newHostID(t, "hostB")
	pemOf := func(h *hostID) string {
		b, err := identity.MarshalPublicKeyPEM(h.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The VM manager answers from libvirt's test driver: VM1 runs on
	// hostA with MAC 1; on hostB runs VM2, a clone that kept VM1's MAC.
	var doms []swlab.Domain
	for i := 1; i <= vmsOnA; i++ {
		doms = append(doms, swlab.Domain{Name: fmt.Sprintf("vm%d", i), UUID: uuidN(i).String(), MACs: []string{macN(i).String()}})
	}
	swlab.WriteNode(t, filepath.Join(l.dir, "hostA.xml"), doms)
	swlab.WriteNode(t, filepath.Join(l.dir, "hostB.xml"), []swlab.Domain{{Name: "vm2", UUID: uuidN(2).String(), MACs: []string{macN(1).String()}}})

	cfg := switchconfig.Default()
	cfg.Name = "tor1"
	cfg.KeyFile = filepath.Join(l.dir, "switch.key")
	cfg.HostKeys = switchconfig.HostKeys{Inline: map[string]string{"hostA": pemOf(l.hostA), "hostB": pemOf(l.hostB)}}
	cfg.VMManagers = map[string]string{
		"hostA": "test://" + filepath.Join(l.dir, "hostA.xml"),
		"hostB": "test://" + filepath.Join(l.dir, "hostB.xml"),
	}
	cfg.EVB = switchconfig.EVB{R: netTiming.R, RTE: netTiming.RTE, RWD: netTiming.RWD, RKA: netTiming.RKA, ReflectiveRelay: true}
	cfg.Profiles = map[string]switchconfig.Profile{"default": {Name: "tenant-a", VID: 100, RateKbps: 10000, Mode: "switch"}}
	cfg.Socket = filepath.Join(l.dir, "switchd.sock")
	cfg.SocketGroup = ""
	cfg.StateDir = filepath.Join(l.dir, "state")
	cfg.ResyncInterval = switchconfig.Duration(time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l.cfg = cfg

	f, err := os.Open(l.SW.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	l.enf, err = enforce.New(context.Background(), enforce.Options{Table: cfg.NFTTable, NetNS: int(f.Fd()), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.enf.Close() })
	return l
}

// switchd is one run of tether-switchd (RunConfig) in the lab.
type switchd struct {
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
}

// start runs tether-switchd on the lab's switch namespace.
func (l *lab) start(t *testing.T) *switchd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *Daemon, 1)
	s := &switchd{cancel: cancel, done: make(chan error, 1)}
	logger := l.logger
	if logger == nil {
		logger = testLogger()
	}
	go func() {
		s.done <- RunConfig(ctx, l.cfg, RunOptions{Version: "test", Logger: logger, NetNS: l.SW.Path(),
			Tune: func(o *Options) {
				o.ReconcileInterval = 200 * time.Millisecond
				o.ScanInterval = time.Second
			},
			Started: func(d *Daemon) { started <- d }})
	}()
	select {
	case s.d = <-started:
	case err := <-s.done:
		t.Fatalf("switchd: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("switchd did not start within 10s")
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *switchd) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("switchd: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("switchd did not stop within 10s")
	}
	s.cancel = nil
}

// station starts the station side on host n's eth0.
func (l *lab) station(t *testing.T, n *swlab.NS, id *hostID) *station {
	t.Helper()
	key, _, err := LoadOrCreateKey(l.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := newStation(t, id, key.Public(), n.Listen(t, "eth0", wire.EtherTypeLLDP, false), n.Listen(t, "eth0", wire.EtherTypeECP, false),
		netTiming, 0)
	s.start()
	return s
}

// tetherctl runs the CLI in-process against the lab's switchd.
func (l *lab) tetherctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), append(args, "--socket", l.cfg.Socket), &cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

// allowed reports whether the kernel's table allows pr on port.
func (l *lab) allowed(t testing.TB, port string, pr enforce.Pair) bool {
	t.Helper()
	st, err := l.enf.Observed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(st[port].Allowed, pr)
}

// TestNetnsClosedLoop runs tether-switchd for real: a bridge in a switch
// namespace, its nftables table, AF_PACKET sockets on its ports, libvirt's
// test driver as the VM manager, and two hosts whose stations sign with
// their keys. It checks the whole issue-4 story on real frames.
func TestNetnsClosedLoop(t *testing.T) {
	l := newLab(t, 1)
	sd := l.start(t)
	a := l.station(t, l.A, l.hostA)
	b := l.station(t, l.B, l.hostB)
	a.mu.Lock()
	a.reassociate = true
	a.mu.Unlock()
	waitFor(t, 10*time.Second, "LLDP both ways on both ports", func() bool {
		na, okA := sd.d.neighbours.Neighbour("swA")
		nb, okB := sd.d.neighbours.Neighbour("swB")
		return okA && okB && na.Host == "hostA" && nb.Host == "hostB" && a.switchNeighbour() && b.switchNeighbour()
	})
	l.WaitForwarding(t)
	pair1 := pairN(1, 100)

	// Before any association nothing from VM1's MAC passes.
	if l.Send(t, macN(1), 100, 300*time.Millisecond) {
		t.Fatal("a frame from an unverified MAC crossed the switch")
	}

	// Host A associates VM1: verified, rule installed, answer with the
	// profile's VID and the signed profile TLV.
	t0 := time.Now()
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	rtt := time.Since(t0)
	if res.Err != nil {
		t.Fatalf("associate VM1: %v (rejects %+v)", res.Err, sd.d.Rejects())
	}
	if res.Filters[0].VID != 100 || res.Profile == nil || res.Profile.Name != "tenant-a" || res.Peer == nil {
		t.Fatalf("answer: %+v", res)
	}
	if !l.allowed(t, "swA", pair1) {
		t.Fatal("no nftables element for VM1 once the station heard success")
	}
	t.Logf("ASSOCIATE round trip on the wire (sign, verify, VM manager, nftables, answer): %v", rtt.Round(time.Microsecond))
	if !l.Send(t, macN(1), 100, 2*time.Second) {
		t.Fatal("a frame from VM1's verified MAC did not reach host B")
	}
	if l.Send(t, macN(2), 100, 300*time.Millisecond) {
		t.Fatal("a frame from an unverified MAC crossed the switch")
	}
	if l.Send(t, macN(1), 0, 300*time.Millisecond) {
		t.Fatal("an untagged frame from VM1's MAC crossed the switch (only VID 100 is verified)")
	}

	// tetherctl switch vms -o json: VM1 on port swA, verified by hostA's key
	// and the VM manager.
	out, errs, code := l.tetherctl(t, "switch", "vms", "-o", "json")
	var vms []switchapi.VM
	if code != 0 || json.Unmarshal([]byte(out), &vms) != nil || len(vms) != 1 || vms[0].Port != "swA" ||
		vms[0].VM != uuidN(1).String() || vms[0].MAC != macN(1).String() || vms[0].Host != "hostA" || vms[0].VID != 100 ||
		vms[0].Verified.KeyID != l.hostA.key.ID().String() || !strings.HasPrefix(vms[0].Verified.VMManager, "running on hostA") {
		t.Fatalf("tetherctl switch vms: %d %s %s", code, out, errs)
	}

	// Host B claims VM1's MAC (its VM2 is a clone that kept it): refused.
	res = b.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(1), 0, 1))
	if re := refusal(t, res); re.Code() != wire.VDPInvalidAddress {
		t.Fatalf("host B's claim answered %v", re)
	}
	out, errs, code = l.tetherctl(t, "switch", "rejects", "-o", "json")
	var rjs []switchapi.Reject
	if code != 0 || json.Unmarshal([]byte(out), &rjs) != nil || len(rjs) == 0 {
		t.Fatalf("tetherctl switch rejects: %d %s %s", code, out, errs)
	}
	last := rjs[len(rjs)-1]
	if last.Port != "swB" || last.Reason != "mac-live-elsewhere" || last.MAC != macN(1).String() || last.VM != uuidN(2).String() ||
		!strings.Contains(last.Message, "swA") {
		t.Fatalf("reject: %+v", last)
	}
	if l.allowed(t, "swB", pair1) {
		t.Fatal("host B's refused claim installed a rule")
	}
	out, _, code = l.tetherctl(t, "switch", "ports")
	if code != 0 || !strings.Contains(out, "hostA") || !strings.Contains(out, "hostB") {
		t.Fatalf("tetherctl switch ports: %s", out)
	}
	t.Logf("tetherctl switch ports:\n%s", out)
	out, _, _ = l.tetherctl(t, "switch", "rejects")
	t.Logf("tetherctl switch rejects:\n%s", out)

	// DE-ASSOCIATE: the rule goes, frames are dropped again.
	if res := a.do(wire.VSIDeAssociate, vsiOf(uuidN(1), macN(1), 100, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, 2*time.Second, "VM1's rule removed", func() bool { return !l.allowed(t, "swA", pair1) })
	if l.Send(t, macN(1), 100, 300*time.Millisecond) {
		t.Fatal("a frame from VM1's MAC crossed the switch after DE-ASSOCIATE")
	}

	// Associate again, and restart switchd: the rule stays through the
	// restart and the grace period, the keep-alives re-associate, and a
	// stale pair nobody re-associates goes at the end of the grace period.
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	stale := pairN(9, 100)
	if err := l.enf.Allow(context.Background(), "swB", stale.MAC[:], stale.VID); err != nil {
		t.Fatal(err)
	}
	sd.stop(t)
	if !l.allowed(t, "swA", pair1) || !l.Send(t, macN(1), 100, time.Second) {
		t.Fatal("VM1's traffic stopped while switchd was down")
	}
	restarted := time.Now()
	sd = l.start(t)
	if !l.allowed(t, "swA", pair1) || !l.allowed(t, "swB", stale) || !l.Send(t, macN(1), 100, time.Second) {
		t.Fatal("switchd dropped rules at start")
	}
	waitFor(t, 5*time.Second, "VM1 re-associated after the restart", func() bool {
		for _, v := range sd.d.VMs() {
			if v.MAC == macN(1).String() && v.Port == "swA" {
				return true
			}
		}
		return false
	})
	t.Logf("VM1 re-associated %v after switchd restarted", time.Since(restarted).Round(time.Millisecond))
	select {
	case <-sd.d.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("no synchronization after the grace period")
	}
	t.Logf("grace period over %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if !l.allowed(t, "swA", pair1) || !l.Send(t, macN(1), 100, time.Second) {
		t.Fatal("VM1's re-learnt rule is gone after the grace period")
	}
	if l.allowed(t, "swB", stale) {
		t.Fatal("the stale pair survived the grace period")
	}
	if st := sd.d.Status(context.Background()); st.Grace.Removed != 1 {
		t.Fatalf("grace: %+v", st.Grace)
	}

	// The LLDP neighbour goes (host A's agent shuts down): the rule goes.
	a.mu.Lock()
	a.reassociate = false
	a.mu.Unlock()
	a.stopLLDP()
	waitFor(t, 3*time.Second, "VM1's rule removed after the neighbour left", func() bool { return !l.allowed(t, "swA", pair1) })
	if l.Send(t, macN(1), 100, 300*time.Millisecond) {
		t.Fatal("a frame from VM1's MAC crossed the switch after its host's LLDP neighbour left")
	}
}

// TestNetnsRuleLatency measures, on real frames, the time from an
// ASSOCIATE reaching the switch port to its nftables element being
// committed: a tap on the port (in the switch namespace) timestamps each
// ASSOCIATE as it arrives, an nftables monitor timestamps each new allow
// element. Associations go one at a time, so each is an isolated event.
// 50 by default, 1,000 with TETHER_TEST_ALL=1.
func TestNetnsRuleLatency(t *testing.T) {
	n, burst := 50, 0
	if os.Getenv("TETHER_TEST_ALL") != "" {
		n, burst = 1000, 1000
	}
	l := newLab(t, n+burst)
	sd := l.start(t)
	a := l.station(t, l.A, l.hostA)
	waitFor(t, 10*time.Second, "LLDP both ways on swA", func() bool {
		nb, ok := sd.d.neighbours.Neighbour("swA")
		return ok && nb.Host == "hostA" && a.switchNeighbour()
	})

	var mu sync.Mutex
	arrived := map[verify.MAC]time.Time{}
	committed := map[verify.MAC]time.Time{}

	// The tap: ECP frames entering swA.
	tap := l.SW.Listen(t, "swA", wire.EtherTypeECP, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, err := tap.ReadFrame(ctx, buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			now := time.Now()
			var h wire.EthernetHeader
			pdu, err := h.Parse(buf[:k])
			if err != nil {
				continue
			}
			var e wire.ECPDU
			if e.UnmarshalBinary(pdu) != nil || e.VDP == nil {
				continue
			}
			for _, v := range e.VDP.VSIs() {
				if !v.IsResponse() && v.Mode == wire.VSIAssociate && len(v.Filters) > 0 {
					m := verify.MAC(v.Filters[0].MAC)
					mu.Lock()
					if _, ok := arrived[m]; !ok {
						arrived[m] = now
					}
					mu.Unlock()
				}
			}
		}
	}()
	// The monitor: new set elements in the switch's table.
	events := monitorElements(t, l.SW)
	go func() {
		for ev := range events {
			now := time.Now()
			for _, e := range ev {
				if len(e) < 6 {
					continue
				}
				m := verify.MAC(e[:6])
				mu.Lock()
				if _, ok := committed[m]; !ok {
					committed[m] = now
				}
				mu.Unlock()
			}
		}
	}()

	rtts := make([]time.Duration, 0, n)
	for i := 1; i <= n; i++ {
		t0 := time.Now()
		res := a.do(wire.VSIAssociate, vsiOf(uuidN(i), macN(i), 0, 1))
		if res.Err != nil {
			t.Fatalf("associate VM %d: %v", i, res.Err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	var wire2rule []time.Duration
	waitFor(t, 5*time.Second, "every element seen by the monitor", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(committed) >= n
	})
	mu.Lock()
	for i := 1; i <= n; i++ {
		m := macN(i)
		at, ok1 := arrived[m]
		ct, ok2 := committed[m]
		if ok1 && ok2 {
			wire2rule = append(wire2rule, ct.Sub(at))
		}
	}
	mu.Unlock()
	if len(wire2rule) < n*9/10 {
		t.Fatalf("matched only %d of %d ASSOCIATEs with their elements", len(wire2rule), n)
	}
	st := sd.d.Status(context.Background())
	t.Logf("%d ASSOCIATEs, one at a time, on a shared 2-core machine:", n)
	t.Logf("  ASSOCIATE at the switch port -> nftables element committed: %s", percentiles(wire2rule))
	t.Logf("  request in the decider -> element committed (switchd's own figure): p50 %dus p99 %dus max %dus",
		st.RuleLatency.P50, st.RuleLatency.P99, st.RuleLatency.Max)
	t.Logf("  station round trip (sign, ECP, verify + fsync, VM manager, nftables, signed answer): %s", percentiles(rtts))
	if p := quantile(wire2rule, 0.5); p > 200*time.Millisecond {
		t.Errorf("median ASSOCIATE-to-rule latency %v is far above the 5 ms target", p)
	}
	if burst == 0 {
		return
	}

	// A burst: every request submitted at once (the station batches them
	// into ECPDUs), as after a mass migration or a host agent restart.
	var wg sync.WaitGroup
	var failed sync.Map
	t0 := time.Now()
	for i := n + 1; i <= n+burst; i++ {
		wg.Add(1)
		req := vdp.Request{Mode: wire.VSIAssociate, Manager: stationMgr, VSI: vsiOf(uuidN(i), macN(i), 0, 1)}
		if err := a.st.Submit(req, func(r vdp.Result) {
			if r.Err != nil {
				failed.Store(i, r.Err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	took := time.Since(t0)
	failed.Range(func(k, v any) bool {
		t.Errorf("burst: VM %v: %v", k, v)
		return false
	})
	obs, err := l.enf.Observed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := n + 1; i <= n+burst; i++ {
		if !slices.Contains(obs["swA"].Allowed, pairN(i, 100)) {
			t.Fatalf("burst: VM %d answered but its pair is not in the kernel", i)
		}
	}
	// The monitor's netlink socket overflows under a burst (its lost
	// notifications are not counted): the latencies are over the
	// elements it did report.
	time.Sleep(200 * time.Millisecond)
	var burstLat []time.Duration
	mu.Lock()
	for i := n + 1; i <= n+burst; i++ {
		at, ok1 := arrived[macN(i)]
		ct, ok2 := committed[macN(i)]
		if ok1 && ok2 {
			burstLat = append(burstLat, ct.Sub(at))
		}
	}
	mu.Unlock()
	t.Logf("burst of %d ASSOCIATEs: all answered in %v (%.0f/s); ASSOCIATE at the port -> element committed: %s",
		burst, took.Round(time.Millisecond), float64(burst)/took.Seconds(), percentiles(burstLat))
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func percentiles(ds []time.Duration) string {
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v (n=%d)", quantile(ds, 0.5).Round(time.Microsecond),
		quantile(ds, 0.9).Round(time.Microsecond), quantile(ds, 0.99).Round(time.Microsecond),
		quantile(ds, 1).Round(time.Microsecond), len(ds))
}

// monitorElements reports the keys of the set elements added in n's
// nftables, one slice per notification.
func monitorElements(t testing.TB, n *swlab.NS) <-chan [][]byte {
	t.Helper()
	f, err := os.Open(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements),
		nftables.WithMonitorAction(nftables.MonitorActionNew))
	ch, err := c.AddMonitor(mon)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	out := make(chan [][]byte, 4096)
	go func() {
		defer close(out)
		for ev := range ch {
			if ev.Type != nftables.MonitorEventTypeNewSetElem || ev.Error != nil {
				continue
			}
			els, _ := ev.Data.([]nftables.SetElement)
			keys := make([][]byte, 0, len(els))
			for _, e := range els {
				keys = append(keys, e.Key)
			}
			select {
			case out <- keys:
			default:
			}
		}
	}()
	return out
}
