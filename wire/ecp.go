package wire

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// EtherTypeECP is the EtherType of the Edge Control Protocol
// (IEEE 802.1Qbg-2012 clause 43.3).
const EtherTypeECP = 0x8940

// ECPVersion is the only ECP protocol version IEEE 802.1Qbg-2012 defines
// (clause 43.3). Decoders reject every other version, as lldpad does.
const ECPVersion = 1

// ecpHeaderLen is the size of the ECPDU header: version, operation type and
// subtype in two octets, then the sequence number (IEEE 802.1Qbg-2012
// clause 43.3).
const ecpHeaderLen = 4

// MaxECPDULen is the largest ECPDU (header and payload, without the Ethernet
// header) that fits in one untagged frame: the 1500-octet MAC client data of
// IEEE 802.3. IEEE 802.1Qbg-2012 43.3 carries one ECPDU per frame, so
// decoders and encoders both refuse anything longer.
const MaxECPDULen = 1500

// ECPOp is the 2-bit operation type of an ECPDU
// (IEEE 802.1Qbg-2012 clause 43.3).
type ECPOp uint8

// ECP operation types (IEEE 802.1Qbg-2012 clause 43.3). Values 2 and 3 are
// reserved; decoders report them as ErrUnknownSubtype.
const (
	// ECPRequest carries upper-layer protocol data and asks for an ACK.
	ECPRequest ECPOp = 0
	// ECPAck acknowledges the request with the same sequence number and
	// carries no payload.
	ECPAck ECPOp = 1
)

// String returns "REQUEST", "ACK" or "op N".
func (o ECPOp) String() string {
	switch o {
	case ECPRequest:
		return "REQUEST"
	case ECPAck:
		return "ACK"
	}
	return "op " + itoa(int(o))
}

// ECPSubtype is the 10-bit subtype of an ECPDU, naming the upper-layer
// protocol it carries (IEEE 802.1Qbg-2012 clause 43.3).
type ECPSubtype uint16

// ECP subtypes (IEEE 802.1Qbg-2012 clause 43.3). Others are reserved;
// decoders report them as ErrUnknownSubtype (lldpad drops them too).
const (
	// ECPSubtypeVDP carries the VSI Discovery and Configuration Protocol
	// (clause 41).
	ECPSubtypeVDP ECPSubtype = 1
	// ECPSubtypePECSP carries the Port Extension Control and Status
	// Protocol of IEEE 802.1BR; this package keeps its payload raw.
	ECPSubtypePECSP ECPSubtype = 2
)

// String returns "VDP", "PE-CSP" or "subtype N".
func (s ECPSubtype) String() string {
	switch s {
	case ECPSubtypeVDP:
		return "VDP"
	case ECPSubtypePECSP:
		return "PE-CSP"
	}
	return "subtype " + itoa(int(s))
}

// ECPDU is one Edge Control Protocol data unit: everything after the
// EtherType (0x8940) of an ECP frame (IEEE 802.1Qbg-2012 clause 43.3).
//
// A request of subtype VDP carries a VDPDU in VDP; a request of another
// known subtype (PE-CSP) carries its payload raw in Payload; an ACK carries
// nothing. Frames shorter than 60 octets are padded with zeros by the sender
// (lldpad pads its requests; the decoder accepts and drops the padding:
// for VDP a zero TLV header ends the TLV list, for an ACK every byte after
// the header is ignored, as lldpad does).
type ECPDU struct {
	// Version is the protocol version (4 bits). Zero encodes as
	// ECPVersion; decoding sets it to ECPVersion.
	Version uint8
	// Op is the operation type (2 bits).
	Op ECPOp
	// Subtype names the upper-layer protocol (10 bits).
	Subtype ECPSubtype
	// Sequence is the sequence number (16 bits); an ACK repeats the
	// sequence number of the request it acknowledges.
	Sequence uint16
	// VDP is the payload of a VDP request; nil for ACKs and other
	// subtypes.
	VDP *VDPDU
	// Payload is the raw payload of a request of a subtype other than VDP
	// (PE-CSP), padding included; nil otherwise.
	Payload []byte
	// TetherCID is the Company ID tether's organizationally specific VDP
	// TLVs are encoded and decoded under; zero means DefaultCID. It is an
	// input to UnmarshalBinary, which leaves it unchanged.
	TetherCID OUI
}

// MarshalBinary encodes the ECPDU (without Ethernet header).
func (p *ECPDU) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, p.sizeHint()))
}

// sizeHint estimates the encoded size, to size MarshalBinary's buffer.
func (p *ECPDU) sizeHint() int {
	n := ecpHeaderLen + len(p.Payload)
	if p.VDP != nil {
		for _, t := range p.VDP.TLVs {
			switch t := t.(type) {
			case *VSI:
				n += tlvHeaderLen + vsiFixedLen + len(t.Filters)*12
			case *RawTLV:
				n += tlvHeaderLen + len(t.Value)
			default:
				// Manager ID (16), tether's signature (84) and most
				// org TLVs fit.
				n += tlvHeaderLen + 96
			}
		}
	}
	return n
}

