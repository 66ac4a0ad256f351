package wire

import "testing"

func TestDCBX(t *testing.T) {
	tables := ETSTables{
		PriorityTC: [8]uint8{0, 1, 2, 3, 4, 5, 6, 7},
		Bandwidth:  [8]uint8{0, 0, 50, 50, 0, 0, 0, 0},
		TSA:        [8]TSA{TSAStrict, TSACreditBased, TSAETS, TSAETS, TSAStrict, TSAStrict, TSAStrict, TSAVendor},
	}
	tableBytes := []byte{
		0x01, 0x23, 0x45, 0x67, // priority -> TC: 0 1 2 3 4 5 6 7
		0, 0, 50, 50, 0, 0, 0, 0, // TC bandwidth %
		0, 1, 2, 2, 0, 0, 0, 255, // TSA: strict, CBS, ETS, ETS, strict x3, vendor
	}
	ieeeRun(t, []ieeeCase{
		{
			name: "ETS Configuration",
			sub:  Subtype8021ETSConfiguration,
			info: append([]byte{
				0xc0, // willing 1, CBS 1, reserved, max TCs 0 (= 8)
			}, tableBytes...),
			want: &ETSConfiguration{Willing: true, CBS: true, ETSTables: tables},
		},
		{
			name: "ETS Configuration reserved bits",
			sub:  Subtype8021ETSConfiguration,
			info: append([]byte{
				0x3c, // willing 0, CBS 0, reserved 111, max TCs 4
			}, tableBytes...),
			want: &ETSConfiguration{MaxTCs: 4, ETSTables: tables},
			enc:  append([]byte{0x04}, tableBytes...),
		},
		{
			name: "ETS Recommendation",
			sub:  Subtype8021ETSRecommendation,
			info: append([]byte{
				0x00, // reserved
			}, tableBytes...),
			want: &ETSRecommendation{ETSTables: tables},
		},
		{
			name: "ETS Recommendation reserved byte",
			sub:  Subtype8021ETSRecommendation,
			info: append([]byte{
				0xff, // reserved
			}, tableBytes...),
			want: &ETSRecommendation{ETSTables: tables},
			enc:  append([]byte{0x00}, tableBytes...),
		},
		{
			name: "PFC",
			sub:  Subtype8021PFC,
			info: []byte{
				0x88, // willing 1, MBC 0, reserved, PFC cap 8
				0x18, // enabled on priorities 3 and 4
			},
			want: &PFC{Willing: true, Cap: 8, Enable: 0x18},
		},
		{
			name: "PFC reserved bits",
			sub:  Subtype8021PFC,
			info: []byte{
				0x70, // willing 0, MBC 1, reserved 11, PFC cap 0
				0x00, // none enabled
			},
			want: &PFC{MBC: true},
			enc:  []byte{0x40, 0x00},
		},
		{
			name: "APP",
			sub:  Subtype8021APP,
			info: []byte{
				0x00,             // reserved
				0x61, 0x89, 0x06, // priority 3, sel 1 (EtherType), 0x8906 FCoE
				0x82, 0x0c, 0xbc, // priority 4, sel 2 (TCP/SCTP), port 3260
				0xa3, 0x12, 0xb7, // priority 5, sel 3 (UDP/DCCP), port 4791 (RoCEv2)
				0xc4, 0x00, 0x50, // priority 6, sel 4 (any), port 80
				0xe5, 0x00, 0x2e, // priority 7, sel 5 (DSCP), 46 (EF)
			},
			want: &APP{Entries: []AppPriority{
				{3, AppSelEtherType, 0x8906},
				{4, AppSelTCPSCTP, 3260},
				{5, AppSelUDPDCCP, 4791},
				{6, AppSelTCPSCTPUDPDCCP, 80},
				{7, AppSelDSCP, 46},
			}},
		},
		{
			name: "APP empty",
			sub:  Subtype8021APP,
			info: []byte{
				0x00, // reserved, no entries
			},
			want: &APP{},
		},
		{
			name: "APP reserved bits",
			sub:  Subtype8021APP,
			info: []byte{
				0xff,             // reserved
				0x19, 0x88, 0xcc, // priority 0, reserved 11, sel 1, 0x88cc
			},
			want: &APP{Entries: []AppPriority{{0, AppSelEtherType, 0x88cc}}},
			enc:  []byte{0x00, 0x01, 0x88, 0xcc},
		},
	})
}
