package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// VDP TLV types that are not VSI modes (IEEE 802.1Qbg-2012 clause 41.2).
const (
	// vdpTLVEnd ends the TLV list; lldpad stops at the first TLV header of
	// type 0 and ignores what follows (zero padding of a short frame).
	vdpTLVEnd = 0
	// vdpTLVManagerID is the VSI Manager ID TLV.
	vdpTLVManagerID = 5
	// vdpTLVOrg is the organizationally defined TLV.
	vdpTLVOrg = 127
)

// vsiFixedLen is the size of a VSI TLV value before the filter entries:
// status (1), VSI type ID (3), VSI type version (1), VSIID format (1),
// VSIID (16), filter info format (1) and number of entries (2).
const vsiFixedLen = 25

// managerIDLen is the size of the VSI Manager ID TLV value.
const managerIDLen = 16

// VSIMode is the TLV type of a VSI TLV, which is the request (or the
// request being answered) of IEEE 802.1Qbg-2012 clause 41.2.
type VSIMode uint8

// VSI modes (IEEE 802.1Qbg-2012 clause 41.2).
const (
	// VSIPreAssociate announces a VSI before its association (for
	// example at the destination of a migration) so the bridge can fetch
	// and check its VSI type; nothing is reserved and no traffic passes.
	VSIPreAssociate VSIMode = 1
	// VSIPreAssociateRR is PRE-ASSOCIATE with resource reservation: the
	// bridge also reserves what the VSI type needs.
	VSIPreAssociateRR VSIMode = 2
	// VSIAssociate associates a VSI with the bridge port and enables it.
	VSIAssociate VSIMode = 3
	// VSIDeAssociate removes the association; the bridge may send it
	// unsolicited to tear an association down.
	VSIDeAssociate VSIMode = 4
)

// String returns "PRE-ASSOCIATE", "PRE-ASSOCIATE-RR", "ASSOCIATE",
// "DE-ASSOCIATE" or "mode N".
func (m VSIMode) String() string {
	switch m {
	case VSIPreAssociate:
		return "PRE-ASSOCIATE"
	case VSIPreAssociateRR:
		return "PRE-ASSOCIATE-RR"
	case VSIAssociate:
		return "ASSOCIATE"
	case VSIDeAssociate:
		return "DE-ASSOCIATE"
	}
	return "mode " + itoa(int(m))
}

func (m VSIMode) valid() bool { return m >= VSIPreAssociate && m <= VSIDeAssociate }

// VSIStatus is the status octet that opens a VSI TLV
// (IEEE 802.1Qbg-2012 clause 41.2). Bit 0x40 (Req/Rsp) tells a response
// from a request, and the meaning of bits 0x10 and 0x20 depends on it; the
// low four bits hold a response's error code (lldpad sends them as zero in
// requests); bit 0x80 is reserved. The bit positions are those of lldpad
// (qbg/vdp22sm.c, include/qbg_vdp22def.h) and Wireshark's vdp21 dissector.
// Decoding keeps the octet as received, reserved bits included.
type VSIStatus uint8

// VSI status bits (IEEE 802.1Qbg-2012 clause 41.2).
const (
	// VSIStatusResponse is the Req/Rsp bit: set in a response.
	VSIStatusResponse VSIStatus = 0x40
	// VSIStatusM is the M-bit of a request: the station hints that the
	// VSI is migrating to it ("migrate-to", lldpad VDP22_MIGTO).
	VSIStatusM VSIStatus = 0x10
	// VSIStatusS is the S-bit of a request: the station hints that the
	// VSI is suspended here, migrating away ("migrate-from", lldpad
	// VDP22_MIGFROM).
	VSIStatusS VSIStatus = 0x20
	// VSIStatusHard is the hard-error bit of a response: the error is
	// not transient, do not retry.
	VSIStatusHard VSIStatus = 0x10
	// VSIStatusKeep is the KEEP bit of a response: the request failed but
	// the bridge keeps the VSI's previous state.
	VSIStatusKeep VSIStatus = 0x20
	// vsiStatusCodeMask selects the 4-bit error code.
	vsiStatusCodeMask VSIStatus = 0x0f
)

