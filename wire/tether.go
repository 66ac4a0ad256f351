package wire

// newTetherTLV returns an empty tether TLV of subtype sub, or nil when the
// subtype is not one this package decodes.
func newTetherTLV(sub uint8) OrgTLV {
	switch sub {
	}
	return nil
}
