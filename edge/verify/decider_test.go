package verify_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// fastTiming is a VDP timing for real-clock tests (ACK timer 1.28 ms,
// resource wait 1.3 s).
var fastTiming = vdp.Timing{R: 3, RTE: 7, RWD: 17, RKA: 20}

// bridgePair runs a signing VDP station of s and a bridge of the verifier
// on channel over an in-memory link.
func bridgePair(t *testing.T, w *world, s *station, channel string) *vdp.Station {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, b := ecptest.Pipe(0)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	capable := func() bool { return true }
	st, err := vdp.NewStation(a, vdp.StationConfig{Name: s.name, LocalMAC: s.mac, Timing: &fastTiming, Logger: quiet,
		Security: vdp.Security{Sign: vdp.IdentitySigner(s.signer, channel), PeerCapable: capable}})
	if err != nil {
		t.Fatal(err)
	}
	br, err := vdp.NewBridge(b, vdp.BridgeConfig{Name: channel, LocalMAC: [6]byte{0x02, 0xbb, 0, 0, 0, 1}, Timing: &fastTiming,
		Logger:   quiet,
		Security: vdp.Security{Verify: vdp.IdentityVerifier(w.v.Signatures(), channel), PeerCapable: capable},
		Decider:  w.v.Decider(verify.DeciderConfig{}),
		OnEvent:  w.v.BridgeEvents(channel, nil)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	for _, run := range []func(context.Context) error{st.Run, br.Run} {
		go func() { _ = run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		a.Close()
		<-done
		<-done
	})
	return st
}

// TestBridgeEndToEnd runs real VDP stations against bridges whose Decider
// is the verifier: host A's ASSOCIATE is granted and its MAC live, host
// B's claim on host A's port is refused with a hard error, and the
// station's DE-ASSOCIATE (which the bridge handles without the Decider)
// releases the MAC through BridgeEvents.
func TestBridgeEndToEnd(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	mgr, err := wire.ManagerIDFromString("tether")
	if err != nil {
		t.Fatal(err)
	}
	stA := bridgePair(t, w, w.a, "swp1/svid=10")
	r, err := stA.Associate(ctx, mgr, assocVSI(wire.VSIAssociate, vmA1, 100, macA1))
	if err != nil || r.State != vdp.StateAssociated {
		t.Fatalf("host A: %+v %v", r, err)
	}
	if loc, ok, _ := w.locs.Lookup(ctx, macA1); !ok || loc.Port != "swp1" || loc.Host != "hostA" {
		t.Fatalf("location %+v %v", loc, ok)
	}
	if n, ok, _ := w.stags.Lookup(ctx, "swp1", 10); !ok || n.VM != vmA1 {
		t.Fatalf("S-Tag 10: %+v %v", n, ok)
	}

	stB := bridgePair(t, w, w.b, "swp1/svid=11")
	_, err = stB.Associate(ctx, mgr, assocVSI(wire.VSIAssociate, vmB2, 100, macB2))
	var re *vdp.ResponseError
	if !errors.As(err, &re) || re.Code() != wire.VDPOtherFailure || !re.Hard() {
		t.Fatalf("host B on host A's port: %v", err)
	}
	if w.v.Refused(verify.ReasonKeyNotEnrolledForHost) != 1 {
		t.Errorf("stats %+v", w.v.Stats())
	}

	if _, err := stA.Deassociate(ctx, mgr, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.locs.Len() != 0 || w.stags.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not released: %d locations, %d S-Tags", w.locs.Len(), w.stags.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeciderPolicyRefusal: when the policy after the verifier refuses,
// the verifier's association is released.
func TestDeciderPolicyRefusal(t *testing.T) {
	w := newWorld(t, worldOptions{})
	policy := vdp.DeciderFunc(func(context.Context, vdp.DecideRequest) vdp.Decision {
		return vdp.Decision{Code: wire.VDPInsufficientResources, Keep: true}
	})
	dec := w.v.Decider(verify.DeciderConfig{Next: policy})
	d := dec.Decide(context.Background(), vdp.DecideRequest{Channel: "swp1/svid=10",
		VSI: assocVSI(wire.VSIAssociate, vmA1, 100, macA1), Peer: peerOf(w.a)})
	if d.Code != wire.VDPInsufficientResources || d.Keep {
		t.Errorf("decision %+v", d)
	}
	if w.locs.Len() != 0 || w.stags.Len() != 0 {
		t.Errorf("%d locations, %d S-Tags left", w.locs.Len(), w.stags.Len())
	}
	// Unsigned (interop) requests are refused, hard.
	d = dec.Decide(context.Background(), vdp.DecideRequest{Channel: "swp1", VSI: assocVSI(wire.VSIAssociate, vmA1, 100, macA1)})
	if d.Code != wire.VDPOtherFailure || !d.Hard || w.v.Refused(verify.ReasonUnsigned) != 1 {
		t.Errorf("unsigned: %+v", d)
	}
}