// RequestStatus builds the status of a request with the given M and S hints.
func RequestStatus(m, s bool) VSIStatus {
	var st VSIStatus
	if m {
		st |= VSIStatusM
	}
	if s {
		st |= VSIStatusS
	}
	return st
}

// ResponseStatus builds the status of a response: the Req/Rsp bit, the
// error code (only its low four bits are kept) and the KEEP and hard-error
// bits.
func ResponseStatus(code VDPResponseCode, keep, hard bool) VSIStatus {
	st := VSIStatusResponse | VSIStatus(code)&vsiStatusCodeMask
	if keep {
		st |= VSIStatusKeep
	}
	if hard {
		st |= VSIStatusHard
	}
	return st
}

// IsResponse reports whether the Req/Rsp bit is set.
func (s VSIStatus) IsResponse() bool { return s&VSIStatusResponse != 0 }

// M reports the M-bit (migrate-to hint); meaningful in a request only.
func (s VSIStatus) M() bool { return !s.IsResponse() && s&VSIStatusM != 0 }

// S reports the S-bit (suspended, migrate-from hint); meaningful in a
// request only.
func (s VSIStatus) S() bool { return !s.IsResponse() && s&VSIStatusS != 0 }

// Keep reports the KEEP bit; meaningful in a response only.
func (s VSIStatus) Keep() bool { return s.IsResponse() && s&VSIStatusKeep != 0 }

// Hard reports the hard-error bit; meaningful in a response only.
func (s VSIStatus) Hard() bool { return s.IsResponse() && s&VSIStatusHard != 0 }

// Code returns the 4-bit error code (reason); zero means success.
func (s VSIStatus) Code() VDPResponseCode { return VDPResponseCode(s & vsiStatusCodeMask) }

// VDPResponseCode is the 4-bit error code of a VSI TLV response
// (IEEE 802.1Qbg-2012 clause 41.2; lldpad enum vdp22_cmdresp).
type VDPResponseCode uint8

// VDP response error codes (IEEE 802.1Qbg-2012 clause 41.2).
const (
	// VDPSuccess means the request was granted.
	VDPSuccess VDPResponseCode = 0
	// VDPInvalidFormat means the request was malformed.
	VDPInvalidFormat VDPResponseCode = 1
	// VDPInsufficientResources means the bridge lacks resources.
	VDPInsufficientResources VDPResponseCode = 2
	// VDPUnableToContactManager means the bridge could not reach the VSI
	// manager.
	VDPUnableToContactManager VDPResponseCode = 3
	// VDPOtherFailure is any other failure.
	VDPOtherFailure VDPResponseCode = 4
	// VDPInvalidAddress means an invalid VID, GroupID or MAC address.
	VDPInvalidAddress VDPResponseCode = 5
)

// String names the code as the standard does, or "error N" when reserved.
func (c VDPResponseCode) String() string {
	switch c {
	case VDPSuccess:
		return "success"
	case VDPInvalidFormat:
		return "invalid format"
	case VDPInsufficientResources:
		return "insufficient resources"
	case VDPUnableToContactManager:
		return "unable to contact VSI manager"
	case VDPOtherFailure:
		return "other failure"
	case VDPInvalidAddress:
		return "invalid VID, GroupID or MAC address"
	}
	return "error " + itoa(int(c))
}

// VSIIDFormat says how the 16-octet VSIID is to be read
// (IEEE 802.1Qbg-2012 clause 41.2).
type VSIIDFormat uint8

