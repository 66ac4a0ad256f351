package wire

// decodeOrgTLV decodes the information string of an organizationally
// specific TLV into its typed form, or a RawOrgTLV when the OUI/subtype is
// not one this package knows. info excludes OUI and subtype; off is the
// offset of info in the top-level buffer.
func decodeOrgTLV(oui OUI, sub uint8, info []byte, off int, cid OUI) (OrgTLV, error) {
	var t OrgTLV
	switch oui {
	case OUIIEEE8021:
		t = newIEEE8021TLV(sub)
	case cidOr(cid):
		t = newTetherTLV(sub)
	}
	if t == nil {
		return &RawOrgTLV{OUI: oui, Subtype: sub, Info: info}, nil
	}
	if err := t.decodeInfo(info, off); err != nil {
		return nil, err
	}
	return t, nil
}
