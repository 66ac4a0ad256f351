package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mdlayher/lldp"
)

// lldpMAC is the MAC address used by the hand-written LLDPDUs.
var lldpMAC = []byte{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}

// lldpMandatory is a 22-byte Chassis ID, Port ID and TTL; the optional TLVs
// of the hand-written cases start at offset 22.
var lldpMandatory = []byte{
	0x02, 0x07, // Chassis ID, length 7
	0x04,                               // subtype MAC address
	0x52, 0x54, 0x00, 0xaa, 0x00, 0x01, // 52:54:00:aa:00:01
	0x04, 0x07, // Port ID, length 7
	0x03,                               // subtype MAC address
	0x52, 0x54, 0x00, 0xaa, 0x00, 0x01, // 52:54:00:aa:00:01
	0x06, 0x02, // TTL, length 2
	0x00, 0x78, // 120 s
}

// lldpBase returns an LLDPDU with lldpMandatory's fields and the given
// optional TLVs.
func lldpBase(tlvs ...TLV) LLDPDU {
	return LLDPDU{
		ChassisID: ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: lldpMAC},
		PortID:    PortID{Subtype: lldp.PortIDSubtypeMACAddress, ID: lldpMAC},
		TTL:       120,
		TLVs:      tlvs,
	}
}

// lldpCat concatenates byte slices into a new one.
func lldpCat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// lldpRawTLV returns a TLV of type typ whose value is n bytes of fill.
func lldpRawTLV(typ uint8, n int, fill byte) []byte {
	b := []byte{typ<<1 | byte(n>>8), byte(n)}
	return append(b, bytes.Repeat([]byte{fill}, n)...)
}

func TestLLDPDURoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want LLDPDU
	}{
		{
			name: "mandatory only",
			in: lldpCat(lldpMandatory, []byte{
				0x00, 0x00, // End
			}),
			want: lldpBase(),
		},
		{
			name: "interface name IDs",
			in: []byte{
				0x02, 0x06, // Chassis ID, length 6
				0x07,                    // subtype locally assigned
				'h', 'o', 's', 't', '1', // "host1"
				0x04, 0x06, // Port ID, length 6
				0x05,                    // subtype interface name
				'e', 't', 'h', '0', '0', // "eth00"
				0x06, 0x02, // TTL, length 2
				0x00, 0x00, // 0: shutdown
				0x00, 0x00, // End
			},
			want: LLDPDU{
				ChassisID: ChassisID{Subtype: lldp.ChassisIDSubtypeLocallyAssigned, ID: []byte("host1")},
				PortID:    PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("eth00")},
			},
		},
		{
			name: "basic management TLVs",
			in: lldpCat(lldpMandatory, []byte{
				0x08, 0x04, // Port Description, length 4
				'e', 'v', 'h', '0',
				0x0a, 0x00, // System Name, length 0
				0x0c, 0x03, // System Description, length 3
				'k', 'v', 'm',
				0x0e, 0x04, // System Capabilities, length 4
				0x00, 0x84, // system: bridge, station only
				0x00, 0x80, // enabled: station only
				0x10, 0x0f, // Management Address, length 15
				0x05,                   // address string length 5
				0x01,                   // IPv4
				0xc0, 0x00, 0x02, 0x01, // 192.0.2.1
				0x02,                   // interface subtype ifIndex
				0x00, 0x00, 0x00, 0x07, // ifIndex 7
				0x03,             // OID length 3
				0x2b, 0x06, 0x01, // OID 1.3.6.1
				0x12, 0x02, // reserved TLV type 9, length 2
				0xab, 0xcd,
				0x00, 0x00, // End
			}),
			want: lldpBase(
				PortDescription("evh0"),
				SystemName(""),
				SystemDescription("kvm"),
				&SystemCapabilities{System: SysCapBridge | SysCapStationOnly, Enabled: SysCapStationOnly},
				&ManagementAddress{Subtype: AddrFamilyIPv4, Address: []byte{192, 0, 2, 1}, IfSubtype: IfSubtypeIfIndex, IfNumber: 7, OID: []byte{0x2b, 0x06, 0x01}},
				&RawTLV{Type: 9, Value: []byte{0xab, 0xcd}},
			),
		},
		{
			name: "IEEE 802.1 TLVs",
			in: lldpCat(lldpMandatory, []byte{
				0xfe, 0x09, // org TLV, length 9
				0x00, 0x80, 0xc2, 0x0d, // IEEE 802.1 EVB
				0x02,       // bridge status: RRCAP
				0x00,       // station status
				0x6e,       // R 3, RTE 14
				0x54,       // mode bridge, ROL 0, RWD 20
				0x14,       // ROL 0, RKA 20
				0xfe, 0x0e, // org TLV, length 14
				0x00, 0x80, 0xc2, 0x0e, // IEEE 802.1 CDCP
				0x80,       // role station, SComp 0
				0x00,       // reserved
				0x00, 0x04, // ChnCap 4
				0x00, 0x10, 0x01, // SCID 1, SVID 1
				0x00, 0x20, 0x64, // SCID 2, SVID 100
				0xfe, 0x19, // org TLV, length 25
				0x00, 0x80, 0xc2, 0x09, // IEEE 802.1 ETS Configuration
				0x83,                   // willing, CBS 0, max TCs 3
				0x00, 0x11, 0x22, 0x00, // priority -> TC: 0 0 1 1 2 2 0 0
				10, 20, 70, 0, 0, 0, 0, 0, // TC bandwidth %
				2, 2, 2, 0, 0, 0, 0, 0, // TSA: ETS x3, strict
				0xfe, 0x19, // org TLV, length 25
				0x00, 0x80, 0xc2, 0x0a, // IEEE 802.1 ETS Recommendation
				0x00,                   // reserved
				0x00, 0x11, 0x22, 0x00, // priority -> TC
				10, 20, 70, 0, 0, 0, 0, 0, // TC bandwidth %
				2, 2, 2, 0, 0, 0, 0, 0, // TSA
				0xfe, 0x06, // org TLV, length 6
				0x00, 0x80, 0xc2, 0x0b, // IEEE 802.1 PFC
				0x44,       // willing 0, MBC 1, PFC cap 4
				0x08,       // enabled on priority 3
				0xfe, 0x0b, // org TLV, length 11
				0x00, 0x80, 0xc2, 0x0c, // IEEE 802.1 APP
				0x00,             // reserved
				0x61, 0x89, 0x06, // priority 3, EtherType 0x8906 (FCoE)
				0x82, 0x0c, 0xbc, // priority 4, TCP port 3260 (iSCSI)
				0xfe, 0x06, // org TLV, length 6
				0x00, 0x80, 0xc2, 0x01, // IEEE 802.1 Port VLAN ID: not decoded
				0x00, 0x64, // PVID 100
				0x00, 0x00, // End
			}),
			want: lldpBase(
				&EVB{RRCAP: true, R: 3, RTE: 14, Mode: EVBModeBridge, RWD: 20, RKA: 20},
				&CDCP{Role: CDCPRoleStation, ChnCap: 4, Channels: []SChannel{{1, 1}, {2, 100}}},
				&ETSConfiguration{Willing: true, MaxTCs: 3, ETSTables: ETSTables{
					PriorityTC: [8]uint8{0, 0, 1, 1, 2, 2, 0, 0},
					Bandwidth:  [8]uint8{10, 20, 70},
					TSA:        [8]TSA{TSAETS, TSAETS, TSAETS},
				}},
				&ETSRecommendation{ETSTables: ETSTables{
					PriorityTC: [8]uint8{0, 0, 1, 1, 2, 2, 0, 0},
					Bandwidth:  [8]uint8{10, 20, 70},
					TSA:        [8]TSA{TSAETS, TSAETS, TSAETS},
				}},
				&PFC{MBC: true, Cap: 4, Enable: 1 << 3},
				&APP{Entries: []AppPriority{{3, AppSelEtherType, 0x8906}, {4, AppSelTCPSCTP, 3260}}},
				&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021PortVLANID, Info: []byte{0x00, 0x64}},
			),
		},
		{
			name: "largest org TLV and a 9-bit length",
			in: lldpCat(lldpMandatory, []byte{
				0xff, 0xff, // org TLV, length 511
				0x02, 0x45, 0x56, 0x01, // OUI 02-45-56, subtype 1
			}, bytes.Repeat([]byte{0x5a}, MaxOrgInfo), []byte{
				0x00, 0x00, // End
			}),
			want: lldpBase(&RawOrgTLV{OUI: OUI{0x02, 0x45, 0x56}, Subtype: 1, Info: bytes.Repeat([]byte{0x5a}, MaxOrgInfo)}),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got LLDPDU
			if err := got.UnmarshalBinary(c.in); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decode\n got %#v\nwant %#v", got, c.want)
			}
			b, err := c.want.MarshalBinary()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(b, c.in) {
				t.Errorf("encode\n got % x\nwant % x", b, c.in)
			}
			// mdlayher/lldp accepts our encoding, cut at End.
			var mf lldp.Frame
			if err := mf.UnmarshalBinary(b); err != nil {
				t.Errorf("mdlayher rejects our encoding: %v", err)
			}
			conv, err := c.want.ToMdlayher()
			if err != nil {
				t.Fatalf("ToMdlayher: %v", err)
			}
			if !reflect.DeepEqual(conv, &mf) {
				t.Errorf("ToMdlayher\n got %+v\nwant %+v", conv, &mf)
			}
		})
	}
}