// VSIID formats (IEEE 802.1Qbg-2012 clause 41.2). Others are reserved;
// decoders report them as ErrUnknownSubtype.
const (
	// VSIIDIPv4 is an IPv4 address, IPv4-mapped into 16 octets.
	VSIIDIPv4 VSIIDFormat = 1
	// VSIIDIPv6 is an IPv6 address.
	VSIIDIPv6 VSIIDFormat = 2
	// VSIIDMAC is a MAC address in the last six octets.
	VSIIDMAC VSIIDFormat = 3
	// VSIIDLocal is locally defined.
	VSIIDLocal VSIIDFormat = 4
	// VSIIDUUID is an RFC 4122 UUID (what lldpad and libvirt send).
	VSIIDUUID VSIIDFormat = 5
)

// String returns "IPv4", "IPv6", "MAC", "local", "UUID" or "format N".
func (f VSIIDFormat) String() string {
	switch f {
	case VSIIDIPv4:
		return "IPv4"
	case VSIIDIPv6:
		return "IPv6"
	case VSIIDMAC:
		return "MAC"
	case VSIIDLocal:
		return "local"
	case VSIIDUUID:
		return "UUID"
	}
	return "format " + itoa(int(f))
}

func (f VSIIDFormat) valid() bool { return f >= VSIIDIPv4 && f <= VSIIDUUID }

// FilterFormat is the filter information format of a VSI TLV: which fields
// each filter entry carries (IEEE 802.1Qbg-2012 clause 41.2).
type FilterFormat uint8

// Filter information formats (IEEE 802.1Qbg-2012 clause 41.2). Others are
// reserved; decoders report them as ErrUnknownSubtype.
const (
	// FilterVID entries carry PS, PCP and VID (2 octets).
	FilterVID FilterFormat = 1
	// FilterMACVID entries carry a MAC address, then PS, PCP and VID
	// (8 octets).
	FilterMACVID FilterFormat = 2
	// FilterGroupVID entries carry a GroupID, then PS, PCP and VID
	// (6 octets).
	FilterGroupVID FilterFormat = 3
	// FilterGroupMACVID entries carry a GroupID, a MAC address, then PS,
	// PCP and VID (12 octets).
	FilterGroupMACVID FilterFormat = 4
)

// String returns "VID", "MAC/VID", "GroupID/VID", "GroupID/MAC/VID" or
// "format N".
func (f FilterFormat) String() string {
	switch f {
	case FilterVID:
		return "VID"
	case FilterMACVID:
		return "MAC/VID"
	case FilterGroupVID:
		return "GroupID/VID"
	case FilterGroupMACVID:
		return "GroupID/MAC/VID"
	}
	return "format " + itoa(int(f))
}

// EntrySize returns the size of one filter entry in this format, or 0 for
// an unknown format.
func (f FilterFormat) EntrySize() int {
	switch f {
	case FilterVID:
		return 2
	case FilterMACVID:
		return 8
	case FilterGroupVID:
		return 6
	case FilterGroupMACVID:
		return 12
	}
	return 0
}

func (f FilterFormat) hasMAC() bool   { return f == FilterMACVID || f == FilterGroupMACVID }
func (f FilterFormat) hasGroup() bool { return f == FilterGroupVID || f == FilterGroupMACVID }

// Filter is one filter information entry of a VSI TLV
// (IEEE 802.1Qbg-2012 clause 41.2). Fields the TLV's FilterFormat does not
// carry are ignored when encoding and zero after decoding.
type Filter struct {
	// PS is the PCP-significant bit: PCP applies only when set.
	PS bool
	// PCP is the 3-bit priority code point.
	PCP uint8
	// VID is the 12-bit VLAN ID. 0 in a request asks the bridge to choose
	// (the "null VID"); 4095 is reserved and refused.
	VID uint16
	// MAC is the VSI's MAC address (MAC/VID and GroupID/MAC/VID formats).
	MAC [6]byte
	// GroupID is the 32-bit group identifier (GroupID formats).
	GroupID uint32
}

// maxVID is the largest usable VLAN ID; 0xFFF is reserved
// (IEEE 802.1Q-2018 Table 9-2).
const maxVID = 4094

