package wire

import (
	"encoding/binary"
	"errors"

	"github.com/mdlayher/lldp"
)

// Signed frames (DESIGN.md "Wire decisions").
//
// A TetherSignature TLV ends the PDU it protects: it is the last TLV before
// End in an LLDPDU, and the last VDP TLV of an ECPDU. The Ed25519 signature
// covers the message
//
//	destination MAC (6) | source MAC (6) | EtherType (2) |
//	every PDU byte before the signature TLV |
//	the signature TLV's header, CID, subtype, key ID and counter (22)
//
// that is, every byte of the frame before the 64 signature bytes. The
// EtherType is the protocol's (0x88cc for LLDP, 0x8940 for ECP): an 802.1Q
// tag between source MAC and EtherType is not covered, because tags are
// added and removed along the path (VF insertion, S-channel devices) while
// the channel a frame belongs to is part of the replay key instead.
//
// Covering the key ID and counter is what makes the counter meaningful: an
// attacker who could change the counter without invalidating the signature
// could replay any frame with a higher one. Bytes after the signature TLV
// (End, padding) are not covered; decoders ignore everything after End.
//
// For an untagged frame held in one buffer the message is a prefix of the
// frame, so signing and verifying need no copy: frame[:SignedHeaderLen+
// sigOff+SignedTLVPrefixLen], where sigOff is what FindSignature returns.
// AppendSignedMessage builds the message in a caller's buffer for tagged
// frames.

// Sizes in a signed frame.
const (
	// SignedHeaderLen is the part of the Ethernet header the signature
	// covers: destination MAC, source MAC and EtherType.
	SignedHeaderLen = 14
	// SignatureTLVLen is the size of the whole signature TLV: header (2),
	// CID (3), subtype (1) and SignatureInfoLen.
	SignatureTLVLen = tlvHeaderLen + 4 + SignatureInfoLen
	// SignedTLVPrefixLen is the part of the signature TLV the signature
	// covers: everything before the 64 signature bytes.
	SignedTLVPrefixLen = SignatureTLVLen - SignatureSize
)

// EtherTypes of the PDUs a signature can protect, and the ECP header size.
// EtherTypeLLDP, EtherTypeECP and ecpHeaderLen (lldp.go, ecp.go) hold the
// same values; these copies keep the signing walker independent of the
// codecs.
const (
	sigEtherTypeLLDP = 0x88cc
	sigEtherTypeECP  = 0x8940
	sigECPHeaderLen  = 4
)

// PDUKind says how a signed PDU's TLVs are laid out, so the signature TLV
// can be found without decoding the PDU.
type PDUKind uint8

// PDU kinds.
const (
	// PDUKindLLDP is an LLDPDU (IEEE 802.1AB-2016 8.2): Chassis ID, Port ID
	// and TTL TLVs, optional TLVs, then End (type 0) or the end of the
	// buffer.
	PDUKindLLDP PDUKind = 1
	// PDUKindECP is an ECPDU carrying VDP (IEEE 802.1Qbg-2012 43.3, 41.2):
	// the 4-byte ECP header, then VDP TLVs until a TLV header of type 0 (End
	// or zero padding) or the end of the buffer.
	PDUKindECP PDUKind = 2
)

// String returns "LLDP", "ECP" or "PDU kind N".
func (k PDUKind) String() string {
	switch k {
	case PDUKindLLDP:
		return "LLDP"
	case PDUKindECP:
		return "ECP"
	}
	return "PDU kind " + itoa(int(k))
}

// PDUKindOf returns the kind of PDU carried under etherType, and false when
// tether does not sign that EtherType.
func PDUKindOf(etherType uint16) (PDUKind, bool) {
	switch etherType {
	case sigEtherTypeLLDP:
		return PDUKindLLDP, true
	case sigEtherTypeECP:
		return PDUKindECP, true
	}
	return 0, false
}

