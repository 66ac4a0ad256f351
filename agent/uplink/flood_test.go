package uplink_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/apiserver"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/internal/testframes"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// floodKinds name the hostile frames of TestHostileFloodAgainstUplink.
var floodKinds = []string{"lldp-replay", "lldp-bad-signature", "lldp-truncated", "lldp-oversize", "lldp-unknown-key",
	"ecp-replay", "ecp-bad-signature", "ecp-garbage", "ecp-unsigned-response", "ecp-ack-random-seq", "corpus"}

// TestHostileFloodAgainstUplink is the mirror of tether-switchd's hostile
// flood (edge/switchd TestNetnsHostileFlood) on the host side: tetherd's
// uplink (package uplink, the code tetherd runs per uplink) with its
// inventory and its local API (apiserver over a unix socket, queried with
// api.Client as tetherctl does) against a signed switch; from the switch's
// side of the link, with the switch's own MAC (the worst case: everything
// claims to be the switch), about 10,000 hostile LLDP and ECP frames per
// second for 3 s (20 s with TETHER_TEST_ALL=1): replays of the switch's
// real signed LLDPDUs and VDP responses, the same with a bit flipped (bad
// signature), truncated and oversize LLDPDUs, LLDPDUs signed by an
// unknown key, garbage ECPDUs, unsigned VDP responses, ECP ACKs with
// random sequence numbers, the fuzzers' seed frames. Meanwhile VMs are
// added one at a time and each must reach "verified" (the legitimate
// associations of the same uplink complete), the switch must stay the
// uplink's peer, the API must keep answering. Logged: frames sent, what
// the uplink's sockets and ECP engine saw and dropped, the time to
// "verified" per VM without and under the flood (p50 and the ratio), the
// API's latency under the flood.
func TestHostileFloodAgainstUplink(t *testing.T) {
	floodFor := 3 * time.Second
	if os.Getenv("TETHER_TEST_ALL") != "" {
		floodFor = 20 * time.Second
	}
	const rate = 10000
	r := newRig(t)
	sw := r.startSwitch(true, nil)

	// The uplink's sockets, kept to read their kernel counters.
	var sockMu sync.Mutex
	var socks []*rawsock.Socket
	listen := func(ifname string, etherType uint16) (rawsock.Conn, error) {
		c, err := r.host.Listen(ifname, etherType)
		if s, ok := c.(*rawsock.Socket); ok {
			sockMu.Lock()
			socks = append(socks, s)
			sockMu.Unlock()
		}
		return c, err
	}
	up := r.startUplinkWith(true, listen)

	// tetherd's local API on the inventory and the uplink.
	sock := filepath.Join(r.dir, "tetherd.sock")
	ln, err := api.Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&apiserver.Server{Store: r.store, Sources: []apiserver.SourceStatus{up.u},
		Ready: func() bool { return true }, Version: "flood-test", Started: time.Now()}).Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	client := &api.Client{Socket: sock}

	// Capture what the switch sends (its signed LLDPDUs and VDP
	// responses) for the replays.
	tap, err := r.host.Listen("eth0", 0x0003) // ETH_P_ALL
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	var capMu sync.Mutex
	var captured [][]byte
	capCtx, capStop := context.WithCancel(context.Background())
	capDone := make(chan struct{})
	go func() {
		defer close(capDone)
		buf := make([]byte, 2048)
		for {
			n, err := tap.ReadFrame(capCtx, buf)
			if err != nil {
				if capCtx.Err() != nil {
					return
				}
				continue
			}
			var h wire.EthernetHeader
			if _, err := h.Parse(buf[:n]); err != nil || (h.EtherType != wire.EtherTypeLLDP && h.EtherType != wire.EtherTypeECP) {
				continue
			}
			capMu.Lock()
			captured = append(captured, bytes.Clone(buf[:n]))
			capMu.Unlock()
		}
	}()

	// Without the flood: VMs associated one at a time.
	const perPhase = 5
	// associate adds a VM and returns the time until the inventory's
	// event feed reports its VIF verified.
	sub := r.store.Subscribe(4096)
	defer sub.Close()
	associate := func() time.Duration {
		t.Helper()
		start := time.Now()
		_, macs := r.addVM(0)
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev := <-sub.Events():
				if ev.Type == inventory.EventVIFState && ev.VIF.MAC == macs[0] && ev.Transition.To == inventory.StateVerified {
					return time.Since(start)
				}
			case <-timeout:
				r.waitState(macs, inventory.StateVerified, 0) // fails with the VIF's state
			}
		}
	}
	associate() // the first association also waits for the LLDP exchange
	var quiet []time.Duration
	for range 2 * perPhase {
		quiet = append(quiet, associate())
	}
	capStop()
	<-capDone
	capMu.Lock()
	frames := captured
	capMu.Unlock()
	var swLLDP, swECP [][]byte
	for _, f := range frames {
		if binary.BigEndian.Uint16(f[12:14]) == wire.EtherTypeLLDP {
			swLLDP = append(swLLDP, f)
		} else {
			swECP = append(swECP, f)
		}
	}
	if len(swLLDP) == 0 || len(swECP) == 0 {
		t.Fatalf("captured %d LLDP and %d ECP frames of the switch; need both to replay", len(swLLDP), len(swECP))
	}

	// The flood, from the switch's side with the switch's MAC. A 9000-byte
	// MTU on both ends lets oversize frames (up to 3000 bytes) through.
	for _, c := range [][]string{{r.host.Name, "eth0"}, {r.sw.Name, "swp1"}} {
		if out, err := exec.Command("ip", "-n", c[0], "link", "set", "dev", c[1], "mtu", "9000").CombinedOutput(); err != nil {
			t.Fatalf("ip link set mtu: %v: %s", err, out)
		}
	}
	tx, err := r.sw.Listen("swp1", 0x88b7) // an EtherType nobody sends: a sender only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	swMAC := tx.Interface().MAC
	seed := uint64(time.Now().UnixNano())
	t.Logf("hostile frame seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x7e7e))
	pool := floodPool(t, rng, swMAC, swLLDP, swECP)

	st0 := up.u.Station().Engine().Stats()
	k0 := kernelStats(t, &sockMu, socks)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent [11]atomic.Uint64
	var writeErrs atomic.Uint64
	floodDone := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		i := 0
		for time.Since(start) < floodFor && ctx.Err() == nil {
			// One millisecond's share, then wait for the next; at most
			// 64 back to back: a sender that fell behind (descheduled
			// on a loaded machine) does not catch up in one burst, which
			// would overflow the kernel's per-CPU backlog (shared by
			// every namespace) rather than load the uplink.
			due := min(int(time.Since(start).Seconds()*rate)+1, i+64)
			for ; i < due; i++ {
				f := pool[rng.IntN(len(pool))]
				if err := tx.WriteFrame(ctx, f.data); err != nil {
					writeErrs.Add(1)
					continue
				}
				sent[f.kind].Add(1)
			}
			time.Sleep(time.Millisecond)
		}
		floodDone <- time.Since(start)
	}()

	// The API, sampled every 100 ms.
	var apiMu sync.Mutex
	var apiLat []time.Duration
	var apiBad []string
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		for ctx.Err() == nil {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			t0 := time.Now()
			st, err := client.Status(actx)
			_, verr := client.VIFs(actx)
			d := time.Since(t0)
			acancel()
			apiMu.Lock()
			apiLat = append(apiLat, d)
			if ctx.Err() == nil && (err != nil || verr != nil || len(st.Sources) != 1 || !st.Sources[0].Connected) {
				apiBad = append(apiBad, fmt.Sprintf("%v: status %+v err %v / %v", d, st.Sources, err, verr))
			}
			apiMu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	var flooded []time.Duration
	floodStart := time.Now()
	for len(flooded) < perPhase || time.Since(floodStart) < floodFor/2 {
		flooded = append(flooded, associate())
		if time.Since(floodStart) > floodFor {
			break
		}
	}
	took := <-floodDone
	cancel()
	<-apiDone
	time.Sleep(300 * time.Millisecond)

	// After the flood: the switch is still the peer, the first VMs are
	// still verified, one more VM associates.
	if s := up.u.Status(); !s.Connected {
		t.Errorf("uplink status after the flood: %+v", s)
	}
	after := associate()
	snap, err := r.store.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range snap.VIFs {
		if v.State != inventory.StateVerified {
			t.Errorf("VIF %s is %s after the flood (%q)", v.MAC, v.State, v.Last.Reason)
		}
	}
	if n := len(sw.Bridge.VSIs()); n != len(snap.VMs) {
		t.Errorf("the switch holds %d VSIs, the inventory %d VMs", n, len(snap.VMs))
	}
	apiMu.Lock()
	if len(apiBad) > 0 {
		t.Errorf("%d of %d API samples failed during the flood; first: %s", len(apiBad), len(apiLat), apiBad[0])
	}
	// A loose bound: under -race on a loaded machine a sample can take
	// seconds, but the API must answer during the flood.
	if len(apiLat) < 2 {
		t.Errorf("only %d API samples in a %v flood", len(apiLat), floodFor)
	}
	apiMu.Unlock()

	var total uint64
	var byKind []string
	for k, name := range floodKinds {
		n := sent[k].Load()
		total += n
		byKind = append(byKind, fmt.Sprintf("%s=%d", name, n))
	}
	st1 := up.u.Station().Engine().Stats()
	k1 := kernelStats(t, &sockMu, socks)
	pq, pf := pct(quiet, 0.5), pct(flooded, 0.5)
	t.Logf("flood: %d frames in %v (%.0f/s), %d write errors: %v", total, took.Round(time.Millisecond),
		float64(total)/took.Seconds(), writeErrs.Load(), byKind)
	t.Logf("uplink's sockets (kernel): %d frames delivered, %d dropped by the kernel (socket queue full) during the flood",
		k1.Packets-k0.Packets, k1.Drops-k0.Drops)
	t.Logf("uplink's ECP engine during the flood: requests %d (duplicates %d, delivered %d), malformed %d, acks in %d, ignored %d, tx %d, retransmits %d, give-ups %d",
		st1.RxRequests-st0.RxRequests, st1.RxDuplicates-st0.RxDuplicates, st1.RxDelivered-st0.RxDelivered,
		st1.RxMalformed-st0.RxMalformed, st1.RxAcks-st0.RxAcks, st1.RxIgnored-st0.RxIgnored,
		st1.TxRequests-st0.TxRequests, st1.TxRetransmits-st0.TxRetransmits, st1.TxGiveUps-st0.TxGiveUps)
	t.Logf("FIGURE (flood vs tetherd's uplink): time from a VM in the inventory to verified: without flood p50 %v p90 %v max %v (n=%d); under %d/s hostile frames p50 %v p90 %v max %v (n=%d); p50 ratio flood/quiet %.2f; after the flood %v",
		pq.Round(time.Microsecond), pct(quiet, 0.9).Round(time.Microsecond), pct(quiet, 1).Round(time.Microsecond), len(quiet), rate,
		pf.Round(time.Microsecond), pct(flooded, 0.9).Round(time.Microsecond), pct(flooded, 1).Round(time.Microsecond), len(flooded),
		float64(pf)/float64(pq), after.Round(time.Microsecond))
	apiMu.Lock()
	t.Logf("local API (GET /v1/status + GET /v1/vifs) under the flood: %d samples, p50 %v, max %v", len(apiLat),
		pct(apiLat, 0.5).Round(time.Microsecond), pct(apiLat, 1).Round(time.Microsecond))
	apiMu.Unlock()
}

