package switchd

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/wire"
)

// framesOut returns how many LLDPDUs s's LLDP agent has sent.
func (s *station) framesOut() uint64 {
	s.mu.Lock()
	ag := s.agent
	s.mu.Unlock()
	return ag.Stats().FramesOut
}

// TestEnrolmentRechecksRefusedLLDPDU: a host whose LLDPDU was refused
// for an unknown key is the port's LLDP neighbour as soon as SetHostKeys
// enrols its key, without another LLDPDU from it (tetherd sends one every
// 30 s), and its claims are verified at once.
func TestEnrolmentRechecksRefusedLLDPDU(t *testing.T) {
	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(nil)
	p := r.ports["p1"]
	// LLDP every hour: after its fast start the station is silent.
	s := newStation(t, hv1, r.swKey.Public(), p.hostLLDP, p.hostECP, memTiming, time.Hour)
	s.start()
	waitFor(t, 5*time.Second, "hv1's LLDPDU refused as unknown-key", func() bool {
		_, n := countRejects(r.d, "p1", verify.ReasonUnknownKey.String())
		return n > 0
	})
	// Wait for the end of the station's fast start: no LLDPDU for 2 s
	// (fast transmissions are 1 s apart).
	sent := s.framesOut()
	for quiet := time.Now(); time.Since(quiet) < 2*time.Second; time.Sleep(50 * time.Millisecond) {
		if n := s.framesOut(); n != sent {
			sent, quiet = n, time.Now()
		}
	}
	_, refused := countRejects(r.d, "p1", verify.ReasonUnknownKey.String())
	if _, ok := r.d.neighbours.Neighbour("p1"); ok {
		t.Fatal("a neighbour on p1 before hv1 is enrolled")
	}

	if err := r.d.SetHostKeys(context.Background(), map[string]ed25519.PublicKey{"hv1": hv1.key.Public()}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 3*time.Second, "hv1 the neighbour of p1 after its enrolment", func() bool {
		nb, ok := r.d.neighbours.Neighbour("p1")
		return ok && nb.Host == "hv1" && nb.Signed && nb.Key == hv1.key.ID()
	})
	t.Logf("SetHostKeys to hv1 the neighbour of p1: %v", time.Since(t0).Round(100*time.Microsecond))
	if n := s.framesOut(); n != sent {
		t.Fatalf("the station sent %d LLDPDUs meanwhile: the neighbour may come from a new one", n-sent)
	}
	if _, n := countRejects(r.d, "p1", verify.ReasonUnknownKey.String()); n != refused {
		t.Fatalf("LLDP unknown-key refusals went from %d to %d", refused, n)
	}
	if res := s.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil || !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("VM1 after enrolment: %+v (rejects %+v)", res, r.d.Rejects())
	}
}
