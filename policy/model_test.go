package policy

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// testKeyPEM returns a fixed Ed25519 public key in PEM and its KeyID.
func testKeyPEM(t testing.TB) (string, string) {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	b, err := identity.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), identity.KeyIDOf(pub).String()
}

const vm1 = "6f1c1b3e-2a4d-4c5e-9f00-0123456789ab"

func TestValidateErrors(t *testing.T) {
	pemKey, keyID := testKeyPEM(t)
	good := Placement{VM: vm1, Host: "hv1", State: StateRunning, MACs: []string{"52:54:00:00:00:01"}}
	place := func(f func(*Placement)) *Placement { p := good; f(&p); return &p }
	tests := []struct {
		obj  Object
		want string // "" = valid
	}{
		{&Profile{Name: "web", VID: 100, Mode: ModeSwitch, EtherTypes: []uint16{0x0800, 0x86dd}, RateKbps: 1000, Priority: 3, ACL: "acl-1"}, ""},
		{&Profile{Name: "web", VID: 4095, Mode: ModeSwitch}, `profile "web": vid: 4095 is not 0-4094`},
		{&Profile{Name: "", Mode: ModeSwitch}, `profile "": name: empty`},
		{&Profile{Name: "a b", Mode: ModeSwitch}, `profile "a b": name: "a b": only letters, digits, '.', '_' and '-' allowed`},
		{&Profile{Name: strings.Repeat("x", 65), Mode: ModeSwitch}, `profile "` + strings.Repeat("x", 65) + `": name: 65 bytes, at most 64 allowed`},
		{&Profile{Name: "..", Mode: ModeSwitch}, `profile "..": name: ".." is reserved`},
		{&Profile{Name: "web", Mode: "bridge"}, `profile "web": mode: "bridge" is not "switch" or "io-extender"`},
		{&Profile{Name: "web", Mode: ModeIOExtender, EtherTypes: []uint16{0x0800, 0x05dc}}, `profile "web": ether_types[1]: 0x05dc is below 0x0600`},
		{&Profile{Name: "web", Mode: ModeSwitch, EtherTypes: []uint16{0x0800, 0x0800}}, `profile "web": ether_types[1]: 0x0800 is listed twice`},
		{&Profile{Name: "web", Mode: ModeSwitch, Priority: 8}, `profile "web": priority: 8 is not 0-7`},
		{&Profile{Name: "web", Mode: ModeSwitch, ACL: "no/slash"}, `profile "web": acl: "no/slash": only letters, digits, '.', '_' and '-' allowed`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{UUIDs: []string{vm1}, NamePatterns: []string{"web-*"}, Labels: map[string]string{"tenant": "a"}}}, ""},
		{&PortGroup{Name: "g", Profile: ""}, `group "g": profile: empty`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{UUIDs: []string{"nope"}}}, `group "g": match.uuids[0]: "nope" is not a UUID (8-4-4-4-12 hex digits)`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{NamePatterns: []string{"web-["}}}, `group "g": match.name_patterns[0]: "web-[": syntax error in pattern`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{NamePatterns: []string{""}}}, `group "g": match.name_patterns[0]: empty`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{Labels: map[string]string{"": "x"}}}, `group "g": match.labels: empty key`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{Labels: map[string]string{"a=b": ""}}}, `group "g": match.labels: key "a=b" contains '='`},
		{&PortGroup{Name: "g", Profile: "web", Match: Match{Labels: map[string]string{"a": "x\ty"}}}, `group "g": match.labels: label "a=x\ty" contains a control character or invalid UTF-8`},
		{&Host{Name: "hv1", Role: RoleHost, PublicKey: pemKey}, ""},
		{&Host{Name: "hv1", Role: RoleSwitch, PublicKey: pemKey, KeyID: keyID}, ""},
		{&Host{Name: "hv1", Role: "router", PublicKey: pemKey}, `host "hv1": role: "router" is not "host" or "switch"`},
		{&Host{Name: "hv1", Role: RoleHost, PublicKey: "junk"}, `host "hv1": public_key: public key: no PEM block`},
		{&Host{Name: "hv1", Role: RoleHost, PublicKey: pemKey, KeyID: "0000000000000000"}, `host "hv1": key_id: "0000000000000000" does not match the public key (` + keyID + `)`},
		{&good, ""},
		{place(func(p *Placement) { p.VM = "x" }), `placement "x": vm: "x" is not a UUID (8-4-4-4-12 hex digits)`},
		{place(func(p *Placement) { p.Host = "" }), `placement "` + vm1 + `": host: empty`},
		{place(func(p *Placement) { p.State = "up" }), `placement "` + vm1 + `": state: "up" is not one of running, paused, migrating-in, migrating-out, shut-off`},
		{place(func(p *Placement) { p.MACs = []string{"52:54:00:00:00:01", "zz"} }), `placement "` + vm1 + `": macs[1]: "zz" is not a MAC address`},
		{place(func(p *Placement) { p.MACs = []string{"52:54:00:00:00:01", "52-54-00-00-00-01"} }), `placement "` + vm1 + `": macs[1]: "52-54-00-00-00-01" is listed twice`},
		{place(func(p *Placement) { p.Name = "a\nb" }), `placement "` + vm1 + `": name: contains a control character or invalid UTF-8`},
		{place(func(p *Placement) { p.Source = strings.Repeat("s", 513) }), `placement "` + vm1 + `": source: 513 bytes, at most 512 allowed`},
		{place(func(p *Placement) { p.Labels = []string{"tenant=a", "pci", "zone=eu west"} }), ""},
		{place(func(p *Placement) { p.Labels = []string{"tenant=a", ""} }), `placement "` + vm1 + `": labels[1]: empty`},
		{place(func(p *Placement) { p.Labels = []string{" tenant=a"} }), `placement "` + vm1 + `": labels[0]: " tenant=a" has leading or trailing space`},
		{place(func(p *Placement) { p.Labels = []string{"a\tb"} }), `placement "` + vm1 + `": labels[0]: "a\tb" contains a control character or invalid UTF-8`},
		{place(func(p *Placement) { p.Labels = []string{"\xff"} }), `placement "` + vm1 + `": labels[0]: "\xff" contains a control character or invalid UTF-8`},
		{place(func(p *Placement) { p.Labels = []string{strings.Repeat("l", 254)} }), `placement "` + vm1 + `": labels[0]: 254 bytes, at most 253 allowed`},
		{place(func(p *Placement) { p.Labels = []string{"pci", "tenant=a", "pci"} }), `placement "` + vm1 + `": labels[2]: "pci" is listed twice`},
		{place(func(p *Placement) { p.Labels = make([]string, 65) }), `placement "` + vm1 + `": labels: 65 listed, at most 64 allowed`},
	}
	for _, tt := range tests {
		err := tt.obj.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s %q: unexpected error %v", tt.obj.Kind(), tt.obj.Key(), err)
		case tt.want != "" && err == nil:
			t.Errorf("%s %q: no error, want %s", tt.obj.Kind(), tt.obj.Key(), tt.want)
		case err != nil:
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not wrap ErrInvalid", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Errorf("%v is not a FieldError with a field", err)
			}
		}
	}
}

