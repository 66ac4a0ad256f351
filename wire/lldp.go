package wire

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/mdlayher/lldp"
)

// EtherTypeLLDP is the EtherType of LLDP frames (IEEE 802.1AB-2016 7.2).
const EtherTypeLLDP = 0x88cc

// MaxLLDPDU is the largest LLDPDU, End TLV included, that this package
// encodes or accepts: an LLDPDU must fit in one frame, and an untagged
// Ethernet frame carries at most 1500 bytes of payload.
const MaxLLDPDU = 1500

// LLDP destination group addresses (IEEE 802.1AB-2016 7.1).
// Treat them as constants.
var (
	// NearestBridge is the nearest bridge group address, 01-80-C2-00-00-0E:
	// no kind of bridge forwards it. Plain, standard LLDP goes here.
	NearestBridge = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	// NearestNonTPMRBridge is the nearest non-TPMR bridge group address,
	// 01-80-C2-00-00-03: only two-port MAC relays forward it.
	NearestNonTPMRBridge = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03}
	// NearestCustomerBridge is the nearest customer bridge group address,
	// 01-80-C2-00-00-00: S-VLAN components and TPMRs forward it. EVB, CDCP
	// and tether's TLVs go here (802.1Q-2018 D.1, 802.1Qbg-2012).
	NearestCustomerBridge = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}
)

// Lengths of the mandatory TLVs (IEEE 802.1AB-2016 8.5.2 to 8.5.4).
const (
	// MaxIDLen is the longest chassis ID or port ID, subtype excluded.
	MaxIDLen = 255
	// ttlLen is the size of the Time To Live TLV's value.
	ttlLen = 2
	// maxStringTLV is the longest Port Description, System Name or System
	// Description (8.5.5 to 8.5.7).
	maxStringTLV = 255
	// sysCapLen is the size of the System Capabilities TLV's value (8.5.8).
	sysCapLen = 4
	// orgHeaderLen is the OUI and subtype that open an org TLV's value.
	orgHeaderLen = 4
)

// ChassisID is the value of the mandatory Chassis ID TLV (IEEE 802.1AB-2016
// 8.5.2).
type ChassisID struct {
	// Subtype says how to read ID (MAC address, interface name, ...).
	Subtype lldp.ChassisIDSubtype
	// ID is the chassis identifier, 1 to 255 bytes.
	ID []byte
}

// PortID is the value of the mandatory Port ID TLV (IEEE 802.1AB-2016
// 8.5.3).
type PortID struct {
	// Subtype says how to read ID (MAC address, interface name, ...).
	Subtype lldp.PortIDSubtype
	// ID is the port identifier, 1 to 255 bytes.
	ID []byte
}

// LLDPDU is one LLDP data unit (IEEE 802.1AB-2016 8.2): the three mandatory
// TLVs, the optional TLVs in wire order, and an End Of LLDPDU TLV.
//
// The decoder aliases its input: ID, Address, OID, Value and Info byte
// slices in a decoded LLDPDU point into the buffer handed to
// UnmarshalBinary, so the caller must not modify that buffer while the
// LLDPDU is in use (copy it first if it is a reused receive buffer).
// Strings (the Port Description, System Name and System Description TLVs)
// are copies.
//
// Decoding then encoding gives the original bytes up to and including End,
// except that reserved bits of the typed IEEE 802.1 TLVs are sent as zero
// and an End TLV is always added.
type LLDPDU struct {
	// ChassisID is the mandatory Chassis ID TLV.
	ChassisID ChassisID
	// PortID is the mandatory Port ID TLV.
	PortID PortID
	// TTL is the mandatory Time To Live in seconds (8.5.4); 0 asks the
	// receiver to delete the sender's information (a shutdown LLDPDU).
	TTL uint16
	// TLVs holds every optional TLV in wire order: PortDescription,
	// SystemName, SystemDescription, *SystemCapabilities,
	// *ManagementAddress, typed org TLVs (*EVB, *CDCP, *ETSConfiguration,
	// ...), *RawOrgTLV for organizationally specific TLVs this package does
	// not know, and *RawTLV for the reserved types 9 to 126.
	TLVs []TLV
	// TetherCID is the Company ID under which tether's own org TLVs are
	// encoded and recognised; the zero value means DefaultCID. It is an
	// input to both MarshalBinary and UnmarshalBinary, and UnmarshalBinary
	// leaves it unchanged.
	TetherCID OUI
}

