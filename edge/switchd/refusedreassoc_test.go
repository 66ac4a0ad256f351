package switchd

import (
	"context"
	"crypto/ed25519"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// TestRefusedThenEnrolledAssociates: a station whose signed claims were
// refused as unknown-key (no answer: its requests stay outstanding until
// its response timeout) gets an answer to its next ASSOCIATE once its key
// is enrolled: a refusal leaves nothing behind in ECP's duplicate
// detection (the refused frames were ACKed and delivered) nor in the
// bridge's VSI states. TETHER_REPRO_N repeats it (default 1).
func TestRefusedThenEnrolledAssociates(t *testing.T) {
	n := 1
	if v, err := strconv.Atoi(os.Getenv("TETHER_REPRO_N")); err == nil && v > 0 {
		n = v
	}
	for i := range n {
		refusedThenEnrolled(t, i)
	}
}

func refusedThenEnrolled(t *testing.T, iter int) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	for v := 1; v <= 4; v++ {
		r.vmm.set("hv1", uuidN(v), verify.VMRunning, macN(v))
	}
	r.start(nil)
	defer r.stop()
	p := r.ports["p1"]
	s := newStation(t, hv1, r.swKey.Public(), p.hostLLDP, p.hostECP, memTiming, time.Second)
	s.start()
	defer func() { s.stopVDP(); s.stopLLDP() }()
	waitFor(t, 5*time.Second, "hv1's LLDPDU refused as unknown-key", func() bool {
		_, n := countRejects(r.d, "p1", verify.ReasonUnknownKey.String())
		return n > 0
	})
	for _, vm := range []int{3, 4} {
		before, _ := countRejects(r.d, "p1", verify.ReasonUnknownKey.String())
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := s.st.Do(ctx, vdp.Request{Mode: wire.VSIAssociate, Manager: stationMgr, VSI: vsiOf(uuidN(vm), macN(vm), 0, 1)})
		cancel()
		if err == nil {
			t.Fatalf("iteration %d: VM%d accepted before enrolment", iter, vm)
		}
		waitFor(t, 3*time.Second, "an unknown-key frame refusal", func() bool {
			after, _ := countRejects(r.d, "p1", verify.ReasonUnknownKey.String())
			return after > before
		})
	}
	if err := r.d.SetHostKeys(context.Background(), map[string]ed25519.PublicKey{"hv1": hv1.key.Public()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "hv1 the neighbour", func() bool {
		nb, ok := r.d.neighbours.Neighbour("p1")
		return ok && nb.Host == "hv1"
	})
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := s.st.Do(ctx, vdp.Request{Mode: wire.VSIAssociate, Manager: stationMgr, VSI: vsiOf(uuidN(2), macN(2), 0, 1)})
	cancel()
	if err != nil || res.Err != nil {
		r.d.mu.Lock()
		pt := r.d.ports["p1"]
		r.d.mu.Unlock()
		pt.mu.Lock()
		br := pt.bridge
		pt.mu.Unlock()
		var swStats any
		var held any
		if br != nil {
			swStats, held = br.Engine().Stats(), br.VSIs()
		}
		t.Fatalf("iteration %d: VM2 after enrolment: %v / %+v after %v\nstation ECP %+v\nswitch ECP %+v\nswitch VSIs %+v\nrejects %+v",
			iter, err, res, time.Since(t0), s.st.Engine().Stats(), swStats, held, r.d.Rejects())
	}
	t.Logf("iteration %d: VM2 answered after %v", iter, time.Since(t0).Round(time.Millisecond))
}
