package wire

import "encoding/binary"

// Ethernet header helper, shared by every protocol in this package.
//
// This file is the package's one Ethernet II header codec: LLDP (EtherType
// 0x88cc) and ECP (0x8940) frames both use EthernetHeader. Other files
// should use it rather than define their own. It owns EtherTypeVLAN and
// EtherTypeLLDP; the protocol files own their EtherTypes.

// EtherTypeVLAN is the TPID of an IEEE 802.1Q customer VLAN tag (C-Tag).
const EtherTypeVLAN = 0x8100

// ethernetHeaderLen is the size of an untagged Ethernet II header.
const ethernetHeaderLen = 14

// vlanTagLen is the size of one 802.1Q tag (TPID and TCI).
const vlanTagLen = 4

// EthernetHeader is an Ethernet II header (IEEE 802.3 clause 3.2 with a
// type field), optionally carrying one IEEE 802.1Q C-Tag (802.1Q-2018 9.5).
type EthernetHeader struct {
	// Dst is the destination MAC address.
	Dst [6]byte
	// Src is the source MAC address.
	Src [6]byte
	// Tagged reports that the frame carries one 802.1Q tag (TPID 0x8100);
	// TCI then holds the tag control information.
	Tagged bool
	// TCI is the tag control information when Tagged: priority (3 bits),
	// drop eligible (1 bit) and VLAN ID (12 bits).
	TCI uint16
	// EtherType is the type of the payload, after any tag.
	EtherType uint16
}

// Len returns the encoded size of the header: 14 bytes, or 18 when tagged.
func (h *EthernetHeader) Len() int {
	if h.Tagged {
		return ethernetHeaderLen + vlanTagLen
	}
	return ethernetHeaderLen
}

// VID returns the 12-bit VLAN ID of the tag (0 when untagged).
func (h *EthernetHeader) VID() uint16 { return h.TCI & 0x0fff }

// PCP returns the 3-bit priority code point of the tag (0 when untagged).
func (h *EthernetHeader) PCP() uint8 { return uint8(h.TCI >> 13) }

// Append appends the encoded header to b. It does not allocate when b has
// room for Len() more bytes.
func (h *EthernetHeader) Append(b []byte) []byte {
	b = append(b, h.Dst[:]...)
	b = append(b, h.Src[:]...)
	if h.Tagged {
		b = binary.BigEndian.AppendUint16(b, EtherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, h.TCI)
	}
	return binary.BigEndian.AppendUint16(b, h.EtherType)
}

// Parse decodes the header at the start of b and returns the payload that
// follows it (a sub-slice of b, not a copy). One 802.1Q tag (TPID 0x8100) is
// skipped and reported in Tagged and TCI; a second tag or an 802.1ad S-Tag
// is not skipped and shows up as EtherType 0x8100 or 0x88a8. On error h is
// left unchanged.
func (h *EthernetHeader) Parse(b []byte) (payload []byte, err error) {
	const name = "Ethernet header"
	if len(b) < ethernetHeaderLen {
		return nil, errTruncated(name, 0, ethernetHeaderLen, len(b))
	}
	var out EthernetHeader
	copy(out.Dst[:], b[0:6])
	copy(out.Src[:], b[6:12])
	out.EtherType = binary.BigEndian.Uint16(b[12:14])
	n := ethernetHeaderLen
	if out.EtherType == EtherTypeVLAN {
		if len(b) < ethernetHeaderLen+vlanTagLen {
			return nil, errTruncated(name, 12, ethernetHeaderLen+vlanTagLen-12, len(b)-12)
		}
		out.Tagged = true
		out.TCI = binary.BigEndian.Uint16(b[14:16])
		out.EtherType = binary.BigEndian.Uint16(b[16:18])
		n += vlanTagLen
	}
	*h = out
	return b[n:], nil
}
