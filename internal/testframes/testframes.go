// Package testframes builds Ethernet frames with tether's own encoders
// (package wire) for tests: an LLDPDU carrying every IEEE 802.1 and tether
// TLV that tether decodes, ECPDUs with VDP requests and responses, and
// frames signed the way DESIGN.md "Wire decisions" says. Tests of tetherctl
// decode and the independent-dissector tests (tshark, tcpdump) use the same
// frames, so a field that one of them checks is checked against the same
// bytes everywhere.
//
// Every value is fixed (the signing key comes from a fixed seed), so the
// frames are byte-for-byte reproducible.
package testframes

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/internal/pcapfile"
	"github.com/tether-net/tether/wire"
)

// MinFrameLen is the shortest Ethernet frame without FCS; shorter frames
// are zero-padded, as a NIC would.
const MinFrameLen = 60

// StationMAC is the hypervisor uplink's MAC address.
func StationMAC() [6]byte { return [6]byte{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01} }

// BridgeMAC is the edge switch port's MAC address.
func BridgeMAC() [6]byte { return [6]byte{0x52, 0x54, 0x00, 0xbb, 0x00, 0x01} }

// VMMAC is the VM's vNIC MAC address, carried in VDP filters.
func VMMAC() [6]byte { return [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56} }

// VSIID is the VM's UUID, used as VSIID.
func VSIID() [16]byte {
	return [16]byte{0x6f, 0x1c, 0x2b, 0x3a, 0x11, 0x11, 0x42, 0x22, 0x83, 0x33, 0x94, 0x44, 0x55, 0x55, 0x66, 0x66}
}

// Key returns the fixed Ed25519 test key and its tether key ID (the first
// 8 bytes of SHA-256 over the public key).
func Key() (ed25519.PrivateKey, [8]byte) {
	seed := sha256.Sum256([]byte("tether testframes signing key"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	sum := sha256.Sum256(priv.Public().(ed25519.PublicKey))
	var id [8]byte
	copy(id[:], sum[:8])
	return priv, id
}

// EVB is the station's EVB TLV.
func EVB() *wire.EVB {
	return &wire.EVB{
		SGID: true, RRREQ: true, RRSTAT: 1,
		R: 3, RTE: 14, Mode: wire.EVBModeStation,
		ROLRWD: false, RWD: 20, ROLRKA: true, RKA: 22,
	}
}

// CDCP is the station's CDCP TLV with three S-channels.
func CDCP() *wire.CDCP {
	return &wire.CDCP{
		Role:   wire.CDCPRoleStation,
		SComp:  true,
		ChnCap: 167,
		Channels: []wire.SChannel{
			{SCID: 1, SVID: 1},
			{SCID: 2, SVID: 100},
			{SCID: 3, SVID: 0},
		},
	}
}

// ETSConfiguration is the station's ETS Configuration TLV.
func ETSConfiguration() *wire.ETSConfiguration {
	return &wire.ETSConfiguration{
		Willing: true, CBS: false, MaxTCs: 4,
		ETSTables: wire.ETSTables{
			PriorityTC: [8]uint8{0, 0, 1, 1, 2, 2, 3, 3},
			Bandwidth:  [8]uint8{40, 30, 20, 10, 0, 0, 0, 0},
			TSA:        [8]wire.TSA{wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAStrict, wire.TSAStrict, wire.TSAStrict, wire.TSAStrict},
		},
	}
}

// ETSRecommendation is the station's ETS Recommendation TLV.
func ETSRecommendation() *wire.ETSRecommendation {
	return &wire.ETSRecommendation{ETSTables: wire.ETSTables{
		PriorityTC: [8]uint8{0, 1, 2, 3, 4, 5, 6, 7},
		Bandwidth:  [8]uint8{10, 10, 10, 10, 10, 10, 20, 20},
		TSA:        [8]wire.TSA{wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS, wire.TSAETS},
	}}
}

// PFC is the station's PFC TLV: PFC on priorities 3 and 4.
func PFC() *wire.PFC { return &wire.PFC{Willing: true, MBC: false, Cap: 4, Enable: 0x18} }

// APP is the station's APP TLV: FCoE by EtherType, iSCSI by TCP port,
// DSCP 46.
func APP() *wire.APP {
	return &wire.APP{Entries: []wire.AppPriority{
		{Priority: 3, Sel: wire.AppSelEtherType, Protocol: 0x8906},
		{Priority: 4, Sel: wire.AppSelTCPSCTP, Protocol: 3260},
		{Priority: 5, Sel: wire.AppSelDSCP, Protocol: 46},
	}}
}

// Capability is the station's tether capability TLV.
func Capability() *wire.TetherCapability {
	_, id := Key()
	return &wire.TetherCapability{
		Version: wire.TetherProtocolVersion,
		Roles:   wire.TetherRoleHostAgent,
		KeyID:   id,
		Flags:   wire.TetherFlagRequiresSignature,
	}
}

// Inventory is the station's inventory digest TLV.
func Inventory() *wire.TetherInventory {
	return &wire.TetherInventory{
		Alg:        wire.TetherDigestSHA256,
		Digest:     sha256.Sum256([]byte("inventory")),
		VIFs:       3,
		Generation: 42,
	}
}

// Profile is the profile TLV the bridge answers an ASSOCIATE with.
func Profile() *wire.TetherProfile {
	return &wire.TetherProfile{
		VID:        100,
		Mode:       wire.TetherSTagSwitch,
		RateKbps:   1000000,
		Priority:   5,
		EtherTypes: []uint16{0x0800, 0x86dd, 0x0806},
		ACL:        "web-in",
		Name:       "web",
	}
}

// StationLLDPDU is the station's LLDPDU to the nearest customer bridge: the
// mandatory TLVs, a system name, EVB, CDCP, ETS, PFC, APP and tether's
// capability and inventory TLVs.
func StationLLDPDU() *wire.LLDPDU {
	mac := StationMAC()
	return &wire.LLDPDU{
		ChassisID: wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: mac[:]},
		PortID:    wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("eth0")},
		TTL:       120,
		TLVs: []wire.TLV{
			wire.SystemName("hv1"),
			EVB(),
			CDCP(),
			ETSConfiguration(),
			ETSRecommendation(),
			PFC(),
			APP(),
			Capability(),
			Inventory(),
		},
	}
}

