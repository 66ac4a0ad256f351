package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// TestVSIFilterFormats encodes one VSI TLV per filter format and checks
// the bytes field by field, then decodes them back.
func TestVSIFilterFormats(t *testing.T) {
	mac := [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	head := "" +
		"00 abcdef 07 03" + // status, type ID, version, VSIID format MAC
		"00000000000000000000 525400123456" // VSIID: MAC in the last six octets
	tests := []struct {
		name string
		vsi  VSI
		want string
	}{
		{"VID", VSI{FilterFormat: FilterVID, Filters: []Filter{{VID: 0}, {PS: true, PCP: 5, VID: 4094}}},
			"061d" + head + "01 0002" + "0000" + "dffe"}, // PS 1 PCP 5 VID 4094 = 1101 1111 1111 1110
		{"MAC/VID", VSI{FilterFormat: FilterMACVID, Filters: []Filter{{MAC: mac, PCP: 3, VID: 100}}},
			"0621" + head + "02 0001" + "525400123456 3064"},
		{"GroupID/VID", VSI{FilterFormat: FilterGroupVID, Filters: []Filter{{GroupID: 0x01020304, VID: 7}, {GroupID: 0xffffffff, VID: 8}}},
			"0625" + head + "03 0002" + "01020304 0007" + "ffffffff 0008"},
		{"GroupID/MAC/VID", VSI{FilterFormat: FilterGroupMACVID, Filters: []Filter{{GroupID: 42, MAC: mac, PS: true, VID: 1}}},
			"0625" + head + "04 0001" + "0000002a 525400123456 8001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.vsi
			v.Mode = VSIAssociate
			v.VSITypeID = 0xabcdef
			v.VSITypeVersion = 7
			v.VSIIDFormat = VSIIDMAC
			copy(v.VSIID[10:], mac[:])
			got, err := v.appendTLV(nil, OUI{})
			if err != nil {
				t.Fatal(err)
			}
			want := ecpHex(t, tt.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n% x\nwant\n% x", got, want)
			}
			var back VSI
			typ, l := parseTLVHeader(got)
			if err := back.decode(VSIMode(typ), got[2:2+l], 0); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, v) {
				t.Errorf("decoded\n%+v\nwant\n%+v", back, v)
			}
			if s := back.VSIIDString(); s != "52:54:00:12:34:56" {
				t.Errorf("VSIIDString() = %q", s)
			}
		})
	}
}

// TestVSIEncodeIgnoresForeignFields checks that fields a filter format
// does not carry are not encoded.
func TestVSIEncodeIgnoresForeignFields(t *testing.T) {
	v := VSI{Mode: VSIPreAssociate, VSIIDFormat: VSIIDLocal, FilterFormat: FilterVID,
		Filters: []Filter{{VID: 10, MAC: [6]byte{1, 2, 3, 4, 5, 6}, GroupID: 99}}}
	got, err := v.appendTLV(nil, OUI{})
	if err != nil {
		t.Fatal(err)
	}
	want := ecpHex(t, "021b 00 000000 00 04 00000000000000000000000000000000 01 0001 000a")
	if !bytes.Equal(got, want) {
		t.Errorf("encoded\n% x\nwant\n% x", got, want)
	}
}

