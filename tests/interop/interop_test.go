package interop

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// vdpTiming is the VDP timing that the EVB exchange of evbConfig against
// an identical configuration gives (the larger of both sides' values).
func vdpTiming() vdp.Timing {
	return vdp.Timing{R: evbConfig.R, RTE: evbConfig.RTE, RWD: evbConfig.RWD, RKA: evbConfig.RKA}
}

const (
	mgrName = "evmgr01"
	typeID  = 4711
	testVID = 100
)

func mgrID(t testing.TB) wire.VSIManagerID {
	t.Helper()
	m, err := wire.ManagerIDFromString(mgrName)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testVSI is an ASSOCIATE request TLV for VSI i: UUID VSIID, one MAC/VID
// filter.
func testVSI(run byte, i int, vid uint16) wire.VSI {
	return wire.VSI{
		VSITypeID: typeID, VSITypeVersion: 1,
		VSIIDFormat: wire.VSIIDUUID, VSIID: vsiUUID(run, i),
		FilterFormat: wire.FilterMACVID,
		Filters:      []wire.Filter{{MAC: vsiMAC(i), VID: vid}},
	}
}

// runBg runs f until the test ends.
func runBg(t *testing.T, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestStationAgainstLLDPADBridge: tether's station (lldpagent with the
// station's EVB TLV, vdp.Station over ECP, unsigned interop mode: no
// signer, peer not tether-capable) against lldpad as the EVB Bridge.
// Asserts: tether receives lldpad's EVB TLV in bridge mode with RRCTR set
// (it granted the reflective relay tether asked for) and the timers
// tether proposed; lldpad receives tether's EVB TLV in station mode; an
// ASSOCIATE of one VSI (UUID VSIID, MAC/VID filter) gets lldpad's
// response with code success (0, IEEE 802.1Qbg-2012 41.2.1; lldpad's
// bridge grants everything, qbg/vdp22br.c), neither KEEP nor hard error,
// and the filter echoed; the station then holds the VSI as associated;
// tshark, dissecting a tcpdump capture of the exchange, agrees that
// lldpad's frame is an ASSOCIATE response with error 0 for that VSIID.
// Then, for the figure, N more VSIs submitted at once (one ECPDU from
// tether; N at most lldpadMaxPending) must all be granted by lldpad; the
// time and the order of the answers are logged.
func TestStationAgainstLLDPADBridge(t *testing.T) {
	requireLLDPAD(t)
	p := newPair(t)
	br := startLLDPAD(t, p.B, p.bName, "bridge", true)
	ag := startEVBAgent(t, p.S, p.sName, wire.EVBModeStation)

	waitFor(t, 15*time.Second, "tether's station receives lldpad's EVB TLV", func() bool {
		peer, _, _ := ag.state()
		return peer != nil
	})
	peer, op, err := ag.state()
	if err != nil {
		t.Fatalf("EVB negotiation with lldpad: %v (peer TLV %+v)", err, peer)
	}
	if peer.Mode != wire.EVBModeBridge || !peer.RRCAP {
		t.Fatalf("lldpad's EVB TLV: %+v, want mode bridge with RRCAP", peer)
	}
	// lldpad answers the station's RRREQ with RRCTR once it has seen it.
	waitFor(t, 10*time.Second, "lldpad sets RRCTR for tether's RRREQ", func() bool {
		peer, op, _ = ag.state()
		return peer.RRCTR && op.ReflectiveRelay
	})
	if op.R != evbConfig.R || op.RTE != evbConfig.RTE || op.RWD != evbConfig.RWD || op.RKA != evbConfig.RKA {
		t.Errorf("operating parameters %+v, want R %d RTE %d RWD %d RKA %d", op, evbConfig.R, evbConfig.RTE, evbConfig.RWD, evbConfig.RKA)
	}
	seen := br.waitPeerEVB(t, "station", 10*time.Second)
	br.waitVDP(t, 10*time.Second)
	t.Logf("tether station sees lldpad's EVB TLV %+v; operating %+v", *peer, op)
	t.Logf("lldpad bridge sees tether's EVB TLV:\n%s", seen)

	ecpSock := listen(t, p.S, p.sName, wire.EtherTypeECP)
	timing := vdpTiming()
	st, err := vdp.NewStation(ecpSock, vdp.StationConfig{
		Name: "s0", LocalMAC: p.macS, Timing: &timing, Logger: quiet(),
		Security: vdp.Security{PeerCapable: func() bool { return false }, RequireSigned: false},
	})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, st.Run)

	// tcpdump records the exchange, and tshark (an independent dissector)
	// judges lldpad's response.
	stopCapture := capture(t, p.S, p.sName, wire.EtherTypeECP)

	v := testVSI(1, 1, testVID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := st.Associate(ctx, mgrID(t), v)
	if err != nil {
		t.Fatalf("ASSOCIATE against lldpad: %v (result %+v)", err, res)
	}
	if !res.Status.IsResponse() || res.Status.Code() != wire.VDPSuccess || res.Status.Keep() || res.Status.Hard() {
		t.Errorf("lldpad's response status %#02x (code %s, keep %v, hard %v), want a plain success response",
			uint8(res.Status), res.Status.Code(), res.Status.Keep(), res.Status.Hard())
	}
	if res.State != vdp.StateAssociated {
		t.Errorf("station state %s, want associated", res.State)
	}
	if len(res.Filters) != 1 || res.Filters[0].VID != testVID || res.Filters[0].MAC != vsiMAC(1) {
		t.Errorf("granted filters %+v, want VID %d MAC %s", res.Filters, testVID, macString(vsiMAC(1)))
	}
	if res.Peer != nil {
		t.Errorf("response verified as signed by %+v; lldpad does not sign", res.Peer)
	}
	if info, ok := st.Lookup(vdp.KeyOf(&v)); !ok || info.State != vdp.StateAssociated {
		t.Errorf("station's VSI after the response: %+v %v", info, ok)
	}
	if stopCapture != nil {
		checkCapturedResponse(t, stopCapture(), p.macB, v.VSIID)
	}
	es := st.Engine().Stats()
	t.Logf("lldpad bridge answered ASSOCIATE of %s: status %#02x (%s); station ECP %+v",
		uuidString(v.VSIID), uint8(res.Status), res.Status.Code(), es)

	// Mixed pair for the figure: N more VSIs submitted at once; tether
	// batches them into shared ECPDUs, which lldpad's bridge must accept.
	// lldpad's bridge answers one VSI per ECPDU and sends one ECPDU per
	// ECP ack timer (2^RTE x 10 us), and with more than about 40 VSIs
	// outstanding it stopped answering (see lldpadMaxPending), so N is
	// capped there.
	n := throughputN()
	if n > lldpadMaxPending {
		t.Logf("mixed measurement capped at %d VSIs (asked for %d): lldpad's bridge loses requests beyond that", lldpadMaxPending, n)
		n = lldpadMaxPending
	}
	window := lldpadMaxPending
	took, order := associateTether(t, st, 3, n, true, window)
	es2 := st.Engine().Stats()
	t.Logf("FIGURE (mixed): tether station vs lldpad bridge, %d VSIs submitted at once: %v, %v per VSI (station sent %d ECPDUs, %d retransmitted; lldpad answered in %d ECPDUs)",
		n, took.Round(time.Microsecond), (took / time.Duration(n)).Round(time.Microsecond),
		es2.TxRequests-es.TxRequests, es2.TxRetransmits-es.TxRetransmits, es2.RxDelivered-es.RxDelivered)
	t.Logf("order in which lldpad's responses arrived (VSI index in submission order): %v", order)
}

// recordingDecider is AcceptAll that records every request.
type recordingDecider struct {
	vdp.AcceptAll
	mu   sync.Mutex
	reqs []vdp.DecideRequest
}

func (d *recordingDecider) Decide(ctx context.Context, r vdp.DecideRequest) vdp.Decision {
	d.mu.Lock()
	d.reqs = append(d.reqs, r)
	d.mu.Unlock()
	return d.AcceptAll.Decide(ctx, r)
}

func (d *recordingDecider) requests() []vdp.DecideRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]vdp.DecideRequest(nil), d.reqs...)
}