// TestLLDPDUNoEnd: IEEE 802.1AB-2016 made End optional, so an LLDPDU that
// fills its buffer exactly decodes; the encoder always adds End.
func TestLLDPDUNoEnd(t *testing.T) {
	in := lldpCat(lldpMandatory, []byte{
		0x0a, 0x02, 'v', 'm', // System Name "vm", and no End
	})
	var du LLDPDU
	if err := du.UnmarshalBinary(in); err != nil {
		t.Fatal(err)
	}
	if want := lldpBase(SystemName("vm")); !reflect.DeepEqual(du, want) {
		t.Fatalf("got %#v, want %#v", du, want)
	}
	b, err := du.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := lldpCat(in, []byte{0x00, 0x00}); !bytes.Equal(b, want) {
		t.Errorf("encode % x, want % x", b, want)
	}
}

func TestLLDPDUDecodeErrors(t *testing.T) {
	// mgmtOID129 is a Management Address value whose OID length is 129.
	mgmtOID129 := lldpCat([]byte{
		0x10, 0x8d, // Management Address, length 141
		0x05, 0x01, 192, 0, 2, 1, // IPv4 192.0.2.1
		0x02, 0, 0, 0, 1, // ifIndex 1
		0x81, // OID length 129
	}, make([]byte, 129))

	for _, c := range []struct {
		name string
		in   []byte
		want string
		kind error
	}{
		{"empty", nil,
			"LLDP Chassis ID at offset 0: truncated: TLV header needs 2 bytes, 0 left", ErrTruncated},
		{"1 byte", []byte{0x02},
			"LLDP Chassis ID at offset 0: truncated: TLV header needs 2 bytes, 1 left", ErrTruncated},
		{"header length past end", []byte{0x02, 0x07, 0x04, 0x52, 0x54},
			"LLDP Chassis ID at offset 0: truncated: length 7 runs past the end, 3 bytes left", ErrTruncated},
		{"chassis ID length 0", lldpCat([]byte{0x02, 0x00}, lldpMandatory[9:]),
			"LLDP Chassis ID at offset 0: inconsistent length: value is 0 bytes, want 2..256 (subtype and a 1..255-byte ID)", ErrLength},
		{"chassis ID subtype only", lldpCat([]byte{0x02, 0x01, 0x04}, lldpMandatory[9:]),
			"LLDP Chassis ID at offset 0: inconsistent length: value is 1 bytes, want 2..256 (subtype and a 1..255-byte ID)", ErrLength},
		{"port ID first", lldpMandatory[9:],
			"LLDP Chassis ID at offset 0: missing mandatory TLV: found LLDP Port ID", ErrMissing},
		{"missing port ID", lldpCat(lldpMandatory[:9], lldpMandatory[18:], []byte{0, 0}),
			"LLDP Port ID at offset 9: missing mandatory TLV: found LLDP TTL", ErrMissing},
		{"port ID 256 bytes", lldpCat(lldpMandatory[:9], []byte{0x05, 0x01, 0x05}, make([]byte, 256), lldpMandatory[18:]),
			"LLDP Port ID at offset 9: inconsistent length: value is 257 bytes, want 2..256 (subtype and a 1..255-byte ID)", ErrLength},
		{"ends after port ID", lldpMandatory[:18],
			"LLDP TTL at offset 18: truncated: TLV header needs 2 bytes, 0 left", ErrTruncated},
		{"missing TTL", lldpCat(lldpMandatory[:18], []byte{0, 0}),
			"LLDP TTL at offset 18: missing mandatory TLV: found LLDP End", ErrMissing},
		{"TTL length 3", lldpCat(lldpMandatory[:18], []byte{0x06, 0x03, 0x00, 0x78, 0x00, 0x00, 0x00}),
			"LLDP TTL at offset 18: inconsistent length: value is 3 bytes, want 2", ErrLength},
		{"second chassis ID", lldpCat(lldpMandatory, lldpMandatory[:9], []byte{0, 0}),
			"LLDP Chassis ID at offset 22: invalid value: a second LLDP Chassis ID TLV after the mandatory ones", ErrInvalid},
		{"second TTL", lldpCat(lldpMandatory, lldpMandatory[18:], []byte{0, 0}),
			"LLDP TTL at offset 22: invalid value: a second LLDP TTL TLV after the mandatory ones", ErrInvalid},
		{"odd byte after TTL", lldpCat(lldpMandatory, []byte{0x0a}),
			"LLDPDU at offset 22: truncated: TLV header needs 2 bytes, 1 left", ErrTruncated},
		{"optional length past end", lldpCat(lldpMandatory, []byte{0x0a, 0x05, 'v', 'm'}),
			"LLDP System Name at offset 22: truncated: length 5 runs past the end, 2 bytes left", ErrTruncated},
		{"End with a value", lldpCat(lldpMandatory, []byte{0x00, 0x01, 0x00}),
			"LLDP End at offset 22: inconsistent length: value is 1 bytes, want 0", ErrLength},
		{"system name 256 bytes", lldpCat(lldpMandatory, lldpRawTLV(5, 256, 'a'), []byte{0, 0}),
			"LLDP System Name at offset 22: inconsistent length: value is 256 bytes, at most 255 allowed", ErrLength},
		{"system capabilities 3 bytes", lldpCat(lldpMandatory, []byte{0x0e, 0x03, 0x00, 0x9c, 0x00, 0, 0}),
			"LLDP System Capabilities at offset 22: inconsistent length: value is 3 bytes, want 4", ErrLength},
		{"management address 8 bytes", lldpCat(lldpMandatory, []byte{0x10, 0x08, 0x02, 0x06, 0x01, 0x01, 0, 0, 0, 0, 0, 0}),
			"LLDP Management Address at offset 22: inconsistent length: value is 8 bytes, need at least 9", ErrLength},
		{"management address string length 1", lldpCat(lldpMandatory, []byte{
			0x10, 0x09, // Management Address, length 9
			0x01, 0x01, 0x00, // string length 1 (no room for an address)
			0x02, 0, 0, 0, 1, // ifIndex 1
			0x00, // no OID
			0, 0}),
			"LLDP Management Address at offset 22: inconsistent length: address string length 1, want 2..32", ErrLength},
		{"management address string past value", lldpCat(lldpMandatory, []byte{
			0x10, 0x09, // Management Address, length 9
			0x20, 0x01, 0x00, // string length 32
			0x02, 0, 0, 0, 1, // ifIndex 1
			0x00, // no OID
			0, 0}),
			"LLDP Management Address at offset 22: inconsistent length: address string length 32 leaves no room for interface and OID in a 9-byte value", ErrLength},
		{"management address OID length disagrees", lldpCat(lldpMandatory, []byte{
			0x10, 0x0e, // Management Address, length 14
			0x05, 0x01, 192, 0, 2, 1, // IPv4 192.0.2.1
			0x02, 0, 0, 0, 1, // ifIndex 1
			0x03, 0x2b, 0x06, // OID length 3, 2 bytes of OID
			0, 0}),
			"LLDP Management Address at offset 22: inconsistent length: OID length 3 disagrees with the 14-byte value", ErrLength},
		{"management address OID 129 bytes", lldpCat(lldpMandatory, mgmtOID129, []byte{0, 0}),
			"LLDP Management Address at offset 22: inconsistent length: OID length 129, at most 128 allowed", ErrLength},
		{"org TLV 3 bytes", lldpCat(lldpMandatory, []byte{0xfe, 0x03, 0x00, 0x80, 0xc2, 0, 0}),
			"LLDP org TLV at offset 22: inconsistent length: value is 3 bytes, need at least 4 (OUI and subtype)", ErrLength},
		{"EVB 4 info bytes", lldpCat(lldpMandatory, []byte{0xfe, 0x08, 0x00, 0x80, 0xc2, 0x0d, 0x02, 0x00, 0x6e, 0x54, 0, 0}),
			"EVB at offset 28: inconsistent length: information string is 4 bytes, want 5 (TLV length 9)", ErrLength},
		{"EVB 6 info bytes", lldpCat(lldpMandatory, []byte{0xfe, 0x0a, 0x00, 0x80, 0xc2, 0x0d, 0x02, 0x00, 0x6e, 0x54, 0x14, 0x00, 0, 0}),
			"EVB at offset 28: inconsistent length: information string is 6 bytes, want 5 (TLV length 9)", ErrLength},
		{"CDCP 5 info bytes", lldpCat(lldpMandatory, []byte{0xfe, 0x09, 0x00, 0x80, 0xc2, 0x0e, 0x80, 0x00, 0x00, 0x04, 0x00, 0, 0}),
			"CDCP at offset 28: inconsistent length: information string is 5 bytes, want 4 + 3n", ErrLength},
		{"CDCP 3 info bytes", lldpCat(lldpMandatory, []byte{0xfe, 0x07, 0x00, 0x80, 0xc2, 0x0e, 0x80, 0x00, 0x00, 0, 0}),
			"CDCP at offset 28: inconsistent length: information string is 3 bytes, want 4 + 3n", ErrLength},
		{"ETS Configuration TLV length 24", lldpCat(lldpMandatory, []byte{0xfe, 0x18, 0x00, 0x80, 0xc2, 0x09}, make([]byte, 20), []byte{0, 0}),
			"ETS Configuration at offset 28: inconsistent length: information string is 20 bytes, want 21 (TLV length 25)", ErrLength},
		{"ETS Recommendation TLV length 26", lldpCat(lldpMandatory, []byte{0xfe, 0x1a, 0x00, 0x80, 0xc2, 0x0a}, make([]byte, 22), []byte{0, 0}),
			"ETS Recommendation at offset 28: inconsistent length: information string is 22 bytes, want 21 (TLV length 25)", ErrLength},
		{"PFC 1 info byte", lldpCat(lldpMandatory, []byte{0xfe, 0x05, 0x00, 0x80, 0xc2, 0x0b, 0x44, 0, 0}),
			"PFC at offset 28: inconsistent length: information string is 1 bytes, want 2 (TLV length 6)", ErrLength},
		{"APP no reserved byte", lldpCat(lldpMandatory, []byte{0xfe, 0x04, 0x00, 0x80, 0xc2, 0x0c, 0, 0}),
			"APP at offset 28: inconsistent length: information string is 0 bytes, want 1 + 3n", ErrLength},
		{"APP partial entry", lldpCat(lldpMandatory, []byte{0xfe, 0x07, 0x00, 0x80, 0xc2, 0x0c, 0x00, 0x61, 0x89, 0, 0}),
			"APP at offset 28: inconsistent length: information string is 3 bytes, want 1 + 3n", ErrLength},
		{"LLDPDU over 1500 bytes", lldpCat(lldpMandatory, lldpRawTLV(9, 511, 1), lldpRawTLV(9, 511, 2), lldpRawTLV(9, 511, 3), []byte{0, 0}),
			"LLDPDU at offset 1048: oversize: LLDP TLV type 9 ends at byte 1561, so the LLDPDU exceeds 1500 bytes", ErrOversize},
	} {
		t.Run(c.name, func(t *testing.T) {
			du := LLDPDU{TTL: 7, TetherCID: OUI{1, 2, 3}}
			before := du
			err := du.UnmarshalBinary(c.in)
			if err == nil {
				t.Fatalf("decoded %#v, want error %q", du, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), c.want)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.kind)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error is %T, want *Error", err)
			}
			if !reflect.DeepEqual(du, before) {
				t.Errorf("LLDPDU changed on error: %#v", du)
			}
		})
	}
}