// MarshalBinary encodes the LLDPDU, End TLV included, into a new buffer.
func (du *LLDPDU) MarshalBinary() ([]byte, error) {
	return du.AppendBinary(make([]byte, 0, du.sizeHint()))
}

// sizeHint estimates the encoded size for MarshalBinary's allocation.
func (du *LLDPDU) sizeHint() int {
	n := 2*tlvHeaderLen + 2 + len(du.ChassisID.ID) + len(du.PortID.ID) + tlvHeaderLen + ttlLen + tlvHeaderLen
	n += 16 * len(du.TLVs)
	if n > MaxLLDPDU {
		n = MaxLLDPDU
	}
	return n
}

// AppendBinary appends the encoded LLDPDU, End TLV included, to b. It does
// not allocate when b has enough spare capacity. An LLDPDU longer than
// MaxLLDPDU is ErrOversize. On error b is returned unchanged.
//
// Error offsets are relative to the start of b, not to the LLDPDU.
func (du *LLDPDU) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	b, err := appendIDTLV(b, uint8(lldp.TLVTypeChassisID), uint8(du.ChassisID.Subtype), du.ChassisID.ID, "LLDP Chassis ID")
	if err != nil {
		return b[:start], err
	}
	b, err = appendIDTLV(b, uint8(lldp.TLVTypePortID), uint8(du.PortID.Subtype), du.PortID.ID, "LLDP Port ID")
	if err != nil {
		return b[:start], err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(lldp.TLVTypeTTL)<<9|ttlLen)
	b = binary.BigEndian.AppendUint16(b, du.TTL)
	for i, t := range du.TLVs {
		at := len(b)
		if err := checkLLDPOptional(t, i, at, du.TetherCID); err != nil {
			return b[:start], err
		}
		b, err = t.appendTLV(b, du.TetherCID)
		if err != nil {
			return b[:start], err
		}
		if n := len(b) - start + tlvHeaderLen; n > MaxLLDPDU {
			return b[:start], newError("LLDPDU", at, ErrOversize, "%s at TLVs[%d] makes the LLDPDU at least %d bytes, at most %d allowed", t.tlvName(), i, n, MaxLLDPDU)
		}
	}
	return append(b, 0, 0), nil // End Of LLDPDU (8.5.1)
}

// appendIDTLV appends a Chassis ID or Port ID TLV.
func appendIDTLV(b []byte, typ, sub uint8, id []byte, name string) ([]byte, error) {
	if len(id) == 0 {
		return b, newError(name, len(b), ErrLength, "ID is empty, want 1..%d bytes", MaxIDLen)
	}
	if len(id) > MaxIDLen {
		return b, newError(name, len(b), ErrOversize, "ID is %d bytes, at most %d allowed", len(id), MaxIDLen)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(1+len(id)))
	b = append(b, sub)
	return append(b, id...), nil
}

// checkLLDPOptional rejects, before encoding, an optional TLV that would
// make an LLDPDU its own decoder refuses or reads back differently: a nil
// TLV, a RawTLV of a type this package decodes (0-8, 127), or a RawOrgTLV
// of a known OUI and subtype whose information string does not decode.
func checkLLDPOptional(t TLV, i, at int, cid OUI) error {
	switch t := t.(type) {
	case nil:
		return newError("LLDPDU", at, ErrInvalid, "TLVs[%d] is nil", i)
	case *RawTLV:
		if t.Type <= uint8(lldp.TLVTypeManagementAddress) || t.Type == uint8(lldp.TLVTypeOrganizationSpecific) {
			return newError(t.tlvName(), at, ErrInvalid, "TLVs[%d]: type %d has its own Go type (or is mandatory), not RawTLV", i, t.Type)
		}
	case *RawOrgTLV:
		var typed OrgTLV
		switch t.OUI {
		case OUIIEEE8021:
			typed = newIEEE8021TLV(t.Subtype)
		case cidOr(cid):
			typed = newTetherTLV(t.Subtype)
		}
		if typed != nil {
			if err := typed.decodeInfo(t.Info, at+tlvHeaderLen+orgHeaderLen); err != nil {
				return err
			}
		}
	}
	return nil
}

