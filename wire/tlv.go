package wire

import (
	"encoding/binary"

	"github.com/mdlayher/lldp"
)

// tlvHeaderLen is the size of the LLDP (and VDP) TLV header: 7 bits of type
// and 9 bits of length (IEEE 802.1AB-2016 8.4.1, 802.1Qbg-2012 41.2.1).
const tlvHeaderLen = 2

// MaxTLVValue is the largest value a 9-bit TLV length can describe.
const MaxTLVValue = lldp.TLVLengthMax

// MaxOrgInfo is the largest information string of an organizationally
// specific TLV: 511 bytes less the OUI and subtype (IEEE 802.1AB-2016 8.6.1.4).
const MaxOrgInfo = MaxTLVValue - 4

// TLV is one optional TLV of an LLDPDU (anything after TTL and before End),
// or one TLV of a VDPDU. The set is closed: only this package's types
// implement it, and RawTLV / RawOrgTLV carry what it does not know.
type TLV interface {
	// appendTLV appends the complete TLV, header included, to b. cid is the
	// Company ID that tether's own TLVs are encoded under.
	appendTLV(b []byte, cid OUI) ([]byte, error)
	// tlvName names the TLV for errors and for tetherctl decode.
	tlvName() string
}

// OrgTLV is implemented by every organizationally specific TLV type (LLDP
// type 127, VDP type 127).
type OrgTLV interface {
	TLV
	// orgID returns the OUI and subtype; tether's TLVs answer with cid.
	orgID(cid OUI) (OUI, uint8)
	// appendInfo appends the information string that follows OUI and subtype.
	appendInfo(b []byte) ([]byte, error)
	// decodeInfo parses the information string; off is its offset in the
	// top-level buffer, for errors.
	decodeInfo(b []byte, off int) error
}

// putTLVHeader writes a 2-byte TLV header at b[0:2].
func putTLVHeader(b []byte, typ uint8, length int) {
	binary.BigEndian.PutUint16(b, uint16(typ)<<9|uint16(length))
}

// parseTLVHeader reads a TLV header at b[0:2]; the caller checks len(b) >= 2.
func parseTLVHeader(b []byte) (typ uint8, length int) {
	h := binary.BigEndian.Uint16(b)
	return uint8(h >> 9), int(h & 0x01ff)
}

// beginTLV appends a header with a zero length and returns the index of
// the header, so endTLV can patch the length once the value is written.
func beginTLV(b []byte, typ uint8) ([]byte, int) {
	start := len(b)
	b = append(b, typ<<1, 0)
	return b, start
}

// appendOrgTLV appends an organizationally specific TLV (type 127): header,
// OUI, subtype and the information string.
func appendOrgTLV(b []byte, t OrgTLV, cid OUI) ([]byte, error) {
	oui, sub := t.orgID(cidOr(cid))
	b, start := beginTLV(b, uint8(lldp.TLVTypeOrganizationSpecific))
	b = append(b, oui[0], oui[1], oui[2], sub)
	b, err := t.appendInfo(b)
	if err != nil {
		return b[:start], err
	}
	// Check the length here rather than through endTLV so that tlvName,
	// which may allocate, runs only on the error path.
	if n := len(b) - start - tlvHeaderLen; n > MaxTLVValue {
		return b[:start], newError(t.tlvName(), start, ErrOversize, "value is %d bytes, at most %d allowed", n, MaxTLVValue)
	}
	putTLVHeader(b[start:], uint8(lldp.TLVTypeOrganizationSpecific), len(b)-start-tlvHeaderLen)
	return b, nil
}

// RawTLV is an LLDP or VDP TLV this package does not decode further; it
// survives a decode/encode round trip unchanged.
type RawTLV struct {
	// Type is the 7-bit TLV type.
	Type uint8
	// Value is the TLV's value, at most MaxTLVValue bytes.
	Value []byte
}

var _ TLV = (*RawTLV)(nil)

func (t *RawTLV) tlvName() string { return "TLV type " + itoa(int(t.Type)) }

func (t *RawTLV) appendTLV(b []byte, _ OUI) ([]byte, error) {
	if t.Type > 127 {
		return b, newError(t.tlvName(), len(b), ErrInvalid, "type %d does not fit in 7 bits", t.Type)
	}
	if len(t.Value) > MaxTLVValue {
		return b, newError(t.tlvName(), len(b), ErrOversize, "value is %d bytes, at most %d allowed", len(t.Value), MaxTLVValue)
	}
	start := len(b)
	b = append(b, 0, 0)
	putTLVHeader(b[start:], t.Type, len(t.Value))
	return append(b, t.Value...), nil
}

// RawOrgTLV is an organizationally specific TLV with an OUI or subtype this
// package does not decode; it survives a round trip unchanged.
type RawOrgTLV struct {
	// OUI is the organization's identifier.
	OUI OUI
	// Subtype is the organizationally defined subtype.
	Subtype uint8
	// Info is the information string, at most MaxOrgInfo bytes.
	Info []byte
}

var _ OrgTLV = (*RawOrgTLV)(nil)

func (t *RawOrgTLV) tlvName() string {
	return "org TLV " + t.OUI.String() + " subtype " + itoa(int(t.Subtype))
}
func (t *RawOrgTLV) orgID(OUI) (OUI, uint8) { return t.OUI, t.Subtype }
func (t *RawOrgTLV) appendInfo(b []byte) ([]byte, error) {
	if len(t.Info) > MaxOrgInfo {
		return b, newError(t.tlvName(), len(b), ErrOversize, "information string is %d bytes, at most %d allowed", len(t.Info), MaxOrgInfo)
	}
	return append(b, t.Info...), nil
}
func (t *RawOrgTLV) decodeInfo(b []byte, off int) error {
	if len(b) > MaxOrgInfo {
		return newError(t.tlvName(), off, ErrOversize, "information string is %d bytes, at most %d allowed", len(b), MaxOrgInfo)
	}
	t.Info = b
	return nil
}
func (t *RawOrgTLV) appendTLV(b []byte, cid OUI) ([]byte, error) { return appendOrgTLV(b, t, cid) }

// itoa formats small non-negative integers without fmt (keeps encoders
// allocation-free on their success path).
func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}