func TestLLDPDUEncodeErrors(t *testing.T) {
	long := func(n int) []byte { return bytes.Repeat([]byte{0xa5}, n) }
	withIDs := func(chassis, port []byte) LLDPDU {
		du := lldpBase()
		du.ChassisID.ID, du.PortID.ID = chassis, port
		return du
	}
	for _, c := range []struct {
		name string
		du   LLDPDU
		want string
		kind error
	}{
		{"chassis ID empty", withIDs(nil, lldpMAC),
			"LLDP Chassis ID at offset 0: inconsistent length: ID is empty, want 1..255 bytes", ErrLength},
		{"port ID 256 bytes", withIDs(lldpMAC, long(256)),
			"LLDP Port ID at offset 9: oversize: ID is 256 bytes, at most 255 allowed", ErrOversize},
		{"LLDPDU of 1501 bytes", lldpBase(
			&RawTLV{Type: 9, Value: long(511)},
			&RawTLV{Type: 9, Value: long(511)},
			&RawTLV{Type: 9, Value: long(449)}, // 22 + 513 + 513 + 451 + End = 1501
		),
			"LLDPDU at offset 1048: oversize: TLV type 9 at TLVs[2] makes the LLDPDU at least 1501 bytes, at most 1500 allowed", ErrOversize},
		{"org info 508 bytes", lldpBase(&RawOrgTLV{OUI: OUI{0x02, 0x45, 0x56}, Subtype: 1, Info: long(508)}),
			"org TLV 02-45-56 subtype 1 at offset 28: oversize: information string is 508 bytes, at most 507 allowed", ErrOversize},
		{"system name 256 bytes", lldpBase(SystemName(long(256))),
			"LLDP System Name at offset 22: oversize: value is 256 bytes, at most 255 allowed", ErrOversize},
		{"port description 300 bytes", lldpBase(PortDescription(long(300))),
			"LLDP Port Description at offset 22: oversize: value is 300 bytes, at most 255 allowed", ErrOversize},
		{"management address empty", lldpBase(&ManagementAddress{Subtype: AddrFamilyIPv4}),
			"LLDP Management Address at offset 22: inconsistent length: address is empty, want 1..31 bytes", ErrLength},
		{"management address 32 bytes", lldpBase(&ManagementAddress{Subtype: AddrFamilyIPv4, Address: long(32)}),
			"LLDP Management Address at offset 22: oversize: address is 32 bytes, at most 31 allowed", ErrOversize},
		{"management OID 129 bytes", lldpBase(&ManagementAddress{Subtype: AddrFamilyIPv4, Address: long(4), OID: long(129)}),
			"LLDP Management Address at offset 22: oversize: OID is 129 bytes, at most 128 allowed", ErrOversize},
		{"nil TLV", lldpBase(nil),
			"LLDPDU at offset 22: invalid value: TLVs[0] is nil", ErrInvalid},
		{"RawTLV of a mandatory type", lldpBase(&RawTLV{Type: 1, Value: long(3)}),
			"TLV type 1 at offset 22: invalid value: TLVs[0]: type 1 has its own Go type (or is mandatory), not RawTLV", ErrInvalid},
		{"RawTLV of type 127", lldpBase(SystemName("x"), &RawTLV{Type: 127, Value: long(4)}),
			"TLV type 127 at offset 25: invalid value: TLVs[1]: type 127 has its own Go type (or is mandatory), not RawTLV", ErrInvalid},
		{"RawTLV type 200", lldpBase(&RawTLV{Type: 200}),
			"TLV type 200 at offset 22: invalid value: type 200 does not fit in 7 bits", ErrInvalid},
		{"RawTLV value 512 bytes", lldpBase(&RawTLV{Type: 9, Value: long(512)}),
			"TLV type 9 at offset 22: oversize: value is 512 bytes, at most 511 allowed", ErrOversize},
		{"RawOrgTLV with a bad EVB", lldpBase(&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021EVB, Info: long(4)}),
			"EVB at offset 28: inconsistent length: information string is 4 bytes, want 5 (TLV length 9)", ErrLength},
		{"EVB RTE 32", lldpBase(&EVB{RTE: 32}),
			"EVB at offset 28: invalid value: RTE 32 does not fit in 5 bits", ErrInvalid},
		{"EVB mode 4", lldpBase(&EVB{Mode: 4}),
			"EVB at offset 28: invalid value: EVB mode 4 does not fit in 2 bits", ErrInvalid},
		{"EVB R 8", lldpBase(&EVB{R: 8}),
			"EVB at offset 28: invalid value: R 8 does not fit in 3 bits", ErrInvalid},
		{"EVB RRSTAT 4", lldpBase(&EVB{RRSTAT: 4}),
			"EVB at offset 28: invalid value: RRSTAT 4 does not fit in 2 bits", ErrInvalid},
		{"EVB RKA 32", lldpBase(&EVB{RKA: 32}),
			"EVB at offset 28: invalid value: RKA 32 does not fit in 5 bits", ErrInvalid},
		{"CDCP ChnCap 4096", lldpBase(&CDCP{ChnCap: 4096}),
			"CDCP at offset 28: invalid value: ChnCap 4096 does not fit in 12 bits", ErrInvalid},
		{"CDCP role 2", lldpBase(&CDCP{Role: 2}),
			"CDCP at offset 28: invalid value: role 2 does not fit in 1 bit", ErrInvalid},
		{"CDCP SVID 4096", lldpBase(&CDCP{Channels: []SChannel{{1, 1}, {2, 4096}}}),
			"CDCP at offset 35: invalid value: SVID 4096 does not fit in 12 bits", ErrInvalid},
		{"CDCP 168 channels", lldpBase(&CDCP{Channels: make([]SChannel, 168)}),
			"CDCP at offset 28: oversize: 168 S-channels, at most 167 fit", ErrOversize},
		{"ETS priority TC 16", lldpBase(&ETSConfiguration{ETSTables: ETSTables{PriorityTC: [8]uint8{5: 16}}}),
			"ETS Configuration at offset 28: invalid value: traffic class 16 of priority 5 does not fit in 4 bits", ErrInvalid},
		{"ETS MaxTCs 8", lldpBase(&ETSConfiguration{MaxTCs: 8}),
			"ETS Configuration at offset 28: invalid value: MaxTCs 8 does not fit in 3 bits", ErrInvalid},
		{"ETS Recommendation TC 255", lldpBase(&ETSRecommendation{ETSTables: ETSTables{PriorityTC: [8]uint8{255}}}),
			"ETS Recommendation at offset 28: invalid value: traffic class 255 of priority 0 does not fit in 4 bits", ErrInvalid},
		{"PFC cap 16", lldpBase(&PFC{Cap: 16}),
			"PFC at offset 28: invalid value: PFC cap 16 does not fit in 4 bits", ErrInvalid},
		{"APP priority 8", lldpBase(&APP{Entries: []AppPriority{{Priority: 8}}}),
			"APP at offset 29: invalid value: priority 8 does not fit in 3 bits", ErrInvalid},
		{"APP selector 8", lldpBase(&APP{Entries: []AppPriority{{}, {Sel: 8}}}),
			"APP at offset 32: invalid value: selector 8 does not fit in 3 bits", ErrInvalid},
		{"APP 169 entries", lldpBase(&APP{Entries: make([]AppPriority, 169)}),
			"APP at offset 28: oversize: 169 entries, at most 168 fit", ErrOversize},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("keep")
			b, err := c.du.AppendBinary(prefix[:0:0])
			if err == nil {
				t.Fatalf("encoded % x, want error %q", b, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), c.want)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.kind)
			}
			if len(b) != 0 {
				t.Errorf("AppendBinary returned %d bytes on error, want the input (0)", len(b))
			}
			if _, err := c.du.MarshalBinary(); err == nil || err.Error() != c.want {
				t.Errorf("MarshalBinary error %v, want %q", err, c.want)
			}
		})
	}
}

