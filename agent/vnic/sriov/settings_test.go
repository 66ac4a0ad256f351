package sriov

import (
	"errors"
	"reflect"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := tetherWant
	for _, c := range []struct {
		name string
		mod  func(*Settings)
		want error
		msg  string
	}{
		{"ok", func(*Settings) {}, nil, ""},
		{"802.1Q", func(s *Settings) { s.VLANProto = ProtoDot1Q }, nil, ""},
		{"protocol 0 is 802.1Q", func(s *Settings) { s.VLANProto = 0 }, nil, ""},
		{"no VLAN", func(s *Settings) { s.VLAN, s.QoS = 0, 0 }, nil, ""},
		{"max rate only", func(s *Settings) { s.MinTxRate = 0 }, nil, ""},
		{"min rate only", func(s *Settings) { s.MaxTxRate = 0 }, nil, ""},
		{"no MAC", func(s *Settings) { s.MAC = nil }, ErrBadMAC, `sriov: MAC must be a 6-byte unicast address: ""`},
		{"zero MAC", func(s *Settings) { s.MAC = mustMAC("00:00:00:00:00:00") }, ErrBadMAC, `sriov: MAC must be a 6-byte unicast address: "00:00:00:00:00:00"`},
		{"multicast MAC", func(s *Settings) { s.MAC = mustMAC("01:80:c2:00:00:0e") }, ErrBadMAC, `sriov: MAC must be a 6-byte unicast address: "01:80:c2:00:00:0e"`},
		{"8-byte MAC", func(s *Settings) { s.MAC = mustMAC("02:00:00:00:00:00:00:01") }, ErrBadMAC, `sriov: MAC must be a 6-byte unicast address: "02:00:00:00:00:00:00:01"`},
		{"VLAN 4095", func(s *Settings) { s.VLAN = 4095 }, ErrBadVLAN, "sriov: VLAN must be 0-4094: 4095"},
		{"QoS 8", func(s *Settings) { s.QoS = 8 }, ErrBadQoS, "sriov: QoS must be 0-7: 8"},
		{"protocol 0x9100", func(s *Settings) { s.VLANProto = 0x9100 }, ErrBadVLANProto, "sriov: VLAN protocol must be 0x8100 (802.1Q) or 0x88a8 (802.1ad): 0x9100"},
		{"link state 3", func(s *Settings) { s.LinkState = 3 }, ErrBadLinkState, "sriov: link state must be auto, enable or disable: 3"},
		{"min above max", func(s *Settings) { s.MinTxRate, s.MaxTxRate = 600, 500 }, ErrBadRate, "sriov: min tx rate above max tx rate: min 600, max 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			c.mod(&s)
			err := s.Validate()
			if c.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || err.Error() != c.msg {
				t.Fatalf("Validate: %v, want %q", err, c.msg)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := operatorOriginal
	if d := a.diff(a); len(d) != 0 {
		t.Errorf("diff with itself: %v", d)
	}
	if d := a.diff(tetherWant); !reflect.DeepEqual(d, []field{fieldMAC, fieldVLAN, fieldRate, fieldSpoofCheck, fieldTrust, fieldLinkState}) {
		t.Errorf("diff of everything: %v", d)
	}
	b := a
	b.MinTxRate = 11
	if d := a.diff(b); !reflect.DeepEqual(d, []field{fieldRate}) {
		t.Errorf("min rate: %v", d)
	}
	b = a
	b.VLANProto = ProtoDot1AD
	if d := a.diff(b); !reflect.DeepEqual(d, []field{fieldVLAN}) {
		t.Errorf("protocol of a tagged VF: %v", d)
	}
	// Untagged: the protocol is no difference (netdevsim shows 0 until set,
	// restoring "no VLAN" writes 802.1Q).
	u, v := a, a
	u.VLAN, u.QoS, u.VLANProto = 0, 0, 0
	v.VLAN, v.QoS, v.VLANProto = 0, 0, ProtoDot1AD
	if !u.Equal(v) {
		t.Errorf("untagged VFs with protocols 0 and 0x88a8 differ: %v", u.diff(v))
	}
	// QoS without a VLAN is a tag (priority-tagged): the protocol matters.
	u.QoS, v.QoS = 3, 3
	if u.Equal(v) {
		t.Errorf("priority-tagged VFs with protocols 802.1Q and 802.1ad are equal")
	}
}

func TestLinkStateText(t *testing.T) {
	for _, s := range []LinkState{LinkStateAuto, LinkStateEnable, LinkStateDisable} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got LinkState
		if err := got.UnmarshalText(b); err != nil || got != s {
			t.Errorf("%s: round trip gives %v, %v", s, got, err)
		}
	}
	if _, err := LinkState(3).MarshalText(); err == nil || err.Error() != "link state 3: not auto, enable or disable" {
		t.Errorf("MarshalText(3): %v", err)
	}
	var s LinkState
	if err := s.UnmarshalText([]byte("up")); err == nil || err.Error() != `link state "up": not auto, enable or disable` {
		t.Errorf(`UnmarshalText("up"): %v`, err)
	}
	if got := LinkState(9).String(); got != "linkstate(9)" {
		t.Errorf("String: %q", got)
	}
}

func TestSettingsString(t *testing.T) {
	if got, want := tetherWant.String(), "mac 52:54:00:12:34:56, vlan 100, qos 5, vlan protocol 0x88a8, spoof checking off, link-state enable, trust off, min_tx_rate 50Mbps, max_tx_rate 500Mbps"; got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
}
