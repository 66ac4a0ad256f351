package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// seq returns n bytes counting up from first, for readable filler fields.
func tetherSeq(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

// cat concatenates byte slices.
func tetherCat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// tetherTLV builds a complete tether TLV under DefaultCID around info.
func tetherTLV(sub uint8, info []byte) []byte {
	n := 4 + len(info)
	return tetherCat([]byte{0xfe | byte(n>>8), byte(n)}, DefaultCID[:], []byte{sub}, info)
}

var (
	// tetherCapTLV: host agent, protocol 1, signatures required.
	tetherCapTLV = []byte{
		0xfe, 0x0f, // type 127, length 15
		0x7a, 0x7e, 0x71, // CID
		0x01,                                           // subtype: capability
		0x01,                                           // protocol version 1
		0x01,                                           // roles: host agent
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, // key ID
		0x01, // flags: requires signature
	}
	tetherCap = &TetherCapability{
		Version: 1,
		Roles:   TetherRoleHostAgent,
		KeyID:   [8]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		Flags:   TetherFlagRequiresSignature,
	}

	// tetherInvTLV: SHA-256 digest 00..1f, 3 VIFs, generation 42.
	tetherInvTLV = tetherCat([]byte{
		0xfe, 0x31, // type 127, length 49
		0x7a, 0x7e, 0x71, // CID
		0x02, // subtype: inventory digest
		0x01, // algorithm: SHA-256
	},
		tetherSeq(0x00, 32), // digest
		[]byte{
			0x00, 0x00, 0x00, 0x03, // VIF count 3
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // generation 42
		})
	tetherInv = &TetherInventory{Alg: TetherDigestSHA256, Digest: [32]byte(tetherSeq(0, 32)), VIFs: 3, Generation: 42}

	// tetherProfTLV: VID 100, switch mode, 1 Gbit/s, priority 5, IPv4, IPv6,
	// ARP, ACL "web-in", profile "gold".
	tetherProfTLV = []byte{
		0xfe, 0x1f, // type 127, length 31
		0x7a, 0x7e, 0x71, // CID
		0x03,       // subtype: profile
		0x00, 0x64, // reserved 0, VID 100
		0x01,                   // S-Tag mode: switch
		0x00, 0x0f, 0x42, 0x40, // rate 1000000 kbit/s
		0x05,       // reserved 0, priority 5
		0x03,       // 3 EtherTypes
		0x08, 0x00, // IPv4
		0x86, 0xdd, // IPv6
		0x08, 0x06, // ARP
		0x06, 'w', 'e', 'b', '-', 'i', 'n', // ACL name
		0x04, 'g', 'o', 'l', 'd', // profile name
	}
	tetherProf = &TetherProfile{
		VID: 100, Mode: TetherSTagSwitch, RateKbps: 1000000, Priority: 5,
		EtherTypes: []uint16{0x0800, 0x86dd, 0x0806}, ACL: "web-in", Name: "gold",
	}

	// tetherProfMinTLV: untagged, I/O extender, no limits, no ACL, name "x".
	tetherProfMinTLV = []byte{
		0xfe, 0x10, // type 127, length 16
		0x7a, 0x7e, 0x71, // CID
		0x03,       // subtype: profile
		0x00, 0x00, // VID 0
		0x02,                   // S-Tag mode: I/O extender
		0x00, 0x00, 0x00, 0x00, // unlimited
		0x00, // priority 0
		0x00, // no EtherTypes
		0x00, // no ACL
		0x01, 'x',
	}
	tetherProfMin = &TetherProfile{Mode: TetherSTagIOExtender, Name: "x"}

	// tetherSigTLV: key ID 01..08, counter 0x0102030405060708, signature
	// a0..df.
	tetherSigTLV = tetherCat([]byte{
		0xfe, 0x54, // type 127, length 84
		0x7a, 0x7e, 0x71, // CID
		0x04,                                           // subtype: tetherSig
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // key ID
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // counter
	},
		tetherSeq(0xa0, 64), // Ed25519 signature
	)
	tetherSig = &TetherSignature{
		KeyID:   [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		Counter: 0x0102030405060708,
		Sig:     [64]byte(tetherSeq(0xa0, 64)),
	}

	// tetherBindTLV: bound to S-channel S-VID 5.
	tetherBindTLV = []byte{
		0xfe, 0x06, // type 127, length 6
		0x7a, 0x7e, 0x71, // CID
		0x05,       // subtype: channel binding
		0x00, 0x05, // reserved 0, S-VID 5
	}
	tetherBind = &TetherChannelBinding{SVID: 5}
)

// tetherBinaryTLV is what every tether TLV type implements besides OrgTLV.
type tetherBinaryTLV interface {
	OrgTLV
	AppendBinary([]byte) ([]byte, error)
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func TestTetherTLVRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		tlv  tetherBinaryTLV
	}{
		{"capability", tetherCapTLV, tetherCap},
		{"capability all roles", tetherTLV(1, []byte{1, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
			&TetherCapability{Version: 1, Roles: TetherRoleHostAgent | TetherRoleSwitchAgent | TetherRolePolicy}},
		{"capability reserved bits carried", tetherTLV(1, []byte{2, 0xf8, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe}),
			&TetherCapability{Version: 2, Roles: 0xf8, Flags: 0xfe}},
		{"inventory", tetherInvTLV, tetherInv},
		{"inventory unknown algorithm carried", tetherTLV(2, tetherCat([]byte{7}, make([]byte, 44))),
			&TetherInventory{Alg: 7}},
		{"profile", tetherProfTLV, tetherProf},
		{"profile minimal", tetherProfMinTLV, tetherProfMin},
		{"profile VID 4094 priority 7", tetherTLV(3, []byte{0x0f, 0xfe, 1, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 1, 'p'}),
			&TetherProfile{VID: 4094, Mode: TetherSTagSwitch, RateKbps: 0xffffffff, Priority: 7, Name: "p"}},
		{"signature", tetherSigTLV, tetherSig},
		{"channel binding", tetherBindTLV, tetherBind},
		{"channel binding S-VID 1", tetherTLV(5, []byte{0x00, 0x01}), &TetherChannelBinding{SVID: 1}},
		{"channel binding S-VID 4094", tetherTLV(5, []byte{0x0f, 0xfe}), &TetherChannelBinding{SVID: 4094}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Decode through the dispatcher, as the LLDP and VDP decoders do.
			got, err := decodeOrgTLV(DefaultCID, tt.b[5], tt.b[6:], 6, OUI{})
			if err != nil {
				t.Fatalf("decodeOrgTLV: %v", err)
			}
			if !reflect.DeepEqual(got, tt.tlv) {
				t.Fatalf("decodeOrgTLV:\n got %#v\nwant %#v", got, tt.tlv)
			}
			// And through UnmarshalBinary.
			fresh := reflect.New(reflect.TypeOf(tt.tlv).Elem()).Interface().(tetherBinaryTLV)
			if err := fresh.UnmarshalBinary(tt.b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(fresh, tt.tlv) {
				t.Fatalf("UnmarshalBinary:\n got %#v\nwant %#v", fresh, tt.tlv)
			}
			enc, err := tt.tlv.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			if !bytes.Equal(enc, tt.b) {
				t.Fatalf("MarshalBinary:\n got % x\nwant % x", enc, tt.b)
			}
			enc, err = tt.tlv.appendTLV([]byte{0xee}, OUI{})
			if err != nil || !bytes.Equal(enc, tetherCat([]byte{0xee}, tt.b)) {
				t.Fatalf("appendTLV = % x, %v; want ee % x", enc, err, tt.b)
			}
		})
	}
}

func TestTetherTLVDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		tlv  tetherBinaryTLV
		kind error
		want string
	}{
		{"capability short", tetherTLV(1, make([]byte, 10)), new(TetherCapability), ErrLength,
			"tether Capability at offset 6: inconsistent length: information string is 10 bytes, want 11"},
		{"capability long", tetherTLV(1, tetherCat([]byte{1}, make([]byte, 11))), new(TetherCapability), ErrLength,
			"tether Capability at offset 6: inconsistent length: information string is 12 bytes, want 11"},
		{"capability version 0", tetherTLV(1, make([]byte, 11)), new(TetherCapability), ErrInvalid,
			"tether Capability at offset 6: invalid value: protocol version 0 is reserved"},
		{"inventory short", tetherTLV(2, tetherCat([]byte{1}, make([]byte, 43))), new(TetherInventory), ErrLength,
			"tether Inventory Digest at offset 6: inconsistent length: information string is 44 bytes, want 45"},
		{"inventory algorithm 0", tetherTLV(2, make([]byte, 45)), new(TetherInventory), ErrInvalid,
			"tether Inventory Digest at offset 6: invalid value: digest algorithm 0 is reserved"},
		{"profile short", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}), new(TetherProfile), ErrLength,
			"tether Profile at offset 6: inconsistent length: information string is 11 bytes, need at least 12"},
		{"profile reserved VID bits", tetherTLV(3, []byte{0x10, 0x64, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 6: invalid value: reserved bits 0x1 above the VID are set"},
		{"profile VID 4095", tetherTLV(3, []byte{0x0f, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 6: invalid value: VID 4095 out of range 0-4094"},
		{"profile mode 0", tetherTLV(3, []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 8: invalid value: S-Tag mode 0, want 1 (switch) or 2 (I/O extender)"},
		{"profile mode 3", tetherTLV(3, []byte{0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 8: invalid value: S-Tag mode 3, want 1 (switch) or 2 (I/O extender)"},
		{"profile reserved priority bits", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0x08, 0, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 13: invalid value: reserved bits 0x1 above the priority are set"},
		{"profile EtherTypes overrun", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 2, 0x08, 0x00, 0, 1, 'p'}), new(TetherProfile), ErrLength,
			"tether Profile at offset 14: inconsistent length: 2 EtherTypes do not fit in the 5 bytes left"},
		{"profile EtherType is a length", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 1, 0x05, 0xdc, 0, 1, 'p'}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 15: invalid value: EtherType 0x05dc is below 0x0600"},
		{"profile ACL name too long", tetherTLV(3, tetherCat([]byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 65}, bytes.Repeat([]byte{'a'}, 65), []byte{1, 'p'})), new(TetherProfile), ErrOversize,
			"tether Profile at offset 15: oversize: ACL name is 65 bytes, at most 64 allowed"},
		{"profile ACL name overrun", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 1}), new(TetherProfile), ErrLength,
			"tether Profile at offset 15: inconsistent length: ACL name of 3 bytes leaves no room for the profile name"},
		{"profile ACL name past the end", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 4, 'a', 'b', 1}), new(TetherProfile), ErrLength,
			"tether Profile at offset 15: inconsistent length: ACL name of 4 bytes does not fit in the 3 bytes left"},
		{"profile name missing", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 17: invalid value: profile name is empty"},
		{"profile name overrun", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'}), new(TetherProfile), ErrLength,
			"tether Profile at offset 16: inconsistent length: profile name of 5 bytes does not fit in the 2 bytes left"},
		{"profile name not UTF-8", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0x28}), new(TetherProfile), ErrInvalid,
			"tether Profile at offset 16: invalid value: profile name is not valid UTF-8"},
		{"profile trailing bytes", tetherTLV(3, []byte{0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'p', 0, 0}), new(TetherProfile), ErrLength,
			"tether Profile at offset 18: inconsistent length: 2 bytes after the profile name"},
		{"signature short", tetherTLV(4, make([]byte, 79)), new(TetherSignature), ErrLength,
			"tether Signature at offset 6: inconsistent length: information string is 79 bytes, want 80"},
		{"signature long", tetherTLV(4, make([]byte, 81)), new(TetherSignature), ErrLength,
			"tether Signature at offset 6: inconsistent length: information string is 81 bytes, want 80"},
		{"signature empty", tetherTLV(4, nil), new(TetherSignature), ErrLength,
			"tether Signature at offset 6: inconsistent length: information string is 0 bytes, want 80"},
		{"channel binding short", tetherTLV(5, []byte{0x05}), new(TetherChannelBinding), ErrLength,
			"tether Channel Binding at offset 6: inconsistent length: information string is 1 bytes, want 2"},
		{"channel binding long", tetherTLV(5, []byte{0x00, 0x05, 0x00}), new(TetherChannelBinding), ErrLength,
			"tether Channel Binding at offset 6: inconsistent length: information string is 3 bytes, want 2"},
		{"channel binding empty", tetherTLV(5, nil), new(TetherChannelBinding), ErrLength,
			"tether Channel Binding at offset 6: inconsistent length: information string is 0 bytes, want 2"},
		{"channel binding reserved bits", tetherTLV(5, []byte{0x80, 0x05}), new(TetherChannelBinding), ErrInvalid,
			"tether Channel Binding at offset 6: invalid value: reserved bits 0x8 above the S-VID are set"},
		{"channel binding S-VID 0", tetherTLV(5, []byte{0x00, 0x00}), new(TetherChannelBinding), ErrInvalid,
			"tether Channel Binding at offset 6: invalid value: S-VID 0 out of range 1-4094"},
		{"channel binding S-VID 4095", tetherTLV(5, []byte{0x0f, 0xff}), new(TetherChannelBinding), ErrInvalid,
			"tether Channel Binding at offset 6: invalid value: S-VID 4095 out of range 1-4094"},
		{"channel binding other subtype", tetherSigTLV, new(TetherChannelBinding), ErrUnknownSubtype,
			"tether Channel Binding at offset 5: unknown subtype: subtype 4, want 5"},
		{"channel binding truncated", tetherBindTLV[:5], new(TetherChannelBinding), ErrTruncated,
			"tether Channel Binding at offset 0: truncated: need 6 bytes, have 5"},
		{"channel binding length disagrees", tetherBindTLV[:7], new(TetherChannelBinding), ErrLength,
			"tether Channel Binding at offset 0: inconsistent length: TLV length 6, but 5 bytes follow the header"},
		// Framing errors of UnmarshalBinary.
		{"truncated header", []byte{0xfe, 0x54, 0x7a}, new(TetherSignature), ErrTruncated,
			"tether Signature at offset 0: truncated: need 6 bytes, have 3"},
		{"not type 127", tetherCat([]byte{0x02, 0x54}, tetherSigTLV[2:]), new(TetherSignature), ErrInvalid,
			"tether Signature at offset 0: invalid value: TLV type 1, want 127"},
		{"length disagrees", tetherSigTLV[:50], new(TetherSignature), ErrLength,
			"tether Signature at offset 0: inconsistent length: TLV length 84, but 48 bytes follow the header"},
		{"other CID", tetherCat(tetherSigTLV[:2], []byte{0x00, 0x80, 0xc2}, tetherSigTLV[5:]), new(TetherSignature), ErrInvalid,
			"tether Signature at offset 2: invalid value: CID 00-80-c2 is not tether's 7a-7e-71"},
		{"other subtype", tetherCapTLV, new(TetherSignature), ErrUnknownSubtype,
			"tether Signature at offset 5: unknown subtype: subtype 1, want 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tlv.UnmarshalBinary(tt.b)
			var we *Error
			if !errors.As(err, &we) || !errors.Is(err, tt.kind) {
				t.Fatalf("UnmarshalBinary error = %v, want a *Error of kind %v", err, tt.kind)
			}
			if err.Error() != tt.want {
				t.Fatalf("UnmarshalBinary error:\n got %q\nwant %q", err, tt.want)
			}
			// The dispatcher reports the same error for the information
			// string at the same offset.
			if _, sub := tt.tlv.orgID(DefaultCID); len(tt.b) >= 6 && tt.b[0] == 0xfe && int(tt.b[1])+2 == len(tt.b) &&
				OUI(tt.b[2:5]) == DefaultCID && tt.b[5] == sub {
				_, derr := decodeOrgTLV(DefaultCID, tt.b[5], tt.b[6:], 6, OUI{})
				if derr == nil || derr.Error() != tt.want {
					t.Fatalf("decodeOrgTLV error = %v, want %q", derr, tt.want)
				}
			}
		})
	}
}

func TestTetherTLVEncodeErrors(t *testing.T) {
	long := strings.Repeat("n", 65)
	tests := []struct {
		name string
		tlv  OrgTLV
		kind error
		want string
	}{
		{"capability version 0", &TetherCapability{}, ErrInvalid,
			"tether Capability at offset 7: invalid value: protocol version 0 is reserved"},
		{"inventory algorithm 0", &TetherInventory{}, ErrInvalid,
			"tether Inventory Digest at offset 7: invalid value: digest algorithm 0 is reserved"},
		{"profile VID", &TetherProfile{VID: 4095, Mode: 1, Name: "p"}, ErrInvalid,
			"tether Profile at offset 7: invalid value: VID 4095 out of range 0-4094"},
		{"profile mode", &TetherProfile{Name: "p"}, ErrInvalid,
			"tether Profile at offset 9: invalid value: S-Tag mode 0, want 1 (switch) or 2 (I/O extender)"},
		{"profile priority", &TetherProfile{Mode: 1, Priority: 8, Name: "p"}, ErrInvalid,
			"tether Profile at offset 14: invalid value: priority 8 out of range 0-7"},
		{"profile too many EtherTypes", &TetherProfile{Mode: 1, EtherTypes: make([]uint16, 256), Name: "p"}, ErrOversize,
			"tether Profile at offset 15: oversize: 256 EtherTypes, at most 255 fit in the count octet"},
		{"profile too large", &TetherProfile{Mode: 1, EtherTypes: tetherEtherTypes(MaxTetherEtherTypes + 1), ACL: strings.Repeat("a", 64), Name: long[:64]}, ErrOversize,
			"tether Profile at offset 7: oversize: information string would be 509 bytes, at most 507 allowed"},
		{"profile EtherType", &TetherProfile{Mode: 1, EtherTypes: []uint16{0x0800, 0x0042}, Name: "p"}, ErrInvalid,
			"tether Profile at offset 18: invalid value: EtherType 0x0042 is below 0x0600"},
		{"profile ACL too long", &TetherProfile{Mode: 1, ACL: long, Name: "p"}, ErrOversize,
			"tether Profile at offset 16: oversize: ACL name is 65 bytes, at most 64 allowed"},
		{"profile ACL not UTF-8", &TetherProfile{Mode: 1, ACL: "\xff", Name: "p"}, ErrInvalid,
			"tether Profile at offset 16: invalid value: ACL name is not valid UTF-8"},
		{"profile name empty", &TetherProfile{Mode: 1, ACL: "a"}, ErrInvalid,
			"tether Profile at offset 18: invalid value: profile name is empty"},
		{"profile name too long", &TetherProfile{Mode: 1, Name: long}, ErrOversize,
			"tether Profile at offset 17: oversize: profile name is 65 bytes, at most 64 allowed"},
		{"channel binding S-VID 0", &TetherChannelBinding{}, ErrInvalid,
			"tether Channel Binding at offset 7: invalid value: S-VID 0 out of range 1-4094"},
		{"channel binding S-VID 4095", &TetherChannelBinding{SVID: 4095}, ErrInvalid,
			"tether Channel Binding at offset 7: invalid value: S-VID 4095 out of range 1-4094"},
		{"channel binding S-VID above 12 bits", &TetherChannelBinding{SVID: 0x1005}, ErrInvalid,
			"tether Channel Binding at offset 7: invalid value: S-VID 4101 out of range 1-4094"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xee}
			got, err := tt.tlv.appendTLV(prefix, OUI{})
			if !errors.Is(err, tt.kind) || err.Error() != tt.want {
				t.Fatalf("appendTLV error:\n got %v\nwant %q (%v)", err, tt.want, tt.kind)
			}
			if !bytes.Equal(got, prefix) {
				t.Fatalf("appendTLV on error returned % x, want the input back", got)
			}
		})
	}
}