// TestLLDPADStationAgainstBridge: lldpad as the EVB station against
// tether's bridge side (lldpagent with the bridge's EVB TLV, vdp.Bridge
// with AcceptAll, unsigned). Asserts: lldpad receives tether's EVB TLV in
// bridge mode with RRCTR answering its RRREQ; tether receives lldpad's in
// station mode; vdptool's ASSOCIATE reaches tether's Decider once with the
// VSIID, manager ID, type and MAC/VID filter vdptool was given and no
// signature; lldpad reports the bridge's response (vdptool -W prints
// "Response from VDP" with mode assoc, the VSI's uuid and the filter), and
// still lists the VSI afterwards (vdptool -t). Then, for the figure, N
// more VSIs queued in lldpad at once must all reach the Decider and get
// tether's success response on the wire; the time is logged.
func TestLLDPADStationAgainstBridge(t *testing.T) {
	requireLLDPAD(t)
	p := newPair(t)
	sta := startLLDPAD(t, p.S, p.sName, "station", true)
	ag := startEVBAgent(t, p.B, p.bName, wire.EVBModeBridge)

	waitFor(t, 15*time.Second, "tether's bridge receives lldpad's EVB TLV", func() bool {
		peer, _, _ := ag.state()
		return peer != nil
	})
	peer, op, err := ag.state()
	if err != nil || peer.Mode != wire.EVBModeStation || !peer.RRREQ {
		t.Fatalf("lldpad's EVB TLV %+v, negotiation error %v; want mode station with RRREQ", peer, err)
	}
	if !op.ReflectiveRelay {
		t.Errorf("tether's bridge did not grant reflective relay: %+v", op)
	}
	seen := sta.waitPeerEVB(t, "bridge", 10*time.Second)
	sta.waitVDP(t, 10*time.Second)
	if !strings.Contains(seen, "rrctr") {
		t.Errorf("lldpad did not see RRCTR in tether's EVB TLV:\n%s", seen)
	}
	t.Logf("tether bridge sees lldpad's EVB TLV %+v; operating %+v", *peer, op)
	t.Logf("lldpad station sees tether's EVB TLV:\n%s", seen)

	ecpSock := listen(t, p.B, p.bName, wire.EtherTypeECP)
	timing := vdpTiming()
	dec := &recordingDecider{AcceptAll: vdp.AcceptAll{VID: 999}}
	var evMu sync.Mutex
	var events []vdp.Event
	br, err := vdp.NewBridge(ecpSock, vdp.BridgeConfig{
		Name: "b0", LocalMAC: p.macB, Timing: &timing, Logger: quiet(), Decider: dec,
		Security: vdp.Security{PeerCapable: func() bool { return false }, RequireSigned: false},
		OnEvent: func(e vdp.Event) {
			evMu.Lock()
			events = append(events, e)
			evMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, br.Run)

	id := vsiUUID(2, 7)
	uuid := uuidString(id)
	mac := vsiMAC(7)
	out, err := sta.associate(mgrName, typeID, uuid, testVID, mac)
	if err != nil {
		t.Fatalf("vdptool associate: %v", err)
	}
	t.Logf("vdptool -T -W:\n%s", out)
	macStr := macString(mac)
	if !strings.Contains(out, "Response from VDP") || !strings.Contains(out, "mode = assoc") ||
		!strings.Contains(out, "uuid = "+uuid) || !strings.Contains(strings.ToLower(out), "filter = 100-"+macStr) {
		t.Errorf("vdptool did not report the bridge's ASSOCIATE response for %s:\n%s", uuid, out)
	}

	reqs := dec.requests()
	if len(reqs) != 1 {
		t.Fatalf("Decider saw %d requests, want 1: %+v", len(reqs), reqs)
	}
	r := reqs[0]
	m := mgrID(t)
	if r.VSI.Mode != wire.VSIAssociate || r.VSI.VSIIDFormat != wire.VSIIDUUID || r.VSI.VSIID != id ||
		r.VSI.VSITypeID != typeID || r.VSI.VSITypeVersion != 1 || r.Manager != m ||
		r.VSI.FilterFormat != wire.FilterMACVID || len(r.VSI.Filters) != 1 ||
		r.VSI.Filters[0].MAC != mac || r.VSI.Filters[0].VID != testVID || r.Peer != nil {
		t.Errorf("Decider's request: %+v (manager %s), want ASSOCIATE of UUID %s, type %d v1, manager %s, filter %d-%s, unsigned",
			r.VSI, r.Manager.String(), uuid, typeID, mgrName, testVID, macStr)
	}
	info, ok := br.Lookup(vdp.Key{Format: wire.VSIIDUUID, ID: id})
	if !ok || info.State != vdp.StateAssociated {
		t.Errorf("bridge's VSI: %+v %v, want associated", info, ok)
	}

	q, err := sta.tool("vdptool", "-i", p.sName, "-t", "-V", "assoc", "-c", "uuid="+uuid)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q, "mode = assoc") || !strings.Contains(q, uuid) {
		t.Errorf("vdptool -t does not list the VSI as associated:\n%s", q)
	}
	t.Logf("vdptool -t:\n%s", q)
	evMu.Lock()
	t.Logf("bridge events: %+v", events)
	evMu.Unlock()

	// Mixed pair for the figure: N more VSIs queued in lldpad at once
	// (vdptool without -W), timed to the last success response of
	// tether's bridge on the wire.
	w := watchResponses(t, p.S, p.sName)
	n := throughputN()
	ids := make([][16]byte, n)
	bs := br.Engine().Stats()
	start := time.Now()
	for i := range n {
		ids[i] = vsiUUID(4, i)
		if out, err := sta.associate(mgrName, typeID, uuidString(ids[i]), testVID, vsiMAC(100+i), false); err != nil {
			t.Fatalf("vdptool VSI %d: %v\n%s", i, err, out)
		}
	}
	last := w.waitAll(t, ids, time.Duration(n)*2*time.Second+10*time.Second)
	took := last.Sub(start)
	if got := len(dec.requests()); got != n+1 {
		t.Errorf("Decider saw %d requests, want %d", got, n+1)
	}
	bs2 := br.Engine().Stats()
	t.Logf("FIGURE (mixed): lldpad station vs tether bridge, %d VSIs queued at once: %v, %v per VSI (lldpad sent %d ECPDUs; tether answered in %d)",
		n, took.Round(time.Millisecond), (took / time.Duration(n)).Round(time.Microsecond),
		bs2.RxDelivered-bs.RxDelivered, bs2.TxRequests-bs.TxRequests)
	kinds := map[vdp.EventKind]int{}
	evMu.Lock()
	for _, e := range events {
		kinds[e.Kind]++
	}
	evMu.Unlock()
	t.Logf("tether bridge events by kind: %v", kinds)
}

// lldpadMaxPending bounds the VSIs tether's station sends to lldpad's
// bridge in the mixed measurement. lldpad's bridge loses requests that
// arrive while it is still answering earlier ones (53 at once in two
// batched ECPDUs: 11 never answered; 30 single-VSI ECPDUs back to back:
// 27 never answered), so l2/vdp's station sends one request at a time,
// each after its answer, to a bridge that is not tether's; with that, 84
// at once were all answered. The bound only keeps the run short.
const lldpadMaxPending = 200

// throughputN is how many VSIs the lldpad pair associates: 15 by default
// (lldpad needs about 164 ms per VSI at RTE 14, and far more once its
// keep-alives compete: 183 s for 200 one at a time on these machines),
// 200 with TETHER_TEST_ALL=1, or TETHER_INTEROP_N.
func throughputN() int {
	if v, err := strconv.Atoi(os.Getenv("TETHER_INTEROP_N")); err == nil && v > 0 {
		return v
	}
	if os.Getenv("TETHER_TEST_ALL") == "1" {
		return 200
	}
	return 15
}

// tetherRun is one measurement of tether station against tether bridge.
type tetherRun struct {
	n       int
	batched bool
	took    time.Duration
	st, br  ecp.Stats
}

func (r tetherRun) perVSI() time.Duration { return r.took / time.Duration(r.n) }

// associateTether associates n fresh VSIs (run tags their VSIIDs) from st,
// all submitted at once (batched, as tetherd does; window > 0 submits
// them in waves of window, each wave after the previous one is answered)
// or one after the other (each waits for its response, as vdptool -W
// does), and checks every answer. It returns the time and the indexes of
// the VSIs in the order their outcomes arrived.
func associateTether(t *testing.T, st *vdp.Station, run byte, n int, batched bool, window int) (time.Duration, []int) {
	t.Helper()
	m := mgrID(t)
	res := make([]vdp.Result, n)
	var (
		orderMu sync.Mutex
		order   []int
	)
	limit := 120 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	if batched {
		if window <= 0 {
			window = n
		}
		for lo := 0; lo < n; lo += window {
			hi := min(n, lo+window)
			var wg sync.WaitGroup
			wg.Add(hi - lo)
			for i := lo; i < hi; i++ {
				if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: m, VSI: testVSI(run, i, testVID)},
					func(r vdp.Result) {
						res[i] = r
						orderMu.Lock()
						order = append(order, i)
						orderMu.Unlock()
						wg.Done()
					}); err != nil {
					t.Fatalf("submit %d: %v", i, err)
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatalf("%d associations did not finish in %v", n, limit)
			}
		}
	} else {
		for i := range n {
			res[i], _ = st.Associate(ctx, m, testVSI(run, i, testVID))
			order = append(order, i)
		}
	}
	took := time.Since(start)
	var failed []int
	for i, r := range res {
		if r.Err != nil || r.State != vdp.StateAssociated || len(r.Filters) != 1 || r.Filters[0].VID != testVID {
			failed = append(failed, i)
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d of %d VSIs not associated (indexes %v); first: %+v", len(failed), n, failed, res[failed[0]])
	}
	return took, order
}

// TestAssociationThroughput is issue 4's figure: association throughput
// on one port, N VSIs associated from empty, (a) tether station against
// tether bridge (l2/vdp over AF_PACKET on a veth pair between two
// namespaces) and (b) lldpad station against lldpad bridge on the same
// kind of veth pair, both with the same EVB timers (R 3, RTE 14, RWD 20,
// RKA 20). lldpad's station is driven the way its own tool does it: one
// vdptool -T -W per VSI, each waiting for the bridge's response. tether
// is measured both ways: all N submitted at once (batched into shared
// ECPDUs, as tetherd does) and one at a time (each waiting for its
// response, like vdptool). It asserts that every VSI was granted on both
// sides and logs the per-VSI times and their ratios; it does not assert
// a ratio (shared CI machines).
func TestAssociationThroughput(t *testing.T) {
	requireLLDPAD(t)
	n := throughputN()

	// (a) tether against tether, a fresh pair for each case so that each
	// starts from empty.
	var runs []tetherRun
	for k, c := range []struct {
		n       int
		batched bool
	}{{n, false}, {n, true}, {200, true}, {4096, true}} {
		runs = append(runs, measureTether(t, byte(10+k), c.n, c.batched))
	}

	// (b) lldpad against lldpad, a fresh pair for each mode so that each
	// starts from empty (lldpad keeps associated VSIs alive, and the
	// keep-alives share its ECP with new requests).
	var lruns []lldpadRun
	for k, wait := range []bool{true, false} {
		lruns = append(lruns, measureLLDPAD(t, byte(22+k), n, wait))
	}

	per := func(d time.Duration, n int) time.Duration { return d / time.Duration(n) }
	tetherPer := map[bool]time.Duration{}
	for _, r := range runs {
		mode := "one at a time (each waits for its response)"
		if r.batched {
			mode = "all submitted at once"
		}
		if r.n == n {
			tetherPer[r.batched] = r.perVSI()
		}
		t.Logf("tether station vs tether bridge, %s: %d VSIs in %v, %v per VSI (station sent %d ECPDUs, %d retransmitted; bridge %d, %d retransmitted)",
			mode, r.n, r.took.Round(time.Microsecond), r.perVSI().Round(time.Microsecond),
			r.st.TxRequests, r.st.TxRetransmits, r.br.TxRequests, r.br.TxRetransmits)
	}
	for _, r := range lruns {
		mode, tp := "vdptool -T -W per VSI, one at a time", tetherPer[false]
		if !r.wait {
			mode, tp = "vdptool -T per VSI without waiting (all queued at once)", tetherPer[true]
		}
		lp := per(r.took, n)
		t.Logf("lldpad station vs lldpad bridge, %s: %d VSIs in %v (to the last success response on the wire), %v per VSI; bridge sent %d VDP ECPDUs; per-VSI ratio lldpad/tether (same N, same mode) %.0f",
			mode, n, r.took.Round(time.Millisecond), lp.Round(time.Microsecond), r.frames, float64(lp)/float64(tp))
		if r.woken > 0 {
			t.Logf("  %d of %d vdptool -W calls returned another VSI's event (vdptool wakes on any VDP event)", r.woken, n)
		}
	}
	if len(lruns) > 0 && len(runs) > 2 {
		t.Logf("FIGURE (issue 4): association time per VSI on one port, N=%d from empty, RTE 14: lldpad/lldpad %v, tether/tether %v (one at a time) and %v (batched); lldpad is %.0fx slower than tether one at a time, %.0fx slower than tether batched; tether batched at N=200: %v per VSI",
			n, per(lruns[0].took, n).Round(time.Microsecond), tetherPer[false].Round(time.Microsecond), tetherPer[true].Round(time.Microsecond),
			float64(per(lruns[0].took, n))/float64(tetherPer[false]), float64(per(lruns[1].took, n))/float64(tetherPer[true]),
			runs[2].perVSI().Round(time.Microsecond))
	}
}

// checkCapturedResponse asks tshark for the VDP requests in the capture
// and requires one from lldpad's MAC that is an ASSOCIATE response
// (Req/Rsp bit set) with error 0 for the VSIID.
func checkCapturedResponse(t *testing.T, pcap string, lldpadMAC [6]byte, id [16]byte) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Log("tshark not installed: capture not dissected")
		return
	}
	out, err := exec.Command("tshark", "-r", pcap, "-Y", "ecp.op == 0", "-T", "fields", "-E", "separator=|",
		"-e", "eth.src", "-e", "ecp.seqno", "-e", "vdp21.tlvtype", "-e", "vdp21.assoc.flags.req_rsp",
		"-e", "vdp21.assoc.error", "-e", "vdp21.VSIID").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	t.Logf("tshark of the ECP requests (src|seq|VDP TLV types|response|error|VSIID):\n%s", out)
	want := strings.ReplaceAll(uuidString(id), "-", "")
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 6 || f[0] != macString(lldpadMAC) {
			continue
		}
		if strings.Contains(f[2], "3") && (f[3] == "1" || f[3] == "True") && (f[4] == "0" || f[4] == "0x00") &&
			strings.ReplaceAll(f[5], ":", "") == want {
			return
		}
	}
	t.Errorf("tshark finds no successful ASSOCIATE response from lldpad (%s) for %s", macString(lldpadMAC), uuidString(id))
}