// lldpTLVName names an LLDP TLV type for errors.
func lldpTLVName(typ uint8) string {
	switch lldp.TLVType(typ) {
	case lldp.TLVTypeEnd:
		return "LLDP End"
	case lldp.TLVTypeChassisID:
		return "LLDP Chassis ID"
	case lldp.TLVTypePortID:
		return "LLDP Port ID"
	case lldp.TLVTypeTTL:
		return "LLDP TTL"
	case lldp.TLVTypePortDescription:
		return "LLDP Port Description"
	case lldp.TLVTypeSystemName:
		return "LLDP System Name"
	case lldp.TLVTypeSystemDescription:
		return "LLDP System Description"
	case lldp.TLVTypeSystemCapabilities:
		return "LLDP System Capabilities"
	case lldp.TLVTypeManagementAddress:
		return "LLDP Management Address"
	case lldp.TLVTypeOrganizationSpecific:
		return "LLDP org TLV"
	}
	return "LLDP TLV type " + itoa(int(typ))
}

// lldpReadTLV reads the TLV header at b[off:] and returns its type, its
// value (a sub-slice of b) and the offset of the next TLV.
func lldpReadTLV(b []byte, off int) (typ uint8, v []byte, next int, err error) {
	if len(b)-off < tlvHeaderLen {
		return 0, nil, 0, newError("LLDPDU", off, ErrTruncated, "TLV header needs 2 bytes, %d left", len(b)-off)
	}
	typ, n := parseTLVHeader(b[off:])
	if have := len(b) - off - tlvHeaderLen; n > have {
		return 0, nil, 0, newError(lldpTLVName(typ), off, ErrTruncated, "length %d runs past the end, %d bytes left", n, have)
	}
	v = b[off+tlvHeaderLen : off+tlvHeaderLen+n]
	return typ, v, off + tlvHeaderLen + n, nil
}