// VSI is one VSI TLV: PRE-ASSOCIATE (type 1), PRE-ASSOCIATE with resource
// reservation (2), ASSOCIATE (3) or DE-ASSOCIATE (4) of
// IEEE 802.1Qbg-2012 clause 41.2, request or response alike.
type VSI struct {
	// Mode is the TLV type.
	Mode VSIMode
	// Status holds the Req/Rsp bit, the request hints (M, S) or response
	// flags (KEEP, hard error) and the error code, exactly as on the wire.
	Status VSIStatus
	// VSITypeID is the 24-bit VSI type identifier.
	VSITypeID uint32
	// VSITypeVersion is the VSI type version.
	VSITypeVersion uint8
	// VSIIDFormat says how to read VSIID.
	VSIIDFormat VSIIDFormat
	// VSIID identifies the VSI instance.
	VSIID [16]byte
	// FilterFormat is the format of every entry in Filters.
	FilterFormat FilterFormat
	// Filters are the filter information entries, in wire order.
	Filters []Filter
}

var _ TLV = (*VSI)(nil)

// IsResponse reports whether v is a response (the Req/Rsp status bit).
func (v *VSI) IsResponse() bool { return v.Status.IsResponse() }

// Code returns the response's error code (VDPSuccess in a request).
func (v *VSI) Code() VDPResponseCode { return v.Status.Code() }

func (v *VSI) tlvName() string {
	switch v.Mode {
	case VSIPreAssociate:
		return "VDP PRE-ASSOCIATE"
	case VSIPreAssociateRR:
		return "VDP PRE-ASSOCIATE-RR"
	case VSIAssociate:
		return "VDP ASSOCIATE"
	case VSIDeAssociate:
		return "VDP DE-ASSOCIATE"
	}
	return "VDP " + v.Mode.String()
}

func (v *VSI) appendTLV(b []byte, _ OUI) ([]byte, error) {
	start := len(b)
	if !v.Mode.valid() {
		return b, newError(v.tlvName(), start, ErrInvalid, "%d is not a VSI TLV type", uint8(v.Mode))
	}
	if v.VSITypeID > 0xffffff {
		return b, newError(v.tlvName(), start, ErrInvalid, "VSI type ID %#x does not fit in 24 bits", v.VSITypeID)
	}
	if !v.VSIIDFormat.valid() {
		return b, newError(v.tlvName(), start, ErrUnknownSubtype, "VSIID format %d", uint8(v.VSIIDFormat))
	}
	size := v.FilterFormat.EntrySize()
	if size == 0 {
		return b, newError(v.tlvName(), start, ErrUnknownSubtype, "filter info format %d", uint8(v.FilterFormat))
	}
	if n := vsiFixedLen + len(v.Filters)*size; n > MaxTLVValue {
		return b, newError(v.tlvName(), start, ErrOversize, "%d %s filter entries make the value %d bytes, at most %d allowed",
			len(v.Filters), v.FilterFormat, n, MaxTLVValue)
	}
	for i := range v.Filters {
		f := &v.Filters[i]
		if f.PCP > 7 {
			return b, newError(v.tlvName(), start, ErrInvalid, "filter %d: PCP %d does not fit in 3 bits", i, f.PCP)
		}
		if f.VID > maxVID {
			return b, newError(v.tlvName(), start, ErrInvalid, "filter %d: VID %d is reserved or out of range", i, f.VID)
		}
	}
	b = append(b, 0, 0)
	putTLVHeader(b[start:], uint8(v.Mode), vsiFixedLen+len(v.Filters)*size)
	b = append(b, byte(v.Status), byte(v.VSITypeID>>16), byte(v.VSITypeID>>8), byte(v.VSITypeID),
		v.VSITypeVersion, byte(v.VSIIDFormat))
	b = append(b, v.VSIID[:]...)
	b = append(b, byte(v.FilterFormat))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.Filters)))
	for i := range v.Filters {
		f := &v.Filters[i]
		if v.FilterFormat.hasGroup() {
			b = binary.BigEndian.AppendUint32(b, f.GroupID)
		}
		if v.FilterFormat.hasMAC() {
			b = append(b, f.MAC[:]...)
		}
		w := uint16(f.PCP)<<12 | f.VID
		if f.PS {
			w |= 0x8000
		}
		b = binary.BigEndian.AppendUint16(b, w)
	}
	return b, nil
}