// startUplinkWith is startUplink with the uplink's sockets opened by
// listen.
func (r *rig) startUplinkWith(requireSigned bool, listen func(string, uint16) (rawsock.Conn, error)) *running {
	r.t.Helper()
	saved := r.listen
	r.listen = listen
	defer func() { r.listen = saved }()
	return r.startUplink(requireSigned)
}

// floodFrame is one hostile frame and its kind (index in floodKinds).
type floodFrame struct {
	kind int
	data []byte
}

// floodPool builds the hostile frames, all from src (the switch's MAC) to
// the nearest customer bridge address.
func floodPool(t *testing.T, rng *rand.Rand, src [6]byte, swLLDP, swECP [][]byte) []floodFrame {
	t.Helper()
	ncb := wire.NearestCustomerBridge
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	flip := func(f []byte) []byte {
		f = bytes.Clone(f)
		i := 14 + rng.IntN(len(f)-14)
		f[i] ^= 1 << rng.IntN(8)
		return f
	}
	pad := func(f []byte) []byte {
		for len(f) < testframes.MinFrameLen {
			f = append(f, 0)
		}
		return f
	}
	hdr := func(et uint16) []byte {
		h := wire.EthernetHeader{Dst: ncb, Src: src, EtherType: et}
		return h.Append(nil)
	}
	var out []floodFrame
	add := func(kind string, f []byte) {
		out = append(out, floodFrame{kind: slices.Index(floodKinds, kind), data: f})
	}
	for i := 0; i < 64; i++ {
		l := swLLDP[rng.IntN(len(swLLDP))]
		e := swECP[rng.IntN(len(swECP))]
		add("lldp-replay", l)
		add("lldp-bad-signature", flip(l))
		add("lldp-truncated", pad(bytes.Clone(l[:14+rng.IntN(len(l)-14)])))
		add("lldp-oversize", append(bytes.Clone(l[:len(l)-2]), junk(1500+rng.IntN(1500))...))
		add("ecp-replay", e)
		add("ecp-bad-signature", flip(e))
		add("ecp-garbage", pad(append(hdr(wire.EtherTypeECP), junk(rng.IntN(200))...)))
		// An ACK: version 1, op ACK, subtype VDP, a random sequence.
		ack := binary.BigEndian.AppendUint16(hdr(wire.EtherTypeECP), uint16(wire.ECPVersion)<<12|uint16(wire.ECPAck)<<10|uint16(wire.ECPSubtypeVDP))
		add("ecp-ack-random-seq", pad(binary.BigEndian.AppendUint16(ack, uint16(rng.Uint32()))))
	}
	// LLDPDUs signed by a key the uplink does not know (testframes' key),
	// and unsigned VDP responses for VSIs the uplink never asked for.
	pdu, err := testframes.StationLLDPDU().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		f, err := testframes.Sign(ncb, src, wire.EtherTypeLLDP, pdu, uint64(100+i))
		if err != nil {
			t.Fatal(err)
		}
		add("lldp-unknown-key", f)
		mgr, _ := wire.ManagerIDFromString("tether")
		v := wire.VSI{Mode: wire.VSIAssociate, Status: wire.ResponseStatus(wire.VDPSuccess, false, false), VSITypeID: 1, VSITypeVersion: 1,
			VSIIDFormat: wire.VSIIDUUID, VSIID: [16]byte(junk(16)), FilterFormat: wire.FilterMACVID,
			Filters: []wire.Filter{{MAC: [6]byte{0x52, 0x54, 0, 9, 9, byte(i)}, VID: 100}}}
		p := wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: uint16(rng.Uint32()), VDP: &wire.VDPDU{TLVs: []wire.TLV{&mgr, &v}}}
		b, err := p.AppendBinary(hdr(wire.EtherTypeECP))
		if err != nil {
			t.Fatal(err)
		}
		add("ecp-unsigned-response", pad(b))
	}
	all, err := testframes.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, nf := range all {
		f := bytes.Clone(nf.Data)
		if len(f) >= 12 {
			copy(f[0:6], ncb[:])
			copy(f[6:12], src[:])
		}
		add("corpus", pad(f))
	}
	for _, f := range out {
		if f.kind < 0 {
			t.Fatal("unknown flood kind")
		}
	}
	return out
}

// kernelStats sums the kernel counters of the uplink's sockets.
func kernelStats(t *testing.T, mu *sync.Mutex, socks []*rawsock.Socket) rawsock.KernelStats {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	var sum rawsock.KernelStats
	for _, s := range socks {
		st, err := s.KernelStats()
		if err != nil && !errors.Is(err, rawsock.ErrClosed) {
			t.Logf("kernel stats: %v", err)
		}
		sum.Packets += st.Packets
		sum.Drops += st.Drops
	}
	return sum
}

// pct returns the q-quantile of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