// UnmarshalBinary decodes an LLDPDU from b, which starts at the Chassis ID
// TLV (the Ethernet payload). The decoded LLDPDU aliases b (see LLDPDU).
//
// The three mandatory TLVs must come first and in order (ErrMissing
// otherwise), with IDs of 1 to 255 bytes and a 2-byte TTL (ErrLength); a
// second Chassis ID, Port ID or TTL TLV later is ErrInvalid. Optional TLVs
// follow until the End TLV; whatever comes after End is Ethernet padding and
// is ignored, zero or not. An LLDPDU that ends exactly at the end of b
// without an End TLV is accepted: IEEE 802.1AB-2016 8.4 made End optional
// (it was mandatory in 802.1AB-2009), so conformant 2016 senders may omit
// it. An LLDPDU longer than MaxLLDPDU is ErrOversize. Typed TLVs with a
// malformed value fail the whole LLDPDU with that TLV's error.
//
// Error offsets are relative to the start of b. On error du is unchanged.
func (du *LLDPDU) UnmarshalBinary(b []byte) error {
	cid := du.TetherCID
	out := LLDPDU{TetherCID: cid}

	// Mandatory TLVs, in order (8.2).
	off := 0
	for _, m := range [...]lldp.TLVType{lldp.TLVTypeChassisID, lldp.TLVTypePortID, lldp.TLVTypeTTL} {
		name := lldpTLVName(uint8(m))
		if len(b)-off < tlvHeaderLen {
			return newError(name, off, ErrTruncated, "TLV header needs 2 bytes, %d left", len(b)-off)
		}
		typ, v, next, err := lldpReadTLV(b, off)
		if err != nil {
			return err
		}
		if lldp.TLVType(typ) != m {
			return newError(name, off, ErrMissing, "found %s", lldpTLVName(typ))
		}
		switch m {
		case lldp.TLVTypeChassisID, lldp.TLVTypePortID:
			if len(v) < 2 || len(v) > 1+MaxIDLen {
				return newError(name, off, ErrLength, "value is %d bytes, want 2..256 (subtype and a 1..255-byte ID)", len(v))
			}
			if m == lldp.TLVTypeChassisID {
				out.ChassisID = ChassisID{Subtype: lldp.ChassisIDSubtype(v[0]), ID: v[1:]}
			} else {
				out.PortID = PortID{Subtype: lldp.PortIDSubtype(v[0]), ID: v[1:]}
			}
		case lldp.TLVTypeTTL:
			if len(v) != ttlLen {
				return newError(name, off, ErrLength, "value is %d bytes, want 2", len(v))
			}
			out.TTL = binary.BigEndian.Uint16(v)
		}
		off = next
	}

	if n := countLLDPOptional(b, off); n > 0 {
		out.TLVs = make([]TLV, 0, n)
	}
	for off < len(b) {
		typ, v, next, err := lldpReadTLV(b, off)
		if err != nil {
			return err
		}
		if lldp.TLVType(typ) == lldp.TLVTypeEnd {
			if len(v) != 0 {
				return newError("LLDP End", off, ErrLength, "value is %d bytes, want 0", len(v))
			}
			break
		}
		// Leave room for the End TLV the encoder will add.
		if next > MaxLLDPDU-tlvHeaderLen {
			return newError("LLDPDU", off, ErrOversize, "%s ends at byte %d, so the LLDPDU exceeds %d bytes", lldpTLVName(typ), next, MaxLLDPDU)
		}
		t, err := decodeLLDPOptional(typ, v, off, cid)
		if err != nil {
			return err
		}
		out.TLVs = append(out.TLVs, t)
		off = next
	}
	*du = out
	return nil
}

// countLLDPOptional counts the well-framed optional TLVs from off to End,
// to size the TLVs slice; the decode loop reports any framing error.
func countLLDPOptional(b []byte, off int) int {
	n := 0
	for len(b)-off >= tlvHeaderLen {
		typ, l := parseTLVHeader(b[off:])
		if typ == 0 || l > len(b)-off-tlvHeaderLen {
			break
		}
		n++
		off += tlvHeaderLen + l
	}
	return n
}

// decodeLLDPOptional decodes one optional TLV of type typ and value v; off
// is the TLV's offset in the top-level buffer.
func decodeLLDPOptional(typ uint8, v []byte, off int, cid OUI) (TLV, error) {
	switch lldp.TLVType(typ) {
	case lldp.TLVTypeChassisID, lldp.TLVTypePortID, lldp.TLVTypeTTL:
		return nil, newError(lldpTLVName(typ), off, ErrInvalid, "a second %s TLV after the mandatory ones", lldpTLVName(typ))
	case lldp.TLVTypePortDescription, lldp.TLVTypeSystemName, lldp.TLVTypeSystemDescription:
		if len(v) > maxStringTLV {
			return nil, newError(lldpTLVName(typ), off, ErrLength, "value is %d bytes, at most %d allowed", len(v), maxStringTLV)
		}
		switch lldp.TLVType(typ) {
		case lldp.TLVTypePortDescription:
			return PortDescription(v), nil
		case lldp.TLVTypeSystemName:
			return SystemName(v), nil
		default:
			return SystemDescription(v), nil
		}
	case lldp.TLVTypeSystemCapabilities:
		if len(v) != sysCapLen {
			return nil, newError(lldpTLVName(typ), off, ErrLength, "value is %d bytes, want 4", len(v))
		}
		return &SystemCapabilities{System: binary.BigEndian.Uint16(v), Enabled: binary.BigEndian.Uint16(v[2:])}, nil
	case lldp.TLVTypeManagementAddress:
		m := new(ManagementAddress)
		if err := m.decode(v, off); err != nil {
			return nil, err
		}
		return m, nil
	case lldp.TLVTypeOrganizationSpecific:
		if len(v) < orgHeaderLen {
			return nil, newError(lldpTLVName(typ), off, ErrLength, "value is %d bytes, need at least 4 (OUI and subtype)", len(v))
		}
		return decodeOrgTLV(OUI{v[0], v[1], v[2]}, v[3], v[orgHeaderLen:], off+tlvHeaderLen+orgHeaderLen, cid)
	}
	return &RawTLV{Type: typ, Value: v}, nil
}

