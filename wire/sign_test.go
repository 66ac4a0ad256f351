package wire

import (
	"bytes"
	"errors"
	"testing"
)

// Building blocks of signed test PDUs, written out byte by byte.
var (
	signChassis = []byte{0x02, 0x07, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01} // Chassis ID: MAC 02:00:00:00:00:01
	signPort    = []byte{0x04, 0x05, 0x05, 'e', 't', 'h', '0'}                 // Port ID: ifname eth0
	signTTL     = []byte{0x06, 0x02, 0x00, 0x78}                               // TTL 120
	signSysName = []byte{0x0a, 0x03, 'h', 'v', '1'}                            // System Name hv1
	signEnd     = []byte{0x00, 0x00}                                           // End
	// signECPHeader: version 1, request, subtype VDP, sequence 7.
	signECPHeader = []byte{0x10, 0x01, 0x00, 0x07}
	// signMgrID: VSI Manager ID TLV (type 5, length 16).
	signMgrID = tetherCat([]byte{0x0a, 0x10}, tetherSeq(0x40, 16))
)

// signTLV is a signature TLV with key ID 01..08, counter 9 and signature
// a0..df.
var signTLV = tetherCat([]byte{
	0xfe, 0x54, // type 127, length 84
	0x7a, 0x7e, 0x71, // CID
	0x04,                   // subtype: signature
	1, 2, 3, 4, 5, 6, 7, 8, // key ID
	0, 0, 0, 0, 0, 0, 0, 9, // counter 9
}, tetherSeq(0xa0, 64))

var signWant = TetherSignature{KeyID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Counter: 9, Sig: [64]byte(tetherSeq(0xa0, 64))}

