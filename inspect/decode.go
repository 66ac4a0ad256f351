package inspect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tether-net/tether/wire"
)

// EtherTypes of VLAN tags that Decode looks through.
const (
	etherTypeCTag = 0x8100
	etherTypeSTag = 0x88a8
	// maxTags bounds how many stacked tags are skipped.
	maxTags = 2
)

// Options tune Decode.
type Options struct {
	// TetherCID is the Company ID of tether's organizationally specific
	// TLVs; zero means wire.DefaultCID.
	TetherCID wire.OUI
}

// Decode decodes one captured Ethernet frame. It returns nil when the frame
// is neither LLDP nor ECP (after up to two 802.1ad/802.1Q tags), and
// otherwise a Frame whose Error is set when the payload is malformed.
// number and ts are the frame's position and capture time. Decode never
// panics and does not keep data.
func Decode(number int, ts time.Time, data []byte, opt Options) *Frame {
	if len(data) < 14 {
		return nil // not even an Ethernet header: not ours to judge
	}
	f := &Frame{
		Number: number,
		Time:   ts.UTC(),
		Length: len(data),
		Dst:    macString(data[0:6]),
		Src:    macString(data[6:12]),
	}
	f.DstName = destinationName([6]byte(data[0:6]))
	et := binary.BigEndian.Uint16(data[12:14])
	off := 14
	for i := 0; i < maxTags && (et == etherTypeSTag || et == etherTypeCTag); i++ {
		if len(data) < off+4 {
			return nil
		}
		tci := binary.BigEndian.Uint16(data[off : off+2])
		kind := "c-tag"
		if et == etherTypeSTag {
			kind = "s-tag"
		}
		f.Tags = append(f.Tags, Tag{
			TPID: fmt.Sprintf("0x%04x", et),
			Kind: kind,
			VID:  tci & 0x0fff,
			PCP:  uint8(tci >> 13),
			DEI:  tci&0x1000 != 0,
		})
		et = binary.BigEndian.Uint16(data[off+2 : off+4])
		off += 4
	}
	f.EtherType = fmt.Sprintf("0x%04x", et)
	payload := data[off:]
	var err error
	switch et {
	case wire.EtherTypeLLDP:
		f.Protocol = ProtocolLLDP
		f.TLVs, err = decodeLLDP(payload, opt)
	case wire.EtherTypeECP:
		f.Protocol = ProtocolECP
		f.TLVs, err = decodeECP(payload, opt)
	default:
		return nil
	}
	if f.TLVs == nil {
		f.TLVs = []TLV{}
	}
	if err != nil {
		f.Error = frameError(err, off)
	}
	return f
}

// frameError formats a decoding error; wire errors count offsets from the
// start of the payload, so the frame offset is added for tshark users.
func frameError(err error, payloadOff int) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return fmt.Sprintf("%v (frame offset %d)", err, payloadOff+we.Offset)
	}
	return err.Error()
}

// destinationName names the LLDP group addresses (IEEE 802.1AB-2016 Table
// 7-1).
func destinationName(dst [6]byte) string {
	switch dst {
	case wire.NearestBridge:
		return "nearest-bridge"
	case wire.NearestNonTPMRBridge:
		return "nearest-non-tpmr-bridge"
	case wire.NearestCustomerBridge:
		return "nearest-customer-bridge"
	}
	return ""
}

// decodeLLDP decodes an LLDPDU into nodes: the three mandatory TLVs, then
// the optional ones in wire order (End is not shown).
func decodeLLDP(b []byte, opt Options) ([]TLV, error) {
	du := wire.LLDPDU{TetherCID: opt.TetherCID}
	if err := du.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	out := make([]TLV, 0, 3+len(du.TLVs))
	out = append(out,
		TLV{Kind: "chassis_id", Name: "Chassis ID", Fields: Fields{
			{"subtype", chassisSubtypeName(uint8(du.ChassisID.Subtype))},
			{"id", idString(uint8(du.ChassisID.Subtype), chassisMAC, chassisNetAddr, du.ChassisID.ID)},
		}},
		TLV{Kind: "port_id", Name: "Port ID", Fields: Fields{
			{"subtype", portSubtypeName(uint8(du.PortID.Subtype))},
			{"id", idString(uint8(du.PortID.Subtype), portMAC, portNetAddr, du.PortID.ID)},
		}},
		TLV{Kind: "ttl", Name: "TTL", Fields: Fields{{"seconds", int(du.TTL)}}},
	)
	for _, t := range du.TLVs {
		out = append(out, tlvNode(t))
	}
	return out, nil
}

