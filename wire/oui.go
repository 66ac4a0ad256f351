package wire

import "fmt"

// OUI is an IEEE Organizationally Unique Identifier or Company ID (CID), the
// three octets that open an organizationally specific TLV.
type OUI [3]byte

// String formats the OUI as "00-80-c2".
func (o OUI) String() string { return fmt.Sprintf("%02x-%02x-%02x", o[0], o[1], o[2]) }

// Well-known OUIs.
var (
	// OUIIEEE8021 is IEEE 802.1's OUI (00-80-C2), owner of the DCBX, EVB and
	// CDCP TLVs (IEEE 802.1Q-2018 Annex D).
	OUIIEEE8021 = OUI{0x00, 0x80, 0xc2}
	// OUIIEEE8023 is IEEE 802.3's OUI (00-12-0F).
	OUIIEEE8023 = OUI{0x00, 0x12, 0x0f}
	// DefaultCID is tether's Company ID. A CID has the local bit set and the
	// multicast bit clear in its first octet (the "xA" pattern of IEEE's CID
	// assignments), so it cannot clash with any OUI. Deployments may override
	// it in configuration; every encoder and decoder takes the CID from the
	// frame's TetherCID field and falls back to this value when that is zero.
	DefaultCID = OUI{0x7a, 0x7e, 0x71}
)

// cidOr returns c unless it is the zero OUI, in which case DefaultCID.
func cidOr(c OUI) OUI {
	if c == (OUI{}) {
		return DefaultCID
	}
	return c
}