func TestFindSignature(t *testing.T) {
	lldpBody := tetherCat(signChassis, signPort, signTTL, signSysName)
	ecpBody := tetherCat(signECPHeader, signMgrID)
	other := OUI{0x0a, 0x0b, 0x0c}
	otherSig := tetherCat(signTLV[:2], other[:], signTLV[5:])
	tests := []struct {
		name    string
		pdu     []byte
		kind    PDUKind
		cid     OUI
		wantOff int
		wantErr string
		errKind error
	}{
		{name: "LLDP, End and padding", pdu: tetherCat(lldpBody, signTLV, signEnd, make([]byte, 9)), kind: PDUKindLLDP, wantOff: len(lldpBody)},
		{name: "LLDP without End", pdu: tetherCat(lldpBody, signTLV), kind: PDUKindLLDP, wantOff: len(lldpBody)},
		{name: "LLDP with a lone padding byte", pdu: tetherCat(lldpBody, signTLV, []byte{0x01}), kind: PDUKindLLDP, wantOff: len(lldpBody)},
		{name: "LLDP mandatory only", pdu: tetherCat(signChassis, signPort, signTTL, signTLV, signEnd), kind: PDUKindLLDP, wantOff: 20},
		{name: "LLDP under a configured CID", pdu: tetherCat(lldpBody, otherSig, signEnd), kind: PDUKindLLDP, cid: other, wantOff: len(lldpBody)},
		{name: "ECP", pdu: tetherCat(ecpBody, signTLV, signEnd, make([]byte, 4)), kind: PDUKindECP, wantOff: len(ecpBody)},
		{name: "ECP without End", pdu: tetherCat(ecpBody, signTLV), kind: PDUKindECP, wantOff: len(ecpBody)},

		{name: "LLDP unsigned", pdu: tetherCat(lldpBody, signEnd), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "tether Signature at offset 25: missing mandatory TLV: LLDPDU has no signature TLV (CID 7a-7e-71 subtype 4)"},
		{name: "LLDP signed under another CID", pdu: tetherCat(lldpBody, otherSig, signEnd), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "tether Signature at offset 111: missing mandatory TLV: LLDPDU has no signature TLV (CID 7a-7e-71 subtype 4)"},
		{name: "LLDP signature not last", pdu: tetherCat(lldpBody[:20], signTLV, signSysName, signEnd), kind: PDUKindLLDP, errKind: ErrInvalid,
			wantErr: "tether Signature at offset 20: invalid value: signature TLV must be last, but a type 5 TLV follows at offset 106"},
		{name: "LLDP two signatures", pdu: tetherCat(lldpBody, signTLV, signTLV), kind: PDUKindLLDP, errKind: ErrInvalid,
			wantErr: "tether Signature at offset 25: invalid value: signature TLV must be last, but a type 127 TLV follows at offset 111"},
		{name: "LLDP signature short", pdu: tetherCat(lldpBody, []byte{0xfe, 0x53}, signTLV[2:85], signEnd), kind: PDUKindLLDP, errKind: ErrLength,
			wantErr: "tether Signature at offset 31: inconsistent length: information string is 79 bytes, want 80"},
		{name: "LLDP signature long", pdu: tetherCat(lldpBody, []byte{0xfe, 0x55}, signTLV[2:], []byte{0}, signEnd), kind: PDUKindLLDP, errKind: ErrLength,
			wantErr: "tether Signature at offset 31: inconsistent length: information string is 81 bytes, want 80"},
		{name: "LLDP TLV runs past the buffer", pdu: tetherCat(lldpBody, signTLV[:40]), kind: PDUKindLLDP, errKind: ErrTruncated,
			wantErr: "LLDPDU TLV type 127 at offset 25: truncated: need 86 bytes, have 40"},
		{name: "LLDP half a header", pdu: tetherCat(lldpBody, []byte{0x02}), kind: PDUKindLLDP, errKind: ErrTruncated,
			wantErr: "LLDPDU TLV header at offset 25: truncated: need 2 bytes, have 1"},
		{name: "LLDP no Chassis ID", pdu: tetherCat(signPort, signTTL, signTLV), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "LLDPDU at offset 0: missing mandatory TLV: TLV 1 is type 2, want Chassis ID (1)"},
		{name: "LLDP no TTL", pdu: tetherCat(signChassis, signPort, signTLV), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "LLDPDU at offset 16: missing mandatory TLV: TLV 3 is type 127, want TTL (3)"},
		{name: "LLDP End first", pdu: tetherCat(signEnd, signTLV), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "LLDPDU at offset 0: missing mandatory TLV: TLV 1 is End, want Chassis ID (1)"},
		{name: "LLDP empty", pdu: nil, kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "LLDPDU at offset 0: missing mandatory TLV: TLV 1 is End, want Chassis ID (1)"},
		{name: "LLDP signature after End does not count", pdu: tetherCat(lldpBody, signEnd, signTLV), kind: PDUKindLLDP, errKind: ErrMissing,
			wantErr: "tether Signature at offset 25: missing mandatory TLV: LLDPDU has no signature TLV (CID 7a-7e-71 subtype 4)"},
		{name: "ECP ACK", pdu: []byte{0x14, 0x01, 0x00, 0x07}, kind: PDUKindECP, errKind: ErrMissing,
			wantErr: "tether Signature at offset 4: missing mandatory TLV: ECPDU has no signature TLV (CID 7a-7e-71 subtype 4)"},
		{name: "ECP short header", pdu: []byte{0x10, 0x01, 0x00}, kind: PDUKindECP, errKind: ErrTruncated,
			wantErr: "ECP header at offset 0: truncated: need 4 bytes, have 3"},
		{name: "ECP signature not last", pdu: tetherCat(ecpBody, signTLV, signMgrID), kind: PDUKindECP, errKind: ErrInvalid,
			wantErr: "tether Signature at offset 22: invalid value: signature TLV must be last, but a type 5 TLV follows at offset 108"},
		{name: "unknown kind", pdu: lldpBody, kind: 9, errKind: ErrInvalid,
			wantErr: "signed PDU at offset 0: invalid value: unknown PDU kind 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, sig, err := FindSignature(tt.pdu, tt.kind, tt.cid)
			if tt.wantErr != "" {
				var we *Error
				if !errors.As(err, &we) || !errors.Is(err, tt.errKind) || err.Error() != tt.wantErr {
					t.Fatalf("FindSignature error:\n got %v\nwant %q (%v)", err, tt.wantErr, tt.errKind)
				}
				if off != -1 {
					t.Fatalf("FindSignature offset on error = %d, want -1", off)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindSignature: %v", err)
			}
			if off != tt.wantOff || sig != signWant {
				t.Fatalf("FindSignature = %d, %+v; want %d, %+v", off, sig, tt.wantOff, signWant)
			}
		})
	}
}

func TestSignatureInsertOffset(t *testing.T) {
	lldpBody := tetherCat(signChassis, signPort, signTTL, signSysName)
	tests := []struct {
		name    string
		pdu     []byte
		kind    PDUKind
		off     int
		hasEnd  bool
		wantErr string
	}{
		{"LLDP with End and padding", tetherCat(lldpBody, signEnd, make([]byte, 6)), PDUKindLLDP, 25, true, ""},
		{"LLDP without End", lldpBody, PDUKindLLDP, 25, false, ""},
		{"ECP with End", tetherCat(signECPHeader, signMgrID, signEnd), PDUKindECP, 22, true, ""},
		{"ECP header only", signECPHeader, PDUKindECP, 4, false, ""},
		{"already signed", tetherCat(lldpBody, signTLV, signEnd), PDUKindLLDP, -1, false,
			"tether Signature at offset 25: invalid value: LLDPDU is already signed"},
		{"malformed", tetherCat(lldpBody, []byte{0x0a, 0x09, 'x'}), PDUKindLLDP, -1, false,
			"LLDPDU TLV type 5 at offset 25: truncated: need 11 bytes, have 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, hasEnd, err := SignatureInsertOffset(tt.pdu, tt.kind, OUI{})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || off != tt.off || hasEnd != tt.hasEnd {
				t.Fatalf("got %d, %v, %v; want %d, %v, nil", off, hasEnd, err, tt.off, tt.hasEnd)
			}
		})
	}
}