// PortDescription is the Port Description TLV, type 4 (IEEE 802.1AB-2016
// 8.5.5): the sender's description of its port (ifDescr), 0 to 255 bytes.
type PortDescription string

// SystemName is the System Name TLV, type 5 (IEEE 802.1AB-2016 8.5.6): the
// sender's administratively assigned name (sysName), 0 to 255 bytes.
type SystemName string

// SystemDescription is the System Description TLV, type 6 (IEEE
// 802.1AB-2016 8.5.7): a description of the sender (sysDescr), 0 to 255
// bytes.
type SystemDescription string

var (
	_ TLV = PortDescription("")
	_ TLV = SystemName("")
	_ TLV = SystemDescription("")
)

func (t PortDescription) tlvName() string   { return "LLDP Port Description" }
func (t SystemName) tlvName() string        { return "LLDP System Name" }
func (t SystemDescription) tlvName() string { return "LLDP System Description" }

func (t PortDescription) appendTLV(b []byte, _ OUI) ([]byte, error) {
	return appendStringTLV(b, uint8(lldp.TLVTypePortDescription), string(t), t.tlvName())
}
func (t SystemName) appendTLV(b []byte, _ OUI) ([]byte, error) {
	return appendStringTLV(b, uint8(lldp.TLVTypeSystemName), string(t), t.tlvName())
}
func (t SystemDescription) appendTLV(b []byte, _ OUI) ([]byte, error) {
	return appendStringTLV(b, uint8(lldp.TLVTypeSystemDescription), string(t), t.tlvName())
}

// appendStringTLV appends one of the three 0..255-byte string TLVs.
func appendStringTLV(b []byte, typ uint8, s, name string) ([]byte, error) {
	if len(s) > maxStringTLV {
		return b, newError(name, len(b), ErrOversize, "value is %d bytes, at most %d allowed", len(s), maxStringTLV)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(s)))
	return append(b, s...), nil
}

// System capability bits of the System Capabilities TLV (IEEE 802.1AB-2016
// 8.5.8).
const (
	SysCapOther       uint16 = 1 << 0  // Other
	SysCapRepeater    uint16 = 1 << 1  // Repeater
	SysCapBridge      uint16 = 1 << 2  // MAC Bridge component
	SysCapWLANAP      uint16 = 1 << 3  // 802.11 access point
	SysCapRouter      uint16 = 1 << 4  // Router
	SysCapTelephone   uint16 = 1 << 5  // Telephone
	SysCapDOCSIS      uint16 = 1 << 6  // DOCSIS cable device
	SysCapStationOnly uint16 = 1 << 7  // Station only
	SysCapCVLAN       uint16 = 1 << 8  // C-VLAN component
	SysCapSVLAN       uint16 = 1 << 9  // S-VLAN component
	SysCapTPMR        uint16 = 1 << 10 // Two-port MAC relay
)

// SystemCapabilities is the System Capabilities TLV, type 7 (IEEE
// 802.1AB-2016 8.5.8): two bitmaps of SysCap* bits.
type SystemCapabilities struct {
	// System lists the functions the system supports.
	System uint16
	// Enabled lists the functions currently enabled.
	Enabled uint16
}

var _ TLV = (*SystemCapabilities)(nil)

func (t *SystemCapabilities) tlvName() string { return "LLDP System Capabilities" }

func (t *SystemCapabilities) appendTLV(b []byte, _ OUI) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(lldp.TLVTypeSystemCapabilities)<<9|sysCapLen)
	b = binary.BigEndian.AppendUint16(b, t.System)
	return binary.BigEndian.AppendUint16(b, t.Enabled), nil
}