// decode parses the value data of a VSI TLV whose header is at off.
func (v *VSI) decode(mode VSIMode, data []byte, off int) error {
	v.Mode = mode
	name := v.tlvName()
	if len(data) < vsiFixedLen {
		return newError(name, off, ErrLength, "length %d, a VSI TLV needs at least %d", len(data), vsiFixedLen)
	}
	val := off + tlvHeaderLen
	v.Status = VSIStatus(data[0])
	v.VSITypeID = uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3])
	v.VSITypeVersion = data[4]
	v.VSIIDFormat = VSIIDFormat(data[5])
	if !v.VSIIDFormat.valid() {
		return newError(name, val+5, ErrUnknownSubtype, "VSIID format %d", data[5])
	}
	copy(v.VSIID[:], data[6:22])
	v.FilterFormat = FilterFormat(data[22])
	size := v.FilterFormat.EntrySize()
	if size == 0 {
		return newError(name, val+22, ErrUnknownSubtype, "filter info format %d", data[22])
	}
	count := int(binary.BigEndian.Uint16(data[23:25]))
	if have := len(data) - vsiFixedLen; count*size != have {
		return newError(name, val+23, ErrLength, "%d %s filter entries need %d bytes, the TLV has %d",
			count, v.FilterFormat, count*size, have)
	}
	v.Filters = nil
	if count == 0 {
		return nil
	}
	v.Filters = make([]Filter, count)
	p := vsiFixedLen
	for i := range v.Filters {
		f := &v.Filters[i]
		if v.FilterFormat.hasGroup() {
			f.GroupID = binary.BigEndian.Uint32(data[p:])
			p += 4
		}
		if v.FilterFormat.hasMAC() {
			copy(f.MAC[:], data[p:p+6])
			p += 6
		}
		w := binary.BigEndian.Uint16(data[p:])
		f.PS = w&0x8000 != 0
		f.PCP = uint8(w >> 12 & 0x7)
		f.VID = w & 0x0fff
		if f.VID > maxVID {
			return newError(name, val+p, ErrInvalid, "filter %d: VID %d is reserved", i, f.VID)
		}
		p += 2
	}
	return nil
}

// VSIIDString formats VSIID according to VSIIDFormat: a UUID as
// 8-4-4-4-12 hex, a MAC as aa:bb:cc:dd:ee:ff, addresses in their usual
// notation, a local or unknown ID as 32 hex digits.
func (v *VSI) VSIIDString() string {
	id := v.VSIID
	switch v.VSIIDFormat {
	case VSIIDUUID:
		var buf [36]byte
		hex.Encode(buf[0:8], id[0:4])
		buf[8] = '-'
		hex.Encode(buf[9:13], id[4:6])
		buf[13] = '-'
		hex.Encode(buf[14:18], id[6:8])
		buf[18] = '-'
		hex.Encode(buf[19:23], id[8:10])
		buf[23] = '-'
		hex.Encode(buf[24:36], id[10:16])
		return string(buf[:])
	case VSIIDMAC:
		return macString(id[10:16])
	case VSIIDIPv4:
		return netip.AddrFrom4([4]byte(id[12:16])).String()
	case VSIIDIPv6:
		return netip.AddrFrom16(id).String()
	}
	return hex.EncodeToString(id[:])
}