// TestLLDPDUMaxSize: 1500 bytes encode and decode, 1501 do neither.
func TestLLDPDUMaxSize(t *testing.T) {
	long := bytes.Repeat([]byte{0xa5}, 511)
	du := lldpBase(&RawTLV{Type: 9, Value: long}, &RawTLV{Type: 9, Value: long}, &RawTLV{Type: 9, Value: long[:448]})
	b, err := du.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxLLDPDU {
		t.Fatalf("encoded %d bytes, want %d", len(b), MaxLLDPDU)
	}
	var got LLDPDU
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, du) {
		t.Errorf("round trip differs")
	}
	// Padding past 1500 bytes is fine: only the LLDPDU counts.
	if err := got.UnmarshalBinary(append(b, make([]byte, 100)...)); err != nil {
		t.Errorf("padded 1500-byte LLDPDU: %v", err)
	}
	// 1501 bytes: one more value byte.
	big := lldpCat(b[:len(b)-2], []byte{0x12, 0x01, 0xff, 0x00, 0x00})
	if err := got.UnmarshalBinary(big); !errors.Is(err, ErrOversize) {
		t.Errorf("decoding %d bytes: %v, want ErrOversize", len(big), err)
	}
	// Without End, the 1498 bytes before it still leave room for End.
	if err := got.UnmarshalBinary(b[:len(b)-2]); err != nil {
		t.Errorf("1498 bytes without End: %v", err)
	}
}