// lldpadRun is one measurement of lldpad station against lldpad bridge.
type lldpadRun struct {
	wait   bool
	took   time.Duration
	frames int
	woken  int // vdptool -W calls that printed another VSI's event
}

// measureLLDPAD starts lldpad as bridge and as station on a fresh veth
// pair and times n ASSOCIATEs from empty, given with vdptool one after the
// other, each waiting (-W) or not, to the last success response on the
// wire.
func measureLLDPAD(t *testing.T, run byte, n int, wait bool) lldpadRun {
	t.Helper()
	p := newPair(t)
	lbr := startLLDPAD(t, p.B, p.bName, "bridge", false)
	lst := startLLDPAD(t, p.S, p.sName, "station", false)
	lst.waitPeerEVB(t, "bridge", 15*time.Second)
	lbr.waitPeerEVB(t, "station", 15*time.Second)
	w := watchResponses(t, p.S, p.sName)
	// lldpad starts VDP a while after the port comes up and refuses VSI
	// commands until then: associate a probe VSI (retrying while lldpad
	// says VDP is not supported) and de-associate it, so that the
	// measurement starts from empty with both sides ready.
	probeID := vsiUUID(run+100, 0)
	probe := uuidString(probeID)
	waitFor(t, 20*time.Second, "lldpad station and bridge associate a probe VSI", func() bool {
		_, err := lst.associate(mgrName, typeID, probe, testVID, vsiMAC(4000))
		if err != nil && !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("lldpad probe VSI: %v", err)
		}
		return err == nil
	})
	w.waitAll(t, [][16]byte{probeID}, 10*time.Second)
	if out, err := lst.deassociate(mgrName, typeID, probe, testVID, vsiMAC(4000)); err != nil {
		t.Fatalf("lldpad probe VSI de-associate: %v\n%s", err, out)
	}
	framesBefore, _ := w.stats()

	ids := make([][16]byte, n)
	woken := 0
	start := time.Now()
	for i := range n {
		ids[i] = vsiUUID(run, i)
		uuid := uuidString(ids[i])
		out, err := lst.associate(mgrName, typeID, uuid, testVID, vsiMAC(i), wait)
		if err != nil {
			t.Fatalf("lldpad VSI %d: %v", i, err)
		}
		if wait && (!strings.Contains(out, "Response from VDP") || !strings.Contains(out, "uuid = "+uuid)) {
			woken++
		}
	}
	last := w.waitAll(t, ids, time.Duration(n)*2*time.Second+10*time.Second)
	frames, other := w.stats()
	if len(other) > 0 {
		t.Errorf("lldpad's bridge sent non-success responses: %v", other)
	}
	return lldpadRun{wait: wait, took: last.Sub(start), frames: frames - framesBefore, woken: woken}
}