// decodeECP decodes an ECPDU: the ECP header as the first node, then the
// VDP TLVs of a request.
func decodeECP(b []byte, opt Options) ([]TLV, error) {
	p := wire.ECPDU{TetherCID: opt.TetherCID}
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	out := []TLV{{Kind: "ecp", Name: "ECP", Fields: Fields{
		{"version", int(p.Version)},
		{"op", ecpOpName(p.Op)},
		{"subtype", ecpSubtypeName(p.Subtype)},
		{"sequence", int(p.Sequence)},
	}}}
	switch {
	case p.VDP != nil:
		for _, t := range p.VDP.TLVs {
			out = append(out, tlvNode(t))
		}
	case len(p.Payload) > 0:
		out = append(out, TLV{Kind: "ecp_payload", Name: "ECP payload", Fields: Fields{
			{"length", len(p.Payload)},
			{"data", hexString(p.Payload)},
		}})
	}
	return out, nil
}

// tlvNode turns one decoded wire TLV (LLDP optional TLV or VDP TLV) into a
// node.
func tlvNode(t wire.TLV) TLV {
	switch t := t.(type) {
	case wire.PortDescription:
		return TLV{Kind: "port_description", Name: "Port Description", Fields: Fields{{"description", string(t)}}}
	case wire.SystemName:
		return TLV{Kind: "system_name", Name: "System Name", Fields: Fields{{"name", string(t)}}}
	case wire.SystemDescription:
		return TLV{Kind: "system_description", Name: "System Description", Fields: Fields{{"description", string(t)}}}
	case *wire.SystemCapabilities:
		return TLV{Kind: "system_capabilities", Name: "System Capabilities", Fields: Fields{
			{"system", sysCapNames(t.System)},
			{"enabled", sysCapNames(t.Enabled)},
		}}
	case *wire.ManagementAddress:
		return mgmtAddrNode(t)
	case *wire.EVB:
		return evbNode(t)
	case *wire.CDCP:
		return cdcpNode(t)
	case *wire.ETSConfiguration:
		return TLV{Kind: "ets_configuration", Name: "ETS Configuration", Fields: append(Fields{
			{"willing", t.Willing},
			{"cbs", t.CBS},
			{"max_tcs", int(t.MaxTCs)},
		}, etsTableFields(&t.ETSTables)...)}
	case *wire.ETSRecommendation:
		return TLV{Kind: "ets_recommendation", Name: "ETS Recommendation", Fields: etsTableFields(&t.ETSTables)}
	case *wire.PFC:
		return pfcNode(t)
	case *wire.APP:
		return appNode(t)
	case *wire.TetherCapability:
		return TLV{Kind: "tether_capability", Name: "tether Capability", Fields: Fields{
			{"version", int(t.Version)},
			{"roles", tetherRoleNames(t.Roles)},
			{"key_id", hexString(t.KeyID[:])},
			{"flags", tetherFlagNames(t.Flags)},
		}}
	case *wire.TetherInventory:
		return TLV{Kind: "tether_inventory", Name: "tether Inventory Digest", Fields: Fields{
			{"alg", digestAlgName(t.Alg)},
			{"digest", hexString(t.Digest[:])},
			{"vifs", t.VIFs},
			{"generation", t.Generation},
		}}
	case *wire.TetherProfile:
		return profileNode(t)
	case *wire.TetherSignature:
		return TLV{Kind: "tether_signature", Name: "tether Signature", Fields: Fields{
			{"key_id", hexString(t.KeyID[:])},
			{"counter", t.Counter},
			{"signature", hexString(t.Sig[:])},
		}}
	case *wire.TetherChannelBinding:
		return TLV{Kind: "tether_channel_binding", Name: "tether Channel Binding", Fields: Fields{
			{"svid", int(t.SVID)},
		}}
	case *wire.VSIManagerID:
		return TLV{Kind: "vdp_manager_id", Name: "VDP VSI Manager ID", Fields: Fields{
			{"id", t.String()},
			{"raw", hexString(t.ID[:])},
		}}
	case *wire.VSI:
		return vsiNode(t)
	case *wire.RawOrgTLV:
		return TLV{Kind: "org", Name: orgName(t.OUI, t.Subtype), Fields: Fields{
			{"oui", t.OUI.String()},
			{"subtype", int(t.Subtype)},
			{"length", len(t.Info)},
			{"info", hexString(t.Info)},
		}}
	case *wire.RawTLV:
		return TLV{Kind: "unknown", Name: fmt.Sprintf("TLV type %d", t.Type), Fields: Fields{
			{"type", int(t.Type)},
			{"length", len(t.Value)},
			{"value", hexString(t.Value)},
		}}
	}
	// A TLV type added to wire after this switch was written.
	return TLV{Kind: "unknown", Name: fmt.Sprintf("%T", t), Fields: Fields{}}
}

func evbNode(t *wire.EVB) TLV {
	return TLV{Kind: "evb", Name: "EVB", Fields: Fields{
		{"bgid", t.BGID},
		{"rrcap", t.RRCAP},
		{"rrctr", t.RRCTR},
		{"sgid", t.SGID},
		{"rrreq", t.RRREQ},
		{"rrstat", int(t.RRSTAT)},
		{"r", int(t.R)},
		{"rte", int(t.RTE)},
		{"mode", evbModeName(t.Mode)},
		{"rol_rwd", t.ROLRWD},
		{"rwd", int(t.RWD)},
		{"rol_rka", t.ROLRKA},
		{"rka", int(t.RKA)},
	}}
}

