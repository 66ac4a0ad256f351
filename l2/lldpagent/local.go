package lldpagent

import "github.com/tether-net/tether/wire"

// LocalInfo is the content of the local system's LLDPDU, with a field per
// TLV tether sends. Its LLDPDU method is a Config.Build.
type LocalInfo struct {
	// ChassisID and PortID are the mandatory MSAP identifier.
	ChassisID wire.ChassisID
	PortID    wire.PortID
	// PortDescription, SystemName and SystemDescription are sent when
	// not empty.
	PortDescription   string
	SystemName        string
	SystemDescription string
	// Capabilities is sent when not nil.
	Capabilities *wire.SystemCapabilities
	// ManagementAddresses are sent in order.
	ManagementAddresses []*wire.ManagementAddress
	// EVB and CDCP are the 802.1Qbg TLVs (see package evb for the values).
	EVB  *wire.EVB
	CDCP *wire.CDCP
	// ETS and PFC are the DCBX TLVs, advertised from configuration.
	ETS *wire.ETSConfiguration
	PFC *wire.PFC
	// Tether and Inventory are tether's capability and inventory digest.
	Tether    *wire.TetherCapability
	Inventory *wire.TetherInventory
	// Extra TLVs go last (before any signature the Sign hook adds).
	Extra []wire.TLV
	// TetherCID is the Company ID of tether's TLVs (zero: DefaultCID).
	TetherCID wire.OUI
}

// LLDPDU returns the LLDPDU; TTL is left for the agent to set. It never
// fails; encoding errors show when the agent marshals it.
func (l *LocalInfo) LLDPDU() (wire.LLDPDU, error) {
	du := wire.LLDPDU{ChassisID: l.ChassisID, PortID: l.PortID, TetherCID: l.TetherCID}
	add := func(t wire.TLV) { du.TLVs = append(du.TLVs, t) }
	if l.PortDescription != "" {
		add(wire.PortDescription(l.PortDescription))
	}
	if l.SystemName != "" {
		add(wire.SystemName(l.SystemName))
	}
	if l.SystemDescription != "" {
		add(wire.SystemDescription(l.SystemDescription))
	}
	if l.Capabilities != nil {
		add(l.Capabilities)
	}
	for _, m := range l.ManagementAddresses {
		add(m)
	}
	if l.EVB != nil {
		add(l.EVB)
	}
	if l.CDCP != nil {
		add(l.CDCP)
	}
	if l.ETS != nil {
		add(l.ETS)
	}
	if l.PFC != nil {
		add(l.PFC)
	}
	if l.Tether != nil {
		add(l.Tether)
	}
	if l.Inventory != nil {
		add(l.Inventory)
	}
	for _, t := range l.Extra {
		add(t)
	}
	return du, nil
}
