package wire

import "testing"

func TestEVB(t *testing.T) {
	ieeeRun(t, []ieeeCase{
		{
			name: "lldpad bridge, cap2012 frame 1",
			sub:  Subtype8021EVB,
			info: []byte{
				0x02, // bridge status: BGID 0, RRCAP 1, RRCTR 0
				0x00, // station status: SGID 0, RRREQ 0, RRSTAT 0
				0x6e, // R 3, RTE 14
				0x54, // mode 1 (bridge), ROL 0, RWD 20
				0x14, // ROL 0, RKA 20
			},
			want: &EVB{RRCAP: true, R: 3, RTE: 14, Mode: EVBModeBridge, RWD: 20, RKA: 20},
		},
		{
			name: "lldpad station, cap2012 frame 2",
			sub:  Subtype8021EVB,
			info: []byte{
				0x00, // bridge status: none
				0x07, // station status: SGID 0, RRREQ 1, RRSTAT 3
				0x6e, // R 3, RTE 14
				0x94, // mode 2 (station), ROL 0, RWD 20
				0x14, // ROL 0, RKA 20
			},
			want: &EVB{RRREQ: true, RRSTAT: 3, R: 3, RTE: 14, Mode: EVBModeStation, RWD: 20, RKA: 20},
		},
		{
			name: "negotiated values, cap2012 frame 3",
			sub:  Subtype8021EVB,
			info: []byte{
				0x03, // bridge status: RRCAP 1, RRCTR 1
				0x07, // station status: RRREQ 1, RRSTAT 3
				0x6e, // R 3, RTE 14
				0x74, // mode 1 (bridge), ROL 1, RWD 20
				0x34, // ROL 1, RKA 20
			},
			want: &EVB{RRCAP: true, RRCTR: true, RRREQ: true, RRSTAT: 3, R: 3, RTE: 14,
				Mode: EVBModeBridge, ROLRWD: true, RWD: 20, ROLRKA: true, RKA: 20},
		},
		{
			name: "group IDs",
			sub:  Subtype8021EVB,
			info: []byte{
				0x04, // bridge status: BGID 1
				0x08, // station status: SGID 1
				0x00, // R 0, RTE 0
				0x00, // mode 0 (not supported), RWD 0
				0x00, // RKA 0
			},
			want: &EVB{BGID: true, SGID: true},
		},
		{
			name: "every bit set: reserved bits are dropped",
			sub:  Subtype8021EVB,
			info: []byte{0xff, 0xff, 0xff, 0xff, 0xff},
			want: &EVB{BGID: true, RRCAP: true, RRCTR: true, SGID: true, RRREQ: true, RRSTAT: 3,
				R: 7, RTE: 31, Mode: 3, ROLRWD: true, RWD: 31, ROLRKA: true, RKA: 31},
			enc: []byte{
				0x07, // bridge status without its 5 reserved bits
				0x0f, // station status without its 4 reserved bits
				0xff, // R 7, RTE 31
				0xff, // mode 3, ROL 1, RWD 31
				0x3f, // 2 reserved bits cleared, ROL 1, RKA 31
			},
		},
	})
}

func TestEVBModeString(t *testing.T) {
	for m, want := range map[EVBMode]string{
		EVBModeNotSupported: "not supported",
		EVBModeBridge:       "bridge",
		EVBModeStation:      "station",
		3:                   "reserved(3)",
	} {
		if got := m.String(); got != want {
			t.Errorf("EVBMode(%d) = %q, want %q", m, got, want)
		}
	}
}
