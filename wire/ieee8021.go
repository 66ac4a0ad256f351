package wire

// IEEE 802.1 organizationally specific TLV subtypes under OUIIEEE8021
// (IEEE 802.1Q-2018 Table D-1). The ones this package decodes into typed
// values are ETS Configuration, ETS Recommendation, PFC, APP, EVB and CDCP;
// the others decode to *RawOrgTLV and survive a round trip unchanged.
const (
	// Subtype8021PortVLANID is the Port VLAN ID TLV (D.2.1), carried raw.
	Subtype8021PortVLANID uint8 = 0x01
	// Subtype8021PortProtocolVLANID is the Port And Protocol VLAN ID TLV
	// (D.2.2), carried raw.
	Subtype8021PortProtocolVLANID uint8 = 0x02
	// Subtype8021VLANName is the VLAN Name TLV (D.2.3), carried raw.
	Subtype8021VLANName uint8 = 0x03
	// Subtype8021ProtocolIdentity is the Protocol Identity TLV (D.2.4),
	// carried raw.
	Subtype8021ProtocolIdentity uint8 = 0x04
	// Subtype8021CongestionNotification is the Congestion Notification TLV
	// (D.2.7), carried raw.
	Subtype8021CongestionNotification uint8 = 0x08
	// Subtype8021ETSConfiguration is the ETS Configuration TLV (D.2.8),
	// decoded as *ETSConfiguration.
	Subtype8021ETSConfiguration uint8 = 0x09
	// Subtype8021ETSRecommendation is the ETS Recommendation TLV (D.2.9),
	// decoded as *ETSRecommendation.
	Subtype8021ETSRecommendation uint8 = 0x0a
	// Subtype8021PFC is the Priority-based Flow Control Configuration TLV
	// (D.2.10), decoded as *PFC.
	Subtype8021PFC uint8 = 0x0b
	// Subtype8021APP is the Application Priority TLV (D.2.11), decoded as
	// *APP.
	Subtype8021APP uint8 = 0x0c
	// Subtype8021EVB is the EVB TLV (D.2.12), decoded as *EVB.
	Subtype8021EVB uint8 = 0x0d
	// Subtype8021CDCP is the CDCP TLV (D.2.13), decoded as *CDCP.
	Subtype8021CDCP uint8 = 0x0e
)

// newIEEE8021TLV returns an empty TLV of the IEEE 802.1 subtype sub, or nil
// when the subtype is not one this package decodes.
func newIEEE8021TLV(sub uint8) OrgTLV {
	switch sub {
	case Subtype8021ETSConfiguration:
		return new(ETSConfiguration)
	case Subtype8021ETSRecommendation:
		return new(ETSRecommendation)
	case Subtype8021PFC:
		return new(PFC)
	case Subtype8021APP:
		return new(APP)
	case Subtype8021EVB:
		return new(EVB)
	case Subtype8021CDCP:
		return new(CDCP)
	}
	return nil
}

// ieeeFixedInfo checks that an IEEE 802.1 TLV's information string (after
// OUI and subtype) has exactly want bytes.
func ieeeFixedInfo(name string, b []byte, off, want int) error {
	if len(b) != want {
		return newError(name, off, ErrLength, "information string is %d bytes, want %d (TLV length %d)", len(b), want, want+4)
	}
	return nil
}

// ieeeFits reports a field value that does not fit in its bit width.
func ieeeFits(name string, off int, field string, v, bits int) error {
	if v < 0 || v >= 1<<bits {
		unit := "bits"
		if bits == 1 {
			unit = "bit"
		}
		return newError(name, off, ErrInvalid, "%s %d does not fit in %d %s", field, v, bits, unit)
	}
	return nil
}

// ieeeFlag returns mask when v is true, else 0.
func ieeeFlag(v bool, mask byte) byte {
	if v {
		return mask
	}
	return 0
}