// Management address subtypes: IANA address family numbers (IEEE
// 802.1AB-2016 8.5.9).
const (
	// AddrFamilyIPv4 is an IPv4 address (4 bytes).
	AddrFamilyIPv4 uint8 = 1
	// AddrFamilyIPv6 is an IPv6 address (16 bytes).
	AddrFamilyIPv6 uint8 = 2
	// AddrFamily802 is an IEEE 802 MAC address (6 bytes).
	AddrFamily802 uint8 = 6
)

// Interface numbering subtypes of the Management Address TLV (IEEE
// 802.1AB-2016 8.5.9).
const (
	// IfSubtypeUnknown means the interface number is not known.
	IfSubtypeUnknown uint8 = 1
	// IfSubtypeIfIndex means the interface number is an ifIndex.
	IfSubtypeIfIndex uint8 = 2
	// IfSubtypeSystemPort means the interface number is a system port
	// number.
	IfSubtypeSystemPort uint8 = 3
)

// Management Address TLV field limits (IEEE 802.1AB-2016 8.5.9).
const (
	// MaxMgmtAddrLen is the longest management address, subtype excluded.
	MaxMgmtAddrLen = 31
	// MaxMgmtOIDLen is the longest object identifier.
	MaxMgmtOIDLen = 128
	// mgmtMinLen is the smallest value: string length, subtype, a 1-byte
	// address, interface subtype, interface number and OID length.
	mgmtMinLen = 1 + 1 + 1 + 1 + 4 + 1
)

// ManagementAddress is the Management Address TLV, type 8 (IEEE
// 802.1AB-2016 8.5.9): an address at which the sender can be managed, the
// interface it belongs to, and an optional OID.
//
// The value is: address string length (1 byte, counting subtype and
// address: 2..32), address subtype (1), address (1..31), interface
// numbering subtype (1), interface number (4), OID string length (1),
// OID (0..128).
type ManagementAddress struct {
	// Subtype is the address's IANA address family (AddrFamilyIPv4, ...).
	Subtype uint8
	// Address is the address, 1 to 31 bytes.
	Address []byte
	// IfSubtype says how to read IfNumber (IfSubtypeIfIndex, ...).
	IfSubtype uint8
	// IfNumber is the interface number.
	IfNumber uint32
	// OID is the BER-encoded object identifier of the hardware component
	// or protocol entity, 0 to 128 bytes.
	OID []byte
}

var _ TLV = (*ManagementAddress)(nil)

// NewManagementAddress returns a Management Address TLV for an IPv4 or IPv6
// address on the interface with the given ifIndex.
func NewManagementAddress(ip netip.Addr, ifIndex uint32) *ManagementAddress {
	m := &ManagementAddress{IfSubtype: IfSubtypeIfIndex, IfNumber: ifIndex}
	if ip.Is4() {
		a := ip.As4()
		m.Subtype, m.Address = AddrFamilyIPv4, a[:]
	} else {
		a := ip.As16()
		m.Subtype, m.Address = AddrFamilyIPv6, a[:]
	}
	return m
}

// IP returns the address as a netip.Addr when Subtype is IPv4 or IPv6 and
// Address has the matching length.
func (t *ManagementAddress) IP() (netip.Addr, bool) {
	switch {
	case t.Subtype == AddrFamilyIPv4 && len(t.Address) == 4:
		return netip.AddrFrom4([4]byte(t.Address)), true
	case t.Subtype == AddrFamilyIPv6 && len(t.Address) == 16:
		return netip.AddrFrom16([16]byte(t.Address)), true
	}
	return netip.Addr{}, false
}

func (t *ManagementAddress) tlvName() string { return "LLDP Management Address" }

