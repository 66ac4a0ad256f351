package enforce

import (
	"bytes"
	"errors"
	"net"
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/tether-net/tether/internal/nftbridge"
)

// These tests need neither root nor a kernel.

func TestPairKey(t *testing.T) {
	p := Pair{MAC: [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, VID: 100}
	want := []byte{
		0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // source MAC
		0x00, 0x00, // padding to the 32-bit register
		0x00, 0x00, // S-VID 0: no S-Tag
		0x00, 0x00, // padding
		0x00, 0x64, // VID 100, network byte order
		0x00, 0x00, // padding
	}
	if got := p.key(); !bytes.Equal(got, want) {
		t.Fatalf("key = % x, want % x", got, want)
	}
	back, err := pairFromKey(want)
	if err != nil || back != p {
		t.Fatalf("pairFromKey = %v, %v; want %v", back, err, p)
	}
	if _, err := pairFromKey(want[:15]); err == nil {
		t.Error("pairFromKey accepted 15 bytes")
	}
	if got := p.String(); got != "02:11:22:33:44:55/100" {
		t.Errorf("String = %q", got)
	}
	sp := Pair{MAC: p.MAC, SVID: 5, VID: 100}
	wantS := []byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0, 0, 0x00, 0x05, 0, 0, 0x00, 0x64, 0, 0}
	if got := sp.key(); !bytes.Equal(got, wantS) {
		t.Fatalf("key of %v = % x, want % x", sp, got, wantS)
	}
	if back, err := pairFromKey(wantS); err != nil || back != sp {
		t.Fatalf("pairFromKey = %v, %v; want %v", back, err, sp)
	}
	if got := sp.String(); got != "02:11:22:33:44:55/svid=5/100" {
		t.Errorf("String = %q", got)
	}
	if err := (Pair{MAC: p.MAC, SVID: 4095}).Validate(); !errors.Is(err, ErrInvalidPair) || err.Error() != "enforce: invalid (MAC, VID) pair: S-VID 4095 above 4094" {
		t.Errorf("Validate of S-VID 4095: %v", err)
	}
	if got := (Pair{MAC: p.MAC}).String(); got != "02:11:22:33:44:55/untagged" {
		t.Errorf("String = %q", got)
	}
}

func TestNewPair(t *testing.T) {
	for _, tc := range []struct {
		mac net.HardwareAddr
		vid uint16
		ok  bool
	}{
		{net.HardwareAddr{2, 0, 0, 0, 0, 1}, 0, true},
		{net.HardwareAddr{2, 0, 0, 0, 0, 1}, MaxVID, true},
		{net.HardwareAddr{2, 0, 0, 0, 0, 1}, MaxVID + 1, false},
		{net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, 0, false}, // multicast
		{net.HardwareAddr{0, 0, 0, 0, 0, 0}, 0, false},
		{net.HardwareAddr{2, 0, 0, 0, 0, 1, 0, 0}, 0, false}, // EUI-64
		{nil, 0, false},
	} {
		_, err := NewPair(tc.mac, tc.vid)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidPair)) {
			t.Errorf("NewPair(%v, %d) = %v, want ok=%v", tc.mac, tc.vid, err, tc.ok)
		}
	}
}