// TestProfileWire: a valid profile encodes as the wire TLV and decodes
// back to the same profile.
func TestProfileWire(t *testing.T) {
	for _, p := range []Profile{
		{Name: "web", VID: 100, Mode: ModeSwitch, EtherTypes: []uint16{0x0800, 0x0806, 0x86dd}, RateKbps: 100000, Priority: 5, ACL: "web-in"},
		{Name: "x", Mode: ModeIOExtender},
		{Name: strings.Repeat("n", 64), VID: 4094, Mode: ModeSwitch, ACL: strings.Repeat("a", 64), Priority: 7, RateKbps: ^uint32(0)},
	} {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		w := p.Wire()
		b, err := w.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		var back wire.TetherProfile
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if got := ProfileFromWire(back); !reflect.DeepEqual(got, p) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, p)
		}
	}
}

func TestResolve(t *testing.T) {
	groups := []PortGroup{
		{Name: "by-name", Profile: "p", Match: Match{NamePatterns: []string{"web-*"}}},
		{Name: "by-label", Profile: "p", Match: Match{Labels: map[string]string{"tenant": "a", "frontend": ""}}},
		{Name: "by-uuid", Profile: "p", Match: Match{UUIDs: []string{strings.ToUpper(vm1)}}},
		{Name: "high", Profile: "p", Match: Match{NamePatterns: []string{"db-*"}, Priority: 10}},
		{Name: "b-tie", Profile: "p", Match: Match{NamePatterns: []string{"tie-*"}}},
		{Name: "a-tie", Profile: "p", Match: Match{NamePatterns: []string{"tie-?"}}},
		{Name: "empty", Profile: "p"},
	}
	tests := []struct {
		vm   VMRef
		want string
		ok   bool
	}{
		{VMRef{Name: "web-1"}, "by-name", true},
		{VMRef{Name: "web-1", Labels: []string{"tenant=a", "frontend"}}, "by-label", true},
		{VMRef{Name: "web-1", Labels: []string{"tenant=a"}}, "by-name", true}, // not all labels
		{VMRef{Name: "web-1", Labels: []string{"tenant=b", "frontend"}}, "by-name", true},
		{VMRef{UUID: vm1, Name: "web-1", Labels: []string{"tenant=a", "frontend"}}, "by-uuid", true},
		{VMRef{UUID: vm1, Name: "db-1"}, "high", true}, // priority beats UUID
		{VMRef{Name: "tie-1"}, "a-tie", true},          // same priority and strength: name order
		{VMRef{Name: "other"}, "", false},
		{VMRef{}, "", false},
	}
	for _, tt := range tests {
		got, ok := Resolve(groups, tt.vm)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Resolve(%+v) = %q, %v; want %q, %v", tt.vm, got, ok, tt.want, tt.ok)
		}
	}
}

