package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// bindTLV is a channel binding TLV for S-VID 5 (tetherBindTLV), and
// bindTLVOther the same under CID 0a-0b-0c.
var (
	bindTLV      = tetherBindTLV
	bindTLVOther = tetherCat(tetherBindTLV[:2], []byte{0x0a, 0x0b, 0x0c}, tetherBindTLV[5:])
)

func TestFindChannelBinding(t *testing.T) {
	other := OUI{0x0a, 0x0b, 0x0c}
	body := tetherCat(signECPHeader, signMgrID) // binding, when present, at 22
	tests := []struct {
		name string
		pdu  []byte
		cid  OUI
		off  int
		svid uint16
	}{
		{"bound", tetherCat(body, bindTLV), OUI{}, 22, 5},
		{"bound and signed, End, padding", tetherCat(body, bindTLV, signTLV, signEnd, make([]byte, 5)), OUI{}, 22, 5},
		{"binding first", tetherCat(signECPHeader, bindTLV, signMgrID, signEnd), OUI{}, 4, 5},
		{"configured CID", tetherCat(body, bindTLVOther, signEnd), other, 22, 5},
		{"S-VID 4094", tetherCat(body, tetherTLV(5, []byte{0x0f, 0xfe})), OUI{}, 22, 4094},
		{"unbound", tetherCat(body, signTLV, signEnd), OUI{}, -1, 0},
		{"header only", signECPHeader, OUI{}, -1, 0},
		// A binding under another CID is someone else's TLV.
		{"other CID's binding", tetherCat(body, bindTLVOther), OUI{}, -1, 0},
		{"default CID's binding under a configured CID", tetherCat(body, bindTLV), other, -1, 0},
		// Bytes after End are padding, even when they look like a binding.
		{"binding after End", tetherCat(body, signEnd, bindTLV), OUI{}, -1, 0},
		// Another tether subtype, and a binding-sized TLV of another type.
		{"other subtypes", tetherCat(body, tetherCapTLV, []byte{0x0c, 0x06, 0x7a, 0x7e, 0x71, 0x05, 0x00, 0x05}), OUI{}, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, b, err := FindChannelBinding(tt.pdu, tt.cid)
			if err != nil || off != tt.off || b.SVID != tt.svid {
				t.Fatalf("FindChannelBinding = %d, %+v, %v; want %d, S-VID %d", off, b, err, tt.off, tt.svid)
			}
			if off >= 0 {
				// The offset is the TLV's: it decodes on its own.
				var again TetherChannelBinding
				tlv := tetherCat(tt.pdu[off:off+2], DefaultCID[:], tt.pdu[off+5:off+ChannelBindingTLVLen])
				if err := again.UnmarshalBinary(tlv); err != nil || again != b {
					t.Fatalf("TLV at %d decodes as %+v, %v", off, again, err)
				}
			}
		})
	}
}

func TestFindChannelBindingErrors(t *testing.T) {
	body := tetherCat(signECPHeader, signMgrID)
	tests := []struct {
		name string
		pdu  []byte
		kind error
		want string
	}{
		{"no ECP header", []byte{0x10, 0x01}, ErrTruncated,
			"ECP header at offset 0: truncated: need 4 bytes, have 2"},
		{"TLV header cut", tetherCat(body, []byte{0xfe}), ErrTruncated,
			"ECPDU TLV header at offset 22: truncated: need 2 bytes, have 1"},
		{"TLV overruns", tetherCat(body, bindTLV[:7]), ErrTruncated,
			"ECPDU TLV type 127 at offset 22: truncated: need 8 bytes, have 7"},
		{"TLV after the binding overruns", tetherCat(body, bindTLV, []byte{0x0a, 0x10, 0x01}), ErrTruncated,
			"ECPDU TLV type 5 at offset 30: truncated: need 18 bytes, have 3"},
		{"two bindings", tetherCat(body, bindTLV, signMgrID, bindTLV), ErrInvalid,
			"tether Channel Binding at offset 48: invalid value: a second channel binding TLV (the first is at offset 22)"},
		{"binding short", tetherCat(body, tetherTLV(5, []byte{5})), ErrLength,
			"tether Channel Binding at offset 28: inconsistent length: information string is 1 bytes, want 2"},
		{"binding long", tetherCat(body, tetherTLV(5, []byte{0, 5, 0})), ErrLength,
			"tether Channel Binding at offset 28: inconsistent length: information string is 3 bytes, want 2"},
		{"binding S-VID 0", tetherCat(body, tetherTLV(5, []byte{0, 0})), ErrInvalid,
			"tether Channel Binding at offset 28: invalid value: S-VID 0 out of range 1-4094"},
		{"binding reserved bits", tetherCat(body, tetherTLV(5, []byte{0x10, 0x05})), ErrInvalid,
			"tether Channel Binding at offset 28: invalid value: reserved bits 0x1 above the S-VID are set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, b, err := FindChannelBinding(tt.pdu, OUI{})
			var we *Error
			if !errors.As(err, &we) || !errors.Is(err, tt.kind) || err.Error() != tt.want {
				t.Fatalf("FindChannelBinding error:\n got %v\nwant %q (%v)", err, tt.want, tt.kind)
			}
			if off != -1 || b != (TetherChannelBinding{}) {
				t.Fatalf("FindChannelBinding = %d, %+v with an error; want -1 and the zero binding", off, b)
			}
		})
	}
}

