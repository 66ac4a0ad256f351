package softswitch

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/tether-net/tether/wire"
)

var vmMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

func TestFromProfile(t *testing.T) {
	prof := wire.TetherProfile{VID: 100, Mode: wire.TetherSTagSwitch, RateKbps: 10000, Priority: 5, Name: "web"}
	p, err := FromProfile(prof, "vnet3", vmMAC, 0, 300, 200, 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	want := Port{Name: "vnet3", MAC: vmMAC, VID: 100, Trunks: []uint16{200, 300}, RateKbps: 10000, Priority: 5}
	if d := Compare(want, p); d != nil {
		t.Errorf("FromProfile differs: %v", d)
	}
	if p.Mode != 0 {
		t.Errorf("Mode = %d without an S-Tag, want 0", p.Mode)
	}
	if p.BridgeVID() != 100 {
		t.Errorf("BridgeVID = %d, want the VID 100", p.BridgeVID())
	}

	q, err := FromProfile(prof, "vnet4", vmMAC, 2001)
	if err != nil {
		t.Fatal(err)
	}
	if q.STag != 2001 || q.Mode != wire.TetherSTagSwitch || q.VID != 100 || q.BridgeVID() != 2001 {
		t.Errorf("with S-Tag: %+v, BridgeVID %d; want S-Tag 2001 mode switch VID 100, BridgeVID 2001", q, q.BridgeVID())
	}
	// The caller's slice is not kept.
	mac := slices.Clone(vmMAC)
	r, _ := FromProfile(prof, "vnet5", mac, 0)
	mac[5] = 0xff
	if r.MAC[5] != 0x56 {
		t.Errorf("FromProfile kept the caller's MAC slice")
	}
}

func TestValidateMalformed(t *testing.T) {
	good := Port{Name: "vnet0", MAC: vmMAC, VID: 10}
	for _, tc := range []struct {
		name string
		mod  func(*Port)
		want string
	}{
		{"empty name", func(p *Port) { p.Name = "" }, "invalid port: empty name"},
		{"long name", func(p *Port) { p.Name = "abcdefghijklmnop" }, `invalid port: name "abcdefghijklmnop" is 16 bytes, at most 15`},
		{"short MAC", func(p *Port) { p.MAC = vmMAC[:5] }, `invalid port: vnet0: MAC "52:54:00:12:34" is not a 6-byte Ethernet address`},
		{"group MAC", func(p *Port) { p.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, "invalid port: vnet0: MAC 01:00:5e:00:00:01 is a group address"},
		{"zero MAC", func(p *Port) { p.MAC = make(net.HardwareAddr, 6) }, "invalid port: vnet0: MAC is all zeros"},
		{"VID 4095", func(p *Port) { p.VID = 4095 }, "invalid port: vnet0: VID 4095 out of range 0-4094"},
		{"S-Tag 4095", func(p *Port) { p.STag, p.Mode = 4095, wire.TetherSTagSwitch }, "invalid port: vnet0: S-Tag 4095 out of range 0-4094"},
		{"S-Tag no mode", func(p *Port) { p.STag = 7 }, "invalid port: vnet0: S-Tag 7 with mode 0, want 1 (switch) or 2 (I/O extender)"},
		{"mode no S-Tag", func(p *Port) { p.Mode = wire.TetherSTagIOExtender }, "invalid port: vnet0: S-Tag mode 2 without an S-Tag"},
		{"priority 8", func(p *Port) { p.Priority = 8 }, "invalid port: vnet0: priority 8 out of range 0-7"},
		{"trunk 0", func(p *Port) { p.Trunks = []uint16{0} }, "invalid port: vnet0: trunk VID 0 out of range 1-4094"},
		{"trunk 4095", func(p *Port) { p.Trunks = []uint16{4095} }, "invalid port: vnet0: trunk VID 4095 out of range 1-4094"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.mod(&p)
			err := p.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidPort) {
				t.Errorf("error does not match ErrInvalidPort")
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Errorf("good port: %v", err)
	}
}

func TestCompare(t *testing.T) {
	want := Port{Name: "vnet0", MAC: vmMAC, VID: 10, Trunks: []uint16{30, 20}, RateKbps: 1000, Priority: 3}
	same := want
	same.Trunks = []uint16{20, 30, 10, 20} // order, duplicates and the VID do not matter
	if d := Compare(want, same); d != nil {
		t.Errorf("equal ports differ: %v", d)
	}
	got := Port{Name: "vnet0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, VID: 11, RateKbps: 0, Priority: 3}
	d := Compare(want, got)
	var fields []string
	for _, x := range d {
		fields = append(fields, x.Field)
	}
	if !slices.Equal(fields, []string{"MAC", "VID", "Trunks", "RateKbps"}) {
		t.Errorf("fields %v, want MAC VID Trunks RateKbps", fields)
	}
	if s := d[0].String(); s != "vnet0: MAC: want 52:54:00:12:34:56, got 02:00:00:00:00:01" {
		t.Errorf("String = %q", s)
	}
}

// FuzzFromProfile feeds decoded profile TLVs to FromProfile: it never
// panics, and what it returns validates.
func FuzzFromProfile(f *testing.F) {
	for _, p := range []wire.TetherProfile{
		{VID: 100, Mode: wire.TetherSTagSwitch, RateKbps: 1000, Priority: 3, Name: "a"},
		{VID: 0, Mode: wire.TetherSTagIOExtender, EtherTypes: []uint16{0x0800}, ACL: "x", Name: "b"},
	} {
		b, err := p.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0), uint16(5))
		f.Add(b, uint16(300), uint16(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, stag, trunk uint16) {
		var p wire.TetherProfile
		if p.UnmarshalBinary(b) != nil {
			return
		}
		port, err := FromProfile(p, "vnet0", vmMAC, stag, trunk)
		if err != nil {
			if !errors.Is(err, ErrInvalidPort) {
				t.Fatalf("error %v does not match ErrInvalidPort", err)
			}
			return
		}
		if err := port.Validate(); err != nil {
			t.Fatalf("FromProfile returned an invalid port: %v", err)
		}
		if port.VID != p.VID || port.RateKbps != p.RateKbps {
			t.Fatalf("VID/rate %d/%d, profile %d/%d", port.VID, port.RateKbps, p.VID, p.RateKbps)
		}
	})
}
