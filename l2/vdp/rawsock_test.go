//go:build linux

package vdp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// A rawsock Conn is an ECP Link as it is.
var _ ecp.Link = rawsock.Conn(nil)

// TestRawsockAssociate4096 is TestVethAssociate4096/unsigned on
// l2/rawsock's AF_PACKET Socket, the daemons' transport.
func TestRawsockAssociate4096(t *testing.T) {
	ns := ecptest.NewVethNS(t)
	var socks [2]*rawsock.Socket
	for i, ifname := range []string{ns.A, ns.B} {
		var err error
		if nerr := ns.Do(func() error {
			socks[i], err = rawsock.Listen(ifname, wire.EtherTypeECP, rawsock.Options{})
			return nil
		}); nerr != nil {
			t.Fatal(nerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = socks[i].Close() })
	}
	dec := &countingDecider{AcceptAll: vdp.AcceptAll{VID: 100, Profile: testProfile()}}
	st, err := vdp.NewStation(socks[0], vdp.StationConfig{Name: ns.A, LocalMAC: socks[0].Interface().MAC, Timing: &wireTiming, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	br, err := vdp.NewBridge(socks[1], vdp.BridgeConfig{Name: ns.B, LocalMAC: socks[1].Interface().MAC, Timing: &wireTiming,
		Logger: quiet, Decider: dec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = st.Run(ctx) }()
	go func() { defer wg.Done(); _ = br.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	const n = 4096
	res, took := associateAll(t, st, n)
	for i, r := range res {
		if r.Err != nil || r.Filters[0].VID != 100 {
			t.Fatalf("VSI %d: %+v", i, r)
		}
	}
	if c := dec.counts(); len(c) != n {
		t.Errorf("bridge decided %d VSIs, want %d", len(c), n)
	}
	t.Logf("rawsock: %d VSIs associated from empty in %v (%.0f VSIs/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
}
