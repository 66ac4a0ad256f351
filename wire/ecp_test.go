package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// ecpDiff fails t unless got and want are deeply equal.
func ecpDiff(t *testing.T, got, want *ECPDU) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n got %s\nwant %s\n got %#v\nwant %#v", got, want, got, want)
	}
}

// ecpHex decodes hex with spaces, | separators and line breaks allowed.
func ecpHex(tb testing.TB, s string) []byte {
	tb.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "", "|", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// ecpAssoc is frame 17 of the lldpad capture: the station's ASSOCIATE
// request. Offsets: ECP header 0-3, Manager ID TLV 4-21, ASSOCIATE TLV
// header 22-23, status 24, type ID 25-27, version 28, VSIID format 29,
// VSIID 30-45, filter format 46, number of entries 47-48, entry 49-56.
const ecpAssoc = "" +
	"1001 0001" + // version 1, op request, subtype VDP, sequence 1
	"0a10 65766d67723031 000000000000000000" + // Manager ID TLV: "evmgr01"
	"0621" + // ASSOCIATE, length 33
	"00 001267 01 05" + // status, type ID, type version, VSIID format UUID
	"6f1c2b3a111142228333944455556666" + // VSIID
	"02 0001" + // filter format MAC/VID, 1 entry
	"525400123456 0064" // MAC, PS 0 PCP 0 VID 100

// ecpWith returns ecpAssoc with the bytes at off replaced by repl (hex).
func ecpWith(tb testing.TB, off int, repl string) []byte {
	tb.Helper()
	b := ecpHex(tb, ecpAssoc)
	r := ecpHex(tb, repl)
	copy(b[off:], r)
	return b
}

func TestECPDecodeErrors(t *testing.T) {
	assoc := ecpHex(t, ecpAssoc)
	tests := []struct {
		name string
		in   []byte
		kind error
		want string
	}{
		{"empty", nil, ErrTruncated,
			"ECP at offset 0: truncated: need 4 bytes, have 0"},
		{"3-byte header", ecpHex(t, "100100"), ErrTruncated,
			"ECP at offset 0: truncated: need 4 bytes, have 3"},
		{"version 2", ecpHex(t, "2001 0001"), ErrInvalid,
			"ECP at offset 0: invalid value: version 2, only 1 is defined"},
		{"version 0", ecpHex(t, "0001 0001"), ErrInvalid,
			"ECP at offset 0: invalid value: version 0, only 1 is defined"},
		{"operation type 2", ecpHex(t, "1801 0001"), ErrUnknownSubtype,
			"ECP at offset 0: unknown subtype: operation type 2"},
		{"unknown subtype", ecpHex(t, "1003 0001"), ErrUnknownSubtype,
			"ECP at offset 0: unknown subtype: subtype 3"},
		{"unknown subtype in ACK", ecpHex(t, "17ff 0001"), ErrUnknownSubtype,
			"ECP at offset 0: unknown subtype: subtype 1023"},
		{"longer than a frame", append(ecpHex(t, "1002 0001"), make([]byte, 1497)...), ErrOversize,
			"ECP at offset 0: oversize: ECPDU is 1501 bytes, at most 1500 fit in a frame"},
		{"VDP request without TLVs", ecpHex(t, "1001 0001"), ErrMissing,
			"VDP at offset 4: missing mandatory TLV: no VSI Manager ID TLV"},
		{"VDP request of padding only", ecpHex(t, "1001 0001 0000 0000"), ErrMissing,
			"VDP at offset 4: missing mandatory TLV: no VSI Manager ID TLV"},
		{"ASSOCIATE before Manager ID", append(ecpHex(t, "1001 0001"), assoc[22:]...), ErrMissing,
			"VDP at offset 4: missing mandatory TLV: the first VDP TLV is ASSOCIATE, want VSI Manager ID"},
		{"unknown TLV before Manager ID", ecpHex(t, "1001 0001 1000"), ErrMissing,
			"VDP at offset 4: missing mandatory TLV: the first VDP TLV is TLV type 8, want VSI Manager ID"},
		{"Manager ID of 15 bytes", ecpHex(t, "1001 0001 0a0f 65766d67723031 0000000000000000"), ErrLength,
			"VDP VSI Manager ID at offset 4: inconsistent length: length 15, want 16"},
		{"Manager ID twice", append(ecpHex(t, ecpAssoc)[:22], assoc[4:22]...), ErrInvalid,
			"VDP VSI Manager ID at offset 22: invalid value: a second VSI Manager ID TLV"},
		{"TLV length past the end", assoc[:len(assoc)-1], ErrTruncated,
			"VDP ASSOCIATE at offset 22: truncated: need 35 bytes, have 34"},
		{"Manager ID length past the end", assoc[:20], ErrTruncated,
			"VDP VSI Manager ID at offset 4: truncated: need 18 bytes, have 16"},
		{"ASSOCIATE with too few bytes", append(assoc[:22:22], ecpHex(t, "060a 00001267 0105 6f1c2b3a1111")...), ErrLength,
			"VDP ASSOCIATE at offset 22: inconsistent length: length 10, a VSI TLV needs at least 25"},
		{"PRE-ASSOCIATE-RR of 24 bytes", append(assoc[:22:22], append(ecpHex(t, "0418"), assoc[24:48]...)...), ErrLength,
			"VDP PRE-ASSOCIATE-RR at offset 22: inconsistent length: length 24, a VSI TLV needs at least 25"},
		{"filter count 2 with one entry", ecpWith(t, 47, "0002"), ErrLength,
			"VDP ASSOCIATE at offset 47: inconsistent length: 2 MAC/VID filter entries need 16 bytes, the TLV has 8"},
		{"filter count 0 with one entry", ecpWith(t, 47, "0000"), ErrLength,
			"VDP ASSOCIATE at offset 47: inconsistent length: 0 MAC/VID filter entries need 0 bytes, the TLV has 8"},
		{"entry size of another format", ecpWith(t, 46, "01"), ErrLength,
			"VDP ASSOCIATE at offset 47: inconsistent length: 1 VID filter entries need 2 bytes, the TLV has 8"},
		{"unknown VSIID format 9", ecpWith(t, 29, "09"), ErrUnknownSubtype,
			"VDP ASSOCIATE at offset 29: unknown subtype: VSIID format 9"},
		{"VSIID format 0", ecpWith(t, 29, "00"), ErrUnknownSubtype,
			"VDP ASSOCIATE at offset 29: unknown subtype: VSIID format 0"},
		{"unknown filter format 7", ecpWith(t, 46, "07"), ErrUnknownSubtype,
			"VDP ASSOCIATE at offset 46: unknown subtype: filter info format 7"},
		{"VID 4095", ecpWith(t, 55, "0fff"), ErrInvalid,
			"VDP ASSOCIATE at offset 55: invalid value: filter 0: VID 4095 is reserved"},
		{"org TLV of 3 bytes", append(assoc[:22:22], ecpHex(t, "fe03 7a7e71")...), ErrLength,
			"VDP org TLV at offset 22: inconsistent length: length 3, an organizationally specific TLV needs at least 4"},
		{"odd last byte that starts a TLV", append(assoc[:57:57], 0x02), ErrTruncated,
			"VDP TLV at offset 57: truncated: need 2 bytes, have 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ECPDU{Sequence: 4242}
			err := p.UnmarshalBinary(tt.in)
			if err == nil {
				t.Fatalf("decoded %s, want error %q", &p, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
			}
			var we *Error
			if !errors.As(err, &we) {
				t.Errorf("error is %T, want *Error", err)
			}
			if p.Sequence != 4242 {
				t.Errorf("p changed on error: %s", &p)
			}
		})
	}
}

// TestECPDecodeLenient covers what lldpad accepts and so must we.
func TestECPDecodeLenient(t *testing.T) {
	assoc := ecpHex(t, ecpAssoc)
	tests := []struct {
		name string
		in   []byte
		want []byte // re-encoding; nil means same as in
	}{
		// A minimum-size frame: zero padding after the last TLV.
		{"VDP padded to 60 bytes", append(assoc[:57:57], make([]byte, 3)...), assoc},
		// An explicit End TLV, then anything: lldpad stops reading at a
		// TLV header of type 0 whatever its length.
		{"End TLV then garbage", append(assoc[:57:57], ecpHex(t, "0005 ffffffff")...), assoc},
		// A lone zero byte left after the last TLV.
		{"one byte of padding", append(assoc[:57:57], 0), assoc},
		{"lone byte with type bits zero", append(assoc[:57:57], 1), assoc},
		// An ACK padded to 60 bytes; lldpad ignores everything after the
		// ACK header.
		{"ACK padded", append(ecpHex(t, "1401 0001"), make([]byte, 42)...), ecpHex(t, "1401 0001")},
		{"ACK with trailing bytes", ecpHex(t, "1401 0001 0a10"), ecpHex(t, "1401 0001")},
		// Unknown TLV types are kept raw; lldpad skips them.
		{"unknown TLV type 9", append(assoc[:57:57], ecpHex(t, "1203 010203")...), nil},
		// An unknown org TLV after the VSI.
		{"org TLV", append(assoc[:57:57], ecpHex(t, "fe06 0012bb 01 abcd")...), nil},
		// A VSI TLV without filters is well formed (lldpad ignores it).
		{"no filters", append(assoc[:22:22], append(append(ecpHex(t, "0619"), assoc[24:47]...), 0, 0)...), nil},
		// PE-CSP payloads are carried raw, padding included.
		{"PE-CSP", ecpHex(t, "1002 0007 01020304 0000"), nil},
		{"PE-CSP empty", ecpHex(t, "1002 0007"), nil},
		{"ACK of PE-CSP", ecpHex(t, "1402 0007"), nil},
		{"reserved status bit kept", ecpWith(t, 24, "ff"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p ECPDU
			if err := p.UnmarshalBinary(tt.in); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				want = tt.in
			}
			got, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("re-encoded\n% x\nwant\n% x", got, want)
			}
		})
	}
}

