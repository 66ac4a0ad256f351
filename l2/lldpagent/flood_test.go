//go:build linux

package lldpagent

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/wire"
)

// floodFrames builds a cycle of hostile frames: valid LLDPDUs from
// ever-new chassis IDs, shutdowns of unknown neighbours, frames for another
// agent's destination, truncated and garbage LLDPDUs, TLVs whose length
// runs past the frame, and 4000-byte jumbo frames.
func floodFrames(t *testing.T, src [6]byte, n int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	hdr := func(dst [6]byte) []byte {
		h := wire.EthernetHeader{Dst: dst, Src: src, EtherType: wire.EtherTypeLLDP}
		return h.Append(nil)
	}
	randID := func() string {
		b := make([]byte, 8)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return string(b)
	}
	out := make([][]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		var f []byte
		switch i % 8 {
		case 0: // valid, new neighbour
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "flood", "flood", 120))
		case 1: // shutdown of a random neighbour
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "flood", "", 0))
		case 2: // another agent's destination
			f = frameFor(t, wire.NearestNonTPMRBridge, src, testPDU(randID(), "flood", "", 120))
		case 3: // truncated inside the Port ID TLV
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "flood-port", "", 120))[:14+14]
		case 4: // garbage
			f = hdr(wire.NearestBridge)
			for j := 0; j < 46+int(rng.UintN(200)); j++ {
				f = append(f, byte(rng.UintN(256)))
			}
		case 5: // a System Name TLV whose length runs past the frame
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "p", "", 120))
			f = append(f[:len(f)-2], 0x0b, 0xff, 'x') // type 5, length 511
		case 6: // oversize: a jumbo frame of valid-looking TLVs
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "p", "", 120))
			f = f[:len(f)-2]
			for len(f) < 4000 {
				f = append(f, 0xfe, 0x04, 0x00, 0x80, 0xc2, 0x77) // org TLV, unknown subtype
			}
			f = append(f, 0, 0)
		case 7: // a second mandatory TLV
			f = frameFor(t, wire.NearestBridge, src, testPDU(randID(), "p", "", 120))
			f = append(f[:len(f)-2], 0x06, 0x02, 0x00, 0x10, 0, 0) // TTL again
		}
		out = append(out, f)
	}
	return out
}

