package vdp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// keys are the station's and bridge's signing setups with in-memory
// counter stores.
type keys struct {
	hostKey, switchKey *identity.PrivateKey
	station, bridge    vdp.Security
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	k := &keys{}
	var err error
	if k.hostKey, err = identity.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.switchKey, err = identity.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	side := func(own, peer *identity.PrivateKey, channel string) vdp.Security {
		s, err := identity.NewSigner(own, &identity.MemoryCounterStore{}, identity.SignerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := identity.NewStaticKeys(peer.Public())
		if err != nil {
			t.Fatal(err)
		}
		v, err := identity.NewVerifier(ks, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return vdp.Security{Sign: vdp.IdentitySigner(s, channel), Verify: vdp.IdentityVerifier(v, channel),
			PeerCapable: func() bool { return true }, RequireSigned: true}
	}
	k.station = side(k.hostKey, k.switchKey, "uplink")
	k.bridge = side(k.switchKey, k.hostKey, "swp1")
	return k
}

// peerSeen is a Decider that remembers the signer of each request.
type peerSeen struct {
	mu    sync.Mutex
	peers []*identity.Verified
}

func (p *peerSeen) Decide(ctx context.Context, r vdp.DecideRequest) vdp.Decision {
	p.mu.Lock()
	p.peers = append(p.peers, r.Peer)
	p.mu.Unlock()
	return vdp.AcceptAll{VID: 100, Profile: testProfile()}.Decide(ctx, r)
}

func (p *peerSeen) all() []*identity.Verified {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*identity.Verified(nil), p.peers...)
}

// TestSignedPair: both sides sign and require signatures; each side sees
// the other's key on every request and response.
func TestSignedPair(t *testing.T) {
	k := newKeys(t)
	d := &peerSeen{}
	st, br, _, _ := pair(t, vdp.StationConfig{Timing: &fast, Security: k.station},
		vdp.BridgeConfig{Timing: &fast, Security: k.bridge, Decider: d})
	runBg(t, st.Run)
	runBg(t, br.Run)
	res, _ := associateAll(t, st, 200)
	for i, r := range res {
		if r.Err != nil || r.Peer == nil || r.Peer.Key != k.switchKey.ID() {
			t.Fatalf("VSI %d: %+v", i, r)
		}
	}
	for i, p := range d.all() {
		if p == nil || p.Key != k.hostKey.ID() {
			t.Fatalf("decision %d: peer %+v", i, p)
		}
	}
}

// TestInterop: a station that does not speak tether gets plain VDP from a
// bridge that would verify a tether station; the Decider sees no signer.
func TestInterop(t *testing.T) {
	k := newKeys(t)
	bsec := k.bridge
	bsec.RequireSigned = false
	bsec.PeerCapable = func() bool { return false }
	d := &peerSeen{}
	st, br, a, _ := pair(t, vdp.StationConfig{Timing: &fast}, vdp.BridgeConfig{Timing: &fast, Security: bsec, Decider: d})
	var signedFrames int
	var mu sync.Mutex
	a.SetTap(func(f []byte, _ bool) {
		if len(f) > 100 {
			mu.Lock()
			signedFrames++ // a signed request would be at least 14+4+18+35+86 bytes
			mu.Unlock()
		}
	})
	runBg(t, st.Run)
	runBg(t, br.Run)
	r, err := st.Associate(context.Background(), mgr, testVSI(1, 0))
	if err != nil || r.Peer != nil {
		t.Fatalf("associate: %+v %v", r, err)
	}
	if p := d.all(); len(p) != 1 || p[0] != nil {
		t.Fatalf("decider saw %v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if signedFrames != 0 {
		t.Errorf("%d frames from the plain station look signed", signedFrames)
	}
}

// TestRefuseUnsigned: a bridge that requires signatures, or whose peer
// advertises tether's capability (an unsigned frame then is a downgrade),
// refuses a plain station's requests with a hard error and never asks the
// Decider.
func TestRefuseUnsigned(t *testing.T) {
	for _, c := range []struct {
		name    string
		require bool
	}{{"require_signed", true}, {"capable peer", false}} {
		t.Run(c.name, func(t *testing.T) {
			k := newKeys(t)
			bsec := k.bridge
			bsec.RequireSigned = c.require
			d := &peerSeen{}
			ev := newEvents()
			st, br, _, _ := pair(t, vdp.StationConfig{Timing: &fast},
				vdp.BridgeConfig{Timing: &fast, Security: bsec, Decider: d, OnEvent: ev.hook})
			runBg(t, st.Run)
			runBg(t, br.Run)
			_, err := st.Associate(context.Background(), mgr, testVSI(1, 0))
			var re *vdp.ResponseError
			if !errors.As(err, &re) || re.Code() != wire.VDPOtherFailure || !re.Hard() {
				t.Fatalf("associate: %v, want a hard other-failure refusal", err)
			}
			if e := ev.next(t, vdp.EventFrameRefused); !errors.Is(e.Err, vdp.ErrUnsignedRefused) {
				t.Errorf("event %+v", e)
			}
			if len(d.all()) != 0 || len(br.VSIs()) != 0 {
				t.Errorf("the Decider was asked or the bridge holds a VSI")
			}
		})
	}
}

// TestStationRequiresCapablePeer: with require_signed, no VDP at all with a
// bridge that does not advertise tether's capability.
func TestStationRequiresCapablePeer(t *testing.T) {
	k := newKeys(t)
	ssec := k.station
	ssec.PeerCapable = func() bool { return false }
	st, _, _, _ := pair(t, vdp.StationConfig{Timing: &fast, Security: ssec}, vdp.BridgeConfig{})
	if err := st.Submit(vdp.Request{Mode: wire.VSIAssociate, Manager: mgr, VSI: testVSI(1, 0)}, nil); !errors.Is(err, vdp.ErrPeerNotCapable) {
		t.Fatalf("Submit: %v, want ErrPeerNotCapable", err)
	}
	if _, err := vdp.NewStation(nil, vdp.StationConfig{LocalMAC: stationMAC, Security: vdp.Security{RequireSigned: true}}); err == nil {
		t.Error("RequireSigned without Sign and Verify accepted")
	}
}

// TestReplayAndTamper replays and alters captured signed requests. A copy
// of the last request is an ECP duplicate: ACKed, not verified, not acted
// on. An older request, new to ECP, fails verification as a replay; an
// altered one as a bad signature. Neither reaches the Decider or gets an
// answer.
func TestReplayAndTamper(t *testing.T) {
	k := newKeys(t)
	d := &peerSeen{}
	ev := newEvents()
	st, br, a, _ := pair(t, vdp.StationConfig{Timing: &fast, Security: k.station},
		vdp.BridgeConfig{Timing: &fast, Security: k.bridge, Decider: d, OnEvent: ev.hook})
	var (
		mu       sync.Mutex
		requests [][]byte
	)
	a.SetTap(func(f []byte, _ bool) {
		if len(f) > 18 && binary.BigEndian.Uint16(f[14:])>>10&3 == uint16(wire.ECPRequest) {
			mu.Lock()
			requests = append(requests, bytes.Clone(f))
			mu.Unlock()
		}
	})
	runBg(t, st.Run)
	runBg(t, br.Run)
	ctx := context.Background()
	for i := range 2 {
		if _, err := st.Associate(ctx, mgr, testVSI(uint32(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	first, last := requests[0], requests[len(requests)-1]
	mu.Unlock()
	before := br.Engine().Stats()

	if err := a.Inject(ctx, last); err != nil { // ECP duplicate
		t.Fatal(err)
	}
	waitStats(t, br, func(s ecp.Stats) bool { return s.RxDuplicates == before.RxDuplicates+1 })
	if n := ev.count(vdp.EventFrameRefused); n != 0 {
		t.Fatalf("a duplicate reached the verifier (%d refusals)", n)
	}

	if err := a.Inject(ctx, first); err != nil { // replay
		t.Fatal(err)
	}
	if e := ev.next(t, vdp.EventFrameRefused); !errors.Is(e.Err, identity.ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", e.Err)
	}
	bad := bytes.Clone(last)
	binary.BigEndian.PutUint16(bad[16:], binary.BigEndian.Uint16(bad[16:])+7) // new to ECP
	bad[50] ^= 1                                                              // in the first VSIID
	if err := a.Inject(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if e := ev.next(t, vdp.EventFrameRefused); !errors.Is(e.Err, identity.ErrBadSignature) {
		t.Fatalf("tampered: %v, want ErrBadSignature", e.Err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(d.all()); n != 2 {
		t.Errorf("Decider called %d times, want 2", n)
	}
	if s := br.Engine().Stats(); s.TxRequests != before.TxRequests {
		t.Errorf("the bridge answered a replayed or altered frame")
	}
}

// waitStats waits until cond holds for the bridge engine's stats.
func waitStats(t testing.TB, br *vdp.Bridge, cond func(ecp.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond(br.Engine().Stats()) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("stats %+v", br.Engine().Stats())
}