// measureTether runs tether's station against tether's bridge (AcceptAll,
// unsigned) on a fresh veth pair and times n ASSOCIATEs from empty.
func measureTether(t *testing.T, run byte, n int, batched bool) tetherRun {
	t.Helper()
	p := newPair(t)
	timing := vdpTiming()
	sSock := listen(t, p.S, p.sName, wire.EtherTypeECP)
	bSock := listen(t, p.B, p.bName, wire.EtherTypeECP)
	unsigned := vdp.Security{PeerCapable: func() bool { return false }}
	st, err := vdp.NewStation(sSock, vdp.StationConfig{Name: "s0", LocalMAC: p.macS, Timing: &timing, Logger: quiet(), Security: unsigned})
	if err != nil {
		t.Fatal(err)
	}
	br, err := vdp.NewBridge(bSock, vdp.BridgeConfig{Name: "b0", LocalMAC: p.macB, Timing: &timing, Logger: quiet(),
		Security: unsigned, Decider: vdp.AcceptAll{VID: testVID}})
	if err != nil {
		t.Fatal(err)
	}
	runBg(t, st.Run)
	runBg(t, br.Run)
	took, _ := associateTether(t, st, run, n, batched, 0)
	if got := len(br.VSIs()); got != n {
		t.Errorf("tether bridge holds %d VSIs, want %d", got, n)
	}
	return tetherRun{n: n, batched: batched, took: took, st: st.Engine().Stats(), br: br.Engine().Stats()}
}