// vethDropped returns the drop counters of a veth end.
func vethDropped(t *testing.T, ns *netnstest.NS, ifname string) (rx, tx uint64) {
	t.Helper()
	var links []struct {
		Stats64 struct {
			RX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
			TX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	out := netnstest.Run(t, "ip", "-n", ns.Name, "-s", "-j", "link", "show", ifname)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show %s: %v\n%s", ifname, err, out)
	}
	return links[0].Stats64.RX.Dropped, links[0].Stats64.TX.Dropped
}

// TestFloodIsolation floods one port with 10,000 hostile frames per second
// while the agent of another port must keep its neighbour (TTL 3 s) alive
// and keep transmitting. TETHER_TEST_ALL=1 floods for 20 s instead of 2 s.
func TestFloodIsolation(t *testing.T) {
	netnstest.Require(t)
	const rate = 10000
	dur := 2 * time.Second
	if os.Getenv("TETHER_TEST_ALL") != "" {
		dur = 20 * time.Second
	}
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a1", nsB, "b1", "mtu", "9000") // the flooded port
	netnstest.Veth(t, nsA, "a2", nsB, "b2")                // the quiet port
	sA1, sA2, sB2 := listenIn(t, nsA, "a1"), listenIn(t, nsA, "a2"), listenIn(t, nsB, "b2")
	flooder := listenIn(t, nsB, "b1")

	a1, err := New(sA1, Config{Build: macInfo(sA1, "victim").build, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	log2 := newEventLog()
	a2, err := New(sA2, Config{Build: macInfo(sA2, "victim").build, Logger: quiet(), OnEvent: log2.add})
	if err != nil {
		t.Fatal(err)
	}
	// B2's TTL is 3 s: A2 loses it unless it keeps reading its port.
	b2, err := New(sB2, Config{Build: macInfo(sB2, "keeper").build, Logger: quiet(), TxInterval: time.Second, TxHold: 2})
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, a1)
	startAgent(t, a2)
	startAgent(t, b2)
	log2.waitEvent(t, NeighborAdded, 2*time.Second)
	waitFor(t, func() bool { return len(b2.Neighbors()) == 1 })

	frames := floodFrames(t, flooder.Interface().MAC, 4096)
	ctx := context.Background()
	var sent, failed uint64
	stopWatch := make(chan struct{})
	watchErr := make(chan string, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopWatch:
				watchErr <- ""
				return
			case <-tick.C:
				if len(a2.Neighbors()) != 1 || len(b2.Neighbors()) != 1 {
					watchErr <- "the quiet port lost its neighbour during the flood"
					return
				}
			}
		}
	}()
	start := time.Now()
	for {
		el := time.Since(start)
		if el >= dur {
			break
		}
		for want := uint64(el.Seconds() * rate); sent+failed < want; {
			if err := flooder.WriteFrame(ctx, frames[(sent+failed)%uint64(len(frames))]); err != nil {
				failed++
			} else {
				sent++
			}
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	close(stopWatch)
	if msg := <-watchErr; msg != "" {
		t.Fatal(msg)
	}
	time.Sleep(300 * time.Millisecond) // let a1 drain its queue

	achieved := float64(sent) / elapsed.Seconds()
	t.Logf("flood: %d frames in %v (%.0f/s), %d write errors", sent, elapsed.Round(time.Millisecond), achieved, failed)
	if failed != 0 {
		t.Errorf("%d flood writes failed", failed)
	}
	if achieved < 0.95*rate {
		t.Errorf("flood reached only %.0f frames/s, want %d", achieved, rate)
	}

	// The quiet port never lost or re-learned its neighbour.
	for _, ev := range log2.all() {
		if ev.Kind != NeighborAdded || ev.Neighbor.SystemName() != "keeper" {
			t.Errorf("quiet port event %v %q", ev.Kind, ev.Neighbor.SystemName())
		}
	}
	if s := a2.Stats(); s.Malformed != 0 || s.Receive.Dropped() != 0 {
		t.Errorf("quiet port stats %+v", s)
	}

	// The flooded port accounts for every frame.
	s := a1.Stats()
	r := s.Receive
	t.Logf("flooded port: received %d, delivered %d, rate-limited %d, queue-full %d, oversize %d, kernel drops %d",
		r.Received, r.Delivered, r.RateLimited, r.QueueFull, r.Oversize, r.KernelDrops)
	t.Logf("flooded port agent: in %d, malformed %d, other-destination %d, too-many %d, neighbours %d",
		s.FramesIn, s.Malformed, s.OtherDestination, s.TooManyNeighbors, s.Neighbors)
	if r.Received != r.Delivered+r.RateLimited+r.QueueFull+r.Oversize {
		t.Errorf("receive budget: %d received != %d delivered + %d rate-limited + %d queue-full + %d oversize",
			r.Received, r.Delivered, r.RateLimited, r.QueueFull, r.Oversize)
	}
	if r.Delivered != s.FramesIn+s.Malformed+s.Rejected+s.OtherDestination {
		t.Errorf("agent: %d delivered != %d in + %d malformed + %d rejected + %d other destination",
			r.Delivered, s.FramesIn, s.Malformed, s.Rejected, s.OtherDestination)
	}
	rxDrop, _ := vethDropped(t, nsA, "a1")
	_, txDrop := vethDropped(t, nsB, "b1")
	if got := r.KernelPackets + rxDrop + txDrop; got != sent || r.KernelPackets != r.Received+r.KernelDrops {
		t.Errorf("sent %d; the kernel saw %d at the socket (%d read, %d dropped) and veth dropped %d+%d",
			sent, r.KernelPackets, r.Received, r.KernelDrops, rxDrop, txDrop)
	}
	if r.RateLimited == 0 || r.Oversize == 0 || s.Malformed == 0 || s.OtherDestination == 0 {
		t.Errorf("flood not seen where expected: %+v", s)
	}
	if budget := uint64(dur.Seconds()*1.2*200) + 100; r.Delivered > budget {
		t.Errorf("%d frames reached the decoder, the budget allows about %d", r.Delivered, budget)
	}
	if s.Neighbors > DefaultMaxNeighbors {
		t.Errorf("%d neighbours, bound is %d", s.Neighbors, DefaultMaxNeighbors)
	}
}