// TestLLDPDUAliasesInput documents that a decoded LLDPDU shares the input's
// bytes and that TetherCID survives decoding.
func TestLLDPDUAliasesInput(t *testing.T) {
	in := lldpCat(lldpMandatory, []byte{0, 0})
	du := LLDPDU{TetherCID: OUI{0xaa, 0xbb, 0xcc}}
	if err := du.UnmarshalBinary(in); err != nil {
		t.Fatal(err)
	}
	if du.TetherCID != (OUI{0xaa, 0xbb, 0xcc}) {
		t.Errorf("TetherCID %v after decode", du.TetherCID)
	}
	in[3] = 0xff // first byte of the chassis MAC
	if du.ChassisID.ID[0] != 0xff {
		t.Errorf("ChassisID.ID does not alias the input")
	}
}

func TestLLDPDUAppendAllocs(t *testing.T) {
	du := lldpBenchLLDPDU()
	buf := make([]byte, 0, MaxLLDPDU)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = du.AppendBinary(buf[:0])
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendBinary: %v allocations, want 0", allocs)
	}
}

func TestManagementAddressIP(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "fe80::5054:ff:feaa:1"} {
		ip := netip.MustParseAddr(s)
		m := NewManagementAddress(ip, 3640)
		got, ok := m.IP()
		if !ok || got != ip || m.IfNumber != 3640 || m.IfSubtype != IfSubtypeIfIndex {
			t.Errorf("%s: %+v, IP() = %v %v", s, m, got, ok)
		}
	}
	if _, ok := (&ManagementAddress{Subtype: AddrFamily802, Address: lldpMAC}).IP(); ok {
		t.Error("IP() of a MAC address reports ok")
	}
}