func macString(m []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// String formats the TLV on one line, for example
// "ASSOCIATE request typeid 0x001267 v1 UUID 6f1c2b3a-... MAC/VID [52:54:00:12:34:56 vid 100]"
// or "ASSOCIATE response keep: insufficient resources ...".
func (v *VSI) String() string {
	var sb strings.Builder
	sb.WriteString(v.Mode.String())
	if v.IsResponse() {
		sb.WriteString(" response")
		if v.Status.Keep() {
			sb.WriteString(" keep")
		}
		if v.Status.Hard() {
			sb.WriteString(" hard")
		}
		sb.WriteString(": ")
		sb.WriteString(v.Code().String())
	} else {
		sb.WriteString(" request")
		if v.Status.M() {
			sb.WriteString(" M")
		}
		if v.Status.S() {
			sb.WriteString(" S")
		}
	}
	fmt.Fprintf(&sb, " typeid %#06x v%d %s %s %s [", v.VSITypeID, v.VSITypeVersion, v.VSIIDFormat, v.VSIIDString(), v.FilterFormat)
	for i, f := range v.Filters {
		if i > 0 {
			sb.WriteString(", ")
		}
		if v.FilterFormat.hasGroup() {
			sb.WriteString("group ")
			sb.WriteString(strconv.FormatUint(uint64(f.GroupID), 10))
			sb.WriteByte(' ')
		}
		if v.FilterFormat.hasMAC() {
			sb.WriteString(macString(f.MAC[:]))
			sb.WriteByte(' ')
		}
		sb.WriteString("vid ")
		sb.WriteString(strconv.Itoa(int(f.VID)))
		if f.PS || f.PCP != 0 {
			fmt.Fprintf(&sb, " pcp %d", f.PCP)
			if f.PS {
				sb.WriteString(" ps")
			}
		}
	}
	sb.WriteByte(']')
	return sb.String()
}

// VSIManagerID is the VSI Manager ID TLV (type 5, IEEE 802.1Qbg-2012
// clause 41.2): 16 octets naming the VSI manager that holds the VSI types,
// as an IPv6 address, an IPv4-mapped IPv6 address, or a locally defined
// value. lldpad sends its configured name ("evmgr01") padded with zeros.
type VSIManagerID struct {
	// ID is the manager's identifier.
	ID [16]byte
}

var _ TLV = (*VSIManagerID)(nil)

// ManagerIDFromString returns the ID holding s padded with zeros, as lldpad
// encodes a textual manager ID. s must be 1 to 16 bytes without NUL.
func ManagerIDFromString(s string) (VSIManagerID, error) {
	const name = "VDP VSI Manager ID"
	var m VSIManagerID
	if s == "" || len(s) > managerIDLen {
		return m, newError(name, 0, ErrOversize, "%q is %d bytes, want 1 to %d", s, len(s), managerIDLen)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return m, newError(name, 0, ErrInvalid, "%q contains a NUL byte", s)
	}
	copy(m.ID[:], s)
	return m, nil
}

// ManagerIDFromAddr returns the ID holding a: an IPv6 address as is, an
// IPv4 address IPv4-mapped.
func ManagerIDFromAddr(a netip.Addr) VSIManagerID {
	return VSIManagerID{ID: a.As16()}
}

// String formats the ID the way lldpad prints it: printable text as text,
// a single non-zero first octet as a number, otherwise as an IP address.
func (m *VSIManagerID) String() string {
	last := -1
	for i := len(m.ID) - 1; i >= 0; i-- {
		if m.ID[i] != 0 {
			last = i
			break
		}
	}
	if last <= 0 {
		return strconv.Itoa(int(m.ID[0]))
	}
	printable := true
	for _, c := range m.ID[:last+1] {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return string(m.ID[:last+1])
	}
	return netip.AddrFrom16(m.ID).Unmap().String()
}

func (m *VSIManagerID) tlvName() string { return "VDP VSI Manager ID" }

func (m *VSIManagerID) appendTLV(b []byte, _ OUI) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0)
	putTLVHeader(b[start:], vdpTLVManagerID, managerIDLen)
	return append(b, m.ID[:]...), nil
}