func TestAppendChannelBinding(t *testing.T) {
	got, err := AppendChannelBinding([]byte{0xee}, OUI{}, 5)
	if err != nil || !bytes.Equal(got, tetherCat([]byte{0xee}, bindTLV)) {
		t.Fatalf("AppendChannelBinding = % x, %v; want ee % x", got, err, bindTLV)
	}
	got, err = AppendChannelBinding(nil, OUI{0x0a, 0x0b, 0x0c}, 5)
	if err != nil || !bytes.Equal(got, bindTLVOther) {
		t.Fatalf("AppendChannelBinding under 0a-0b-0c = % x, %v; want % x", got, err, bindTLVOther)
	}
	if len(got) != ChannelBindingTLVLen {
		t.Fatalf("binding TLV is %d bytes, ChannelBindingTLVLen says %d", len(got), ChannelBindingTLVLen)
	}
	for _, svid := range []uint16{0, 4095, 0xffff} {
		got, err := AppendChannelBinding([]byte{0xee}, OUI{}, svid)
		want := "tether Channel Binding at offset 7: invalid value: S-VID " + itoa(int(svid)) + " out of range 1-4094"
		if !errors.Is(err, ErrInvalid) || err.Error() != want || !bytes.Equal(got, []byte{0xee}) {
			t.Errorf("S-VID %d: % x, %v; want ee and %q", svid, got, err, want)
		}
	}
}

// TestChannelBindingInECPDU: the ECP/VDP codec types the binding (the
// dispatcher knows subtype 5), encodes it under the frame's CID, and
// refuses a malformed one with the binding's own error.
func TestChannelBindingInECPDU(t *testing.T) {
	other := OUI{0x0a, 0x0b, 0x0c}
	mgr := &VSIManagerID{ID: [16]byte(tetherSeq(0x40, 16))}
	for _, cid := range []OUI{{}, other} {
		p := &ECPDU{Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 7, TetherCID: cid,
			VDP: &VDPDU{TLVs: []TLV{mgr, &TetherChannelBinding{SVID: 5}}}}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("CID %s: encoding: %v", cid, err)
		}
		wantTLV := bindTLV
		if cid == other {
			wantTLV = bindTLVOther
		}
		if want := tetherCat(signECPHeader, signMgrID, wantTLV); !bytes.Equal(b, want) {
			t.Fatalf("CID %s: encoded\n% x\nwant\n% x", cid, b, want)
		}
		got := ECPDU{TetherCID: cid}
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("CID %s: decoding: %v", cid, err)
		}
		if !reflect.DeepEqual(got.VDP.TLVs[1], &TetherChannelBinding{SVID: 5}) {
			t.Fatalf("CID %s: decoded %#v, want a typed binding", cid, got.VDP.TLVs[1])
		}
	}
	bad := tetherCat(signECPHeader, signMgrID, tetherTLV(5, []byte{0, 0}))
	var p ECPDU
	if err := p.UnmarshalBinary(bad); !errors.Is(err, ErrInvalid) ||
		err.Error() != "tether Channel Binding at offset 28: invalid value: S-VID 0 out of range 1-4094" {
		t.Fatalf("ECPDU with a binding for S-VID 0: %v", err)
	}
}