// TestNormalizeJSON: the stored form has snake_case keys, lower-case
// UUIDs and MACs, and a derived KeyID.
func TestNormalizeJSON(t *testing.T) {
	pemKey, keyID := testKeyPEM(t)
	for _, stale := range []string{"", "0000000000000000"} {
		h := &Host{Name: "sw1", Role: RoleSwitch, PublicKey: pemKey, KeyID: stale}
		Normalize(h)
		if h.KeyID != keyID {
			t.Errorf("KeyID %q, want %q", h.KeyID, keyID)
		}
	}
	p := &Placement{VM: strings.ToUpper(vm1), Host: "hv1", State: StateRunning, MACs: []string{"52-54-00-AA-BB-CC"}, Updated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	Normalize(p)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	want := `{"vm":"` + vm1 + `","host":"hv1","macs":["52:54:00:aa:bb:cc"],"state":"running","updated":"2026-01-02T03:04:05Z"}`
	if string(b) != want {
		t.Errorf("json\n got %s\nwant %s", b, want)
	}
	// Labels: an empty list is stored as none (nil), like MACs, so a
	// decoded "labels":[] and an absent field give the same record.
	pl := &Placement{VM: vm1, Host: "hv1", State: StateRunning, Labels: []string{}}
	Normalize(pl)
	if pl.Labels != nil {
		t.Errorf("Normalize left an empty Labels non-nil: %#v", pl.Labels)
	}
	pl.Labels = []string{"tenant=a", "pci"}
	Normalize(pl)
	b, _ = json.Marshal(pl)
	if want := `{"vm":"` + vm1 + `","host":"hv1","state":"running","labels":["tenant=a","pci"],"updated":"0001-01-01T00:00:00Z"}`; string(b) != want {
		t.Errorf("json\n got %s\nwant %s", b, want)
	}
	pr := Profile{Name: "web", VID: 10, Mode: ModeSwitch, EtherTypes: []uint16{2048}, RateKbps: 5, Priority: 1, ACL: "a"}
	b, _ = json.Marshal(pr)
	if want := `{"name":"web","vid":10,"mode":"switch","ether_types":[2048],"rate_kbps":5,"priority":1,"acl":"a"}`; string(b) != want {
		t.Errorf("json\n got %s\nwant %s", b, want)
	}
}