// tetherEtherTypes returns n distinct valid EtherTypes.
func tetherEtherTypes(n int) []uint16 {
	ets := make([]uint16, n)
	for i := range ets {
		ets[i] = 0x0600 + uint16(i)
	}
	return ets
}

func TestTetherProfileLargest(t *testing.T) {
	for _, p := range []*TetherProfile{
		{
			VID: 4094, Mode: TetherSTagIOExtender, RateKbps: 1, Priority: 7,
			EtherTypes: tetherEtherTypes(MaxTetherEtherTypes),
			ACL:        strings.Repeat("a", MaxTetherName),
			Name:       strings.Repeat("é", MaxTetherName/2), // 64 bytes of UTF-8
		},
		// Short names leave room for more EtherTypes: 11 + 2*247 + 2 = 507.
		{Mode: TetherSTagSwitch, EtherTypes: tetherEtherTypes(247), Name: "xy"},
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary: %v", err)
		}
		if len(b) != tlvHeaderLen+MaxTLVValue {
			t.Fatalf("largest profile is %d bytes, want %d", len(b), tlvHeaderLen+MaxTLVValue)
		}
		if b[0] != 0xff || b[1] != 0xff {
			t.Fatalf("header % x, want ff ff (type 127, length 511)", b[:2])
		}
		var got TetherProfile
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if !reflect.DeepEqual(&got, p) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", &got, p)
		}
	}
}

