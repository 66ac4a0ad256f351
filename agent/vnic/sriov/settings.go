package sriov

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// VLAN tag protocols a VF's port VLAN may use (IFLA_VF_VLAN_INFO
// vlan_proto, host order).
const (
	ProtoDot1Q  uint16 = 0x8100 // IEEE 802.1Q C-Tag
	ProtoDot1AD uint16 = 0x88a8 // IEEE 802.1ad S-Tag
)

// LinkState is a VF's administrative link state (IFLA_VF_LINK_STATE).
type LinkState uint32

// The link states of include/uapi/linux/if_link.h.
const (
	LinkStateAuto    LinkState = 0 // follow the PF's link
	LinkStateEnable  LinkState = 1 // always up
	LinkStateDisable LinkState = 2 // always down
)

// String returns the name ip-link(8) uses for s.
func (s LinkState) String() string {
	switch s {
	case LinkStateAuto:
		return "auto"
	case LinkStateEnable:
		return "enable"
	case LinkStateDisable:
		return "disable"
	}
	return "linkstate(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// MarshalText encodes s by name.
func (s LinkState) MarshalText() ([]byte, error) {
	if s > LinkStateDisable {
		return nil, fmt.Errorf("link state %d: not auto, enable or disable", uint32(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText decodes a name MarshalText wrote.
func (s *LinkState) UnmarshalText(b []byte) error {
	switch string(b) {
	case "auto":
		*s = LinkStateAuto
	case "enable":
		*s = LinkStateEnable
	case "disable":
		*s = LinkStateDisable
	default:
		return fmt.Errorf("link state %q: not auto, enable or disable", b)
	}
	return nil
}

// Settings are everything tether sets on a VF through its PF, and what it
// saves of the VF before the first change and restores on release. Rates
// are in Mbit/s, 0 meaning no limit.
type Settings struct {
	// MAC is the VF's MAC address; all zeros means unset (what most
	// drivers, netdevsim included, report for a fresh VF).
	MAC net.HardwareAddr
	// VLAN is the port VLAN the NIC inserts and strips (0: none).
	VLAN uint16
	// QoS is the 802.1p priority of the port VLAN's tag (0-7).
	QoS uint8
	// VLANProto is ProtoDot1Q or ProtoDot1AD; 0 means ProtoDot1Q.
	VLANProto uint16
	// SpoofCheck drops frames the VF sends with another source MAC.
	SpoofCheck bool
	// Trust lets the VF change its MAC and enter promiscuous mode.
	Trust bool
	// LinkState is the VF's administrative link state.
	LinkState LinkState
	// MinTxRate and MaxTxRate bound the VF's transmit rate (Mbit/s).
	MinTxRate uint32
	MaxTxRate uint32
}

// Errors Validate returns (wrapped with the offending value).
var (
	ErrBadMAC       = errors.New("sriov: MAC must be a 6-byte unicast address")
	ErrBadVLAN      = errors.New("sriov: VLAN must be 0-4094")
	ErrBadQoS       = errors.New("sriov: QoS must be 0-7")
	ErrBadVLANProto = errors.New("sriov: VLAN protocol must be 0x8100 (802.1Q) or 0x88a8 (802.1ad)")
	ErrBadLinkState = errors.New("sriov: link state must be auto, enable or disable")
	ErrBadRate      = errors.New("sriov: min tx rate above max tx rate")
)

// Validate checks s as a desired configuration: a non-zero unicast MAC,
// VLAN, QoS, protocol, link state and rates in range.
func (s Settings) Validate() error {
	if len(s.MAC) != 6 || s.MAC[0]&1 == 1 || isZeroMAC(s.MAC) {
		return fmt.Errorf("%w: %q", ErrBadMAC, s.MAC.String())
	}
	return s.validateRest(4094)
}

// validateOriginal checks s as read from a kernel: as Validate, but the
// all-zero "unset" MAC and VLAN 4095 (reserved, but a kernel may show it)
// are allowed.
func (s Settings) validateOriginal() error {
	if len(s.MAC) != 6 || s.MAC[0]&1 == 1 {
		return fmt.Errorf("%w: %q", ErrBadMAC, s.MAC.String())
	}
	return s.validateRest(4095)
}

func (s Settings) validateRest(maxVLAN uint16) error {
	if s.VLAN > maxVLAN {
		return fmt.Errorf("%w: %d", ErrBadVLAN, s.VLAN)
	}
	if s.QoS > 7 {
		return fmt.Errorf("%w: %d", ErrBadQoS, s.QoS)
	}
	if p := s.normalize().VLANProto; p != ProtoDot1Q && p != ProtoDot1AD {
		return fmt.Errorf("%w: %#04x", ErrBadVLANProto, s.VLANProto)
	}
	if s.LinkState > LinkStateDisable {
		return fmt.Errorf("%w: %d", ErrBadLinkState, uint32(s.LinkState))
	}
	if s.MaxTxRate != 0 && s.MinTxRate > s.MaxTxRate {
		return fmt.Errorf("%w: min %d, max %d", ErrBadRate, s.MinTxRate, s.MaxTxRate)
	}
	return nil
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

// normalize returns s in the form comparisons use: no VLAN means no
// protocol, so an untagged VF always carries 802.1Q (the kernel's default,
// which is also what restoring "no VLAN" writes).
func (s Settings) normalize() Settings {
	if s.VLANProto == 0 || (s.VLAN == 0 && s.QoS == 0) {
		s.VLANProto = ProtoDot1Q
	}
	return s
}

// Equal reports whether s and o configure a VF the same way (an untagged
// VF's protocol does not matter).
func (s Settings) Equal(o Settings) bool {
	return len(s.diff(o)) == 0
}

// field names one group of settings that one netlink request sets.
type field int

const (
	fieldMAC field = iota
	fieldVLAN
	fieldRate
	fieldSpoofCheck
	fieldTrust
	fieldLinkState
)

func (f field) String() string {
	return [...]string{"mac", "vlan", "rate", "spoofchk", "trust", "link state"}[f]
}

// diff lists the groups of settings in which want differs from s, in the
// order they are applied.
func (s Settings) diff(want Settings) []field {
	a, b := s.normalize(), want.normalize()
	var fs []field
	if !bytes.Equal(a.MAC, b.MAC) {
		fs = append(fs, fieldMAC)
	}
	if a.VLAN != b.VLAN || a.QoS != b.QoS || a.VLANProto != b.VLANProto {
		fs = append(fs, fieldVLAN)
	}
	if a.MinTxRate != b.MinTxRate || a.MaxTxRate != b.MaxTxRate {
		fs = append(fs, fieldRate)
	}
	if a.SpoofCheck != b.SpoofCheck {
		fs = append(fs, fieldSpoofCheck)
	}
	if a.Trust != b.Trust {
		fs = append(fs, fieldTrust)
	}
	if a.LinkState != b.LinkState {
		fs = append(fs, fieldLinkState)
	}
	return fs
}

// String renders s the way ip-link(8) shows a VF.
func (s Settings) String() string {
	n := s.normalize()
	v := fmt.Sprintf("mac %s", s.MAC)
	if n.VLAN != 0 || n.QoS != 0 {
		v += fmt.Sprintf(", vlan %d, qos %d, vlan protocol %#04x", n.VLAN, n.QoS, n.VLANProto)
	}
	v += fmt.Sprintf(", spoof checking %s, link-state %s, trust %s", onOff(s.SpoofCheck), s.LinkState, onOff(s.Trust))
	if s.MinTxRate != 0 || s.MaxTxRate != 0 {
		v += fmt.Sprintf(", min_tx_rate %dMbps, max_tx_rate %dMbps", s.MinTxRate, s.MaxTxRate)
	}
	return v
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