func cdcpNode(t *wire.CDCP) TLV {
	chans := make([]Fields, len(t.Channels))
	for i, c := range t.Channels {
		chans[i] = Fields{{"scid", int(c.SCID)}, {"svid", int(c.SVID)}}
	}
	return TLV{Kind: "cdcp", Name: "CDCP", Fields: Fields{
		{"role", t.Role.String()},
		{"scomp", t.SComp},
		{"chncap", int(t.ChnCap)},
		{"channels", chans},
	}}
}

func etsTableFields(t *wire.ETSTables) Fields {
	prio := make([]int, len(t.PriorityTC))
	for i, v := range t.PriorityTC {
		prio[i] = int(v)
	}
	bw := make([]int, len(t.Bandwidth))
	for i, v := range t.Bandwidth {
		bw[i] = int(v)
	}
	tsa := make([]string, len(t.TSA))
	for i, v := range t.TSA {
		tsa[i] = tsaName(v)
	}
	return Fields{{"priority_tc", prio}, {"tc_bandwidth", bw}, {"tsa", tsa}}
}

func pfcNode(t *wire.PFC) TLV {
	enabled := []int{}
	for p := 0; p < 8; p++ {
		if t.Enable&(1<<p) != 0 {
			enabled = append(enabled, p)
		}
	}
	return TLV{Kind: "pfc", Name: "PFC", Fields: Fields{
		{"willing", t.Willing},
		{"mbc", t.MBC},
		{"cap", int(t.Cap)},
		{"enabled", enabled},
	}}
}

func appNode(t *wire.APP) TLV {
	entries := make([]Fields, len(t.Entries))
	for i, e := range t.Entries {
		entries[i] = Fields{
			{"priority", int(e.Priority)},
			{"sel", appSelName(e.Sel)},
			{"protocol", int(e.Protocol)},
		}
	}
	return TLV{Kind: "app", Name: "APP", Fields: Fields{{"entries", entries}}}
}

func profileNode(t *wire.TetherProfile) TLV {
	ets := make([]string, len(t.EtherTypes))
	for i, e := range t.EtherTypes {
		ets[i] = fmt.Sprintf("0x%04x", e)
	}
	return TLV{Kind: "tether_profile", Name: "tether Profile", Fields: Fields{
		{"vid", int(t.VID)},
		{"mode", stagModeName(t.Mode)},
		{"rate_kbps", t.RateKbps},
		{"priority", int(t.Priority)},
		{"ethertypes", ets},
		{"acl", t.ACL},
		{"name", t.Name},
	}}
}

func mgmtAddrNode(t *wire.ManagementAddress) TLV {
	addr := hexString(t.Address)
	if ip, ok := t.IP(); ok {
		addr = ip.String()
	} else if t.Subtype == wire.AddrFamily802 && len(t.Address) == 6 {
		addr = macString(t.Address)
	}
	return TLV{Kind: "management_address", Name: "Management Address", Fields: Fields{
		{"family", addrFamilyName(t.Subtype)},
		{"address", addr},
		{"if_subtype", ifSubtypeName(t.IfSubtype)},
		{"if_number", t.IfNumber},
		{"oid", hexString(t.OID)},
	}}
}

func vsiNode(v *wire.VSI) TLV {
	filters := make([]Fields, len(v.Filters))
	for i, f := range v.Filters {
		var fs Fields
		if v.FilterFormat == wire.FilterGroupVID || v.FilterFormat == wire.FilterGroupMACVID {
			fs.add("group_id", f.GroupID)
		}
		if v.FilterFormat == wire.FilterMACVID || v.FilterFormat == wire.FilterGroupMACVID {
			fs.add("mac", macString(f.MAC[:]))
		}
		fs.add("vid", int(f.VID))
		fs.add("pcp", int(f.PCP))
		fs.add("ps", f.PS)
		filters[i] = fs
	}
	direction := "request"
	if v.IsResponse() {
		direction = "response"
	}
	return TLV{Kind: "vdp_" + vsiModeKind(v.Mode), Name: "VDP " + v.Mode.String(), Fields: Fields{
		{"mode", vsiModeKind(v.Mode)},
		{"direction", direction},
		{"status", fmt.Sprintf("0x%02x", uint8(v.Status))},
		{"m", v.Status.M()},
		{"s", v.Status.S()},
		{"keep", v.Status.Keep()},
		{"hard", v.Status.Hard()},
		{"error_code", int(v.Code())},
		{"error", v.Code().String()},
		{"type_id", int(v.VSITypeID)},
		{"type_version", int(v.VSITypeVersion)},
		{"vsiid_format", vsiidFormatName(v.VSIIDFormat)},
		{"vsiid", v.VSIIDString()},
		{"filter_format", filterFormatName(v.FilterFormat)},
		{"filters", filters},
	}}
}
