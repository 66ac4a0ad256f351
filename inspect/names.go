package inspect

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"unicode"
	"unicode/utf8"

	"github.com/tether-net/tether/wire"
)

// Chassis ID and Port ID subtypes that need formatting (IEEE 802.1AB-2016
// Tables 8-2 and 8-3).
const (
	chassisMAC     = 4
	chassisNetAddr = 5
	portMAC        = 3
	portNetAddr    = 4
)

// macString formats 6 bytes as "52:54:00:aa:00:01".
func macString(b []byte) string {
	if len(b) != 6 {
		return hexString(b)
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// hexString formats bytes as lowercase hex without separators.
func hexString(b []byte) string { return hex.EncodeToString(b) }

// chassisSubtypeName names a Chassis ID subtype (Table 8-2).
func chassisSubtypeName(s uint8) string {
	switch s {
	case 1:
		return "chassis_component"
	case 2:
		return "interface_alias"
	case 3:
		return "port_component"
	case 4:
		return "mac_address"
	case 5:
		return "network_address"
	case 6:
		return "interface_name"
	case 7:
		return "local"
	}
	return fmt.Sprintf("reserved(%d)", s)
}

// portSubtypeName names a Port ID subtype (Table 8-3).
func portSubtypeName(s uint8) string {
	switch s {
	case 1:
		return "interface_alias"
	case 2:
		return "port_component"
	case 3:
		return "mac_address"
	case 4:
		return "network_address"
	case 5:
		return "interface_name"
	case 6:
		return "agent_circuit_id"
	case 7:
		return "local"
	}
	return fmt.Sprintf("reserved(%d)", s)
}

// idString formats a chassis or port ID: MAC addresses and network
// addresses in their usual notation, printable text as text, anything else
// as hex.
func idString(sub, macSub, netSub uint8, id []byte) string {
	switch {
	case sub == macSub && len(id) == 6:
		return macString(id)
	case sub == netSub && len(id) == 5 && id[0] == wire.AddrFamilyIPv4:
		return netip.AddrFrom4([4]byte(id[1:])).String()
	case sub == netSub && len(id) == 17 && id[0] == wire.AddrFamilyIPv6:
		return netip.AddrFrom16([16]byte(id[1:])).String()
	case printable(id):
		return string(id)
	}
	return hexString(id)
}

// printable reports whether b is non-empty UTF-8 text without control
// characters.
func printable(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// sysCapNames lists the capability bits set in m (Table 8-4).
func sysCapNames(m uint16) []string {
	names := [...]string{"other", "repeater", "bridge", "wlan_ap", "router", "telephone",
		"docsis", "station_only", "c_vlan", "s_vlan", "tpmr"}
	out := []string{}
	for i := 0; i < 16; i++ {
		if m&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			out = append(out, names[i])
		} else {
			out = append(out, fmt.Sprintf("bit%d", i))
		}
	}
	return out
}

// addrFamilyName names a management address family.
func addrFamilyName(f uint8) string {
	switch f {
	case wire.AddrFamilyIPv4:
		return "ipv4"
	case wire.AddrFamilyIPv6:
		return "ipv6"
	case wire.AddrFamily802:
		return "mac"
	}
	return fmt.Sprintf("family(%d)", f)
}

// ifSubtypeName names an interface numbering subtype (Table 8-5).
func ifSubtypeName(s uint8) string {
	switch s {
	case wire.IfSubtypeUnknown:
		return "unknown"
	case wire.IfSubtypeIfIndex:
		return "ifindex"
	case wire.IfSubtypeSystemPort:
		return "system_port"
	}
	return fmt.Sprintf("reserved(%d)", s)
}

// evbModeName names an EVB mode.
func evbModeName(m wire.EVBMode) string {
	switch m {
	case wire.EVBModeNotSupported:
		return "not_supported"
	case wire.EVBModeBridge:
		return "bridge"
	case wire.EVBModeStation:
		return "station"
	}
	return fmt.Sprintf("reserved(%d)", uint8(m))
}

// tsaName names a transmission selection algorithm (802.1Q Table 8-6).
func tsaName(t wire.TSA) string {
	switch t {
	case wire.TSAStrict:
		return "strict"
	case wire.TSACreditBased:
		return "cbs"
	case wire.TSAETS:
		return "ets"
	case wire.TSAVendor:
		return "vendor"
	}
	return fmt.Sprintf("reserved(%d)", uint8(t))
}

// appSelName names an APP selector (802.1Q Table D-9).
func appSelName(s wire.AppSelector) string {
	switch s {
	case wire.AppSelEtherType:
		return "ethertype"
	case wire.AppSelTCPSCTP:
		return "tcp_sctp"
	case wire.AppSelUDPDCCP:
		return "udp_dccp"
	case wire.AppSelTCPSCTPUDPDCCP:
		return "tcp_sctp_udp_dccp"
	case wire.AppSelDSCP:
		return "dscp"
	}
	return fmt.Sprintf("reserved(%d)", uint8(s))
}

// tetherRoleNames lists the roles set in r.
func tetherRoleNames(r wire.TetherRoles) []string {
	out := []string{}
	for i := 0; i < 8; i++ {
		bit := wire.TetherRoles(1 << i)
		if r&bit == 0 {
			continue
		}
		switch bit {
		case wire.TetherRoleHostAgent:
			out = append(out, "host_agent")
		case wire.TetherRoleSwitchAgent:
			out = append(out, "switch_agent")
		case wire.TetherRolePolicy:
			out = append(out, "policy")
		default:
			out = append(out, fmt.Sprintf("bit%d", i))
		}
	}
	return out
}

// tetherFlagNames lists the capability flags set in f.
func tetherFlagNames(f wire.TetherFlags) []string {
	out := []string{}
	for i := 0; i < 8; i++ {
		bit := wire.TetherFlags(1 << i)
		if f&bit == 0 {
			continue
		}
		if bit == wire.TetherFlagRequiresSignature {
			out = append(out, "requires_signature")
		} else {
			out = append(out, fmt.Sprintf("bit%d", i))
		}
	}
	return out
}

// digestAlgName names an inventory digest algorithm.
func digestAlgName(a wire.TetherDigestAlg) string {
	if a == wire.TetherDigestSHA256 {
		return "sha256"
	}
	return fmt.Sprintf("alg(%d)", uint8(a))
}

// stagModeName names a profile's S-Tag mode.
func stagModeName(m wire.TetherSTagMode) string {
	switch m {
	case wire.TetherSTagSwitch:
		return "switch"
	case wire.TetherSTagIOExtender:
		return "io_extender"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ecpOpName names an ECP operation type.
func ecpOpName(o wire.ECPOp) string {
	switch o {
	case wire.ECPRequest:
		return "request"
	case wire.ECPAck:
		return "ack"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ecpSubtypeName names an ECP subtype.
func ecpSubtypeName(s wire.ECPSubtype) string {
	switch s {
	case wire.ECPSubtypeVDP:
		return "vdp"
	case wire.ECPSubtypePECSP:
		return "pe_csp"
	}
	return fmt.Sprintf("subtype(%d)", uint16(s))
}

// vsiModeKind names a VSI TLV type in lower_snake_case.
func vsiModeKind(m wire.VSIMode) string {
	switch m {
	case wire.VSIPreAssociate:
		return "pre_associate"
	case wire.VSIPreAssociateRR:
		return "pre_associate_rr"
	case wire.VSIAssociate:
		return "associate"
	case wire.VSIDeAssociate:
		return "de_associate"
	}
	return fmt.Sprintf("mode%d", uint8(m))
}

// vsiidFormatName names a VSIID format.
func vsiidFormatName(f wire.VSIIDFormat) string {
	switch f {
	case wire.VSIIDIPv4:
		return "ipv4"
	case wire.VSIIDIPv6:
		return "ipv6"
	case wire.VSIIDMAC:
		return "mac"
	case wire.VSIIDLocal:
		return "local"
	case wire.VSIIDUUID:
		return "uuid"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// filterFormatName names a VDP filter information format.
func filterFormatName(f wire.FilterFormat) string {
	switch f {
	case wire.FilterVID:
		return "vid"
	case wire.FilterMACVID:
		return "mac_vid"
	case wire.FilterGroupVID:
		return "group_vid"
	case wire.FilterGroupMACVID:
		return "group_mac_vid"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// orgName names an organizationally specific TLV this package shows raw.
func orgName(oui wire.OUI, sub uint8) string {
	switch oui {
	case wire.OUIIEEE8021:
		switch sub {
		case wire.Subtype8021PortVLANID:
			return "IEEE 802.1 Port VLAN ID"
		case wire.Subtype8021PortProtocolVLANID:
			return "IEEE 802.1 Port And Protocol VLAN ID"
		case wire.Subtype8021VLANName:
			return "IEEE 802.1 VLAN Name"
		case wire.Subtype8021ProtocolIdentity:
			return "IEEE 802.1 Protocol Identity"
		case wire.Subtype8021CongestionNotification:
			return "IEEE 802.1 Congestion Notification"
		}
		return fmt.Sprintf("IEEE 802.1 subtype %d", sub)
	case wire.OUIIEEE8023:
		switch sub {
		case 1:
			return "IEEE 802.3 MAC/PHY Configuration/Status"
		case 2:
			return "IEEE 802.3 Power via MDI"
		case 3:
			return "IEEE 802.3 Link Aggregation"
		case 4:
			return "IEEE 802.3 Maximum Frame Size"
		}
		return fmt.Sprintf("IEEE 802.3 subtype %d", sub)
	}
	return fmt.Sprintf("org %s subtype %d", oui, sub)
}