// VSI returns the VM's VSI TLV in mode with status and one MAC/VID filter
// (VM MAC, PS set, PCP 5, VID vid).
func VSI(mode wire.VSIMode, status wire.VSIStatus, vid uint16) *wire.VSI {
	return &wire.VSI{
		Mode:           mode,
		Status:         status,
		VSITypeID:      4711,
		VSITypeVersion: 1,
		VSIIDFormat:    wire.VSIIDUUID,
		VSIID:          VSIID(),
		FilterFormat:   wire.FilterMACVID,
		Filters:        []wire.Filter{{PS: true, PCP: 5, VID: vid, MAC: VMMAC()}},
	}
}

// managerID is the VSI Manager ID lldpad uses: "evmgr01" padded with
// zeros.
func managerID() *wire.VSIManagerID {
	m := new(wire.VSIManagerID)
	copy(m.ID[:], "evmgr01")
	return m
}

// AssociateRequest is the station's ECPDU with a VDP ASSOCIATE request
// (M-bit set: migrate-to), sequence 7, asking for VID 0 (bridge chooses).
func AssociateRequest() *wire.ECPDU {
	return &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: 7, VDP: &wire.VDPDU{TLVs: []wire.TLV{
		managerID(),
		VSI(wire.VSIAssociate, wire.RequestStatus(true, false), 0),
	}}}
}

// AssociateResponse is the bridge's ECPDU answering AssociateRequest:
// success with VID 100 and the profile, sequence 300.
func AssociateResponse() *wire.ECPDU {
	return &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: 300, VDP: &wire.VDPDU{TLVs: []wire.TLV{
		managerID(),
		VSI(wire.VSIAssociate, wire.ResponseStatus(wire.VDPSuccess, false, false), 100),
		Profile(),
	}}}
}

// DeassociateRefused is the bridge's ECPDU refusing a DE-ASSOCIATE with
// "insufficient resources", KEEP set, sequence 301.
func DeassociateRefused() *wire.ECPDU {
	return &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: 301, VDP: &wire.VDPDU{TLVs: []wire.TLV{
		managerID(),
		VSI(wire.VSIDeAssociate, wire.ResponseStatus(wire.VDPInsufficientResources, true, false), 100),
	}}}
}

// SChannel is the S-channel the S-channel frames travel on: CDCP's
// second channel (SCID 2, S-VID 100).
func SChannel() wire.SChannel { return CDCP().Channels[1] }

// Binding is the channel binding TLV of SChannel.
func Binding() *wire.TetherChannelBinding {
	return &wire.TetherChannelBinding{SVID: SChannel().SVID}
}

// SChannelAssociateResponse is AssociateResponse as the bridge sends it on
// SChannel, sequence 302: the profile, then the channel binding, which
// the signature follows once signed.
func SChannelAssociateResponse() *wire.ECPDU {
	p := AssociateResponse()
	p.Sequence = 302
	p.VDP.TLVs = append(p.VDP.TLVs, Binding())
	return p
}

// STag returns frame with an 802.1ad S-Tag (TPID 0x88a8, PCP 0, VID vid)
// inserted after the source MAC address, as the frame of an S-channel is
// on the wire.
func STag(frame []byte, vid uint16) []byte {
	b := make([]byte, 0, len(frame)+4)
	b = append(b, frame[:12]...)
	b = append(b, 0x88, 0xa8, byte(vid>>8)&0x0f, byte(vid))
	return append(b, frame[12:]...)
}

// Ack is the bridge's ECP ACK of sequence 7.
func Ack() *wire.ECPDU {
	return &wire.ECPDU{Op: wire.ECPAck, Subtype: wire.ECPSubtypeVDP, Sequence: 7}
}

// Frame wraps pdu in an untagged Ethernet header and pads it to
// MinFrameLen.
func Frame(dst, src [6]byte, etherType uint16, pdu []byte) []byte {
	h := wire.EthernetHeader{Dst: dst, Src: src, EtherType: etherType}
	b := h.Append(make([]byte, 0, max(MinFrameLen, h.Len()+len(pdu))))
	b = append(b, pdu...)
	for len(b) < MinFrameLen {
		b = append(b, 0)
	}
	return b
}

