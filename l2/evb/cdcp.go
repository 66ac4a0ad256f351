package evb

import (
	"fmt"
	"slices"

	"github.com/tether-net/tether/wire"
)

// CDCP limits (802.1Qbg-2012 D.2.13): SCIDs and S-VIDs are 12 bits; 0 and
// 4095 are not usable S-VIDs, and SCID 1 / S-VID 1 is the default
// S-channel.
const (
	// DefaultSCID is the default S-channel's SCID.
	DefaultSCID = 1
	// DefaultSVID is the default S-channel's S-VID.
	DefaultSVID = 1
	// MaxID is the largest usable SCID or S-VID.
	MaxID = 4094
	// MaxChnCap is the largest channel capacity (12 bits).
	MaxChnCap = 4095
)

// CDCPStationConfig is the station's S-channel configuration.
type CDCPStationConfig struct {
	// ChnCap is how many S-channels the station supports, the default
	// one included (at least 1).
	ChnCap uint16
	// SCIDs are the S-channels wanted besides the default one (SCID 1),
	// each from 2 to 4094, no duplicates.
	SCIDs []uint16
}

// StationRequest returns the CDCP TLV a station sends: role station, an
// S-VLAN component, its capacity, the default S-channel (1, 1), then each
// requested SCID, in ascending order, with S-VID 0 ("assign one").
func StationRequest(c CDCPStationConfig) (wire.CDCP, error) {
	if c.ChnCap < 1 || c.ChnCap > MaxChnCap {
		return wire.CDCP{}, fmt.Errorf("evb: CDCP ChnCap %d, want 1 to %d", c.ChnCap, MaxChnCap)
	}
	if len(c.SCIDs)+1 > int(c.ChnCap) {
		return wire.CDCP{}, fmt.Errorf("evb: %d S-channels requested (default included), ChnCap is %d", len(c.SCIDs)+1, c.ChnCap)
	}
	if len(c.SCIDs)+1 > wire.MaxCDCPChannels {
		return wire.CDCP{}, fmt.Errorf("evb: %d S-channels do not fit in one CDCP TLV (at most %d)", len(c.SCIDs)+1, wire.MaxCDCPChannels)
	}
	scids := slices.Clone(c.SCIDs)
	slices.Sort(scids)
	out := wire.CDCP{Role: wire.CDCPRoleStation, SComp: true, ChnCap: c.ChnCap,
		Channels: []wire.SChannel{{SCID: DefaultSCID, SVID: DefaultSVID}}}
	for i, s := range scids {
		if s <= DefaultSCID || s > MaxID {
			return wire.CDCP{}, fmt.Errorf("evb: SCID %d, want 2 to %d (1 is the default S-channel)", s, MaxID)
		}
		if i > 0 && scids[i-1] == s {
			return wire.CDCP{}, fmt.Errorf("evb: SCID %d requested twice", s)
		}
		out.Channels = append(out.Channels, wire.SChannel{SCID: s})
	}
	return out, nil
}

// CDCPBridgeConfig is the bridge's S-channel configuration for one port.
type CDCPBridgeConfig struct {
	// ChnCap is how many S-channels the port supports, the default one
	// included (at least 1).
	ChnCap uint16
	// FirstSVID and LastSVID bound the pool assigned S-VIDs come from
	// (2..4094).
	FirstSVID, LastSVID uint16
	// Current holds the assignments already in force on the port, so that
	// an S-channel keeps its S-VID across re-negotiations.
	Current []wire.SChannel
}

