package vdp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
)

// BenchmarkAssociate4096 associates 4,096 VSIs from empty per iteration, a
// fresh station against a fresh bridge (AcceptAll with a profile), and
// reports VSIs/s:
//
//   - pipe: in-memory link, unsigned;
//   - pipe-signed: in-memory link, Ed25519 with in-memory counter stores
//     (the cost of signing and verifying alone);
//   - veth: AF_PACKET on a veth pair in a network namespace, unsigned
//     (root only);
//   - veth-signed: the same with file counter stores on disk, one fsync
//     per verified frame (root only).
func BenchmarkAssociate4096(b *testing.B) {
	const n = 4096
	run := func(b *testing.B, links func() [2]ecp.Link, macs [2][6]byte, sec func() [2]vdp.Security) {
		b.ReportAllocs()
		var total time.Duration
		for range b.N {
			l := links()
			var s [2]vdp.Security
			if sec != nil {
				s = sec()
			}
			st, err := vdp.NewStation(l[0], vdp.StationConfig{LocalMAC: macs[0], Timing: &wireTiming, Logger: quiet, Security: s[0]})
			if err != nil {
				b.Fatal(err)
			}
			br, err := vdp.NewBridge(l[1], vdp.BridgeConfig{LocalMAC: macs[1], Timing: &wireTiming, Logger: quiet, Security: s[1],
				Decider: vdp.AcceptAll{VID: 100, Profile: testProfile()}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); _ = st.Run(ctx) }()
			go func() { defer wg.Done(); _ = br.Run(ctx) }()
			res, took := associateAll(b, st, n)
			cancel()
			wg.Wait()
			for i, r := range res {
				if r.Err != nil {
					b.Fatalf("VSI %d: %v", i, r.Err)
				}
			}
			total += took
		}
		b.ReportMetric(float64(n*b.N)/total.Seconds(), "VSIs/s")
	}
	pipe := func() [2]ecp.Link { a, c := ecptest.Pipe(0); return [2]ecp.Link{a, c} }
	memSigned := func() [2]vdp.Security { k := newKeys(b); return [2]vdp.Security{k.station, k.bridge} }
	b.Run("pipe", func(b *testing.B) { run(b, pipe, [2][6]byte{stationMAC, bridgeMAC}, nil) })
	b.Run("pipe-signed", func(b *testing.B) { run(b, pipe, [2][6]byte{stationMAC, bridgeMAC}, memSigned) })
	b.Run("veth", func(b *testing.B) {
		pl := openVeth(b)
		run(b, func() [2]ecp.Link { return [2]ecp.Link{pl[0], pl[1]} }, [2][6]byte{pl[0].MAC(), pl[1].MAC()}, nil)
	})
	b.Run("veth-signed", func(b *testing.B) {
		pl := openVeth(b)
		files := func() [2]vdp.Security {
			r := newWireRig(b, pl, true)
			return [2]vdp.Security{r.ss.security("ecpa"), r.bs.security("ecpb")}
		}
		run(b, func() [2]ecp.Link { return [2]ecp.Link{pl[0], pl[1]} }, [2][6]byte{pl[0].MAC(), pl[1].MAC()}, files)
	})
}