// LLDPFrame encodes du into a frame from src to dst.
func LLDPFrame(dst, src [6]byte, du *wire.LLDPDU) ([]byte, error) {
	pdu, err := du.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding LLDPDU: %w", err)
	}
	return Frame(dst, src, wire.EtherTypeLLDP, pdu), nil
}

// ECPFrame encodes p into a frame from src to the nearest customer bridge
// address (where lldpad sends ECP).
func ECPFrame(src [6]byte, p *wire.ECPDU) ([]byte, error) {
	pdu, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding ECPDU: %w", err)
	}
	return Frame(wire.NearestCustomerBridge, src, wire.EtherTypeECP, pdu), nil
}

// Sign signs an unsigned PDU of the given kind for an untagged frame
// (dst, src, etherType) with the test key, inserting the signature TLV
// (counter counter) where SignatureInsertOffset says and re-appending End
// when the PDU had one. It returns the padded frame.
func Sign(dst, src [6]byte, etherType uint16, pdu []byte, counter uint64) ([]byte, error) {
	kind, ok := wire.PDUKindOf(etherType)
	if !ok {
		return nil, fmt.Errorf("EtherType %#04x is not signed by tether", etherType)
	}
	off, hasEnd, err := wire.SignatureInsertOffset(pdu, kind, wire.OUI{})
	if err != nil {
		return nil, fmt.Errorf("finding where the signature goes: %w", err)
	}
	priv, id := Key()
	h := wire.EthernetHeader{Dst: dst, Src: src, EtherType: etherType}
	b := h.Append(nil)
	b = append(b, pdu[:off]...)
	b = wire.AppendSignaturePrefix(b, wire.OUI{}, id, counter)
	b = append(b, ed25519.Sign(priv, b)...)
	if hasEnd {
		b = wire.AppendEnd(b)
	}
	for len(b) < MinFrameLen {
		b = append(b, 0)
	}
	return b, nil
}

// Named is one test frame with a short description.
type Named struct {
	// Name says what the frame is.
	Name string
	// Data is the Ethernet frame.
	Data []byte
}

// All returns the full set of test frames, in the order a session would
// produce them: the station's LLDPDU (plain, then signed), the ASSOCIATE
// request and its ACK, the bridge's response with profile, a refused
// DE-ASSOCIATE, a signed ASSOCIATE request, and the bridge's signed
// response on SChannel (S-Tagged, with the channel binding).
func All() ([]Named, error) {
	st, br := StationMAC(), BridgeMAC()
	ncb := wire.NearestCustomerBridge
	var out []Named
	add := func(name string, b []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, Named{Name: name, Data: b})
		return nil
	}
	b, err := LLDPFrame(ncb, st, StationLLDPDU())
	if err := add("station LLDP", b, err); err != nil {
		return nil, err
	}
	pdu, err := StationLLDPDU().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding LLDPDU: %w", err)
	}
	b, err = Sign(ncb, st, wire.EtherTypeLLDP, pdu, 1001)
	if err := add("signed station LLDP", b, err); err != nil {
		return nil, err
	}
	b, err = ECPFrame(st, AssociateRequest())
	if err := add("ASSOCIATE request", b, err); err != nil {
		return nil, err
	}
	b, err = ECPFrame(br, Ack())
	if err := add("ECP ACK", b, err); err != nil {
		return nil, err
	}
	b, err = ECPFrame(br, AssociateResponse())
	if err := add("ASSOCIATE response", b, err); err != nil {
		return nil, err
	}
	b, err = ECPFrame(br, DeassociateRefused())
	if err := add("DE-ASSOCIATE refused", b, err); err != nil {
		return nil, err
	}
	pdu, err = AssociateRequest().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding ECPDU: %w", err)
	}
	b, err = Sign(ncb, st, wire.EtherTypeECP, pdu, 1002)
	if err := add("signed ASSOCIATE request", b, err); err != nil {
		return nil, err
	}
	pdu, err = SChannelAssociateResponse().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding ECPDU: %w", err)
	}
	b, err = Sign(ncb, br, wire.EtherTypeECP, pdu, 1003)
	if err == nil {
		b = STag(b, SChannel().SVID)
	}
	if err := add("signed S-channel ASSOCIATE response", b, err); err != nil {
		return nil, err
	}
	return out, nil
}

// BaseTime is the capture time of the first frame WritePcap writes.
func BaseTime() time.Time { return time.Date(2026, 11, 24, 3, 30, 0, 0, time.UTC) }

// WritePcap writes frames to w as an Ethernet pcap file, one millisecond
// apart from BaseTime.
func WritePcap(w *pcapfile.Writer, frames [][]byte) error {
	for i, f := range frames {
		rec := pcapfile.Record{Time: BaseTime().Add(time.Duration(i) * time.Millisecond), Data: f}
		if err := w.WriteRecord(rec); err != nil {
			return err
		}
	}
	return nil
}