// pduLayout is what walkPDU learns about a PDU.
type pduLayout struct {
	// sigOff is the offset of tether's signature TLV, or -1.
	sigOff int
	// end is the offset of the End TLV, or of the end of the TLVs when
	// there is no End.
	end int
	// hasEnd reports an End TLV (a TLV header of type 0) at end.
	hasEnd bool
	// sig is the decoded signature when sigOff >= 0.
	sig TetherSignature
}

// pduName names the PDU for errors.
func (k PDUKind) pduName() string {
	if k == PDUKindECP {
		return "ECPDU"
	}
	return "LLDPDU"
}

// walkPDU walks the TLVs of pdu without decoding them, locating End and
// tether's signature TLV under cid, and checking that nothing but End
// follows the signature. It never allocates on success.
func walkPDU(pdu []byte, kind PDUKind, cid OUI) (pduLayout, error) {
	l := pduLayout{sigOff: -1}
	off := 0
	switch kind {
	case PDUKindLLDP:
	case PDUKindECP:
		if len(pdu) < sigECPHeaderLen {
			return l, errTruncated("ECP header", 0, sigECPHeaderLen, len(pdu))
		}
		off = sigECPHeaderLen
	default:
		return l, newError("signed PDU", 0, ErrInvalid, "unknown PDU kind %d", kind)
	}
	cid = cidOr(cid)
	name := kind.pduName()
	n := 0 // TLVs seen before End
	for off < len(pdu) {
		// A header of type 0 ends the TLVs: End, or the zero padding of a
		// short frame (a lone last byte counts when its type bits are
		// zero, as lldpad reads it).
		if pdu[off]>>1 == 0 {
			l.hasEnd = true
			break
		}
		if len(pdu)-off < tlvHeaderLen {
			return l, errTruncated(name+" TLV header", off, tlvHeaderLen, len(pdu)-off)
		}
		typ, length := parseTLVHeader(pdu[off:])
		if length > len(pdu)-off-tlvHeaderLen {
			return l, errTruncated(name+" TLV type "+itoa(int(typ)), off, tlvHeaderLen+length, len(pdu)-off)
		}
		if kind == PDUKindLLDP && n < 3 && typ != uint8(n+1) {
			return l, newError(name, off, ErrMissing, "TLV %d is type %d, want %s", n+1, typ, lldpMandatoryName(n))
		}
		if l.sigOff >= 0 {
			return l, newError(l.sig.tlvName(), l.sigOff, ErrInvalid, "signature TLV must be last, but a type %d TLV follows at offset %d", typ, off)
		}
		if typ == uint8(lldp.TLVTypeOrganizationSpecific) && length >= 4 &&
			OUI(pdu[off+2:off+5]) == cid && pdu[off+5] == TetherSubtypeSignature {
			if err := l.sig.decodeInfo(pdu[off+6:off+tlvHeaderLen+length], off+6); err != nil {
				return l, err
			}
			l.sigOff = off
		}
		off += tlvHeaderLen + length
		n++
	}
	if kind == PDUKindLLDP && n < 3 {
		return l, newError(name, off, ErrMissing, "TLV %d is End, want %s", n+1, lldpMandatoryName(n))
	}
	l.end = off
	return l, nil
}

// lldpMandatoryName names the i-th mandatory LLDP TLV (0-based).
func lldpMandatoryName(i int) string {
	switch i {
	case 0:
		return "Chassis ID (1)"
	case 1:
		return "Port ID (2)"
	}
	return "TTL (3)"
}

// FindSignature locates tether's signature TLV (under cid; zero means
// DefaultCID) in pdu, an LLDPDU or ECPDU as kind says, starting after the
// EtherType. It returns the offset of the TLV in pdu and the decoded TLV.
//
// It walks TLV headers only and does not allocate on success. It reports a
// *Error (offsets relative to pdu) with ErrMissing when there is no
// signature TLV (or an LLDPDU lacks a mandatory TLV), ErrInvalid when a TLV
// other than End follows the signature ("signature TLV must be last"),
// ErrLength when the signature TLV is not exactly SignatureTLVLen bytes,
// and ErrTruncated when a TLV runs past the buffer. Bytes after End are
// padding and ignored.
func FindSignature(pdu []byte, kind PDUKind, cid OUI) (sigOff int, sig TetherSignature, err error) {
	l, err := walkPDU(pdu, kind, cid)
	if err != nil {
		return -1, TetherSignature{}, err
	}
	if l.sigOff < 0 {
		return -1, TetherSignature{}, newError(sigTLVName, l.end, ErrMissing,
			"%s has no signature TLV (CID %s subtype %d)", kind.pduName(), cidOr(cid), TetherSubtypeSignature)
	}
	return l.sigOff, l.sig, nil
}

