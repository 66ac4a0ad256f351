package wire

// EVBMode is the EVB mode field of the EVB TLV: which role the sender plays.
type EVBMode uint8

// EVB modes (IEEE 802.1Q-2018 D.2.12).
const (
	// EVBModeNotSupported means the sender does not support EVB.
	EVBModeNotSupported EVBMode = 0
	// EVBModeBridge means the sender is an EVB Bridge.
	EVBModeBridge EVBMode = 1
	// EVBModeStation means the sender is an EVB station.
	EVBModeStation EVBMode = 2
)

// String names the mode as tcpdump does.
func (m EVBMode) String() string {
	switch m {
	case EVBModeNotSupported:
		return "not supported"
	case EVBModeBridge:
		return "bridge"
	case EVBModeStation:
		return "station"
	}
	return "reserved(" + itoa(int(m)) + ")"
}

// evbInfoLen is the size of the EVB TLV's information string after OUI and
// subtype (TLV length 9).
const evbInfoLen = 5

// EVB is the IEEE 802.1 EVB TLV, subtype 0x0D (IEEE 802.1Q-2018 D.2.12,
// first published as IEEE 802.1Qbg-2012 D.2.12). It negotiates reflective
// relay and the ECP/VDP timers between an EVB Bridge and an EVB station.
//
// The information string is exactly 5 bytes:
//
//	byte 0  EVB Bridge status:  reserved(5) BGID(1) RRCAP(1) RRCTR(1)
//	byte 1  EVB station status: reserved(4) SGID(1) RRREQ(1) RRSTAT(2)
//	byte 2  R(3) RTE(5)
//	byte 3  EVB mode(2) ROL(1) RWD(5)
//	byte 4  reserved(2) ROL(1) RKA(5)
//
// Reserved bits are ignored on receipt and sent as zero.
type EVB struct {
	// BGID is the Bridge's group ID support bit.
	BGID bool
	// RRCAP says the Bridge is capable of reflective relay.
	RRCAP bool
	// RRCTR says the Bridge has reflective relay enabled on the port.
	RRCTR bool
	// SGID is the station's group ID support bit.
	SGID bool
	// RRREQ says the station requests reflective relay.
	RRREQ bool
	// RRSTAT is the station's 2-bit reflective relay status.
	RRSTAT uint8
	// R is the 3-bit maximum number of ECP retransmissions.
	R uint8
	// RTE is the 5-bit ECP retransmission timer exponent: the timer is
	// 10 µs * 2^RTE.
	RTE uint8
	// Mode is the 2-bit EVB mode.
	Mode EVBMode
	// ROLRWD says RWD is the remote (peer's) value rather than the local one.
	ROLRWD bool
	// RWD is the 5-bit VDP resource wait delay exponent.
	RWD uint8
	// ROLRKA says RKA is the remote (peer's) value rather than the local one.
	ROLRKA bool
	// RKA is the 5-bit VDP reinit keep-alive exponent.
	RKA uint8
}

var _ OrgTLV = (*EVB)(nil)

func (t *EVB) tlvName() string                             { return "EVB" }
func (t *EVB) orgID(OUI) (OUI, uint8)                      { return OUIIEEE8021, Subtype8021EVB }
func (t *EVB) appendTLV(b []byte, cid OUI) ([]byte, error) { return appendOrgTLV(b, t, cid) }

func (t *EVB) appendInfo(b []byte) ([]byte, error) {
	off := len(b)
	for _, f := range [...]struct {
		name string
		v    uint8
		bits int
	}{
		{"RRSTAT", t.RRSTAT, 2},
		{"R", t.R, 3},
		{"RTE", t.RTE, 5},
		{"EVB mode", uint8(t.Mode), 2},
		{"RWD", t.RWD, 5},
		{"RKA", t.RKA, 5},
	} {
		if err := ieeeFits("EVB", off, f.name, int(f.v), f.bits); err != nil {
			return b, err
		}
	}
	return append(b,
		ieeeFlag(t.BGID, 0x04)|ieeeFlag(t.RRCAP, 0x02)|ieeeFlag(t.RRCTR, 0x01),
		ieeeFlag(t.SGID, 0x08)|ieeeFlag(t.RRREQ, 0x04)|t.RRSTAT,
		t.R<<5|t.RTE,
		uint8(t.Mode)<<6|ieeeFlag(t.ROLRWD, 0x20)|t.RWD,
		ieeeFlag(t.ROLRKA, 0x20)|t.RKA,
	), nil
}

func (t *EVB) decodeInfo(b []byte, off int) error {
	if err := ieeeFixedInfo("EVB", b, off, evbInfoLen); err != nil {
		return err
	}
	*t = EVB{
		BGID:   b[0]&0x04 != 0,
		RRCAP:  b[0]&0x02 != 0,
		RRCTR:  b[0]&0x01 != 0,
		SGID:   b[1]&0x08 != 0,
		RRREQ:  b[1]&0x04 != 0,
		RRSTAT: b[1] & 0x03,
		R:      b[2] >> 5,
		RTE:    b[2] & 0x1f,
		Mode:   EVBMode(b[3] >> 6),
		ROLRWD: b[3]&0x20 != 0,
		RWD:    b[3] & 0x1f,
		ROLRKA: b[4]&0x20 != 0,
		RKA:    b[4] & 0x1f,
	}
	return nil
}
