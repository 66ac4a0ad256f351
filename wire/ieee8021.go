package wire

// newIEEE8021TLV returns an empty TLV of the IEEE 802.1 subtype sub, or nil
// when the subtype is not one this package decodes.
func newIEEE8021TLV(sub uint8) OrgTLV {
	switch sub {
	}
	return nil
}
