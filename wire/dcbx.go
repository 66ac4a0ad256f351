package wire

import "encoding/binary"

// IEEE DCBX TLVs (IEEE 802.1Q-2018 D.2.8 to D.2.11, first published in IEEE
// 802.1Qaz-2011): ETS Configuration, ETS Recommendation, PFC and APP.

// TSA is a transmission selection algorithm identifier (IEEE 802.1Q-2018
// 8.6.8 and D.2.8), one per traffic class in the ETS TLVs.
type TSA uint8

// Transmission selection algorithms (IEEE 802.1Q-2018 8.6.8).
const (
	// TSAStrict is strict priority.
	TSAStrict TSA = 0
	// TSACreditBased is the credit-based shaper.
	TSACreditBased TSA = 1
	// TSAETS is enhanced transmission selection.
	TSAETS TSA = 2
	// TSAVendor is a vendor-specific algorithm.
	TSAVendor TSA = 255
)

// etsInfoLen is the size of either ETS TLV's information string after OUI
// and subtype: 1 flags byte, 4 bytes of priority assignment table, 8 bytes
// of TC bandwidth table and 8 bytes of TSA assignment table. With OUI and
// subtype that makes the TLV length of 25 that D.2.8 and D.2.9 give.
const etsInfoLen = 1 + 4 + 8 + 8

// ETSTables holds the three tables that both ETS TLVs carry (IEEE
// 802.1Q-2018 D.2.8 and D.2.9).
type ETSTables struct {
	// PriorityTC maps each priority 0-7 to its traffic class. On the wire
	// it is 4 bytes of 4-bit entries, priority 0 in the high nibble of the
	// first byte; values above 15 do not fit and are ErrInvalid.
	PriorityTC [8]uint8
	// Bandwidth is the percentage of bandwidth given to each traffic class
	// 0-7 (the TC bandwidth table). The sum is not checked here.
	Bandwidth [8]uint8
	// TSA is the transmission selection algorithm of each traffic class
	// 0-7 (the TSA assignment table).
	TSA [8]TSA
}

// appendETSTables appends the 20 table bytes; off is where the TLV's
// information string started, for errors.
func appendETSTables(b []byte, t *ETSTables, name string, off int) ([]byte, error) {
	for p, tc := range t.PriorityTC {
		if tc > 0x0f {
			return b, newError(name, off, ErrInvalid, "traffic class %d of priority %d does not fit in 4 bits", tc, p)
		}
	}
	for i := 0; i < 8; i += 2 {
		b = append(b, t.PriorityTC[i]<<4|t.PriorityTC[i+1])
	}
	b = append(b, t.Bandwidth[:]...)
	for _, a := range t.TSA {
		b = append(b, uint8(a))
	}
	return b, nil
}

// decodeETSTables reads the 20 table bytes at b[0:20].
func decodeETSTables(b []byte) ETSTables {
	var t ETSTables
	for i := 0; i < 4; i++ {
		t.PriorityTC[2*i] = b[i] >> 4
		t.PriorityTC[2*i+1] = b[i] & 0x0f
	}
	copy(t.Bandwidth[:], b[4:12])
	for i := range t.TSA {
		t.TSA[i] = TSA(b[12+i])
	}
	return t
}

// ETSConfiguration is the IEEE 802.1 ETS Configuration TLV, subtype 0x09
// (IEEE 802.1Q-2018 D.2.8): the sender's operational ETS settings.
//
// The information string is exactly 21 bytes (TLV length 25):
//
//	byte 0      Willing(1) CBS(1) reserved(3) MaxTCs(3)
//	bytes 1-4   priority assignment table (8 x 4 bits)
//	bytes 5-12  TC bandwidth table (8 x 1 byte, percent)
//	bytes 13-20 TSA assignment table (8 x 1 byte)
//
// Reserved bits are ignored on receipt and sent as zero.
type ETSConfiguration struct {
	// Willing says the sender accepts the peer's recommendation.
	Willing bool
	// CBS says the sender supports the credit-based shaper algorithm.
	CBS bool
	// MaxTCs is the 3-bit number of traffic classes supported; 0 means 8.
	MaxTCs uint8
	ETSTables
}

var _ OrgTLV = (*ETSConfiguration)(nil)

func (t *ETSConfiguration) tlvName() string { return "ETS Configuration" }
func (t *ETSConfiguration) orgID(OUI) (OUI, uint8) {
	return OUIIEEE8021, Subtype8021ETSConfiguration
}
func (t *ETSConfiguration) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