func TestAppendSignaturePrefix(t *testing.T) {
	got := AppendSignaturePrefix([]byte{0xee}, OUI{}, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 9)
	want := tetherCat([]byte{0xee}, signTLV[:SignedTLVPrefixLen])
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendSignaturePrefix:\n got % x\nwant % x", got, want)
	}
	// Completing it with the signature gives a TLV the decoder accepts.
	full := append(got[1:], tetherSeq(0xa0, 64)...)
	var sig TetherSignature
	if err := sig.UnmarshalBinary(full); err != nil || sig != signWant {
		t.Fatalf("completed TLV decodes as %+v, %v", sig, err)
	}
	if SignatureTLVLen != 86 || SignedTLVPrefixLen != 22 {
		t.Fatalf("SignatureTLVLen %d, SignedTLVPrefixLen %d; want 86, 22", SignatureTLVLen, SignedTLVPrefixLen)
	}
}

func TestAppendSignedMessage(t *testing.T) {
	dst := [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}
	src := [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	body := tetherCat(signChassis, signPort, signTTL)
	pdu := tetherCat(body, signTLV, signEnd)
	off, _, err := FindSignature(pdu, PDUKindLLDP, OUI{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := AppendSignedMessage(nil, dst, src, 0x88cc, pdu, off)
	if err != nil {
		t.Fatal(err)
	}
	want := tetherCat(dst[:], src[:], []byte{0x88, 0xcc}, body, signTLV[:SignedTLVPrefixLen])
	if !bytes.Equal(got, want) || len(got) != SignedMessageLen(off) {
		t.Fatalf("AppendSignedMessage (len %d, SignedMessageLen %d):\n got % x\nwant % x", len(got), SignedMessageLen(off), got, want)
	}
	// The message is a prefix of the untagged frame.
	frame := tetherCat(dst[:], src[:], []byte{0x88, 0xcc}, pdu)
	if !bytes.Equal(frame[:SignedMessageLen(off)], want) {
		t.Fatal("message is not a prefix of the untagged frame")
	}
	for _, bad := range []int{-1, len(pdu) - SignedTLVPrefixLen + 1} {
		if _, err := AppendSignedMessage(nil, dst, src, 0x88cc, pdu, bad); !errors.Is(err, ErrTruncated) {
			t.Fatalf("sigOff %d: error %v, want ErrTruncated", bad, err)
		}
	}
}

func TestPDUKindOf(t *testing.T) {
	for _, tt := range []struct {
		et   uint16
		kind PDUKind
		ok   bool
		name string
	}{
		{0x88cc, PDUKindLLDP, true, "LLDP"},
		{0x8940, PDUKindECP, true, "ECP"},
		{0x0800, 0, false, "PDU kind 0"},
	} {
		k, ok := PDUKindOf(tt.et)
		if k != tt.kind || ok != tt.ok || k.String() != tt.name {
			t.Errorf("PDUKindOf(%#04x) = %v, %v; want %v, %v", tt.et, k, ok, tt.kind, tt.ok)
		}
	}
}

func TestFindSignatureAllocs(t *testing.T) {
	pdu := tetherCat(signChassis, signPort, signTTL, signSysName, signTLV, signEnd)
	n := testing.AllocsPerRun(100, func() {
		if _, _, err := FindSignature(pdu, PDUKindLLDP, OUI{}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("FindSignature allocates %v times, want 0", n)
	}
	buf := make([]byte, 0, 256)
	n = testing.AllocsPerRun(100, func() {
		_ = AppendSignaturePrefix(buf[:0], OUI{}, [8]byte{}, 1)
	})
	if n != 0 {
		t.Fatalf("AppendSignaturePrefix allocates %v times, want 0", n)
	}
}

func TestIsUnsigned(t *testing.T) {
	body := tetherCat(signChassis, signPort, signTTL)
	_, _, err := FindSignature(tetherCat(body, signEnd), PDUKindLLDP, OUI{})
	if !IsUnsigned(err) {
		t.Fatalf("IsUnsigned(%v) = false for an unsigned LLDPDU", err)
	}
	_, _, err = FindSignature(tetherCat(signPort, signTTL, signEnd), PDUKindLLDP, OUI{})
	if err == nil || IsUnsigned(err) {
		t.Fatalf("IsUnsigned(%v) = true for an LLDPDU without Chassis ID", err)
	}
	_, _, err = FindSignature(tetherCat(body, signTLV[:80]), PDUKindLLDP, OUI{})
	if err == nil || IsUnsigned(err) {
		t.Fatalf("IsUnsigned(%v) = true for a truncated LLDPDU", err)
	}
}