func TestValidPort(t *testing.T) {
	for _, ok := range []string{"eth0", "swp1", "enp3s0f1", "eth0.100", "sw-a", "a_b", "123456789012345"} {
		if err := validPort(ok); err != nil {
			t.Errorf("validPort(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1234567890123456", "a b", "a/b", "a:b", "é", "a\x00"} {
		if err := validPort(bad); !errors.Is(err, ErrInvalidPort) {
			t.Errorf("validPort(%q) = %v, want ErrInvalidPort", bad, err)
		}
	}
}

func pair(last byte, vid uint16) Pair { return Pair{MAC: [6]byte{2, 0, 0, 0, 0, last}, VID: vid} }

func TestPlanPort(t *testing.T) {
	a, b, c, d := pair(1, 0), pair(2, 100), pair(3, 0), pair(4, 7)
	for _, tc := range []struct {
		name        string
		allow, held []Pair
		want        PortPairs
		plan        portPlan
	}{
		{name: "equal", allow: []Pair{a, b}, held: []Pair{c},
			want: PortPairs{Allowed: []Pair{b, a}, Pending: []Pair{c}}},
		{name: "one missing, one extra", allow: []Pair{a, d}, want: PortPairs{Allowed: []Pair{a, b}},
			plan: portPlan{addAllow: []Pair{b}, delAllow: []Pair{d}}},
		{name: "promote", held: []Pair{c}, want: PortPairs{Allowed: []Pair{c}},
			plan: portPlan{addAllow: []Pair{c}, delHeld: []Pair{c}}},
		{name: "demote", allow: []Pair{c}, want: PortPairs{Pending: []Pair{c}},
			plan: portPlan{addHeld: []Pair{c}, delAllow: []Pair{c}}},
		{name: "stale held copy of an allowed pair", allow: []Pair{a}, held: []Pair{a}, want: PortPairs{Allowed: []Pair{a}},
			plan: portPlan{delHeld: []Pair{a}}},
		{name: "desired in both lists: allowed wins", want: PortPairs{Allowed: []Pair{a}, Pending: []Pair{a}},
			plan: portPlan{addAllow: []Pair{a}}},
		{name: "duplicates", allow: []Pair{a, a}, want: PortPairs{Allowed: []Pair{a, a}}},
		{name: "empty desired removes all", allow: []Pair{a, b}, held: []Pair{c},
			plan: portPlan{delAllow: []Pair{a, b}, delHeld: []Pair{c}}},
	} {
		got := planPort(tc.allow, tc.held, tc.want)
		if !reflect.DeepEqual(got, tc.plan) {
			t.Errorf("%s: plan %+v, want %+v", tc.name, got, tc.plan)
		}
		// Never remove what desired allows.
		for _, p := range got.delAllow {
			for _, w := range tc.want.Allowed {
				if p == w {
					t.Errorf("%s: plan removes allowed pair %v", tc.name, p)
				}
			}
		}
	}
}

func TestNormalise(t *testing.T) {
	a, b := pair(1, 0), pair(1, 5)
	got := normalise([]Pair{b, a, b}, []Pair{a, pair(9, 9)})
	want := PortPairs{Allowed: []Pair{a, b}, Pending: []Pair{pair(9, 9)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalise = %v, want %v", got, want)
	}
}

func TestLeftoverPorts(t *testing.T) {
	s := &snapshot{
		Ports:    map[string]string{"eth1": "port-eth1", "eth2": "port-eth2"},
		Chains:   chainsNamed("prerouting", "port-eth1", "port-eth2", "port-eth3"),
		Sets:     map[string]bool{"control": true, "ports": true, "allow-eth1": true, "held-eth4": true},
		Counters: map[string]nftbridge.Counter{"drop-eth5": {}, "acc-eth1": {}},
	}
	got := leftoverPorts(s, State{"eth1": {}})
	want := []string{"eth2", "eth3", "eth4", "eth5"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leftoverPorts = %v, want %v", got, want)
	}
}

func chainsNamed(names ...string) map[string]*nftables.Chain {
	m := map[string]*nftables.Chain{}
	for _, n := range names {
		m[n] = &nftables.Chain{Name: n}
	}
	return m
}

func TestPortRules(t *testing.T) {
	for _, l := range []layout{{tpid: etherTypeCTag}, {tpid: etherTypeSTag, broute: true}} {
		rules := l.portRules("eth1")
		roles := l.portRoles()
		if len(rules) != len(roles) {
			t.Fatalf("%d rules, %d roles", len(rules), len(roles))
		}
		for i, r := range rules {
			if got := ruleRole(r); got != roles[i] {
				t.Errorf("rule %d role %q, want %q", i, got, roles[i])
			}
		}
		// The tagged rule compares the configured TPID.
		cmp := rules[1].Exprs[1].(*expr.Cmp)
		if !bytes.Equal(cmp.Data, []byte{byte(l.tpid >> 8), byte(l.tpid)}) {
			t.Errorf("tagged rule compares % x, want TPID %#04x", cmp.Data, l.tpid)
		}
		// Broute is set only when the kernel has it.
		hasBroute := false
		for _, ex := range rules[0].Exprs {
			if m, ok := ex.(*expr.Meta); ok && m.Key == metaKeyBRIBroute {
				hasBroute = true
			}
		}
		if hasBroute != l.broute {
			t.Errorf("broute %v in control rule, want %v", hasBroute, l.broute)
		}
	}
	if n := len(controlElements()); n != 6 {
		t.Errorf("%d control elements, want 6", n)
	}
}

func FuzzPairFromKey(f *testing.F) {
	f.Add(pair(1, 100).key())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := pairFromKey(b)
		if err != nil {
			return
		}
		if q, err := pairFromKey(p.key()); err != nil || q != p {
			t.Fatalf("round trip of %v: %v, %v", p, q, err)
		}
	})
}
