package evb

import (
	"reflect"
	"testing"
	"time"

	"github.com/tether-net/tether/wire"
)

func TestStation(t *testing.T) {
	local := Config{RR: true, GroupID: true, R: 3, RTE: 14, RWD: 20, RKA: 20}
	tests := []struct {
		name    string
		local   Config
		bridge  *wire.EVB
		wantOp  Operating
		wantTLV wire.EVB
		wantErr bool
	}{{
		name:    "no bridge yet: own values, RRSTAT unknown",
		local:   local,
		wantOp:  Operating{R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantTLV: wire.EVB{SGID: true, RRREQ: true, RRSTAT: RRStatusUnknown, Mode: wire.EVBModeStation, R: 3, RTE: 14, RWD: 20, RKA: 20},
	}, {
		name:   "bridge enables RR, larger R and RWD, smaller RTE and RKA",
		local:  local,
		bridge: &wire.EVB{BGID: true, RRCAP: true, RRCTR: true, Mode: wire.EVBModeBridge, R: 5, RTE: 10, RWD: 25, RKA: 8},
		wantOp: Operating{PeerSeen: true, ReflectiveRelay: true, GroupID: true, R: 5, RTE: 14, RWD: 25, RWDRemote: true, RKA: 20},
		wantTLV: wire.EVB{BGID: true, RRCAP: true, RRCTR: true, SGID: true, RRREQ: true, RRSTAT: RRStatusEnabled,
			Mode: wire.EVBModeStation, R: 5, RTE: 14, RWD: 25, ROLRWD: true, RKA: 20},
	}, {
		name:   "bridge capable but RR not enabled; equal RKA counts as remote",
		local:  Config{RR: true, R: 7, RTE: 31, RWD: 0, RKA: 20},
		bridge: &wire.EVB{RRCAP: true, Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantOp: Operating{PeerSeen: true, R: 7, RTE: 31, RWD: 20, RWDRemote: true, RKA: 20, RKARemote: true},
		wantTLV: wire.EVB{RRCAP: true, RRREQ: true, RRSTAT: RRStatusNotEnabled, Mode: wire.EVBModeStation,
			R: 7, RTE: 31, RWD: 20, ROLRWD: true, RKA: 20, ROLRKA: true},
	}, {
		name:   "group IDs need both sides",
		local:  Config{GroupID: false, R: 3, RTE: 14, RWD: 20, RKA: 20},
		bridge: &wire.EVB{BGID: true, Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantOp: Operating{PeerSeen: true, R: 3, RTE: 14, RWD: 20, RWDRemote: true, RKA: 20, RKARemote: true},
		wantTLV: wire.EVB{BGID: true, RRSTAT: RRStatusNotEnabled, Mode: wire.EVBModeStation,
			R: 3, RTE: 14, RWD: 20, ROLRWD: true, RKA: 20, ROLRKA: true},
	}, {
		name:    "a peer claiming to be a station is ignored",
		local:   local,
		bridge:  &wire.EVB{RRCTR: true, Mode: wire.EVBModeStation, R: 7, RTE: 31, RWD: 31, RKA: 31},
		wantOp:  Operating{R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantTLV: wire.EVB{SGID: true, RRREQ: true, RRSTAT: RRStatusUnknown, Mode: wire.EVBModeStation, R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantErr: true,
	}, {
		name:    "R out of range",
		local:   Config{R: 8},
		wantErr: true,
	}, {
		name:    "RKA out of range",
		local:   Config{RKA: 32},
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, tlv, err := Station(tt.local, tt.bridge)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if op != tt.wantOp {
				t.Errorf("operating\n got %+v\nwant %+v", op, tt.wantOp)
			}
			if tlv != tt.wantTLV {
				t.Errorf("TLV\n got %+v\nwant %+v", tlv, tt.wantTLV)
			}
			if tt.wantErr && tt.local.validate() != nil {
				return
			}
			// The TLV must encode.
			if _, err := (&wire.LLDPDU{ChassisID: wire.ChassisID{Subtype: 7, ID: []byte("c")}, PortID: wire.PortID{Subtype: 7, ID: []byte("p")},
				TLVs: []wire.TLV{&tlv}}).MarshalBinary(); err != nil {
				t.Fatalf("TLV does not encode: %v", err)
			}
		})
	}
}

func TestBridge(t *testing.T) {
	local := Config{RR: true, GroupID: true, R: 3, RTE: 14, RWD: 20, RKA: 20}
	tests := []struct {
		name    string
		local   Config
		station *wire.EVB
		wantOp  Operating
		wantTLV wire.EVB
		wantErr bool
	}{{
		name:    "no station yet",
		local:   local,
		wantOp:  Operating{R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantTLV: wire.EVB{BGID: true, RRCAP: true, Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, RKA: 20},
	}, {
		name:    "station requests RR: RRCTR",
		local:   local,
		station: &wire.EVB{SGID: true, RRREQ: true, RRSTAT: RRStatusUnknown, Mode: wire.EVBModeStation, R: 2, RTE: 20, RWD: 10, RKA: 22},
		wantOp:  Operating{PeerSeen: true, ReflectiveRelay: true, GroupID: true, R: 3, RTE: 20, RWD: 20, RKA: 22, RKARemote: true},
		wantTLV: wire.EVB{BGID: true, RRCAP: true, RRCTR: true, SGID: true, RRREQ: true, RRSTAT: RRStatusUnknown,
			Mode: wire.EVBModeBridge, R: 3, RTE: 20, RWD: 20, RKA: 22, ROLRKA: true},
	}, {
		name:    "station requests RR, bridge not capable",
		local:   Config{R: 3, RTE: 14, RWD: 20, RKA: 20},
		station: &wire.EVB{RRREQ: true, Mode: wire.EVBModeStation, R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantOp:  Operating{PeerSeen: true, R: 3, RTE: 14, RWD: 20, RWDRemote: true, RKA: 20, RKARemote: true},
		wantTLV: wire.EVB{RRREQ: true, Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, ROLRWD: true, RKA: 20, ROLRKA: true},
	}, {
		name:    "peer is a bridge too",
		local:   local,
		station: &wire.EVB{Mode: wire.EVBModeBridge},
		wantOp:  Operating{R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantTLV: wire.EVB{BGID: true, RRCAP: true, Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, RKA: 20},
		wantErr: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, tlv, err := Bridge(tt.local, tt.station)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if op != tt.wantOp {
				t.Errorf("operating\n got %+v\nwant %+v", op, tt.wantOp)
			}
			if tlv != tt.wantTLV {
				t.Errorf("TLV\n got %+v\nwant %+v", tlv, tt.wantTLV)
			}
		})
	}
}

// TestConverge runs both roles against each other until their TLVs stop
// changing, and checks they agree on every operating value.
func TestConverge(t *testing.T) {
	for _, tt := range []struct{ station, bridge Config }{
		{DefaultConfig(), DefaultConfig()},
		{Config{RR: true, R: 7, RTE: 5, RWD: 30, RKA: 2}, Config{RR: true, GroupID: true, R: 1, RTE: 25, RWD: 3, RKA: 28}},
		{Config{RR: true, GroupID: true, R: 0, RTE: 0, RWD: 0, RKA: 0}, Config{GroupID: true, R: 7, RTE: 31, RWD: 31, RKA: 31}},
	} {
		var sTLV, bTLV *wire.EVB
		var sOp, bOp Operating
		for i := 0; i < 4; i++ {
			op, tlv, err := Station(tt.station, bTLV)
			if err != nil {
				t.Fatal(err)
			}
			sOp, sTLV = op, &tlv
			op, tlv, err = Bridge(tt.bridge, sTLV)
			if err != nil {
				t.Fatal(err)
			}
			bOp, bTLV = op, &tlv
		}
		if sOp.R != bOp.R || sOp.RTE != bOp.RTE || sOp.RWD != bOp.RWD || sOp.RKA != bOp.RKA ||
			sOp.ReflectiveRelay != bOp.ReflectiveRelay || sOp.GroupID != bOp.GroupID {
			t.Errorf("%+v / %+v: station %+v, bridge %+v", tt.station, tt.bridge, sOp, bOp)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tt := range []struct {
		exp  uint8
		want time.Duration
	}{{0, 10 * time.Microsecond}, {14, 163840 * time.Microsecond}, {20, 10485760 * time.Microsecond}, {40, 10 * time.Microsecond << 31}} {
		if got := Duration(tt.exp); got != tt.want {
			t.Errorf("Duration(%d) = %v, want %v", tt.exp, got, tt.want)
		}
	}
	o := Operating{RTE: 14, RWD: 20, RKA: 21}
	if o.ECPTimeout() != Duration(14) || o.ResourceWaitDelay() != Duration(20) || o.KeepAlive() != Duration(21) {
		t.Error("Operating durations")
	}
}

func ch(pairs ...uint16) []wire.SChannel {
	var out []wire.SChannel
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, wire.SChannel{SCID: pairs[i], SVID: pairs[i+1]})
	}
	return out
}

func TestStationRequest(t *testing.T) {
	tests := []struct {
		name    string
		cfg     CDCPStationConfig
		want    wire.CDCP
		wantErr bool
	}{
		{"default only", CDCPStationConfig{ChnCap: 1},
			wire.CDCP{Role: wire.CDCPRoleStation, SComp: true, ChnCap: 1, Channels: ch(1, 1)}, false},
		{"sorted SCIDs with S-VID 0", CDCPStationConfig{ChnCap: 8, SCIDs: []uint16{7, 2, 4094}},
			wire.CDCP{Role: wire.CDCPRoleStation, SComp: true, ChnCap: 8, Channels: ch(1, 1, 2, 0, 7, 0, 4094, 0)}, false},
		{"more than ChnCap", CDCPStationConfig{ChnCap: 2, SCIDs: []uint16{2, 3}}, wire.CDCP{}, true},
		{"SCID 1 is the default", CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{1}}, wire.CDCP{}, true},
		{"SCID 0", CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{0}}, wire.CDCP{}, true},
		{"SCID 4095", CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{4095}}, wire.CDCP{}, true},
		{"duplicate", CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{3, 3}}, wire.CDCP{}, true},
		{"ChnCap 0", CDCPStationConfig{}, wire.CDCP{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StationRequest(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBridgeAssign(t *testing.T) {
	req := func(chnCap uint16, scids ...uint16) *wire.CDCP {
		r := &wire.CDCP{Role: wire.CDCPRoleStation, SComp: true, ChnCap: chnCap, Channels: ch(1, 1)}
		for _, s := range scids {
			r.Channels = append(r.Channels, wire.SChannel{SCID: s})
		}
		return r
	}
	bridge := func(chnCap uint16, pairs ...uint16) wire.CDCP {
		return wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: chnCap, Channels: ch(append([]uint16{1, 1}, pairs...)...)}
	}
	pool := CDCPBridgeConfig{ChnCap: 8, FirstSVID: 100, LastSVID: 199}
	tests := []struct {
		name    string
		cfg     CDCPBridgeConfig
		req     *wire.CDCP
		want    wire.CDCP
		wantErr bool
	}{
		{"no request: default only", pool, nil, bridge(8), false},
		{"lowest free S-VIDs in SCID order", pool, req(8, 9, 3), bridge(8, 3, 100, 9, 101), false},
		{"station capacity limits", pool, req(2, 2, 3, 4), bridge(8, 2, 100), false},
		{"bridge capacity limits", CDCPBridgeConfig{ChnCap: 3, FirstSVID: 100, LastSVID: 199}, req(8, 2, 3, 4), bridge(3, 2, 100, 3, 101), false},
		{"current assignments are kept, dropped ones freed", CDCPBridgeConfig{ChnCap: 8, FirstSVID: 100, LastSVID: 199, Current: ch(3, 105, 4, 100)},
			req(8, 2, 3), bridge(8, 2, 100, 3, 105), false},
		{"pool exhausted", CDCPBridgeConfig{ChnCap: 8, FirstSVID: 100, LastSVID: 101}, req(8, 2, 3, 4), bridge(8, 2, 100, 3, 101), false},
		{"not a station", pool, &wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: 8, Channels: ch(1, 1, 2, 0)}, bridge(8), false},
		{"station without S-component", pool, &wire.CDCP{Role: wire.CDCPRoleStation, ChnCap: 8, Channels: ch(1, 1, 2, 0)}, bridge(8), false},
		{"junk SCIDs ignored", pool, req(8, 0, 4095, 5, 5), bridge(8, 5, 100), false},
		{"bad pool", CDCPBridgeConfig{ChnCap: 8, FirstSVID: 1, LastSVID: 10}, req(8), wire.CDCP{}, true},
		{"bad capacity", CDCPBridgeConfig{FirstSVID: 2, LastSVID: 10}, req(8), wire.CDCP{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BridgeAssign(tt.cfg, tt.req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStationResult(t *testing.T) {
	req, err := StationRequest(CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{2, 3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	br := func(pairs ...uint16) *wire.CDCP {
		return &wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: 8, Channels: ch(pairs...)}
	}
	tests := []struct {
		name    string
		bridge  *wire.CDCP
		want    CDCPResult
		wantErr bool
	}{
		{"no answer yet", nil, CDCPResult{Pending: []uint16{2, 3, 4}}, false},
		{"all assigned", br(1, 1, 2, 10, 3, 11, 4, 12), CDCPResult{Channels: ch(1, 1, 2, 10, 3, 11, 4, 12)}, false},
		{"partly assigned, unrequested and S-VID 0 ignored", br(1, 1, 3, 11, 9, 13, 4, 0),
			CDCPResult{Channels: ch(1, 1, 3, 11), Pending: []uint16{2, 4}}, false},
		{"default must be (1, 1)", br(1, 5, 2, 10), CDCPResult{}, true},
		{"default missing", br(2, 10), CDCPResult{}, true},
		{"S-VID given twice", br(1, 1, 2, 10, 3, 10), CDCPResult{}, true},
		{"answer from a station", &wire.CDCP{Role: wire.CDCPRoleStation, SComp: true, Channels: ch(1, 1)}, CDCPResult{}, true},
		{"answer without S-component", &wire.CDCP{Role: wire.CDCPRoleBridge, Channels: ch(1, 1)}, CDCPResult{}, true},
		{"over capacity", &wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: 2, Channels: ch(1, 1, 2, 10, 3, 11)}, CDCPResult{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StationResult(req, tt.bridge)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	// Round trip: what BridgeAssign answers, StationResult accepts.
	ans, err := BridgeAssign(CDCPBridgeConfig{ChnCap: 3, FirstSVID: 50, LastSVID: 60}, &req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := StationResult(req, &ans)
	if err != nil {
		t.Fatal(err)
	}
	if want := (CDCPResult{Channels: ch(1, 1, 2, 50, 3, 51), Pending: []uint16{4}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip %+v, want %+v", got, want)
	}
}