func TestTetherTLVDispatch(t *testing.T) {
	other := OUI{0x0a, 0x0b, 0x0c}
	// An unknown tether subtype stays raw, so a newer peer's TLVs survive.
	got, err := decodeOrgTLV(DefaultCID, 200, []byte{1, 2, 3}, 6, OUI{})
	if err != nil {
		t.Fatal(err)
	}
	want := &RawOrgTLV{OUI: DefaultCID, Subtype: 200, Info: []byte{1, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unknown subtype: got %#v, want %#v", got, want)
	}
	b, err := got.appendTLV(nil, OUI{})
	if err != nil || !bytes.Equal(b, []byte{0xfe, 0x07, 0x7a, 0x7e, 0x71, 200, 1, 2, 3}) {
		t.Fatalf("unknown subtype re-encoded as % x, %v", b, err)
	}
	// A configured CID decodes tether's TLVs under it ...
	got, err = decodeOrgTLV(other, TetherSubtypeCapability, tetherCapTLV[6:], 6, other)
	if err != nil || !reflect.DeepEqual(got, tetherCap) {
		t.Fatalf("configured CID: got %#v, %v; want %#v", got, err, tetherCap)
	}
	b, err = got.appendTLV(nil, other)
	if err != nil || !bytes.Equal(b, tetherCat(tetherCapTLV[:2], other[:], tetherCapTLV[5:])) {
		t.Fatalf("configured CID re-encoded as % x, %v", b, err)
	}
	// ... and leaves DefaultCID's raw.
	got, err = decodeOrgTLV(DefaultCID, TetherSubtypeCapability, tetherCapTLV[6:], 6, other)
	if _, ok := got.(*RawOrgTLV); err != nil || !ok {
		t.Fatalf("DefaultCID under a configured CID: got %#v, %v; want a RawOrgTLV", got, err)
	}
}

func TestTetherTLVAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	for _, tlv := range []tetherBinaryTLV{tetherCap, tetherInv, tetherProf, tetherSig, tetherBind} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := tlv.AppendBinary(buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: AppendBinary allocates %v times, want 0", tlv.tlvName(), n)
		}
	}
}