// VDPDU is the VDP payload of an ECP request: a VSI Manager ID TLV, then
// VSI TLVs and organizationally defined TLVs (IEEE 802.1Qbg-2012
// clause 41.2). The list ends at the end of the ECPDU or at a TLV header of
// type 0 (the zero padding of a short frame).
//
// As lldpad requires, the VSI Manager ID TLV comes first and only once:
// decoders report anything else as ErrMissing (not first) or ErrInvalid
// (repeated), and encoders refuse it the same way.
type VDPDU struct {
	// TLVs holds the TLVs in wire order: *VSIManagerID first, then *VSI,
	// organizationally specific TLVs (OrgTLV: tether's own, IEEE 802.1's,
	// or *RawOrgTLV) and *RawTLV for other types. Decoding then encoding
	// gives back the same bytes, padding excepted.
	TLVs []TLV
}

// ManagerID returns the VSI Manager ID TLV that opens d, or nil.
func (d *VDPDU) ManagerID() *VSIManagerID {
	if len(d.TLVs) == 0 {
		return nil
	}
	m, _ := d.TLVs[0].(*VSIManagerID)
	return m
}

// VSIs returns the VSI TLVs of d in wire order.
func (d *VDPDU) VSIs() []*VSI {
	var out []*VSI
	for _, t := range d.TLVs {
		if v, ok := t.(*VSI); ok {
			out = append(out, v)
		}
	}
	return out
}

// Append appends the encoded TLVs to b; tether's org TLVs go under cid
// (zero means DefaultCID). It does not allocate when b has room. On error
// b is returned unchanged.
func (d *VDPDU) Append(b []byte, cid OUI) ([]byte, error) {
	start := len(b)
	if len(d.TLVs) == 0 {
		return b, newError("VDP", start, ErrMissing, "no VSI Manager ID TLV")
	}
	var err error
	for i, t := range d.TLVs {
		off := len(b)
		switch t := t.(type) {
		case nil:
			return b[:start], newError("VDP", off, ErrInvalid, "TLV %d is nil", i)
		case *VSIManagerID:
			if t == nil {
				return b[:start], newError("VDP", off, ErrInvalid, "TLV %d is nil", i)
			}
			if i > 0 {
				return b[:start], newError(t.tlvName(), off, ErrInvalid, "a second VSI Manager ID TLV (TLV %d)", i)
			}
		case *VSI:
			if t == nil {
				return b[:start], newError("VDP", off, ErrInvalid, "TLV %d is nil", i)
			}
		case *RawTLV:
			if t == nil {
				return b[:start], newError("VDP", off, ErrInvalid, "TLV %d is nil", i)
			}
			if t.Type <= vdpTLVManagerID || t.Type == vdpTLVOrg {
				return b[:start], newError(t.tlvName(), off, ErrInvalid, "VDP TLV type %d must use its own Go type", t.Type)
			}
		case OrgTLV:
		default:
			return b[:start], newError(t.tlvName(), off, ErrInvalid, "not a VDP TLV")
		}
		if i == 0 {
			if _, ok := t.(*VSIManagerID); !ok {
				return b[:start], newError("VDP", off, ErrMissing, "the first VDP TLV is %s, want VSI Manager ID", strings.TrimPrefix(t.tlvName(), "VDP "))
			}
		}
		b, err = t.appendTLV(b, cid)
		if err != nil {
			return b[:start], err
		}
	}
	return b, nil
}

// Decode parses the VDP TLVs in b (an ECPDU's payload); error offsets count
// from b[0]. The result does not alias b. On error d is left unchanged.
func (d *VDPDU) Decode(b []byte, cid OUI) error {
	return d.decode(append([]byte(nil), b...), 0, cid)
}