// AppendBinary appends the encoded ECPDU to b. It does not allocate when b
// has enough spare capacity. On error it returns b unchanged (same length)
// and a *Error whose Offset is the position in b where the faulty field
// would have started.
func (p *ECPDU) AppendBinary(b []byte) ([]byte, error) {
	const name = "ECP"
	start := len(b)
	v := p.Version
	if v == 0 {
		v = ECPVersion
	}
	if v != ECPVersion {
		return b, newError(name, start, ErrInvalid, "version %d, only %d is defined", v, ECPVersion)
	}
	if p.Op > ECPAck {
		return b, newError(name, start, ErrUnknownSubtype, "operation type %d", p.Op)
	}
	if p.Subtype != ECPSubtypeVDP && p.Subtype != ECPSubtypePECSP {
		return b, newError(name, start, ErrUnknownSubtype, "subtype %d", p.Subtype)
	}
	switch {
	case p.Op == ECPAck && (p.VDP != nil || len(p.Payload) > 0):
		return b, newError(name, start, ErrInvalid, "an ACK carries no payload")
	case p.Op == ECPRequest && p.Subtype == ECPSubtypeVDP && len(p.Payload) > 0:
		return b, newError(name, start, ErrInvalid, "a VDP request carries its payload in VDP, not Payload")
	case p.Op == ECPRequest && p.Subtype == ECPSubtypeVDP && p.VDP == nil:
		return b, newError("VDP", start+ecpHeaderLen, ErrMissing, "a VDP request needs a VDPDU")
	case p.Subtype != ECPSubtypeVDP && p.VDP != nil:
		return b, newError(name, start, ErrInvalid, "VDPDU given for subtype %d", p.Subtype)
	}
	h := uint16(v)<<12 | uint16(p.Op)<<10 | uint16(p.Subtype)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, p.Sequence)
	var err error
	switch {
	case p.VDP != nil:
		b, err = p.VDP.Append(b, p.TetherCID)
		if err != nil {
			return b[:start], err
		}
	default:
		b = append(b, p.Payload...)
	}
	if n := len(b) - start; n > MaxECPDULen {
		return b[:start], newError(name, start, ErrOversize, "ECPDU is %d bytes, at most %d fit in a frame", n, MaxECPDULen)
	}
	return b, nil
}

// UnmarshalBinary decodes an ECPDU from b, which starts after the
// EtherType. Byte slices in the result (Payload, RawTLV values, org TLV
// information) point into a private copy of b, never into b itself. Error
// offsets count from b[0]. On error p is left unchanged.
func (p *ECPDU) UnmarshalBinary(b []byte) error {
	const name = "ECP"
	if len(b) < ecpHeaderLen {
		return errTruncated(name, 0, ecpHeaderLen, len(b))
	}
	if len(b) > MaxECPDULen {
		return newError(name, 0, ErrOversize, "ECPDU is %d bytes, at most %d fit in a frame", len(b), MaxECPDULen)
	}
	h := binary.BigEndian.Uint16(b)
	out := ECPDU{
		Version:   uint8(h >> 12),
		Op:        ECPOp(h >> 10 & 0x3),
		Subtype:   ECPSubtype(h & 0x3ff),
		Sequence:  binary.BigEndian.Uint16(b[2:]),
		TetherCID: p.TetherCID,
	}
	if out.Version != ECPVersion {
		return newError(name, 0, ErrInvalid, "version %d, only %d is defined", out.Version, ECPVersion)
	}
	if out.Op > ECPAck {
		return newError(name, 0, ErrUnknownSubtype, "operation type %d", out.Op)
	}
	if out.Subtype != ECPSubtypeVDP && out.Subtype != ECPSubtypePECSP {
		return newError(name, 0, ErrUnknownSubtype, "subtype %d", out.Subtype)
	}
	if out.Op == ECPRequest {
		// Copy once, so the decoded PDU never aliases the caller's
		// (typically reused) receive buffer.
		payload := append([]byte(nil), b[ecpHeaderLen:]...)
		if out.Subtype == ECPSubtypeVDP {
			d := new(VDPDU)
			if err := d.decode(payload, ecpHeaderLen, p.TetherCID); err != nil {
				return err
			}
			out.VDP = d
		} else {
			out.Payload = payload
		}
	}
	// An ACK has no payload; lldpad ignores whatever follows its header
	// (normally the zero padding of a minimum-size frame), and so do we.
	*p = out
	return nil
}

// String formats the ECPDU on one line for logs and tetherctl, for example
// "ECP v1 REQUEST VDP seq 1 [VSI Manager ID evmgr01, ASSOCIATE request ...]".
func (p *ECPDU) String() string {
	var sb strings.Builder
	sb.WriteString("ECP v")
	sb.WriteString(strconv.Itoa(int(p.Version)))
	sb.WriteByte(' ')
	sb.WriteString(p.Op.String())
	sb.WriteByte(' ')
	sb.WriteString(p.Subtype.String())
	sb.WriteString(" seq ")
	sb.WriteString(strconv.Itoa(int(p.Sequence)))
	switch {
	case p.VDP != nil:
		sb.WriteString(" [")
		for i, t := range p.VDP.TLVs {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(vdpTLVString(t))
		}
		sb.WriteByte(']')
	case len(p.Payload) > 0:
		sb.WriteString(" payload ")
		sb.WriteString(strconv.Itoa(len(p.Payload)))
		sb.WriteString(" bytes")
	}
	return sb.String()
}