// lldpBenchLLDPDU returns a realistic LLDPDU of about 1500 bytes: what
// tether's host agent sends to the nearest customer bridge.
func lldpBenchLLDPDU() LLDPDU {
	du := lldpBase(
		PortDescription("enp65s0f0 uplink to tor-a17 Ethernet1/12"),
		SystemName("hv-r17-u23.dc1.example.net"),
		SystemDescription("Debian GNU/Linux 12 (bookworm) Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC x86_64"),
		&SystemCapabilities{System: SysCapBridge | SysCapStationOnly | SysCapSVLAN, Enabled: SysCapStationOnly},
		NewManagementAddress(netip.MustParseAddr("192.0.2.23"), 4),
		NewManagementAddress(netip.MustParseAddr("2001:db8::17:23"), 4),
		&EVB{RRREQ: true, RRSTAT: 1, R: 3, RTE: 14, Mode: EVBModeStation, RWD: 20, RKA: 20},
		&CDCP{Role: CDCPRoleStation, SComp: true, ChnCap: 16, Channels: []SChannel{
			{1, 1}, {2, 0}, {3, 0}, {4, 0}, {5, 0}, {6, 0}, {7, 0}, {8, 0},
		}},
		&ETSConfiguration{Willing: true, MaxTCs: 0, ETSTables: ETSTables{
			PriorityTC: [8]uint8{0, 1, 2, 3, 4, 5, 6, 7},
			Bandwidth:  [8]uint8{12, 12, 12, 12, 13, 13, 13, 13},
			TSA:        [8]TSA{TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS},
		}},
		&ETSRecommendation{ETSTables: ETSTables{
			PriorityTC: [8]uint8{0, 1, 2, 3, 4, 5, 6, 7},
			Bandwidth:  [8]uint8{12, 12, 12, 12, 13, 13, 13, 13},
			TSA:        [8]TSA{TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS, TSAETS},
		}},
		&PFC{Willing: true, Cap: 8, Enable: 0x08},
		&APP{Entries: []AppPriority{
			{3, AppSelEtherType, 0x8906}, {4, AppSelTCPSCTP, 3260}, {5, AppSelUDPDCCP, 4791}, {6, AppSelDSCP, 46},
		}},
		&RawOrgTLV{OUI: OUIIEEE8021, Subtype: Subtype8021PortVLANID, Info: []byte{0x00, 0x01}},
		&RawOrgTLV{OUI: OUIIEEE8023, Subtype: 1, Info: []byte{0x03, 0x6c, 0x01, 0x00, 0x1e}},
		&RawOrgTLV{OUI: OUIIEEE8023, Subtype: 4, Info: []byte{0x23, 0x28}},
	)
	b, err := du.MarshalBinary()
	if err != nil {
		panic(err)
	}
	// Fill up to about 1500 bytes with org TLVs of an unknown CID, as a
	// digest and a signature would.
	fill := MaxLLDPDU - len(b)
	for sub := uint8(1); fill > 6; sub++ {
		n := min(fill-6, 200)
		du.TLVs = append(du.TLVs, &RawOrgTLV{OUI: OUI{0x0a, 0x11, 0x22}, Subtype: sub, Info: bytes.Repeat([]byte{sub}, n)})
		fill -= n + 6
	}
	return du
}