// vdpTLVName names a VDP TLV type for errors without allocating for the
// known types.
func vdpTLVName(typ uint8) string {
	switch typ {
	case uint8(VSIPreAssociate):
		return "VDP PRE-ASSOCIATE"
	case uint8(VSIPreAssociateRR):
		return "VDP PRE-ASSOCIATE-RR"
	case uint8(VSIAssociate):
		return "VDP ASSOCIATE"
	case uint8(VSIDeAssociate):
		return "VDP DE-ASSOCIATE"
	case vdpTLVManagerID:
		return "VDP VSI Manager ID"
	case vdpTLVOrg:
		return "VDP org TLV"
	}
	return "VDP TLV type " + itoa(int(typ))
}

// vdpEnd reports whether the TLV list ends at b[0:]: nothing left, or a
// TLV header of type 0 (End TLV or zero padding; a lone last byte counts
// when its type bits are zero). lldpad stops at such a header and ignores
// everything after it.
func vdpEnd(b []byte) bool { return len(b) == 0 || b[0]>>1 == vdpTLVEnd }

// decode parses b, the VDP TLVs; base is the offset of b[0] in the
// top-level buffer. The TLVs alias b.
func (d *VDPDU) decode(b []byte, base int, cid OUI) error {
	// Count first so the TLV slice is allocated once.
	n := 0
	for p := 0; !vdpEnd(b[p:]) && len(b)-p >= tlvHeaderLen; n++ {
		_, l := parseTLVHeader(b[p:])
		p += tlvHeaderLen + l
		if p > len(b) {
			break
		}
	}
	tlvs := make([]TLV, 0, n)
	for p := 0; !vdpEnd(b[p:]); {
		off := base + p
		if len(b)-p < tlvHeaderLen {
			return errTruncated("VDP TLV", off, tlvHeaderLen, len(b)-p)
		}
		typ, l := parseTLVHeader(b[p:])
		if l > len(b)-p-tlvHeaderLen {
			return errTruncated(vdpTLVName(typ), off, tlvHeaderLen+l, len(b)-p)
		}
		v := b[p+tlvHeaderLen : p+tlvHeaderLen+l]
		if len(tlvs) == 0 && typ != vdpTLVManagerID {
			return newError("VDP", off, ErrMissing, "the first VDP TLV is %s, want VSI Manager ID", strings.TrimPrefix(vdpTLVName(typ), "VDP "))
		}
		var t TLV
		switch typ {
		case vdpTLVManagerID:
			if len(tlvs) > 0 {
				return newError(vdpTLVName(typ), off, ErrInvalid, "a second VSI Manager ID TLV")
			}
			if l != managerIDLen {
				return newError(vdpTLVName(typ), off, ErrLength, "length %d, want %d", l, managerIDLen)
			}
			m := new(VSIManagerID)
			copy(m.ID[:], v)
			t = m
		case uint8(VSIPreAssociate), uint8(VSIPreAssociateRR), uint8(VSIAssociate), uint8(VSIDeAssociate):
			vsi := new(VSI)
			if err := vsi.decode(VSIMode(typ), v, off); err != nil {
				return err
			}
			t = vsi
		case vdpTLVOrg:
			if l < 4 {
				return newError(vdpTLVName(typ), off, ErrLength, "length %d, an organizationally specific TLV needs at least 4", l)
			}
			org, err := decodeOrgTLV(OUI(v[0:3]), v[3], v[4:], off+tlvHeaderLen+4, cid)
			if err != nil {
				return err
			}
			t = org
		default:
			t = &RawTLV{Type: typ, Value: v}
		}
		tlvs = append(tlvs, t)
		p += tlvHeaderLen + l
	}
	if len(tlvs) == 0 {
		return newError("VDP", base, ErrMissing, "no VSI Manager ID TLV")
	}
	d.TLVs = tlvs
	return nil
}

// vdpTLVString formats one VDP TLV for ECPDU.String.
func vdpTLVString(t TLV) string {
	switch t := t.(type) {
	case *VSIManagerID:
		return "VSI Manager ID " + t.String()
	case *VSI:
		return t.String()
	case *RawTLV:
		return t.tlvName() + " (" + itoa(len(t.Value)) + " bytes)"
	case nil:
		return "<nil>"
	}
	return t.tlvName()
}