// ecpValid returns a fresh valid ASSOCIATE request like frame 17.
func ecpValid() *ECPDU {
	mgr, _ := ManagerIDFromString("evmgr01")
	return &ECPDU{Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 1, VDP: &VDPDU{TLVs: []TLV{
		&mgr,
		&VSI{Mode: VSIAssociate, VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: VSIIDUUID,
			VSIID:        [16]byte{0x6f, 0x1c, 0x2b, 0x3a, 0x11, 0x11, 0x42, 0x22, 0x83, 0x33, 0x94, 0x44, 0x55, 0x55, 0x66, 0x66},
			FilterFormat: FilterMACVID, Filters: []Filter{{MAC: [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, VID: 100}}},
	}}}
}

func TestECPEncode(t *testing.T) {
	got, err := ecpValid().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := ecpHex(t, ecpAssoc); !bytes.Equal(got, want) {
		t.Errorf("encoded\n% x\nwant\n% x", got, want)
	}
	ack, err := (&ECPDU{Op: ECPAck, Subtype: ECPSubtypeVDP, Sequence: 0xbeef}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := ecpHex(t, "1401 beef"); !bytes.Equal(ack, want) {
		t.Errorf("ACK % x, want % x", ack, want)
	}
	// AppendBinary after an Ethernet header; offsets of errors then count
	// from the start of b.
	eth := EthernetHeader{Dst: [6]byte{0x01, 0x80, 0xc2}, Src: ecpStation, EtherType: EtherTypeECP}
	frame, err := ecpValid().AppendBinary(eth.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	g := ecpGoldenFrame(t, 17)
	var h EthernetHeader
	if _, err := h.Parse(frame); err != nil || !bytes.Equal(frame[14:], g.payload) {
		t.Errorf("frame % x (%v)", frame, err)
	}
}

func TestECPEncodeErrors(t *testing.T) {
	big := &RawOrgTLV{OUI: OUI{0x00, 0x12, 0xbb}, Subtype: 1, Info: make([]byte, 500)}
	tests := []struct {
		name   string
		mutate func(p *ECPDU)
		kind   error
		want   string
	}{
		{"VLAN ID 4095", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).Filters[0].VID = 4095 }, ErrInvalid,
			"VDP ASSOCIATE at offset 22: invalid value: filter 0: VID 4095 is reserved or out of range"},
		{"VLAN ID 5000", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).Filters[0].VID = 5000 }, ErrInvalid,
			"VDP ASSOCIATE at offset 22: invalid value: filter 0: VID 5000 is reserved or out of range"},
		{"PCP 8", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).Filters[0].PCP = 8 }, ErrInvalid,
			"VDP ASSOCIATE at offset 22: invalid value: filter 0: PCP 8 does not fit in 3 bits"},
		{"type ID of 25 bits", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).VSITypeID = 0x1000000 }, ErrInvalid,
			"VDP ASSOCIATE at offset 22: invalid value: VSI type ID 0x1000000 does not fit in 24 bits"},
		{"mode 0", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).Mode = 0 }, ErrInvalid,
			"VDP mode 0 at offset 22: invalid value: 0 is not a VSI TLV type"},
		{"VSIID format unset", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).VSIIDFormat = 0 }, ErrUnknownSubtype,
			"VDP ASSOCIATE at offset 22: unknown subtype: VSIID format 0"},
		{"filter format 7", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).FilterFormat = 7 }, ErrUnknownSubtype,
			"VDP ASSOCIATE at offset 22: unknown subtype: filter info format 7"},
		{"61 MAC/VID filters", func(p *ECPDU) { p.VDP.TLVs[1].(*VSI).Filters = make([]Filter, 61) }, ErrOversize,
			"VDP ASSOCIATE at offset 22: oversize: 61 MAC/VID filter entries make the value 513 bytes, at most 511 allowed"},
		{"no Manager ID", func(p *ECPDU) { p.VDP.TLVs = p.VDP.TLVs[1:] }, ErrMissing,
			"VDP at offset 4: missing mandatory TLV: the first VDP TLV is ASSOCIATE, want VSI Manager ID"},
		{"no TLVs", func(p *ECPDU) { p.VDP.TLVs = nil }, ErrMissing,
			"VDP at offset 4: missing mandatory TLV: no VSI Manager ID TLV"},
		{"Manager ID twice", func(p *ECPDU) { p.VDP.TLVs = append(p.VDP.TLVs, p.VDP.TLVs[0]) }, ErrInvalid,
			"VDP VSI Manager ID at offset 57: invalid value: a second VSI Manager ID TLV (TLV 2)"},
		{"nil TLV", func(p *ECPDU) { p.VDP.TLVs[1] = nil }, ErrInvalid,
			"VDP at offset 22: invalid value: TLV 1 is nil"},
		{"nil VSI", func(p *ECPDU) { p.VDP.TLVs[1] = (*VSI)(nil) }, ErrInvalid,
			"VDP at offset 22: invalid value: TLV 1 is nil"},
		{"raw TLV of a VDP type", func(p *ECPDU) { p.VDP.TLVs[1] = &RawTLV{Type: 3} }, ErrInvalid,
			"TLV type 3 at offset 22: invalid value: VDP TLV type 3 must use its own Go type"},
		{"raw End TLV", func(p *ECPDU) { p.VDP.TLVs[1] = &RawTLV{Type: 0} }, ErrInvalid,
			"TLV type 0 at offset 22: invalid value: VDP TLV type 0 must use its own Go type"},
		{"VDP request without VDPDU", func(p *ECPDU) { p.VDP = nil }, ErrMissing,
			"VDP at offset 4: missing mandatory TLV: a VDP request needs a VDPDU"},
		{"VDP request with Payload", func(p *ECPDU) { p.Payload = []byte{1} }, ErrInvalid,
			"ECP at offset 0: invalid value: a VDP request carries its payload in VDP, not Payload"},
		{"ACK with VDPDU", func(p *ECPDU) { p.Op = ECPAck }, ErrInvalid,
			"ECP at offset 0: invalid value: an ACK carries no payload"},
		{"PE-CSP with VDPDU", func(p *ECPDU) { p.Subtype = ECPSubtypePECSP }, ErrInvalid,
			"ECP at offset 0: invalid value: VDPDU given for subtype 2"},
		{"version 2", func(p *ECPDU) { p.Version = 2 }, ErrInvalid,
			"ECP at offset 0: invalid value: version 2, only 1 is defined"},
		{"operation type 3", func(p *ECPDU) { p.Op = 3 }, ErrUnknownSubtype,
			"ECP at offset 0: unknown subtype: operation type 3"},
		{"subtype 5", func(p *ECPDU) { p.Subtype = 5 }, ErrUnknownSubtype,
			"ECP at offset 0: unknown subtype: subtype 5"},
		{"longer than a frame", func(p *ECPDU) { p.VDP.TLVs = append(p.VDP.TLVs, big, big, big) }, ErrOversize,
			"ECP at offset 0: oversize: ECPDU is 1575 bytes, at most 1500 fit in a frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ecpValid()
			tt.mutate(p)
			b := make([]byte, 0, 64)
			out, err := p.AppendBinary(b)
			if err == nil {
				t.Fatalf("encoded % x, want error %q", out, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
			}
			if len(out) != 0 {
				t.Errorf("AppendBinary returned %d bytes on error, want the input", len(out))
			}
		})
	}
}

