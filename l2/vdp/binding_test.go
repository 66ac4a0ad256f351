package vdp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// vdpFrame is an unsigned ECP frame with one ASSOCIATE request, End
// included.
func vdpFrame(t testing.TB, seq uint16) []byte {
	t.Helper()
	mgr, err := wire.ManagerIDFromString("tether")
	if err != nil {
		t.Fatal(err)
	}
	v := wire.VSI{Mode: wire.VSIAssociate, VSITypeID: 1, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: [16]byte{1},
		FilterFormat: wire.FilterMACVID, Filters: []wire.Filter{{MAC: [6]byte{0x52, 0x54, 0, 0, 0, 1}, VID: 100}}}
	p := wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: seq, VDP: &wire.VDPDU{TLVs: []wire.TLV{&mgr, &v}}}
	h := wire.EthernetHeader{Dst: wire.NearestCustomerBridge, Src: [6]byte{2, 0, 0, 0, 0, 1}, EtherType: wire.EtherTypeECP}
	b, err := p.AppendBinary(h.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendEnd(b)
}

// TestChannelBinding: a frame signed for S-channel 5 carries the binding
// TLV in its signed region and verifies on S-channel 5; on S-channel 6 it
// is refused before the signature check (S-channel 6's replay window does
// not move: a frame of S-channel 6 with a lower counter still verifies);
// with its binding rewritten to 6 its signature fails; a signed frame
// without binding is refused; an unsigned one is left to the signing
// policy (identity.ErrUnsigned).
func TestChannelBinding(t *testing.T) {
	ctx := context.Background()
	key, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := identity.NewStaticKeys(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(ks, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(svid uint16, ch string) func([]byte) []byte {
		s := vdp.BindingSigner(vdp.IdentitySigner(signer, ch), wire.OUI{}, svid)
		return func(f []byte) []byte {
			out, err := s(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	verify := func(svid uint16, ch string) vdp.VerifyFunc {
		return vdp.BindingVerifier(vdp.IdentityVerifier(ver, ch), wire.OUI{}, svid)
	}
	sign5, sign6 := sign(5, "eth0/svid=5"), sign(6, "eth0/svid=6")
	ver5, ver6 := verify(5, "sw1/svid=5"), verify(6, "sw1/svid=6")

	var f5 []byte
	for i := range 5 { // counters 1 to 5 on S-channel 5
		f5 = sign5(vdpFrame(t, uint16(i)))
	}
	want := []byte{127 << 1, 6, 0x7a, 0x7e, 0x71, wire.TetherSubtypeChannelBinding, 0, 5}
	i := bytes.Index(f5, want)
	_, sigOff, err := func() (int, int, error) {
		off, _, err := wire.FindSignature(f5[wire.SignedHeaderLen:], wire.PDUKindECP, wire.OUI{})
		return 0, off + wire.SignedHeaderLen, err
	}()
	if i < 0 || err != nil || i+len(want) != sigOff {
		t.Fatalf("binding TLV at %d, signature at %d (%v): want the binding right before the signature\n% x", i, sigOff, err, f5)
	}
	var d wire.ECPDU
	if err := d.UnmarshalBinary(f5[wire.SignedHeaderLen:]); err != nil {
		t.Fatalf("the bound frame does not decode: %v", err)
	}
	if tlvs := d.VDP.TLVs; len(tlvs) != 4 || !reflect.DeepEqual(tlvs[2], &wire.TetherChannelBinding{SVID: 5}) {
		t.Fatalf("the bound frame's VDP TLVs %#v: want manager ID, VSI, the typed binding of S-VID 5, signature", tlvs)
	}
	if got, err := ver5(ctx, f5); err != nil || got.Counter != 5 {
		t.Fatalf("S-channel 5 frame on S-channel 5: %+v %v", got, err)
	}
	if _, err := ver6(ctx, f5); !errors.Is(err, vdp.ErrChannelBinding) ||
		err.Error() != "vdp: S-channel binding missing or for another S-channel: a frame bound to S-channel 5 on S-channel 6" {
		t.Fatalf("S-channel 5 frame on S-channel 6: %v", err)
	}
	if got, err := ver6(ctx, sign6(vdpFrame(t, 1))); err != nil || got.Counter != 1 {
		t.Fatalf("S-channel 6's own first frame after the refused one: %+v %v", got, err)
	}
	// The binding rewritten: the signature no longer verifies.
	forged := bytes.Clone(f5)
	binary.BigEndian.PutUint16(forged[i+6:], 6)
	if _, err := ver6(ctx, forged); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("rebound frame: %v", err)
	}
	// Signed without binding.
	plain := vdp.IdentitySigner(signer, "eth0/svid=5")
	nob, err := plain(ctx, vdpFrame(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ver5(ctx, nob); !errors.Is(err, vdp.ErrChannelBinding) ||
		err.Error() != "vdp: S-channel binding missing or for another S-channel: a signed frame on S-channel 5 without binding" {
		t.Fatalf("signed frame without binding: %v", err)
	}
	// Unsigned: the policy's business.
	if _, err := ver5(ctx, vdpFrame(t, 10)); !errors.Is(err, identity.ErrUnsigned) {
		t.Fatalf("unsigned frame: %v", err)
	}
}

// TestChannelBindingMalformed: frames the binding hooks cannot walk, with
// their exact errors.
func TestChannelBindingMalformed(t *testing.T) {
	ctx := context.Background()
	noop := func(context.Context, []byte) ([]byte, error) { return nil, nil }
	good := vdpFrame(t, 1)
	lldp := bytes.Clone(good)
	lldp[12], lldp[13] = 0x88, 0xcc
	overrun := append(bytes.Clone(good[:18]), 0x02, 0x40) // type 1, length 64, nothing after
	cut := append(bytes.Clone(good[:18]), 0x02)
	end := len(good) - 2 // the End TLV
	bound := func(info ...byte) []byte {
		return append(append(bytes.Clone(good[:end]), 0xfe, byte(4+len(info)), 0x7a, 0x7e, 0x71, 5), append(info, 0, 0)...)
	}
	for _, c := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"short", good[:10], "vdp: channel binding: not an untagged ECP frame (10 bytes)"},
		{"LLDP", lldp, "vdp: channel binding: not an untagged ECP frame (" + itoa(int64(len(lldp))) + " bytes)"},
		{"no ECP header", good[:16], "vdp: channel binding: ECP header at offset 0: truncated: need 4 bytes, have 2"},
		{"TLV overrun", overrun, "vdp: channel binding: ECPDU TLV type 1 at offset 4: truncated: need 66 bytes, have 2"},
		{"TLV header cut", cut, "vdp: channel binding: ECPDU TLV header at offset 4: truncated: need 2 bytes, have 1"},
		{"binding S-VID 0", bound(0, 0), "vdp: channel binding: tether Channel Binding at offset " + itoa(int64(end-14+6)) +
			": invalid value: S-VID 0 out of range 1-4094"},
		{"binding reserved bits", bound(0x80, 5), "vdp: channel binding: tether Channel Binding at offset " + itoa(int64(end-14+6)) +
			": invalid value: reserved bits 0x8 above the S-VID are set"},
		{"binding too long", bound(0, 5, 0), "vdp: channel binding: tether Channel Binding at offset " + itoa(int64(end-14+6)) +
			": inconsistent length: information string is 3 bytes, want 2"},
	} {
		if _, err := vdp.BindingSigner(noop, wire.OUI{}, 5)(ctx, c.frame); err == nil || err.Error() != c.want {
			t.Errorf("%s: signer: %v, want %q", c.name, err, c.want)
		}
		v := vdp.BindingVerifier(func(context.Context, []byte) (identity.Verified, error) { return identity.Verified{}, nil }, wire.OUI{}, 5)
		if _, err := v(ctx, c.frame); err == nil || err.Error() != c.want {
			t.Errorf("%s: verifier: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestBindingSignerRefuses: frames the signer must not bind, with their
// exact errors; the inner signing hook is not called.
func TestBindingSignerRefuses(t *testing.T) {
	ctx := context.Background()
	key, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	boundFrame, err := vdp.BindingSigner(func(_ context.Context, f []byte) ([]byte, error) { return f, nil }, wire.OUI{}, 5)(ctx, vdpFrame(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := vdp.IdentitySigner(signer, "eth0")(ctx, vdpFrame(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	sigOff, _, err := wire.FindSignature(signed[wire.SignedHeaderLen:], wire.PDUKindECP, wire.OUI{})
	if err != nil {
		t.Fatal(err)
	}
	end := len(vdpFrame(t, 3)) - 2 // where the binding goes: the End TLV
	for _, c := range []struct {
		name  string
		frame []byte
		svid  uint16
		want  string
	}{
		{"already bound", boundFrame, 5, "vdp: channel binding: the frame is already bound to S-channel 5"},
		{"already signed", signed, 5, "vdp: channel binding: tether Signature at offset " + itoa(int64(sigOff)) + ": invalid value: ECPDU is already signed"},
		{"S-VID 0", vdpFrame(t, 3), 0, "vdp: channel binding: tether Channel Binding at offset " + itoa(int64(end+6)) + ": invalid value: S-VID 0 out of range 1-4094"},
		{"S-VID 4095", vdpFrame(t, 3), 4095, "vdp: channel binding: tether Channel Binding at offset " + itoa(int64(end+6)) + ": invalid value: S-VID 4095 out of range 1-4094"},
	} {
		called := false
		s := vdp.BindingSigner(func(_ context.Context, f []byte) ([]byte, error) { called = true; return f, nil }, wire.OUI{}, c.svid)
		if _, err := s(ctx, c.frame); err == nil || err.Error() != c.want || called {
			t.Errorf("%s: %v (inner hook called: %v), want %q", c.name, err, called, c.want)
		}
	}
}

// FuzzChannelBinding: any frame either fails to walk or, when the
// verifier's inner hook is reached, does so with the frame unchanged; the
// signer's output of a walkable frame carries exactly one more TLV.
func FuzzChannelBinding(f *testing.F) {
	f.Add(vdpFrame(f, 1))
	f.Add([]byte{})
	f.Add(append(vdpFrame(f, 2)[:18], 0xfe, 0x06, 0x7a, 0x7e, 0x71, 5, 0, 7, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()
		in := bytes.Clone(b)
		v := vdp.BindingVerifier(func(_ context.Context, got []byte) (identity.Verified, error) {
			if !bytes.Equal(got, in) {
				t.Fatal("the verifier changed the frame")
			}
			return identity.Verified{}, nil
		}, wire.OUI{}, 7)
		_, _ = v(ctx, b)
		s := vdp.BindingSigner(func(_ context.Context, got []byte) ([]byte, error) {
			if len(got) != len(in)+8 {
				t.Fatalf("signer: %d bytes in, %d out", len(in), len(got))
			}
			return got, nil
		}, wire.OUI{}, 7)
		_, _ = s(ctx, b)
	})
}
