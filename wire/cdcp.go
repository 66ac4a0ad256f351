package wire

// CDCPRole is the role bit of the CDCP TLV.
type CDCPRole uint8

// CDCP roles (IEEE 802.1Q-2018 D.2.13).
const (
	// CDCPRoleBridge is sent by the S-VLAN component of a Bridge.
	CDCPRoleBridge CDCPRole = 0
	// CDCPRoleStation is sent by a station.
	CDCPRoleStation CDCPRole = 1
)

// String names the role.
func (r CDCPRole) String() string {
	if r == CDCPRoleStation {
		return "station"
	}
	if r == CDCPRoleBridge {
		return "bridge"
	}
	return "invalid(" + itoa(int(r)) + ")"
}

// cdcpFixedLen is the size of the CDCP information string before the
// SCID/SVID pairs; cdcpPairLen is the size of one pair.
const (
	cdcpFixedLen = 4
	cdcpPairLen  = 3
)

// MaxCDCPChannels is the most SCID/SVID pairs that fit in one CDCP TLV:
// (MaxOrgInfo - 4) / 3.
const MaxCDCPChannels = (MaxOrgInfo - cdcpFixedLen) / cdcpPairLen

// SChannel is one S-channel of a CDCP TLV: its S-channel ID and the S-VLAN
// ID that carries it (IEEE 802.1Q-2018 D.2.13).
type SChannel struct {
	// SCID is the 12-bit S-channel identifier.
	SCID uint16
	// SVID is the 12-bit S-VLAN identifier; 0 in a station's request means
	// "assign one".
	SVID uint16
}

// CDCP is the IEEE 802.1 S-Channel Discovery and Configuration Protocol
// TLV, subtype 0x0E (IEEE 802.1Q-2018 D.2.13, first published as IEEE
// 802.1Qbg-2012 D.2.13).
//
// The information string is 4 + 3n bytes:
//
//	byte 0     Role(1) reserved(3) SComp(1) reserved(3)
//	byte 1     reserved(8)
//	bytes 2-3  reserved(4) ChnCap(12)
//	then n times: SCID(12) SVID(12)
//
// Reserved bits are ignored on receipt and sent as zero. Any other length
// is ErrLength.
type CDCP struct {
	// Role is the sender's role.
	Role CDCPRole
	// SComp says an S-VLAN component is present for the S-channels.
	SComp bool
	// ChnCap is the 12-bit channel capacity: how many S-channels the
	// sender supports.
	ChnCap uint16
	// Channels lists the S-channels in wire order.
	Channels []SChannel
}

var _ OrgTLV = (*CDCP)(nil)

func (t *CDCP) tlvName() string                             { return "CDCP" }
func (t *CDCP) orgID(OUI) (OUI, uint8)                      { return OUIIEEE8021, Subtype8021CDCP }
func (t *CDCP) appendTLV(b []byte, cid OUI) ([]byte, error) { return appendOrgTLV(b, t, cid) }

func (t *CDCP) appendInfo(b []byte) ([]byte, error) {
	off := len(b)
	if err := ieeeFits("CDCP", off, "role", int(t.Role), 1); err != nil {
		return b, err
	}
	if err := ieeeFits("CDCP", off, "ChnCap", int(t.ChnCap), 12); err != nil {
		return b, err
	}
	if len(t.Channels) > MaxCDCPChannels {
		return b, newError("CDCP", off, ErrOversize, "%d S-channels, at most %d fit", len(t.Channels), MaxCDCPChannels)
	}
	for i, c := range t.Channels {
		at := off + cdcpFixedLen + i*cdcpPairLen
		if err := ieeeFits("CDCP", at, "SCID", int(c.SCID), 12); err != nil {
			return b, err
		}
		if err := ieeeFits("CDCP", at, "SVID", int(c.SVID), 12); err != nil {
			return b, err
		}
	}
	b = append(b,
		uint8(t.Role)<<7|ieeeFlag(t.SComp, 0x08),
		0,
		uint8(t.ChnCap>>8),
		uint8(t.ChnCap),
	)
	for _, c := range t.Channels {
		b = append(b, uint8(c.SCID>>4), uint8(c.SCID<<4)|uint8(c.SVID>>8), uint8(c.SVID))
	}
	return b, nil
}

func (t *CDCP) decodeInfo(b []byte, off int) error {
	if len(b) < cdcpFixedLen || (len(b)-cdcpFixedLen)%cdcpPairLen != 0 {
		return newError("CDCP", off, ErrLength, "information string is %d bytes, want 4 + 3n", len(b))
	}
	out := CDCP{
		Role:   CDCPRole(b[0] >> 7),
		SComp:  b[0]&0x08 != 0,
		ChnCap: uint16(b[2]&0x0f)<<8 | uint16(b[3]),
	}
	if n := (len(b) - cdcpFixedLen) / cdcpPairLen; n > 0 {
		out.Channels = make([]SChannel, n)
		p := b[cdcpFixedLen:]
		for i := range out.Channels {
			out.Channels[i] = SChannel{
				SCID: uint16(p[0])<<4 | uint16(p[1]>>4),
				SVID: uint16(p[1]&0x0f)<<8 | uint16(p[2]),
			}
			p = p[cdcpPairLen:]
		}
	}
	*t = out
	return nil
}
