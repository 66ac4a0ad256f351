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
	for _, b := range [][]byte{tetherCapTLV, tetherInvTLV, tetherProfTLV, tetherProfMinTLV, tetherSigTLV} {
		f.Add(b[5], b[6:])
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
