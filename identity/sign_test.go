package identity

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tether-net/tether/wire"
)

// tlv encodes one LLDP/VDP TLV.
func tlv(typ uint8, value ...[]byte) []byte {
	var v []byte
	for _, p := range value {
		v = append(v, p...)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(typ)<<9|uint16(len(v))), v...)
}

var (
	testDst = []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00} // nearest customer bridge
	testSrc = []byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
)

// lldpFrame returns an unsigned LLDP frame as tetherd sends it to the
// nearest customer bridge, ending in End and padding: a 299-byte LLDPDU
// (313-byte frame) once signed.
func lldpFrame(keyID KeyID) []byte {
	f := append(append(append([]byte(nil), testDst...), testSrc...), 0x88, 0xcc)
	f = append(f, tlv(1, []byte{4}, testSrc)...)                                                               // Chassis ID: MAC
	f = append(f, tlv(2, []byte{5}, []byte("ens1f0np0"))...)                                                   // Port ID: ifname
	f = append(f, tlv(3, []byte{0x00, 0x78})...)                                                               // TTL 120
	f = append(f, tlv(4, []byte("to tor-r12-a Eth1/7"))...)                                                    // Port Description
	f = append(f, tlv(5, []byte("hv-r12-07.dc1.example.net"))...)                                              // System Name
	f = append(f, tlv(6, []byte("Debian 12 tetherd 0.1"))...)                                                  // System Description
	f = append(f, tlv(7, []byte{0x00, 0x80, 0x00, 0x80})...)                                                   // System Capabilities: station
	f = append(f, tlv(8, []byte{5, 1, 10, 0, 12, 7, 2, 0, 0, 0, 2, 0})...)                                     // Management Address 10.0.12.7
	f = append(f, tlv(127, []byte{0x00, 0x80, 0xc2, 0x0d, 0x00, 0x07, 0x6e, 0x14, 0x14})...)                   // EVB
	f = append(f, tlv(127, []byte{0x00, 0x80, 0xc2, 0x0e, 0x00, 0x00, 0x00, 0x02, 0, 0, 1, 0, 0x10, 0x05})...) // CDCP
	cp := wire.TetherCapability{Version: 1, Roles: wire.TetherRoleHostAgent, KeyID: keyID, Flags: wire.TetherFlagRequiresSignature}
	f, _ = cp.AppendBinary(f)
	inv := wire.TetherInventory{Alg: wire.TetherDigestSHA256, VIFs: 12, Generation: 1234}
	copy(inv.Digest[:], "0123456789abcdef0123456789abcdef")
	f, _ = inv.AppendBinary(f)
	f = append(f, 0, 0)                  // End
	return append(f, make([]byte, 7)...) // padding
}

// vdpFrame returns an unsigned ECP frame carrying a VDP ASSOCIATE for one
// MAC/VID filter.
func vdpFrame() []byte {
	f := append(append(append([]byte(nil), testDst...), testSrc...), 0x89, 0x40)
	f = append(f, 0x10, 0x01, 0x00, 0x2a)                                                  // ECP v1 request, subtype VDP, sequence 42
	f = append(f, tlv(5, bytes.Repeat([]byte{0}, 10), []byte{0xff, 0xff, 10, 0, 0, 1})...) // VSI Manager ID
	f = append(f, tlv(3,
		[]byte{0x00},             // status: request
		[]byte{0x00, 0x00, 0x01}, // VSI type ID
		[]byte{0x01},             // VSI type version
		[]byte{0x05},             // VSIID format: UUID
		[]byte{0x6b, 0x2e, 0x1c, 0x3a, 0x55, 0x0e, 0x4b, 0x8e, 0x9a, 0x51, 0x0d, 0x7c, 0x33, 0x20, 0x41, 0x9f},
		[]byte{0x02},       // filter info format: MAC/VID
		[]byte{0x00, 0x01}, // 1 entry
		[]byte{0x00, 0x64}, // PS 0, PCP 0, VID 100
		[]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef},
	)...)
	return append(f, 0, 0) // End
}

// testSetup is a signer and a verifier sharing one enrolled key.
type testSetup struct {
	key      *PrivateKey
	signer   *Signer
	verifier *Verifier
}

