package vdp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// associateAll associates n VSIs (null VID) concurrently and returns the
// results and the time taken.
func associateAll(t testing.TB, st *vdp.Station, n int) ([]vdp.Result, time.Duration) {
	t.Helper()
	res := make([]vdp.Result, n)
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := range n {
		if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: testVSI(uint32(i), 0)},
			func(r vdp.Result) { res[i] = r; wg.Done() }); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("associations did not finish in 60 s")
	}
	return res, time.Since(start)
}

// TestPairAssociate runs a station against a bridge with AcceptAll: every
// VSI is associated with the assigned VID and the profile, batches are
// used, and both sides agree on the state.
func TestPairAssociate(t *testing.T) {
	bev := newEvents()
	st, br, _, _ := pair(t, vdp.StationConfig{Name: "st", Timing: &fast},
		vdp.BridgeConfig{Name: "br", Timing: &fast, OnEvent: bev.hook})
	runBg(t, st.Run)
	runBg(t, br.Run)
	const n = 500
	res, took := associateAll(t, st, n)
	for i, r := range res {
		if r.Err != nil || r.State != vdp.StateAssociated || len(r.Filters) != 1 || r.Filters[0].VID != 100 ||
			r.Profile == nil || r.Profile.Name != "web" {
			t.Fatalf("VSI %d: %+v", i, r)
		}
	}
	if got := bev.count(vdp.EventAssociated); got != n {
		t.Errorf("bridge reported %d associations, want %d", got, n)
	}
	if got := len(br.VSIs()); got != n {
		t.Errorf("bridge holds %d VSIs", got)
	}
	ss, bs := st.Engine().Stats(), br.Engine().Stats()
	t.Logf("%d VSIs in %v: station sent %d ECPDUs, bridge %d; retransmissions %d/%d",
		n, took, ss.TxRequests, bs.TxRequests, ss.TxRetransmits, bs.TxRetransmits)
	if ss.TxRequests >= n/4 {
		t.Errorf("station sent %d ECPDUs for %d VSIs: not batched", ss.TxRequests, n)
	}
	info, found := st.Lookup(vdp.KeyOf(&wire.VSI{VSIIDFormat: wire.VSIIDUUID, VSIID: testVSI(7, 0).VSIID}))
	if !found || info.State != vdp.StateAssociated || info.VSI.Filters[0].VID != 100 {
		t.Errorf("station's VSI 7: %+v %v", info, found)
	}

	// De-associate them all.
	ctx := context.Background()
	for i := range 10 {
		v := testVSI(uint32(i), 0)
		r, err := st.Deassociate(ctx, mgr, v)
		if err != nil || r.State != vdp.StateNone {
			t.Fatalf("de-associate %d: %+v %v", i, r, err)
		}
	}
	if got := len(br.VSIs()); got != n-10 {
		t.Errorf("bridge holds %d VSIs after 10 de-associations", got)
	}
	if _, err := st.Deassociate(ctx, mgr, testVSI(3, 0)); !errors.Is(err, vdp.ErrNotAssociated) {
		t.Errorf("second de-associate: %v", err)
	}
}
