package pkttest

import (
	"encoding/binary"
	"net"
)

// EtherTypeTest is the EtherType of test frames: IEEE 802's local
// experimental EtherType 1, so nothing else the kernel sends is taken for
// one.
const EtherTypeTest = 0x88b5

// VLAN tag protocol identifiers Parse recognises.
const (
	TPIDCTag = 0x8100 // IEEE 802.1Q C-Tag
	TPIDSTag = 0x88a8 // IEEE 802.1ad S-Tag
)

// MinFrame is the shortest Ethernet frame without FCS; Frame pads to it.
const MinFrame = 60

// Frame builds a test frame: dst, src, the tags (TPID, VID pairs, outer
// first), EtherTypeTest and payload, zero-padded to MinFrame bytes.
func Frame(dst, src net.HardwareAddr, payload []byte, tags ...uint16) []byte {
	b := make([]byte, 0, MinFrame+len(tags)*2+len(payload))
	b = append(append(b, dst...), src...)
	for i := 0; i+1 < len(tags); i += 2 {
		b = binary.BigEndian.AppendUint16(b, tags[i])
		b = binary.BigEndian.AppendUint16(b, tags[i+1])
	}
	b = binary.BigEndian.AppendUint16(b, EtherTypeTest)
	b = append(b, payload...)
	for len(b) < MinFrame {
		b = append(b, 0)
	}
	return b
}

// Parsed is a test frame read back.
type Parsed struct {
	// Src is the source MAC.
	Src net.HardwareAddr
	// Tags are the VLAN tags, outer first: (TPID, VID) with the priority
	// and DEI bits cleared.
	Tags [][2]uint16
	// Payload is everything after the EtherType, padding included.
	Payload []byte
}

// Parse decodes a frame Frame built, after switches added or removed
// tags; ok is false for any frame whose EtherType (after the tags) is not
// EtherTypeTest. It never panics.
func Parse(b []byte) (p Parsed, ok bool) {
	if len(b) < 14 {
		return Parsed{}, false
	}
	p.Src = net.HardwareAddr(b[6:12])
	i := 12
	for i+4 <= len(b) {
		et := binary.BigEndian.Uint16(b[i:])
		if et != TPIDCTag && et != TPIDSTag {
			break
		}
		p.Tags = append(p.Tags, [2]uint16{et, binary.BigEndian.Uint16(b[i+2:]) & 0x0fff})
		i += 4
	}
	if i+2 > len(b) || binary.BigEndian.Uint16(b[i:]) != EtherTypeTest {
		return Parsed{}, false
	}
	p.Payload = b[i+2:]
	return p, true
}