func newSetup(t testing.TB) *testSetup {
	t.Helper()
	k := testKey(t, 1)
	s, err := NewSigner(k, new(MemoryCounterStore), SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewStaticKeys(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(keys, new(MemoryCounterStore), VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &testSetup{k, s, v}
}

func TestSignVerifyLLDP(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	unsigned := lldpFrame(ts.key.ID())
	frame, err := ts.signer.Sign(ctx, "eth0", bytes.Clone(unsigned))
	if err != nil {
		t.Fatal(err)
	}
	// The signature replaces End and padding, then End follows it.
	bodyLen := len(unsigned) - 9
	if len(frame) != bodyLen+wire.SignatureTLVLen+2 {
		t.Fatalf("signed frame is %d bytes, want %d", len(frame), bodyLen+wire.SignatureTLVLen+2)
	}
	if !bytes.Equal(frame[:bodyLen], unsigned[:bodyLen]) || !bytes.Equal(frame[len(frame)-2:], []byte{0, 0}) {
		t.Fatal("signing changed the PDU or lost End")
	}
	t.Logf("signed LLDP frame %d bytes, LLDPDU %d bytes", len(frame), len(frame)-14)
	got, err := ts.verifier.Verify(ctx, "swp7", frame)
	if err != nil {
		t.Fatal(err)
	}
	want := Verified{Key: ts.key.ID(), Counter: 1, Kind: wire.PDUKindLLDP, SigOffset: bodyLen - 14}
	if got != want {
		t.Fatalf("Verify = %+v, want %+v", got, want)
	}
	// Padding after End is not covered and does not matter.
	frame2, err := ts.signer.Sign(ctx, "eth0", bytes.Clone(unsigned))
	if err != nil {
		t.Fatal(err)
	}
	padded := append(frame2, 0xde, 0xad)
	if _, err := ts.verifier.Verify(ctx, "swp7", padded); err != nil {
		t.Fatalf("padding after End refused: %v", err)
	}
}

func TestSignVerifyVDP(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	for i := uint64(1); i <= 3; i++ {
		frame, err := ts.signer.Sign(ctx, "eth0/svid=5", vdpFrame())
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			t.Logf("signed VDP ASSOCIATE frame %d bytes, ECPDU %d bytes", len(frame), len(frame)-14)
		}
		got, err := ts.verifier.Verify(ctx, "swp7/svid=5", frame)
		if err != nil {
			t.Fatal(err)
		}
		if got.Counter != i || got.Kind != wire.PDUKindECP || got.SigOffset != 4+18+35 {
			t.Fatalf("Verify = %+v", got)
		}
	}
}

func TestSignVerifyTagged(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	tag := []byte{0x81, 0x00, 0x00, 0x05} // 802.1Q, VID 5
	tagged := func(f []byte) []byte {
		return append(append(append([]byte(nil), f[:12]...), tag...), f[12:]...)
	}
	// Signed untagged, tagged on the way (a VLAN device), verified tagged.
	frame, err := ts.signer.Sign(ctx, "eth0", vdpFrame())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7", tagged(frame)); err != nil {
		t.Fatalf("tagged after signing: %v", err)
	}
	// Signed tagged, verified untagged (the tag is stripped on ingress).
	frame, err = ts.signer.Sign(ctx, "eth0", tagged(vdpFrame()))
	if err != nil {
		t.Fatal(err)
	}
	untagged := append(append([]byte(nil), frame[:12]...), frame[16:]...)
	if _, err := ts.verifier.Verify(ctx, "swp7", untagged); err != nil {
		t.Fatalf("signed tagged, verified untagged: %v", err)
	}
}

func TestVerifyRefusesTampering(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	type region struct {
		name string
		off  func(frame []byte) int // byte to flip
		want error
	}
	sigOff := func(frame []byte) int {
		off, _, err := wire.FindSignature(frame[14:], mustKind(frame), wire.OUI{})
		if err != nil {
			t.Fatal(err)
		}
		return 14 + off
	}
	regions := []region{
		{"destination MAC", func([]byte) int { return 5 }, ErrBadSignature},
		{"source MAC", func([]byte) int { return 6 }, ErrBadSignature},
		{"PDU first byte", func([]byte) int { return 14 }, nil}, // Chassis ID type / ECP version: malformed or bad signature
		{"TLV byte", func(f []byte) int { return 30 }, ErrBadSignature},
		{"TLV before signature", func(f []byte) int { return sigOff(f) - 1 }, ErrBadSignature},
		{"signature TLV header", func(f []byte) int { return sigOff(f) + 1 }, nil}, // length changes: malformed
		{"key ID", func(f []byte) int { return sigOff(f) + 6 }, ErrUnknownKey},
		{"counter", func(f []byte) int { return sigOff(f) + 6 + 15 }, ErrBadSignature},
		{"signature", func(f []byte) int { return sigOff(f) + 6 + 16 + 10 }, ErrBadSignature},
		{"signature last byte", func(f []byte) int { return sigOff(f) + wire.SignatureTLVLen - 1 }, ErrBadSignature},
	}
	frames := map[string]func() []byte{
		"LLDP": func() []byte { return lldpFrame(ts.key.ID()) },
		"VDP":  vdpFrame,
	}
	for fname, build := range frames {
		for _, r := range regions {
			t.Run(fname+"/"+r.name, func(t *testing.T) {
				frame, err := ts.signer.Sign(ctx, "eth0", build())
				if err != nil {
					t.Fatal(err)
				}
				bad := bytes.Clone(frame)
				bad[r.off(frame)] ^= 0x01
				_, err = ts.verifier.Verify(ctx, "swp7", bad)
				if err == nil {
					t.Fatal("tampered frame accepted")
				}
				if r.want != nil && !errors.Is(err, r.want) {
					t.Fatalf("error %v, want %v", err, r.want)
				}
				// The untampered frame still passes: the refusal did not
				// move the window.
				if _, err := ts.verifier.Verify(ctx, "swp7", frame); err != nil {
					t.Fatalf("original refused after tampered copy: %v", err)
				}
			})
		}
		t.Run(fname+"/EtherType", func(t *testing.T) {
			frame, err := ts.signer.Sign(ctx, "eth0", build())
			if err != nil {
				t.Fatal(err)
			}
			for _, et := range []uint16{0x88cd, 0x88cc ^ 0x8940 ^ binary.BigEndian.Uint16(frame[12:])} {
				bad := bytes.Clone(frame)
				binary.BigEndian.PutUint16(bad[12:], et)
				if _, err := ts.verifier.Verify(ctx, "swp7", bad); err == nil {
					t.Fatalf("EtherType %#04x accepted", et)
				}
			}
		})
	}
}

// mustKind returns the PDU kind of an untagged frame.
func mustKind(frame []byte) wire.PDUKind {
	k, _ := wire.PDUKindOf(binary.BigEndian.Uint16(frame[12:]))
	return k
}

func TestVerifyReplay(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	first, err := ts.signer.Sign(ctx, "eth0", lldpFrame(ts.key.ID()))
	if err != nil {
		t.Fatal(err)
	}
	second, err := ts.signer.Sign(ctx, "eth0", lldpFrame(ts.key.ID()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7", first); err != nil {
		t.Fatal(err)
	}
	_, err = ts.verifier.Verify(ctx, "swp7", first)
	var re *ReplayError
	if !errors.Is(err, ErrReplay) || !errors.As(err, &re) {
		t.Fatalf("replay: error %v, want a *ReplayError", err)
	}
	want := fmt.Sprintf(`identity: replayed counter: counter 1 from key %s on channel "swp7" is not above the high-water mark 1`, ts.key.ID())
	if err.Error() != want {
		t.Fatalf("replay error:\n got %s\nwant %s", err, want)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7", second); err != nil {
		t.Fatal(err)
	}
	_, err = ts.verifier.Verify(ctx, "swp7", first)
	if !errors.As(err, &re) || re.Counter != 1 || re.HighWater != 2 || re.Channel != "swp7" || re.Key != ts.key.ID() {
		t.Fatalf("older counter: error %v (%+v)", err, re)
	}
	// Windows are per channel: the receiver decides what a channel is.
	if _, err := ts.verifier.Verify(ctx, "swp8", first); err != nil {
		t.Fatalf("other channel: %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	other := testKey(t, 9)
	otherSigner, err := NewSigner(other, new(MemoryCounterStore), SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := otherSigner.Sign(ctx, "eth0", vdpFrame())
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.verifier.Verify(ctx, "swp7", unknown)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	want := fmt.Sprintf(`identity: verify ECP frame on channel "swp7": key %s: identity: unknown key: %s`, other.ID(), other.ID())
	if err.Error() != want {
		t.Fatalf("unknown key error:\n got %s\nwant %s", err, want)
	}

	_, err = ts.verifier.Verify(ctx, "swp7", vdpFrame())
	if !errors.Is(err, ErrUnsigned) || !errors.Is(err, wire.ErrMissing) {
		t.Fatalf("unsigned: %v", err)
	}
	const wantUnsigned = `identity: frame is not signed: ECP frame on channel "swp7": tether Signature at offset 57: missing mandatory TLV: ECPDU has no signature TLV (CID 7a-7e-71 subtype 4)`
	if err.Error() != wantUnsigned {
		t.Fatalf("unsigned error:\n got %s\nwant %s", err, wantUnsigned)
	}

	frame, err := ts.signer.Sign(ctx, "eth0", vdpFrame())
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(frame)
	bad[len(bad)-3] ^= 0x80
	_, err = ts.verifier.Verify(ctx, "swp7", bad)
	wantBad := fmt.Sprintf(`identity: bad signature: ECP frame on channel "swp7", key %s, counter 1`, ts.key.ID())
	if !errors.Is(err, ErrBadSignature) || err.Error() != wantBad {
		t.Fatalf("bad signature error:\n got %v\nwant %s", err, wantBad)
	}

	// A TLV after the signature.
	notLast := append(bytes.Clone(frame[:len(frame)-2]), 0x0a, 0x00)
	_, err = ts.verifier.Verify(ctx, "swp7", notLast)
	if !errors.Is(err, wire.ErrInvalid) || errors.Is(err, ErrUnsigned) {
		t.Fatalf("signature not last: %v", err)
	}

	for name, f := range map[string][]byte{
		"short":     frame[:10],
		"IPv4":      append(append(bytes.Clone(frame[:12]), 0x08, 0x00), frame[14:]...),
		"truncated": frame[:len(frame)-40],
	} {
		if _, err := ts.verifier.Verify(ctx, "swp7", f); err == nil {
			t.Errorf("%s frame accepted", name)
		}
	}
}

func TestSignErrors(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	signed, err := ts.signer.Sign(ctx, "eth0", vdpFrame())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"already signed":     signed,
		"not LLDP or ECP":    append(append(bytes.Clone(testDst), testSrc...), 0x08, 0x00, 0x45),
		"short":              testDst,
		"junk after End":     append(vdpFrame(), 0, 0, 1),
		"no mandatory TLVs":  append(append(append(bytes.Clone(testDst), testSrc...), 0x88, 0xcc), 0, 0),
		"TLV past the frame": append(vdpFrame()[:40], 0x06, 0x50),
	}
	for name, f := range tests {
		in := bytes.Clone(f)
		out, err := ts.signer.Sign(ctx, "eth0", in)
		if err == nil {
			t.Errorf("%s: signed", name)
			continue
		}
		if !bytes.Equal(out, f) {
			t.Errorf("%s: frame changed on error", name)
		}
	}
	// A frame without End gets no End.
	noEnd := vdpFrame()
	noEnd = noEnd[:len(noEnd)-2]
	out, err := ts.signer.Sign(ctx, "eth0", noEnd)
	if err != nil || len(out) != len(noEnd)+wire.SignatureTLVLen {
		t.Fatalf("no End: %d bytes, %v", len(out), err)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7", out); err != nil {
		t.Fatal(err)
	}
}

// crash drops the store as a killed process would: the lock goes, nothing
// is flushed.
func (s *FileCounterStore) crash() { _ = s.lock.Close() }

func TestSignerCounterSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tx-counters")
	k := testKey(t, 1)
	sign := func(s *Signer, ch string) uint64 {
		t.Helper()
		f, err := s.Sign(ctx, ch, vdpFrame())
		if err != nil {
			t.Fatal(err)
		}
		_, sig, err := wire.FindSignature(f[14:], wire.PDUKindECP, wire.OUI{})
		if err != nil {
			t.Fatal(err)
		}
		return sig.Counter
	}
	open := func() (*FileCounterStore, *Signer) {
		t.Helper()
		st, err := OpenFileCounterStore(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(k, st, SignerOptions{Block: 4})
		if err != nil {
			t.Fatal(err)
		}
		return st, s
	}

	st, s := open()
	var last uint64
	for i := uint64(1); i <= 10; i++ {
		if c := sign(s, "eth0"); c != i {
			t.Fatalf("counter %d, want %d", c, i)
		}
		last = i
	}
	sign(s, "eth1")
	// Clean restart: blocks 1-4, 5-8, 9-12 were reserved; the next
	// counter is 13.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, s = open()
	if c := sign(s, "eth0"); c != 13 {
		t.Fatalf("after restart: counter %d, want 13 (last used %d)", c, last)
	}
	if c := sign(s, "eth1"); c != 5 {
		t.Fatalf("after restart, other channel: counter %d, want 5", c)
	}
	last = 13
	// Crash: no Close. Counters used so far must never come back.
	for i := 0; i < 5; i++ {
		last = sign(s, "eth0")
	}
	st.crash()
	_, s = open()
	if c := sign(s, "eth0"); c <= last {
		t.Fatalf("after crash: counter %d, last used %d", c, last)
	}
}

func TestVerifierWindowSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rx-counters")
	ts := newSetup(t)
	keys, _ := NewStaticKeys(ts.key.Public())
	open := func() (*FileCounterStore, *Verifier) {
		t.Helper()
		st, err := OpenFileCounterStore(path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(keys, st, VerifierOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return st, v
	}
	var frames [][]byte
	for i := 0; i < 4; i++ {
		f, err := ts.signer.Sign(ctx, "eth0", lldpFrame(ts.key.ID()))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	st, v := open()
	for _, f := range frames[:2] {
		if _, err := v.Verify(ctx, "swp7", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, v = open()
	if _, err := v.Verify(ctx, "swp7", frames[1]); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: %v", err)
	}
	if _, err := v.Verify(ctx, "swp7", frames[2]); err != nil {
		t.Fatal(err)
	}
	st.crash() // no Close
	_, v = open()
	for _, f := range frames[:3] {
		if _, err := v.Verify(ctx, "swp7", f); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay after crash: %v", err)
		}
	}
	if _, err := v.Verify(ctx, "swp7", frames[3]); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSignVerify(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	path := filepath.Join(t.TempDir(), "rx")
	st, err := OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, _ := NewStaticKeys(ts.key.Public())
	v, err := NewVerifier(keys, st, VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const channels, frames = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, channels)
	for c := 0; c < channels; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := fmt.Sprintf("eth0/svid=%d", c)
			for i := 0; i < frames; i++ {
				f, err := ts.signer.Sign(ctx, ch, vdpFrame())
				if err != nil {
					errs <- err
					return
				}
				got, err := v.Verify(ctx, ch, f)
				if err != nil {
					errs <- err
					return
				}
				if got.Counter != uint64(i+1) {
					errs <- fmt.Errorf("channel %s: counter %d, want %d", ch, got.Counter, i+1)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for c := 0; c < channels; c++ {
		if m, _ := st.Load(ctx, ts.key.ID(), fmt.Sprintf("eth0/svid=%d", c)); m != frames {
			t.Errorf("channel %d: persisted mark %d, want %d", c, m, frames)
		}
	}
}

func TestSignVerifyAllocs(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	base := lldpFrame(ts.key.ID())
	buf := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		if _, err := ts.signer.Sign(ctx, "eth0", append(buf[:0], base...)); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Sign allocates %v times per frame, want 0", n)
	}
	frames := make([][]byte, 101)
	for i := range frames {
		f, err := ts.signer.Sign(ctx, "eth1", bytes.Clone(base))
		if err != nil {
			t.Fatal(err)
		}
		frames[i] = f
	}
	i := 0
	n = testing.AllocsPerRun(100, func() {
		if _, err := ts.verifier.Verify(ctx, "swp7", frames[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	t.Logf("Verify allocates %v times per frame", n)
	if n > 1 {
		t.Errorf("Verify allocates %v times per frame, want at most 1", n)
	}
}
