package wire

import "github.com/mdlayher/lldp"

// Channel bindings in ECPDUs. A signed VDP frame of an S-channel carries
// one TetherChannelBinding among its VDP TLVs, before the signature (see
// TetherChannelBinding). These helpers find and add it in an encoded ECPDU
// without decoding the VDP TLVs, under a configured Company ID, for the
// signing and verifying hooks of the ECP engine.

// FindChannelBinding locates tether's channel binding TLV (under cid; zero
// means DefaultCID) among the VDP TLVs of pdu, an ECPDU starting after the
// EtherType (the 4-byte ECP header, then TLVs until a TLV header of type 0
// or the end of the buffer, as FindSignature reads them). It returns the
// offset of the TLV in pdu and the decoded binding, or -1 and no error when
// the ECPDU carries none.
//
// It walks TLV headers only and does not allocate on success. It reports a
// *Error (offsets relative to pdu) with ErrTruncated when the ECP header
// or a TLV runs past the buffer, ErrInvalid when a second binding TLV
// follows the first, and the binding's own decoding errors (ErrLength,
// ErrInvalid) when it is malformed.
func FindChannelBinding(pdu []byte, cid OUI) (off int, b TetherChannelBinding, err error) {
	if len(pdu) < sigECPHeaderLen {
		return -1, b, errTruncated("ECP header", 0, sigECPHeaderLen, len(pdu))
	}
	cid = cidOr(cid)
	name := PDUKindECP.pduName()
	off = -1
	for at := sigECPHeaderLen; at < len(pdu); {
		if pdu[at]>>1 == 0 { // End, or zero padding
			break
		}
		if len(pdu)-at < tlvHeaderLen {
			return -1, TetherChannelBinding{}, errTruncated(name+" TLV header", at, tlvHeaderLen, len(pdu)-at)
		}
		typ, length := parseTLVHeader(pdu[at:])
		if length > len(pdu)-at-tlvHeaderLen {
			return -1, TetherChannelBinding{}, errTruncated(name+" TLV type "+itoa(int(typ)), at, tlvHeaderLen+length, len(pdu)-at)
		}
		if typ == uint8(lldp.TLVTypeOrganizationSpecific) && length >= 4 &&
			OUI(pdu[at+2:at+5]) == cid && pdu[at+5] == TetherSubtypeChannelBinding {
			if off >= 0 {
				return -1, TetherChannelBinding{}, newError(bindingTLVName, at, ErrInvalid,
					"a second channel binding TLV (the first is at offset %d)", off)
			}
			if err := b.decodeInfo(pdu[at+6:at+tlvHeaderLen+length], at+6); err != nil {
				return -1, TetherChannelBinding{}, err
			}
			off = at
		}
		at += tlvHeaderLen + length
	}
	return off, b, nil
}

// AppendChannelBinding appends the channel binding TLV of S-channel svid
// under cid (zero means DefaultCID) to b: ChannelBindingTLVLen bytes. An
// svid outside 1-4094 is ErrInvalid and b comes back unchanged.
func AppendChannelBinding(b []byte, cid OUI, svid uint16) ([]byte, error) {
	t := TetherChannelBinding{SVID: svid}
	return appendOrgTLV(b, &t, cid)
}

// ChannelBindingTLVLen is the size of the whole channel binding TLV:
// header (2), CID (3), subtype (1) and TetherChannelBindingLen.
const ChannelBindingTLVLen = tlvHeaderLen + 4 + TetherChannelBindingLen