// BridgeAssign returns the CDCP TLV a bridge answers a station's request
// with. The default S-channel is always (1, 1). Requested SCIDs are served
// in ascending order until min(bridge ChnCap, station ChnCap) channels are
// assigned: an SCID that already has an S-VID in Current keeps it, others
// get the lowest free S-VID of the pool. SCIDs that cannot be served are
// left out. A request that is not from a station with an S-VLAN component
// gets only the default S-channel. Invalid SCIDs in the request are
// ignored; an invalid bridge configuration is an error.
func BridgeAssign(c CDCPBridgeConfig, req *wire.CDCP) (wire.CDCP, error) {
	if c.ChnCap < 1 || c.ChnCap > MaxChnCap {
		return wire.CDCP{}, fmt.Errorf("evb: CDCP ChnCap %d, want 1 to %d", c.ChnCap, MaxChnCap)
	}
	if c.FirstSVID < 2 || c.LastSVID > MaxID || c.FirstSVID > c.LastSVID {
		return wire.CDCP{}, fmt.Errorf("evb: S-VID pool %d-%d, want a range within 2-%d", c.FirstSVID, c.LastSVID, MaxID)
	}
	out := wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: c.ChnCap,
		Channels: []wire.SChannel{{SCID: DefaultSCID, SVID: DefaultSVID}}}
	if req == nil || req.Role != wire.CDCPRoleStation || !req.SComp {
		return out, nil
	}
	limit := min(int(c.ChnCap), int(req.ChnCap), wire.MaxCDCPChannels)

	current := make(map[uint16]uint16, len(c.Current))
	used := make(map[uint16]bool, len(c.Current))
	for _, ch := range c.Current {
		if ch.SCID > DefaultSCID && ch.SCID <= MaxID && ch.SVID >= c.FirstSVID && ch.SVID <= c.LastSVID && !used[ch.SVID] {
			current[ch.SCID] = ch.SVID
			used[ch.SVID] = true
		}
	}
	var scids []uint16
	seen := map[uint16]bool{}
	for _, ch := range req.Channels {
		if ch.SCID > DefaultSCID && ch.SCID <= MaxID && !seen[ch.SCID] {
			seen[ch.SCID] = true
			scids = append(scids, ch.SCID)
		}
	}
	slices.Sort(scids)
	// Assignments still requested keep their S-VID; the others free theirs.
	for scid, svid := range current {
		if !seen[scid] {
			delete(current, scid)
			delete(used, svid)
		}
	}
	next := c.FirstSVID
	for _, scid := range scids {
		if len(out.Channels) >= limit {
			break
		}
		svid, ok := current[scid]
		if !ok {
			for next <= c.LastSVID && used[next] {
				next++
			}
			if next > c.LastSVID {
				continue // pool exhausted; an SCID with a kept S-VID may still follow
			}
			svid = next
			used[svid] = true
		}
		out.Channels = append(out.Channels, wire.SChannel{SCID: scid, SVID: svid})
	}
	return out, nil
}

// CDCPResult is the station's view of a CDCP exchange.
type CDCPResult struct {
	// Channels are the operational S-channels, default first, then by
	// SCID: requested by the station and assigned an S-VID by the bridge.
	Channels []wire.SChannel
	// Pending lists the requested SCIDs the bridge has not assigned.
	Pending []uint16
}

// StationResult checks the bridge's answer against the station's request
// and returns the S-channels the station may bring up. The answer must come
// from a bridge with an S-VLAN component, map the default S-channel to
// S-VID 1, and not give one S-VID to two SCIDs; assignments for SCIDs the
// station did not request, and S-VIDs outside 2-4094, are ignored.
func StationResult(req wire.CDCP, bridge *wire.CDCP) (CDCPResult, error) {
	var res CDCPResult
	requested := make([]uint16, 0, len(req.Channels))
	for _, ch := range req.Channels {
		if ch.SCID != DefaultSCID {
			requested = append(requested, ch.SCID)
		}
	}
	slices.Sort(requested)
	if bridge == nil {
		res.Pending = requested
		return res, nil
	}
	if bridge.Role != wire.CDCPRoleBridge {
		return res, fmt.Errorf("evb: CDCP answer has role %s, want bridge", bridge.Role)
	}
	if !bridge.SComp {
		return res, fmt.Errorf("evb: CDCP answer without an S-VLAN component")
	}
	assigned := map[uint16]uint16{}
	byVID := map[uint16]uint16{}
	defaultOK := false
	for _, ch := range bridge.Channels {
		if ch.SCID == DefaultSCID {
			if ch.SVID != DefaultSVID {
				return res, fmt.Errorf("evb: CDCP answer maps the default S-channel to S-VID %d, want %d", ch.SVID, DefaultSVID)
			}
			defaultOK = true
			continue
		}
		if ch.SVID < 2 || ch.SVID > MaxID {
			continue
		}
		if other, dup := byVID[ch.SVID]; dup && other != ch.SCID {
			return res, fmt.Errorf("evb: CDCP answer gives S-VID %d to SCIDs %d and %d", ch.SVID, other, ch.SCID)
		}
		byVID[ch.SVID] = ch.SCID
		assigned[ch.SCID] = ch.SVID
	}
	if !defaultOK {
		return res, fmt.Errorf("evb: CDCP answer lacks the default S-channel (1, 1)")
	}
	res.Channels = []wire.SChannel{{SCID: DefaultSCID, SVID: DefaultSVID}}
	for _, scid := range requested {
		if svid, ok := assigned[scid]; ok {
			res.Channels = append(res.Channels, wire.SChannel{SCID: scid, SVID: svid})
		} else {
			res.Pending = append(res.Pending, scid)
		}
	}
	if n := int(min(req.ChnCap, bridge.ChnCap)); len(res.Channels) > n {
		return res, fmt.Errorf("evb: CDCP answer assigns %d S-channels, more than the capacity %d", len(res.Channels), n)
	}
	return res, nil
}