// IsUnsigned reports whether err, from FindSignature, means a well-formed
// PDU that carries no signature TLV, as opposed to a malformed one. A
// receiver in interop mode accepts such a PDU as plain standard LLDP/VDP.
func IsUnsigned(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Err == ErrMissing && e.TLV == sigTLVName
}

// sigTLVName is TetherSignature's name in errors.
const sigTLVName = "tether Signature"

// SignatureInsertOffset checks that pdu is an unsigned LLDPDU or ECPDU (as
// kind says, starting after the EtherType) and returns the offset where its
// signature TLV goes: the offset of End, or len(pdu) when there is no End.
// hasEnd reports an End TLV; the signer re-appends End after the signature
// and drops any padding after it. A PDU that already carries a signature
// TLV under cid is ErrInvalid. It does not allocate on success.
func SignatureInsertOffset(pdu []byte, kind PDUKind, cid OUI) (off int, hasEnd bool, err error) {
	l, err := walkPDU(pdu, kind, cid)
	if err != nil {
		return -1, false, err
	}
	if l.sigOff >= 0 {
		return -1, false, newError(l.sig.tlvName(), l.sigOff, ErrInvalid, "%s is already signed", kind.pduName())
	}
	return l.end, l.hasEnd, nil
}

// AppendSignaturePrefix appends the part of a signature TLV the signature
// covers (SignedTLVPrefixLen bytes: header, cid, subtype, key ID and
// counter) to b. The signer then signs the message ending here and appends
// the SignatureSize signature bytes, completing the TLV. It does not
// allocate when b has room.
func AppendSignaturePrefix(b []byte, cid OUI, keyID [8]byte, counter uint64) []byte {
	cid = cidOr(cid)
	start := len(b)
	b = append(b, 0, 0)
	putTLVHeader(b[start:], uint8(lldp.TLVTypeOrganizationSpecific), SignatureTLVLen-tlvHeaderLen)
	b = append(b, cid[0], cid[1], cid[2], TetherSubtypeSignature)
	b = append(b, keyID[:]...)
	return binary.BigEndian.AppendUint64(b, counter)
}

// AppendEnd appends an End TLV (type 0, length 0; IEEE 802.1AB-2016
// 8.5.1), which also ends a VDP TLV list.
func AppendEnd(b []byte) []byte { return append(b, 0, 0) }

// SignedMessageLen returns the length of the signed message of a PDU whose
// signature TLV is at sigOff.
func SignedMessageLen(sigOff int) int {
	return SignedHeaderLen + sigOff + SignedTLVPrefixLen
}

// AppendSignedMessage appends the message a signature covers to b: dst,
// src and etherType, then pdu[:sigOff+SignedTLVPrefixLen]. sigOff is the
// offset of the signature TLV in pdu, from FindSignature. Use it when the
// frame is not held as one untagged buffer (a tagged frame); otherwise the
// message is a prefix of the frame. It does not allocate when b has room.
func AppendSignedMessage(b []byte, dst, src [6]byte, etherType uint16, pdu []byte, sigOff int) ([]byte, error) {
	if sigOff < 0 || sigOff > len(pdu)-SignedTLVPrefixLen {
		return b, newError(sigTLVName, sigOff, ErrTruncated, "signature TLV at offset %d does not fit in a %d-byte PDU", sigOff, len(pdu))
	}
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, pdu[:sigOff+SignedTLVPrefixLen]...), nil
}
