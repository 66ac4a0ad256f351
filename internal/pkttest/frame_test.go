package pkttest

import (
	"bytes"
	"net"
	"slices"
	"testing"
)

func TestFrameParse(t *testing.T) {
	dst := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	src := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	f := Frame(dst, src, []byte("tether\x00\x00\x00\x07"), TPIDSTag, 2001, TPIDCTag, 100)
	want := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, // dst, src
		0x88, 0xa8, 0x07, 0xd1, // S-Tag 2001
		0x81, 0x00, 0x00, 0x64, // C-Tag 100
		0x88, 0xb5}, // EtherTypeTest
		"tether\x00\x00\x00\x07"...)
	want = append(want, make([]byte, MinFrame-len(want))...)
	if !bytes.Equal(f, want) {
		t.Fatalf("Frame:\n% x\nwant\n% x", f, want)
	}
	p, ok := Parse(f)
	if !ok || p.Src.String() != src.String() || !slices.Equal(p.Tags, [][2]uint16{{TPIDSTag, 2001}, {TPIDCTag, 100}}) ||
		!bytes.HasPrefix(p.Payload, []byte("tether\x00\x00\x00\x07")) {
		t.Errorf("Parse = %+v, %v", p, ok)
	}
	// The priority bits are not part of the VID.
	f[14] |= 0xe0
	if p, _ := Parse(f); p.Tags[0][1] != 2001 {
		t.Errorf("VID with PCP 7: %d", p.Tags[0][1])
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"13 bytes", make([]byte, 13)},
		{"IPv4", append(make([]byte, 12), 0x08, 0x00, 0x45)},
		{"tag without EtherType", append(make([]byte, 12), 0x81, 0x00, 0x00, 0x64)},
		{"tag then IPv4", append(make([]byte, 12), 0x81, 0x00, 0x00, 0x64, 0x08, 0x00)},
		{"truncated tag", append(make([]byte, 12), 0x81, 0x00, 0x00)},
	} {
		if p, ok := Parse(tc.in); ok {
			t.Errorf("%s: parsed %+v", tc.name, p)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Frame(make(net.HardwareAddr, 6), make(net.HardwareAddr, 6), []byte("x"), TPIDCTag, 5))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := Parse(b)
		if !ok {
			return
		}
		// Rebuilt from what was parsed, the frame parses the same.
		var tags []uint16
		for _, tg := range p.Tags {
			tags = append(tags, tg[0], tg[1])
		}
		q, ok := Parse(Frame(make(net.HardwareAddr, 6), p.Src, p.Payload, tags...))
		if !ok || !slices.Equal(q.Tags, p.Tags) || !bytes.HasPrefix(q.Payload, p.Payload) {
			t.Fatalf("rebuilt %+v, parsed %+v", q, p)
		}
	})
}
