package vdp

import (
	"fmt"
	"slices"

	"github.com/tether-net/tether/wire"
)

// Regrant replaces what the bridge granted VSI k: its filters (the same
// MACs in the same order, with new VIDs) and its profile. The bridge sends
// nothing; the station hears it in the answer to its next request: a
// keep-alive that repeats the old VIDs no longer matches the grant and
// goes to the Decider, one that matches is answered with the new profile.
// tether-switchd calls it when a profile changes under a live association.
// It fails with ErrNotAssociated when the bridge holds no such VSI, and
// when a request of the VSI is being decided (that decision answers with
// the new profile anyway).
func (b *Bridge) Regrant(k Key, filters []wire.Filter, profile *wire.TetherProfile) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.vsis[k]
	switch {
	case e == nil || e.state == StateNone:
		return fmt.Errorf("vdp %s: regrant %s: %w", b.name, k, ErrNotAssociated)
	case e.busy != 0:
		return fmt.Errorf("vdp %s: regrant %s: a request is being decided", b.name, k)
	case len(filters) != len(e.vsi.Filters):
		return fmt.Errorf("vdp %s: regrant %s: %d filters, the grant has %d", b.name, k, len(filters), len(e.vsi.Filters))
	}
	for i := range filters {
		if filters[i].MAC != e.vsi.Filters[i].MAC || filters[i].GroupID != e.vsi.Filters[i].GroupID {
			return fmt.Errorf("vdp %s: regrant %s: filter %d names another MAC or group than the grant", b.name, k, i)
		}
	}
	e.vsi.Filters = slices.Clone(filters)
	if profile != nil {
		p := *profile
		e.profile = &p
	} else {
		e.profile = nil
	}
	return nil
}