func (t *ETSConfiguration) appendInfo(b []byte) ([]byte, error) {
	off := len(b)
	if err := ieeeFits(t.tlvName(), off, "MaxTCs", int(t.MaxTCs), 3); err != nil {
		return b, err
	}
	b = append(b, ieeeFlag(t.Willing, 0x80)|ieeeFlag(t.CBS, 0x40)|t.MaxTCs)
	b, err := appendETSTables(b, &t.ETSTables, t.tlvName(), off)
	if err != nil {
		return b[:off], err
	}
	return b, nil
}

func (t *ETSConfiguration) decodeInfo(b []byte, off int) error {
	if err := ieeeFixedInfo(t.tlvName(), b, off, etsInfoLen); err != nil {
		return err
	}
	*t = ETSConfiguration{
		Willing:   b[0]&0x80 != 0,
		CBS:       b[0]&0x40 != 0,
		MaxTCs:    b[0] & 0x07,
		ETSTables: decodeETSTables(b[1:]),
	}
	return nil
}

// ETSRecommendation is the IEEE 802.1 ETS Recommendation TLV, subtype 0x0A
// (IEEE 802.1Q-2018 D.2.9): the settings the sender recommends to a willing
// peer.
//
// The information string is exactly 21 bytes (TLV length 25): one reserved
// byte, then the same three tables as ETSConfiguration. The reserved byte
// is ignored on receipt and sent as zero.
type ETSRecommendation struct {
	ETSTables
}

var _ OrgTLV = (*ETSRecommendation)(nil)

func (t *ETSRecommendation) tlvName() string { return "ETS Recommendation" }
func (t *ETSRecommendation) orgID(OUI) (OUI, uint8) {
	return OUIIEEE8021, Subtype8021ETSRecommendation
}
func (t *ETSRecommendation) appendTLV(b []byte, cid OUI) ([]byte, error) {
	return appendOrgTLV(b, t, cid)
}

func (t *ETSRecommendation) appendInfo(b []byte) ([]byte, error) {
	off := len(b)
	b = append(b, 0)
	b, err := appendETSTables(b, &t.ETSTables, t.tlvName(), off)
	if err != nil {
		return b[:off], err
	}
	return b, nil
}

func (t *ETSRecommendation) decodeInfo(b []byte, off int) error {
	if err := ieeeFixedInfo(t.tlvName(), b, off, etsInfoLen); err != nil {
		return err
	}
	*t = ETSRecommendation{ETSTables: decodeETSTables(b[1:])}
	return nil
}

// pfcInfoLen is the size of the PFC information string (TLV length 6).
const pfcInfoLen = 2

// PFC is the IEEE 802.1 Priority-based Flow Control Configuration TLV,
// subtype 0x0B (IEEE 802.1Q-2018 D.2.10).
//
// The information string is exactly 2 bytes (TLV length 6):
//
//	byte 0  Willing(1) MBC(1) reserved(2) PFC cap(4)
//	byte 1  PFC enable bitmap
//
// Reserved bits are ignored on receipt and sent as zero.
type PFC struct {
	// Willing says the sender accepts the peer's configuration.
	Willing bool
	// MBC says the sender is capable of bypassing MACsec (MACsec Bypass
	// Capability).
	MBC bool
	// Cap is the 4-bit PFC capability: how many traffic classes may have
	// PFC enabled at the same time.
	Cap uint8
	// Enable has bit n (least significant bit = 0) set when PFC is enabled
	// for priority n.
	Enable uint8
}

var _ OrgTLV = (*PFC)(nil)

func (t *PFC) tlvName() string                             { return "PFC" }
func (t *PFC) orgID(OUI) (OUI, uint8)                      { return OUIIEEE8021, Subtype8021PFC }
func (t *PFC) appendTLV(b []byte, cid OUI) ([]byte, error) { return appendOrgTLV(b, t, cid) }

func (t *PFC) appendInfo(b []byte) ([]byte, error) {
	if err := ieeeFits("PFC", len(b), "PFC cap", int(t.Cap), 4); err != nil {
		return b, err
	}
	return append(b, ieeeFlag(t.Willing, 0x80)|ieeeFlag(t.MBC, 0x40)|t.Cap, t.Enable), nil
}

