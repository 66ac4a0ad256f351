package vdp_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// wireTiming is the timing of the real-wire tests: ACK timer 41 ms (above
// the scheduling stalls of two shared cores under the race detector; the
// engine is not timer-paced, so it only matters when a frame is lost),
// 3 retries, resource wait and response wait of about 10 and 17 s (far
// above what 4,096 VSIs take), keep-alive 42 s (never during a test).
var wireTiming = vdp.Timing{R: 3, RTE: 12, RWD: 20, RKA: 22}

// countingDecider is AcceptAll that counts its calls per VSI.
type countingDecider struct {
	vdp.AcceptAll
	mu    sync.Mutex
	calls map[vdp.Key]int
}

// counts returns a copy of the calls per VSI.
func (d *countingDecider) counts() map[vdp.Key]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[vdp.Key]int, len(d.calls))
	for k, v := range d.calls {
		out[k] = v
	}
	return out
}

func (d *countingDecider) Decide(ctx context.Context, r vdp.DecideRequest) vdp.Decision {
	d.mu.Lock()
	if d.calls == nil {
		d.calls = make(map[vdp.Key]int)
	}
	d.calls[vdp.KeyOf(&r.VSI)]++
	d.mu.Unlock()
	return d.AcceptAll.Decide(ctx, r)
}

// timedVerify wraps a VerifyFunc and adds up the time it takes.
type timedVerify struct {
	f     vdp.VerifyFunc
	n     atomic.Int64
	total atomic.Int64 // ns
}

func (tv *timedVerify) verify(ctx context.Context, frame []byte) (identity.Verified, error) {
	start := time.Now()
	v, err := tv.f(ctx, frame)
	tv.total.Add(int64(time.Since(start)))
	tv.n.Add(1)
	return v, err
}

