package wire

import (
	"bytes"
	"testing"
)

// FuzzTetherTLV decodes arbitrary tether TLV information strings and checks
// that whatever decodes re-encodes to the same bytes.
//
//	go test ./wire -run '^$' -fuzz FuzzTetherTLV -fuzztime 20s
func FuzzTetherTLV(f *testing.F) {
	for _, b := range [][]byte{tetherCapTLV, tetherInvTLV, tetherProfTLV, tetherProfMinTLV, tetherSigTLV, tetherBindTLV} {
		f.Add(b[5], b[6:])
	}
	// Channel bindings: S-VID 4094, reserved bits, S-VID 0 and 4095, one
	// byte short.
	for _, info := range [][]byte{{0x0f, 0xfe}, {0xf0, 0x05}, {0, 0}, {0x0f, 0xff}, {0x05}} {
		f.Add(TetherSubtypeChannelBinding, info)
	}
	f.Add(uint8(9), []byte{1, 2, 3})
	f.Add(uint8(3), []byte{0, 1, 1, 0, 0, 0, 0, 0, 1, 0x08, 0x00, 1, 'a', 1, 'p'})
	many := []byte{0, 1, 1, 0, 0, 0, 0, 0, 200}
	for i := 0; i < 200; i++ {
		many = append(many, 0x88, byte(i))
	}
	f.Add(uint8(3), append(many, 0, 1, 'p'))
	f.Fuzz(func(t *testing.T, sub uint8, info []byte) {
		if len(info) > MaxOrgInfo {
			info = info[:MaxOrgInfo]
		}
		tlv, err := decodeOrgTLV(DefaultCID, sub, info, 6, OUI{})
		if err != nil {
			return
		}
		got, err := tlv.appendTLV(nil, OUI{})
		if err != nil {
			t.Fatalf("decoded %#v but encoding fails: %v", tlv, err)
		}
		want := tetherTLV(sub, info)
		if !bytes.Equal(got, want) {
			t.Fatalf("round trip of %#v:\n got % x\nwant % x", tlv, got, want)
		}
	})
}

// FuzzFindSignature walks arbitrary PDUs: no panics, and a signature it
// finds is a well-formed last TLV whose removal leaves a signable PDU.
//
//	go test ./wire -run '^$' -fuzz FuzzFindSignature -fuzztime 20s
func FuzzFindSignature(f *testing.F) {
	f.Add(true, tetherCat(signChassis, signPort, signTTL, signSysName, signTLV, signEnd, make([]byte, 7)))
	f.Add(true, tetherCat(signChassis, signPort, signTTL, signTLV, signSysName))
	f.Add(false, tetherCat(signECPHeader, signMgrID, signTLV))
	f.Add(false, tetherCat(signECPHeader, signMgrID, signTLV[:50]))
	f.Fuzz(func(t *testing.T, lldp bool, pdu []byte) {
		kind := PDUKindECP
		if lldp {
			kind = PDUKindLLDP
		}
		off, sig, err := FindSignature(pdu, kind, OUI{})
		if err != nil {
			if off != -1 {
				t.Fatalf("offset %d with error %v", off, err)
			}
			return
		}
		if off < 0 || off+SignatureTLVLen > len(pdu) {
			t.Fatalf("signature at %d does not fit in %d bytes", off, len(pdu))
		}
		var again TetherSignature
		if err := again.UnmarshalBinary(pdu[off : off+SignatureTLVLen]); err != nil || again != sig {
			t.Fatalf("TLV at %d decodes as %+v, %v; FindSignature said %+v", off, again, err, sig)
		}
		at, _, err := SignatureInsertOffset(pdu[:off], kind, OUI{})
		if err != nil || at != off {
			t.Fatalf("SignatureInsertOffset of the unsigned part = %d, %v; want %d", at, err, off)
		}
	})
}

// FuzzFindChannelBinding walks arbitrary ECPDUs: no panics, a binding it
// finds is a well-formed TLV at the offset it gives, and inserting a
// binding where a signature would go into an unbound ECPDU makes it found
// there.
//
//	go test ./wire -run '^$' -fuzz FuzzFindChannelBinding -fuzztime 20s
func FuzzFindChannelBinding(f *testing.F) {
	body := tetherCat(signECPHeader, signMgrID)
	f.Add(tetherCat(body, tetherBindTLV, signTLV, signEnd))
	f.Add(tetherCat(body, signTLV, signEnd, make([]byte, 4)))
	f.Add(tetherCat(body, tetherBindTLV, tetherBindTLV))
	f.Add(tetherCat(body, tetherTLV(5, []byte{0xf0, 0})))
	f.Add(tetherCat(body, tetherBindTLV[:7]))
	f.Add(signECPHeader[:3])
	f.Fuzz(func(t *testing.T, pdu []byte) {
		off, b, err := FindChannelBinding(pdu, OUI{})
		if err != nil {
			if off != -1 {
				t.Fatalf("offset %d with error %v", off, err)
			}
			return
		}
		if off >= 0 {
			if off+ChannelBindingTLVLen > len(pdu) {
				t.Fatalf("binding at %d does not fit in %d bytes", off, len(pdu))
			}
			var again TetherChannelBinding
			if err := again.UnmarshalBinary(pdu[off : off+ChannelBindingTLVLen]); err != nil || again != b {
				t.Fatalf("TLV at %d decodes as %+v, %v; FindChannelBinding said %+v", off, again, err, b)
			}
			return
		}
		at, _, err := SignatureInsertOffset(pdu, PDUKindECP, OUI{})
		if err != nil {
			return
		}
		bound, err := AppendChannelBinding(append([]byte(nil), pdu[:at]...), OUI{}, 7)
		if err != nil {
			t.Fatal(err)
		}
		bound = append(bound, pdu[at:]...)
		if off, b, err := FindChannelBinding(bound, OUI{}); err != nil || off != at || b.SVID != 7 {
			t.Fatalf("after inserting a binding at %d: found at %d, %+v, %v", at, off, b, err)
		}
	})
}
