package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// ieeeCase is one well-formed IEEE 802.1 org TLV: its information string
// (after OUI and subtype) and the value it decodes to.
type ieeeCase struct {
	name string
	sub  uint8
	info []byte
	want OrgTLV
	// enc, when set, is the re-encoded information string (reserved bits
	// cleared); otherwise it is info.
	enc []byte
}

// ieeeRun decodes every case through the org TLV dispatcher and encodes it
// back with appendOrgTLV.
func ieeeRun(t *testing.T, cases []ieeeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeOrgTLV(OUIIEEE8021, c.sub, c.info, 0, OUI{})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decode\n got %#v\nwant %#v", got, c.want)
			}
			enc := c.enc
			if enc == nil {
				enc = c.info
			}
			want := append([]byte{0xfe | byte((4+len(enc))>>8), byte(4 + len(enc)), 0x00, 0x80, 0xc2, c.sub}, enc...)
			b, err := appendOrgTLV(nil, c.want, OUI{})
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("encode\n got % x\nwant % x", b, want)
			}
		})
	}
}

// TestIEEE8021Unknown: subtypes without a Go type (Port VLAN ID from lldpd,
// VLAN Name, Congestion Notification, ...) decode raw and round-trip.
func TestIEEE8021Unknown(t *testing.T) {
	in := lldpCat(lldpMandatory, []byte{
		0xfe, 0x06, // org TLV, length 6
		0x00, 0x80, 0xc2, 0x01, // IEEE 802.1 Port VLAN ID
		0x00, 0x01, // PVID 1
		0xfe, 0x0b, // org TLV, length 11
		0x00, 0x80, 0xc2, 0x03, // IEEE 802.1 VLAN Name
		0x00, 0x0a, // VID 10
		0x04, 'p', 'r', 'o', 'd', // name length 4, "prod"
		0xfe, 0x06, // org TLV, length 6
		0x00, 0x80, 0xc2, 0x08, // IEEE 802.1 Congestion Notification
		0x08, 0x08, // CNPV and ready indicators
		0xfe, 0x05, // org TLV, length 5
		0x00, 0x80, 0xc2, 0xff, // IEEE 802.1 subtype 255
		0x42,
		0x00, 0x00, // End
	})
	var du LLDPDU
	if err := du.UnmarshalBinary(in); err != nil {
		t.Fatal(err)
	}
	want := []TLV{
		&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021PortVLANID, Info: []byte{0x00, 0x01}},
		&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021VLANName, Info: []byte{0x00, 0x0a, 0x04, 'p', 'r', 'o', 'd'}},
		&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021CongestionNotification, Info: []byte{0x08, 0x08}},
		&RawOrgTLV{OUI: OUIIEEE8021, Subtype: 0xff, Info: []byte{0x42}},
	}
	if !reflect.DeepEqual(du.TLVs, want) {
		t.Fatalf("TLVs %#v, want %#v", du.TLVs, want)
	}
	b, err := du.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, in) {
		t.Errorf("re-encoding\n got % x\nwant % x", b, in)
	}
}

// TestIEEE8021Dispatch checks which subtypes have a Go type.
func TestIEEE8021Dispatch(t *testing.T) {
	for sub := 0; sub < 256; sub++ {
		got := newIEEE8021TLV(uint8(sub))
		var want OrgTLV
		switch uint8(sub) {
		case Subtype8021ETSConfiguration:
			want = new(ETSConfiguration)
		case Subtype8021ETSRecommendation:
			want = new(ETSRecommendation)
		case Subtype8021PFC:
			want = new(PFC)
		case Subtype8021APP:
			want = new(APP)
		case Subtype8021EVB:
			want = new(EVB)
		case Subtype8021CDCP:
			want = new(CDCP)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("subtype %#x: %T, want %T", sub, got, want)
		}
		if got == nil {
			continue
		}
		if oui, s := got.orgID(DefaultCID); oui != OUIIEEE8021 || s != uint8(sub) {
			t.Errorf("subtype %#x: orgID %v %#x", sub, oui, s)
		}
	}
}

// TestIEEE8021InfoErrors checks each typed TLV's error offsets: they are
// relative to the top-level buffer, so a decode at offset 100 says 100.
func TestIEEE8021InfoErrors(t *testing.T) {
	for _, c := range []struct {
		sub  uint8
		info []byte
		want string
	}{
		{Subtype8021EVB, nil, "EVB at offset 100: inconsistent length: information string is 0 bytes, want 5 (TLV length 9)"},
		{Subtype8021CDCP, []byte{0, 0, 0, 0, 0, 0}, "CDCP at offset 100: inconsistent length: information string is 6 bytes, want 4 + 3n"},
		{Subtype8021ETSConfiguration, make([]byte, 25), "ETS Configuration at offset 100: inconsistent length: information string is 25 bytes, want 21 (TLV length 25)"},
		{Subtype8021ETSRecommendation, nil, "ETS Recommendation at offset 100: inconsistent length: information string is 0 bytes, want 21 (TLV length 25)"},
		{Subtype8021PFC, []byte{0, 0, 0}, "PFC at offset 100: inconsistent length: information string is 3 bytes, want 2 (TLV length 6)"},
		{Subtype8021APP, []byte{0, 0, 0, 0, 0}, "APP at offset 100: inconsistent length: information string is 5 bytes, want 1 + 3n"},
	} {
		_, err := decodeOrgTLV(OUIIEEE8021, c.sub, c.info, 100, OUI{})
		if err == nil || err.Error() != c.want {
			t.Errorf("subtype %#x: error %v, want %q", c.sub, err, c.want)
		}
		if !errors.Is(err, ErrLength) {
			t.Errorf("subtype %#x: %v is not ErrLength", c.sub, err)
		}
	}
}