func (tv *timedVerify) String() string {
	n := tv.n.Load()
	if n == 0 {
		return "no frames verified"
	}
	tot := time.Duration(tv.total.Load())
	return tot.Round(time.Microsecond).String() + " for " + itoa(n) + " frames, " + (tot / time.Duration(n)).Round(time.Microsecond).String() + " each"
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// signing is one side's keys and stores, on disk like in production: a
// FileCounterStore for the Signer and another for the Verifier.
type signing struct {
	signer   *identity.Signer
	verifier *identity.Verifier
	timed    *timedVerify
}

// newSigning makes a signer for key and a verifier of peerKey, with file
// counter stores in dir.
func newSigning(t testing.TB, dir string, key *identity.PrivateKey, peerKey *identity.PrivateKey, channel string) *signing {
	t.Helper()
	ss, err := identity.OpenFileCounterStore(filepath.Join(dir, "sign.counters"))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := identity.OpenFileCounterStore(filepath.Join(dir, "verify.counters"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close(); _ = vs.Close() })
	signer, err := identity.NewSigner(key, ss, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.NewStaticKeys(peerKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewVerifier(keys, vs, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &signing{signer: signer, verifier: verifier, timed: &timedVerify{f: vdp.IdentityVerifier(verifier, channel)}}
}

func (s *signing) security(channel string) vdp.Security {
	return vdp.Security{
		Sign:          vdp.IdentitySigner(s.signer, channel),
		Verify:        s.timed.verify,
		PeerCapable:   func() bool { return true },
		RequireSigned: true,
	}
}

// wireRig is a station and a bridge on the two ends of a veth pair.
type wireRig struct {
	st      *vdp.Station
	br      *vdp.Bridge
	decider *countingDecider
	bev     *events
	ss, bs  *signing // nil when unsigned
}

func newWireRig(t testing.TB, links [2]*ecptest.PacketLink, signed bool) *wireRig {
	t.Helper()
	r := &wireRig{decider: &countingDecider{AcceptAll: vdp.AcceptAll{VID: 100, Profile: testProfile()}}, bev: newEvents()}
	scfg := vdp.StationConfig{Name: "ecpa", LocalMAC: links[0].MAC(), Timing: &wireTiming, Logger: quiet}
	bcfg := vdp.BridgeConfig{Name: "ecpb", LocalMAC: links[1].MAC(), Timing: &wireTiming, Logger: quiet,
		Decider: r.decider, OnEvent: r.bev.hook}
	if signed {
		hk, err := identity.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := identity.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r.ss = newSigning(t, t.TempDir(), hk, sk, "ecpa")
		r.bs = newSigning(t, t.TempDir(), sk, hk, "ecpb")
		scfg.Security = r.ss.security("ecpa")
		bcfg.Security = r.bs.security("ecpb")
	}
	var err error
	if r.st, err = vdp.NewStation(links[0], scfg); err != nil {
		t.Fatal(err)
	}
	if r.br, err = vdp.NewBridge(links[1], bcfg); err != nil {
		t.Fatal(err)
	}
	return r
}

// openVeth makes a veth pair in a namespace and opens ECP links on both
// ends (skipping when not root).
func openVeth(t testing.TB) [2]*ecptest.PacketLink {
	t.Helper()
	ns := ecptest.NewVethNS(t)
	return [2]*ecptest.PacketLink{ns.Open(t, ns.A, wire.EtherTypeECP), ns.Open(t, ns.B, wire.EtherTypeECP)}
}

// TestVethAssociate4096 associates 4,096 VSIs from empty, tether station
// against tether bridge over AF_PACKET sockets on a veth pair, unsigned
// (interop mode) and signed (Ed25519 with file counter stores on disk,
// require_signed). It asserts only correctness: every VSI got a success
// response with the assigned VID and the bridge decided each VSI once. It
// logs the elapsed time and, signed, what verification cost (the
// Verifier persists the counter of every frame with an fsync).
func TestVethAssociate4096(t *testing.T) {
	links := openVeth(t)
	for _, signed := range []bool{false, true} {
		name := "unsigned"
		if signed {
			name = "signed"
		}
		t.Run(name, func(t *testing.T) {
			const n = 4096
			r := newWireRig(t, links, signed)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); _ = r.st.Run(ctx) }()
			go func() { defer wg.Done(); _ = r.br.Run(ctx) }()
			defer func() { cancel(); wg.Wait() }()

			res, took := associateAll(t, r.st, n)
			for i, x := range res {
				if x.Err != nil || x.State != vdp.StateAssociated || x.Filters[0].VID != 100 || x.Profile == nil {
					t.Fatalf("VSI %d: %+v", i, x)
				}
				if signed && x.Peer == nil {
					t.Fatalf("VSI %d: response not verified", i)
				}
			}
			calls := r.decider.counts()
			if len(calls) != n {
				t.Errorf("bridge decided %d VSIs, want %d", len(calls), n)
			}
			for k, c := range calls {
				if c != 1 {
					t.Errorf("bridge decided VSI %s %d times", k, c)
				}
			}
			if got := r.bev.count(vdp.EventAssociated); got != n {
				t.Errorf("bridge reported %d associations", got)
			}
			if got := r.bev.count(vdp.EventFrameRefused); got != 0 {
				t.Errorf("bridge refused %d frames", got)
			}
			ss, bs := r.st.Engine().Stats(), r.br.Engine().Stats()
			t.Logf("%s: %d VSIs associated from empty in %v (%.0f VSIs/s); station sent %d ECPDUs (%d retransmitted), bridge %d (%d retransmitted)",
				name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), ss.TxRequests, ss.TxRetransmits, bs.TxRequests, bs.TxRetransmits)
			if signed {
				t.Logf("signed: bridge verify %s; station verify %s", r.bs.timed, r.ss.timed)
			}
			if testing.Verbose() {
				t.Logf("station ECP %+v", ss)
				t.Logf("bridge ECP %+v", bs)
			}
		})
	}
}

var _ = ecp.ErrNoAck
