package wire

import "testing"

func TestCDCP(t *testing.T) {
	ieeeRun(t, []ieeeCase{
		{
			name: "station request, default S-channel only",
			sub:  Subtype8021CDCP,
			info: []byte{
				0x80,       // role 1 (station), SComp 0
				0x00,       // reserved
				0x00, 0x01, // ChnCap 1
				0x00, 0x10, 0x01, // SCID 1, SVID 1
			},
			want: &CDCP{Role: CDCPRoleStation, ChnCap: 1, Channels: []SChannel{{SCID: 1, SVID: 1}}},
		},
		{
			name: "bridge answer with S-VLAN component",
			sub:  Subtype8021CDCP,
			info: []byte{
				0x08,       // role 0 (bridge), SComp 1
				0x00,       // reserved
				0x0f, 0xff, // ChnCap 4095
				0x00, 0x10, 0x01, // SCID 1, SVID 1
				0x00, 0x20, 0x64, // SCID 2, SVID 100
				0xff, 0xff, 0xfe, // SCID 4095, SVID 4094
			},
			want: &CDCP{SComp: true, ChnCap: 4095, Channels: []SChannel{{1, 1}, {2, 100}, {4095, 4094}}},
		},
		{
			name: "no S-channels",
			sub:  Subtype8021CDCP,
			info: []byte{
				0x00,       // role 0 (bridge), SComp 0
				0x00,       // reserved
				0x00, 0x00, // ChnCap 0
			},
			want: &CDCP{},
		},
		{
			name: "reserved bits are dropped",
			sub:  Subtype8021CDCP,
			info: []byte{
				0xf7,       // role 1, reserved 111, SComp 0, reserved 111
				0xff,       // reserved
				0xf0, 0x08, // reserved 1111, ChnCap 8
			},
			want: &CDCP{Role: CDCPRoleStation, ChnCap: 8},
			enc:  []byte{0x80, 0x00, 0x00, 0x08},
		},
	})
}

// TestCDCPLargest fills an org TLV with S-channels.
func TestCDCPLargest(t *testing.T) {
	c := &CDCP{ChnCap: MaxCDCPChannels, Channels: make([]SChannel, MaxCDCPChannels)}
	for i := range c.Channels {
		c.Channels[i] = SChannel{SCID: uint16(i + 1), SVID: uint16(4094 - i)}
	}
	b, err := appendOrgTLV(nil, c, OUI{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + 4 + 4 + 3*MaxCDCPChannels; len(b) != want {
		t.Fatalf("%d bytes, want %d", len(b), want)
	}
	got, err := decodeOrgTLV(OUIIEEE8021, Subtype8021CDCP, b[6:], 6, OUI{})
	if err != nil {
		t.Fatal(err)
	}
	if g := got.(*CDCP); len(g.Channels) != MaxCDCPChannels || g.Channels[166] != c.Channels[166] {
		t.Errorf("round trip lost channels: %d", len(g.Channels))
	}
}

func TestCDCPRoleString(t *testing.T) {
	for r, want := range map[CDCPRole]string{CDCPRoleBridge: "bridge", CDCPRoleStation: "station", 2: "invalid(2)"} {
		if got := r.String(); got != want {
			t.Errorf("CDCPRole(%d) = %q, want %q", r, got, want)
		}
	}
}
