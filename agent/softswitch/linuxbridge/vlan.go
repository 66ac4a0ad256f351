package linuxbridge

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// vlanEntry is one VLAN of a bridge port: `bridge vlan` with its flags.
type vlanEntry struct {
	pvid     bool
	untagged bool
}

// vlanSet is a bridge port's VLANs by VID.
type vlanSet map[uint16]vlanEntry

// String renders the set as `bridge vlan show` would, sorted.
func (v vlanSet) String() string {
	if len(v) == 0 {
		return "none"
	}
	var parts []string
	for _, vid := range slices.Sorted(maps.Keys(v)) {
		s := fmt.Sprint(vid)
		if v[vid].pvid {
			s += " pvid"
		}
		if v[vid].untagged {
			s += " untagged"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// observedVLANs converts a port's entries from BridgeVlanList.
func observedVLANs(infos []*nl.BridgeVlanInfo) vlanSet {
	out := vlanSet{}
	for _, i := range infos {
		out[i.Vid] = vlanEntry{pvid: i.PortVID(), untagged: i.EngressUntag()}
	}
	return out
}

// ensureVLANs makes link's VLANs exactly want: missing or wrongly flagged
// entries are added first (the PVID moves with the add), extra ones
// deleted after.
func ensureVLANs(h *netlink.Handle, link netlink.Link, have, want vlanSet) error {
	name := link.Attrs().Name
	for _, vid := range slices.Sorted(maps.Keys(want)) {
		e := want[vid]
		if got, ok := have[vid]; ok && got == e {
			continue
		}
		if err := h.BridgeVlanAdd(link, vid, e.pvid, e.untagged, false, false); err != nil {
			return fmt.Errorf("bridge vlan add dev %s vid %d: %w", name, vid, err)
		}
	}
	for _, vid := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[vid]; ok {
			continue
		}
		if err := h.BridgeVlanDel(link, vid, false, false, false, false); err != nil {
			return fmt.Errorf("bridge vlan del dev %s vid %d: %w", name, vid, err)
		}
	}
	return nil
}