func (t *PFC) decodeInfo(b []byte, off int) error {
	if err := ieeeFixedInfo("PFC", b, off, pfcInfoLen); err != nil {
		return err
	}
	*t = PFC{
		Willing: b[0]&0x80 != 0,
		MBC:     b[0]&0x40 != 0,
		Cap:     b[0] & 0x0f,
		Enable:  b[1],
	}
	return nil
}

// AppSelector says how an APP entry's protocol ID is interpreted (IEEE
// 802.1Q-2018 D.2.11).
type AppSelector uint8

// APP selectors (IEEE 802.1Q-2018 D.2.11).
const (
	// AppSelEtherType: the protocol ID is an EtherType.
	AppSelEtherType AppSelector = 1
	// AppSelTCPSCTP: the protocol ID is a well-known TCP or SCTP port.
	AppSelTCPSCTP AppSelector = 2
	// AppSelUDPDCCP: the protocol ID is a well-known UDP or DCCP port.
	AppSelUDPDCCP AppSelector = 3
	// AppSelTCPSCTPUDPDCCP: the protocol ID is a port of TCP, SCTP, UDP
	// or DCCP.
	AppSelTCPSCTPUDPDCCP AppSelector = 4
	// AppSelDSCP: the protocol ID is a DSCP value.
	AppSelDSCP AppSelector = 5
)

// AppPriority is one entry of the APP TLV's application priority table
// (IEEE 802.1Q-2018 D.2.11): 3 bytes on the wire, Priority(3) reserved(2)
// Sel(3) then a 16-bit protocol ID.
type AppPriority struct {
	// Priority is the 3-bit priority to use for the application.
	Priority uint8
	// Sel is the 3-bit selector.
	Sel AppSelector
	// Protocol is the protocol ID, interpreted according to Sel.
	Protocol uint16
}

// appEntryLen is the size of one APP entry.
const appEntryLen = 3

// MaxAPPEntries is the most application priority entries that fit in one
// APP TLV: (MaxOrgInfo - 1) / 3.
const MaxAPPEntries = (MaxOrgInfo - 1) / appEntryLen

// APP is the IEEE 802.1 Application Priority TLV, subtype 0x0C (IEEE
// 802.1Q-2018 D.2.11).
//
// The information string is 1 + 3n bytes: one reserved byte, then n
// AppPriority entries. Reserved bits are ignored on receipt and sent as
// zero. Any other length is ErrLength.
type APP struct {
	// Entries is the application priority table in wire order.
	Entries []AppPriority
}

var _ OrgTLV = (*APP)(nil)

func (t *APP) tlvName() string                             { return "APP" }
func (t *APP) orgID(OUI) (OUI, uint8)                      { return OUIIEEE8021, Subtype8021APP }
func (t *APP) appendTLV(b []byte, cid OUI) ([]byte, error) { return appendOrgTLV(b, t, cid) }

func (t *APP) appendInfo(b []byte) ([]byte, error) {
	off := len(b)
	if len(t.Entries) > MaxAPPEntries {
		return b, newError("APP", off, ErrOversize, "%d entries, at most %d fit", len(t.Entries), MaxAPPEntries)
	}
	for i, e := range t.Entries {
		at := off + 1 + i*appEntryLen
		if err := ieeeFits("APP", at, "priority", int(e.Priority), 3); err != nil {
			return b, err
		}
		if err := ieeeFits("APP", at, "selector", int(e.Sel), 3); err != nil {
			return b, err
		}
	}
	b = append(b, 0)
	for _, e := range t.Entries {
		b = append(b, e.Priority<<5|uint8(e.Sel))
		b = binary.BigEndian.AppendUint16(b, e.Protocol)
	}
	return b, nil
}

func (t *APP) decodeInfo(b []byte, off int) error {
	if len(b) < 1 || (len(b)-1)%appEntryLen != 0 {
		return newError("APP", off, ErrLength, "information string is %d bytes, want 1 + 3n", len(b))
	}
	var out APP
	if n := (len(b) - 1) / appEntryLen; n > 0 {
		out.Entries = make([]AppPriority, n)
		p := b[1:]
		for i := range out.Entries {
			out.Entries[i] = AppPriority{
				Priority: p[0] >> 5,
				Sel:      AppSelector(p[0] & 0x07),
				Protocol: binary.BigEndian.Uint16(p[1:3]),
			}
			p = p[appEntryLen:]
		}
	}
	*t = out
	return nil
}