func (t *ManagementAddress) appendTLV(b []byte, _ OUI) ([]byte, error) {
	switch {
	case len(t.Address) == 0:
		return b, newError(t.tlvName(), len(b), ErrLength, "address is empty, want 1..%d bytes", MaxMgmtAddrLen)
	case len(t.Address) > MaxMgmtAddrLen:
		return b, newError(t.tlvName(), len(b), ErrOversize, "address is %d bytes, at most %d allowed", len(t.Address), MaxMgmtAddrLen)
	case len(t.OID) > MaxMgmtOIDLen:
		return b, newError(t.tlvName(), len(b), ErrOversize, "OID is %d bytes, at most %d allowed", len(t.OID), MaxMgmtOIDLen)
	}
	n := mgmtMinLen - 1 + len(t.Address) + len(t.OID)
	b = binary.BigEndian.AppendUint16(b, uint16(lldp.TLVTypeManagementAddress)<<9|uint16(n))
	b = append(b, uint8(1+len(t.Address)), t.Subtype)
	b = append(b, t.Address...)
	b = append(b, t.IfSubtype)
	b = binary.BigEndian.AppendUint32(b, t.IfNumber)
	b = append(b, uint8(len(t.OID)))
	return append(b, t.OID...), nil
}

// decode parses the TLV value v; off is the TLV's offset for errors.
func (t *ManagementAddress) decode(v []byte, off int) error {
	name := t.tlvName()
	if len(v) < mgmtMinLen {
		return newError(name, off, ErrLength, "value is %d bytes, need at least %d", len(v), mgmtMinLen)
	}
	strLen := int(v[0])
	if strLen < 2 || strLen > 1+MaxMgmtAddrLen {
		return newError(name, off, ErrLength, "address string length %d, want 2..%d", strLen, 1+MaxMgmtAddrLen)
	}
	p := 1 + strLen // interface subtype
	if p+6 > len(v) {
		return newError(name, off, ErrLength, "address string length %d leaves no room for interface and OID in a %d-byte value", strLen, len(v))
	}
	oidLen := int(v[p+5])
	if oidLen > MaxMgmtOIDLen {
		return newError(name, off, ErrLength, "OID length %d, at most %d allowed", oidLen, MaxMgmtOIDLen)
	}
	if p+6+oidLen != len(v) {
		return newError(name, off, ErrLength, "OID length %d disagrees with the %d-byte value", oidLen, len(v))
	}
	*t = ManagementAddress{
		Subtype:   v[1],
		Address:   v[2:p],
		IfSubtype: v[p],
		IfNumber:  binary.BigEndian.Uint32(v[p+1:]),
	}
	if oidLen > 0 {
		t.OID = v[p+6:]
	}
	return nil
}

// ToMdlayher converts the LLDPDU into a github.com/mdlayher/lldp Frame, for
// code that works with that package. It encodes du (so all of
// MarshalBinary's checks apply) and splits the encoding into the Frame's
// fields; the Frame owns a fresh buffer and does not alias du. Optional
// holds every optional TLV in wire order, End excluded, each with its
// encoded value.
//
// To decode received bytes with mdlayher directly, hand it the LLDPDU cut
// just after End: its Frame.UnmarshalBinary keeps reading past End, so an
// Ethernet-padded frame fails or gains stray End TLVs.
func (du *LLDPDU) ToMdlayher() (*lldp.Frame, error) {
	b, err := du.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &lldp.Frame{
		TTL:      time.Duration(du.TTL) * time.Second,
		Optional: make([]*lldp.TLV, 0, len(du.TLVs)),
	}
	for off := 0; off < len(b); {
		typ, v, next, err := lldpReadTLV(b, off)
		if err != nil {
			return nil, err // cannot happen: b is our own encoding
		}
		switch lldp.TLVType(typ) {
		case lldp.TLVTypeEnd:
			return f, nil
		case lldp.TLVTypeChassisID:
			f.ChassisID = &lldp.ChassisID{Subtype: lldp.ChassisIDSubtype(v[0]), ID: v[1:]}
		case lldp.TLVTypePortID:
			f.PortID = &lldp.PortID{Subtype: lldp.PortIDSubtype(v[0]), ID: v[1:]}
		case lldp.TLVTypeTTL:
		default:
			f.Optional = append(f.Optional, &lldp.TLV{Type: lldp.TLVType(typ), Length: uint16(len(v)), Value: v})
		}
		off = next
	}
	return f, nil
}