func TestECPAppendAllocs(t *testing.T) {
	p := ecpBenchPDU()
	buf := make([]byte, 0, 1500)
	if _, err := p.AppendBinary(buf); err != nil {
		t.Fatal(err)
	}
	ack := &ECPDU{Op: ECPAck, Subtype: ECPSubtypeVDP, Sequence: 7}
	for name, p := range map[string]*ECPDU{"associate": p, "ack": ack} {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := p.AppendBinary(buf[:0]); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: AppendBinary made %v allocations, want 0", name, n)
		}
	}
}

func TestECPStrings(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{ECPRequest.String(), "REQUEST"},
		{ECPAck.String(), "ACK"},
		{ECPOp(2).String(), "op 2"},
		{ECPSubtypeVDP.String(), "VDP"},
		{ECPSubtypePECSP.String(), "PE-CSP"},
		{ECPSubtype(9).String(), "subtype 9"},
		{(&ECPDU{Version: 1, Subtype: ECPSubtypePECSP, Sequence: 3, Payload: []byte{1, 2}}).String(), "ECP v1 REQUEST PE-CSP seq 3 payload 2 bytes"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestECPDecodeDoesNotAlias checks that the decoded PDU survives the
// caller reusing its receive buffer.
func TestECPDecodeDoesNotAlias(t *testing.T) {
	in := append(ecpHex(t, ecpAssoc), ecpHex(t, "fe06 0012bb 01 abcd 1203 010203")...)
	var p ECPDU
	if err := p.UnmarshalBinary(in); err != nil {
		t.Fatal(err)
	}
	want, _ := p.MarshalBinary()
	for i := range in {
		in[i] = 0xee
	}
	got, _ := p.MarshalBinary()
	if !bytes.Equal(got, want) {
		t.Errorf("PDU changed with the input buffer")
	}
}