func TestLLDPBenchLLDPDUSize(t *testing.T) {
	du := lldpBenchLLDPDU()
	b, err := du.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 1490 || len(b) > MaxLLDPDU {
		t.Errorf("benchmark LLDPDU is %d bytes, want about 1500", len(b))
	}
	var got LLDPDU
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, du) {
		t.Errorf("benchmark LLDPDU does not round-trip")
	}
}

// BenchmarkLLDPDUDecode1500 decodes a realistic 1500-byte LLDPDU.
func BenchmarkLLDPDUDecode1500(b *testing.B) {
	du := lldpBenchLLDPDU()
	in, err := du.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var got LLDPDU
		if err := got.UnmarshalBinary(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLLDPDUEncode encodes the same LLDPDU into a reused buffer.
// BenchmarkMdlayherDecode1500 decodes the same LLDPDU with
// github.com/mdlayher/lldp, the peer decoder, so the two can be compared as
// a ratio in one run (mdlayher only splits TLVs; it decodes no org TLV).
func BenchmarkMdlayherDecode1500(b *testing.B) {
	du := lldpBenchLLDPDU()
	in, err := du.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var f lldp.Frame
		if err := f.UnmarshalBinary(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMdlayherEncode encodes the same LLDPDU with mdlayher/lldp.
func BenchmarkMdlayherEncode(b *testing.B) {
	du := lldpBenchLLDPDU()
	f, err := du.ToMdlayher()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLLDPDUEncode(b *testing.B) {
	du := lldpBenchLLDPDU()
	buf := make([]byte, 0, MaxLLDPDU)
	b.ReportAllocs()
	var err error
	for b.Loop() {
		buf, err = du.AppendBinary(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