func TestVSIStatus(t *testing.T) {
	tests := []struct {
		st                     VSIStatus
		resp, m, s, keep, hard bool
		code                   VDPResponseCode
	}{
		{0x00, false, false, false, false, false, VDPSuccess},
		{0x10, false, true, false, false, false, VDPSuccess},
		{0x20, false, false, true, false, false, VDPSuccess},
		{0x40, true, false, false, false, false, VDPSuccess},
		{0x52, true, false, false, false, true, VDPInsufficientResources},
		{0x63, true, false, false, true, false, VDPUnableToContactManager},
		{0x75, true, false, false, true, true, VDPInvalidAddress},
	}
	for _, tt := range tests {
		st := tt.st
		if st.IsResponse() != tt.resp || st.M() != tt.m || st.S() != tt.s || st.Keep() != tt.keep || st.Hard() != tt.hard || st.Code() != tt.code {
			t.Errorf("%#02x: response %v M %v S %v keep %v hard %v code %v", uint8(st), st.IsResponse(), st.M(), st.S(), st.Keep(), st.Hard(), st.Code())
		}
	}
	if got := ResponseStatus(VDPInsufficientResources, false, true); got != 0x52 {
		t.Errorf("ResponseStatus = %#02x, want 0x52", uint8(got))
	}
	if got := ResponseStatus(VDPResponseCode(0x1f), true, false); got != 0x6f {
		t.Errorf("ResponseStatus keeps only 4 code bits: %#02x, want 0x6f", uint8(got))
	}
	if got := RequestStatus(true, true); got != 0x30 {
		t.Errorf("RequestStatus = %#02x, want 0x30", uint8(got))
	}
}

func TestVDPStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{VSIPreAssociate.String(), "PRE-ASSOCIATE"},
		{VSIPreAssociateRR.String(), "PRE-ASSOCIATE-RR"},
		{VSIAssociate.String(), "ASSOCIATE"},
		{VSIDeAssociate.String(), "DE-ASSOCIATE"},
		{VSIMode(9).String(), "mode 9"},
		{VDPSuccess.String(), "success"},
		{VDPInvalidFormat.String(), "invalid format"},
		{VDPInsufficientResources.String(), "insufficient resources"},
		{VDPUnableToContactManager.String(), "unable to contact VSI manager"},
		{VDPOtherFailure.String(), "other failure"},
		{VDPInvalidAddress.String(), "invalid VID, GroupID or MAC address"},
		{VDPResponseCode(6).String(), "error 6"},
		{VSIIDIPv4.String(), "IPv4"},
		{VSIIDIPv6.String(), "IPv6"},
		{VSIIDMAC.String(), "MAC"},
		{VSIIDLocal.String(), "local"},
		{VSIIDUUID.String(), "UUID"},
		{VSIIDFormat(0).String(), "format 0"},
		{FilterVID.String(), "VID"},
		{FilterMACVID.String(), "MAC/VID"},
		{FilterGroupVID.String(), "GroupID/VID"},
		{FilterGroupMACVID.String(), "GroupID/MAC/VID"},
		{FilterFormat(5).String(), "format 5"},
		{(&VSI{Mode: VSIAssociate, Status: ResponseStatus(VDPInsufficientResources, true, true), VSIIDFormat: VSIIDIPv4,
			VSIID:        netip.MustParseAddr("192.0.2.1").As16(),
			FilterFormat: FilterGroupMACVID, Filters: []Filter{{GroupID: 5, VID: 10, PCP: 3, PS: true}, {VID: 11}}}).String(),
			"ASSOCIATE response keep hard: insufficient resources typeid 0x000000 v0 IPv4 192.0.2.1 GroupID/MAC/VID " +
				"[group 5 00:00:00:00:00:00 vid 10 pcp 3 ps, group 0 00:00:00:00:00:00 vid 11]"},
		{(&VSI{Mode: VSIPreAssociateRR, Status: RequestStatus(false, true), VSIIDFormat: VSIIDIPv6,
			VSIID: netip.MustParseAddr("2001:db8::1").As16(), FilterFormat: FilterVID}).String(),
			"PRE-ASSOCIATE-RR request S typeid 0x000000 v0 IPv6 2001:db8::1 VID []"},
		{(&VSI{VSIIDFormat: VSIIDLocal, VSIID: [16]byte{0: 0xab, 15: 0x01}}).VSIIDString(), "ab000000000000000000000000000001"},
		{(&VSI{VSIIDFormat: 9, VSIID: [16]byte{15: 0xff}}).VSIIDString(), "000000000000000000000000000000ff"},
	} {
		if tt.got != tt.want {
			t.Errorf("got  %q\nwant %q", tt.got, tt.want)
		}
	}
}

func TestVSIManagerID(t *testing.T) {
	m, err := ManagerIDFromString("evmgr01")
	if err != nil {
		t.Fatal(err)
	}
	if want := [16]byte{'e', 'v', 'm', 'g', 'r', '0', '1'}; m.ID != want {
		t.Errorf("ID % x", m.ID)
	}
	if _, err := ManagerIDFromString("0123456789abcdefX"); err == nil || err.Error() != `VDP VSI Manager ID at offset 0: oversize: "0123456789abcdefX" is 17 bytes, want 1 to 16` || !errors.Is(err, ErrOversize) {
		t.Errorf("17 bytes: %v", err)
	}
	if _, err := ManagerIDFromString(""); !errors.Is(err, ErrOversize) {
		t.Errorf("empty: %v", err)
	}
	if _, err := ManagerIDFromString("a\x00b"); err == nil || err.Error() != `VDP VSI Manager ID at offset 0: invalid value: "a\x00b" contains a NUL byte` {
		t.Errorf("NUL: %v", err)
	}
	if m, _ := ManagerIDFromString("0123456789abcdef"); m.String() != "0123456789abcdef" {
		t.Errorf("16 bytes: %q", m.String())
	}
	for _, tt := range []struct {
		m    VSIManagerID
		want string
	}{
		{ManagerIDFromAddr(netip.MustParseAddr("192.0.2.7")), "192.0.2.7"},
		{ManagerIDFromAddr(netip.MustParseAddr("2001:db8::7")), "2001:db8::7"},
		{VSIManagerID{}, "0"},
		{VSIManagerID{ID: [16]byte{3}}, "3"},
		{VSIManagerID{ID: [16]byte{'a', 0, 'b'}}, "6100:6200::"},
	} {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestVDPDUStandalone exercises VDPDU.Decode and Append without ECP, and
// the org TLV path under a non-default CID.
func TestVDPDUStandalone(t *testing.T) {
	cid := OUI{0x1a, 0x2b, 0x3c}
	in := append(ecpHex(t, ecpAssoc)[4:], ecpHex(t, "fe06 1a2b3c 05 0abc")...)
	var d VDPDU
	if err := d.Decode(in, cid); err != nil {
		t.Fatal(err)
	}
	if len(d.TLVs) != 3 || d.ManagerID() == nil || len(d.VSIs()) != 1 {
		t.Fatalf("TLVs %#v", d.TLVs)
	}
	if _, ok := d.TLVs[2].(OrgTLV); !ok {
		t.Errorf("TLV 2 is %T, want an OrgTLV", d.TLVs[2])
	}
	out, err := d.Append(nil, cid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("re-encoded\n% x\nwant\n% x", out, in)
	}
	// Errors count from b[0] here.
	err = d.Decode(in[:10], cid)
	if err == nil || err.Error() != "VDP VSI Manager ID at offset 0: truncated: need 18 bytes, have 10" {
		t.Errorf("Decode error %v", err)
	}
	if (&VDPDU{}).ManagerID() != nil {
		t.Error("ManagerID of an empty VDPDU")
	}
}

// ecpBenchPDU is the benchmark PDU: Manager ID, ASSOCIATE with one MAC/VID
// filter, and tether's signature TLV (86 bytes in all: header, CID,
// subtype, key ID, counter and Ed25519 signature) under DefaultCID.
func ecpBenchPDU() *ECPDU {
	p := ecpValid()
	sig := &TetherSignature{KeyID: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Counter: 1 << 40}
	for i := range sig.Sig {
		sig.Sig[i] = byte(i)
	}
	p.VDP.TLVs = append(p.VDP.TLVs, sig)
	return p
}

func BenchmarkVDPAssociateEncode(b *testing.B) {
	p := ecpBenchPDU()
	buf := make([]byte, 0, 1500)
	out, err := p.AppendBinary(buf)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVDPAssociateDecode(b *testing.B) {
	in, err := ecpBenchPDU().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var p ECPDU
	for b.Loop() {
		if err := p.UnmarshalBinary(in); err != nil {
			b.Fatal(err)
		}
	}
}
