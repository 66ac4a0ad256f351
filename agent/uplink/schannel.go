package uplink

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// S-channels (IEEE 802.1Qbg-2012 clause 42, CDCP D.2.13). A VIF with an
// S-Tag (a NIC partition: inventory.VIF.STag, its S-VID) sends its frames,
// VDP included, inside that 802.1ad S-Tag. The uplink asks CDCP for one
// S-channel per distinct S-Tag of its live VIFs (SCIDs 2, 3, ...), and runs
// a VDP station on each S-VID the switch's CDCP answer assigned that a VIF
// uses: an ECP socket that reads that S-VID's frames only
// (Config.ListenSChannel), writing in its S-Tag (rawsock.STagLink), signing
// on the channel "IF/svid=N" with the S-VID bound into the signed region
// (vdp.BindingSigner). A VM's VSI goes on the station of its VIFs' S-Tag
// (one VSI per VM: its VIFs must share one S-Tag); until the switch has
// assigned that S-VID, the VM's request is not sent and its VIFs stay
// pending with the reason.

// schannels is a session's S-channel state; the loop goroutine owns it
// except mu's fields.
type schannels struct {
	mu       sync.Mutex
	stations map[uint16]*schanStation // running stations by S-VID
	cdcp     wire.CDCP                // the CDCP TLV the LLDP agent sends

	vmSVID map[inventory.UUID]uint16 // the S-VID each live VM's VSI goes on
	heldOn map[inventory.UUID]uint16 // where each held VSI is held
	mixed  map[inventory.UUID]string // VMs whose VIFs disagree on the S-Tag
	wanted []uint16                  // the S-VIDs of the live VIFs, sorted
}

// schanStation is one S-channel's station.
type schanStation struct {
	svid   uint16
	st     *vdp.Station
	timing vdp.Timing
	cancel context.CancelFunc
	done   chan struct{}
}

// cdcpTLV returns the CDCP TLV to advertise.
func (s *session) cdcpTLV() *wire.CDCP {
	s.sch.mu.Lock()
	defer s.sch.mu.Unlock()
	c := s.sch.cdcp
	c.Channels = slices.Clone(c.Channels)
	return &c
}

// stations returns the running stations: the default one (S-VID 0) and
// each S-channel's.
func (s *session) stations() map[uint16]*vdp.Station {
	s.sch.mu.Lock()
	defer s.sch.mu.Unlock()
	out := map[uint16]*vdp.Station{0: s.st}
	for svid, c := range s.sch.stations {
		out[svid] = c.st
	}
	return out
}

// heldVSIs returns the VSIs the stations hold, by VM, and notes the S-VID
// each is held on.
func (s *session) heldVSIs() map[inventory.UUID]vdp.VSIInfo {
	held := map[inventory.UUID]vdp.VSIInfo{}
	s.sch.heldOn = map[inventory.UUID]uint16{}
	for svid, st := range s.stations() {
		for _, info := range st.VSIs() {
			if info.Key.Format == wire.VSIIDUUID {
				id := inventory.UUID(info.Key.ID)
				held[id] = info
				s.sch.heldOn[id] = svid
			}
		}
	}
	return held
}

// planChannels notes the S-VID of each live VM's VSI, updates the CDCP
// request when the set of S-Tags changed, and starts the stations of the
// S-channels the switch assigned.
func (s *session) planChannels(ctx context.Context, groups map[inventory.UUID]*vmGroup, p *peer) {
	s.sch.vmSVID = map[inventory.UUID]uint16{}
	s.sch.mixed = map[inventory.UUID]string{}
	var wanted []uint16
	for id, g := range groups {
		var svid uint16
		for i, v := range g.live {
			if i > 0 && v.STag != svid {
				s.sch.mixed[id] = fmt.Sprintf("the VIFs of VM %s have different S-Tags (%d and %d): one VSI per VM goes on one S-channel", id, svid, v.STag)
			}
			svid = v.STag
			if svid != 0 && !slices.Contains(wanted, svid) {
				wanted = append(wanted, svid)
			}
		}
		if len(g.live) > 0 {
			s.sch.vmSVID[id] = svid
		}
	}
	slices.Sort(wanted)
	if !slices.Equal(wanted, s.sch.wanted) {
		s.sch.wanted = wanted
		scids := make([]uint16, len(wanted))
		for i := range wanted {
			scids[i] = uint16(i + 2)
		}
		req, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: uint16(len(scids) + 1), SCIDs: scids})
		if err != nil {
			s.u.log.Error("CDCP request", "s_tags", wanted, "err", err)
		} else {
			s.sch.mu.Lock()
			s.sch.cdcp = req
			s.sch.mu.Unlock()
			s.agent.Update()
		}
	}
	s.syncStations(ctx, p)
}

// assignedSVIDs returns the S-VIDs the switch's CDCP answer assigned to
// the S-channels the uplink asked for.
func (s *session) assignedSVIDs(p *peer) []uint16 {
	if p == nil || p.cdcp == nil || !p.usable {
		return nil
	}
	res, err := evb.StationResult(*s.cdcpTLV(), p.cdcp)
	if err != nil {
		return nil
	}
	var out []uint16
	for _, c := range res.Channels {
		if c.SCID != evb.DefaultSCID {
			out = append(out, c.SVID)
		}
	}
	return out
}

// syncStations starts a station on each assigned S-VID a VIF uses, stops
// those no longer assigned or used, and passes a changed timing on.
func (s *session) syncStations(ctx context.Context, p *peer) {
	assigned := s.assignedSVIDs(p)
	s.sch.mu.Lock()
	var stop []*schanStation
	for svid, c := range s.sch.stations {
		if !slices.Contains(assigned, svid) || !slices.Contains(s.sch.wanted, svid) {
			stop = append(stop, c)
			delete(s.sch.stations, svid)
		}
	}
	var start []uint16
	for _, svid := range assigned {
		if slices.Contains(s.sch.wanted, svid) && s.sch.stations[svid] == nil {
			start = append(start, svid)
		}
	}
	var retime []*schanStation
	for _, c := range s.sch.stations {
		if c.timing != s.timing {
			c.timing = s.timing
			retime = append(retime, c)
		}
	}
	s.sch.mu.Unlock()
	for _, c := range stop {
		c.cancel()
		<-c.done
		s.u.log.Info("S-channel station stopped", "svid", c.svid)
	}
	for _, c := range retime {
		if err := c.st.SetTiming(c.timing); err != nil {
			s.u.log.Warn("VDP timing of an S-channel not applied", "svid", c.svid, "err", err)
		}
	}
	for _, svid := range start {
		c, err := s.startStation(ctx, svid)
		if err != nil {
			s.u.log.Error("start an S-channel station", "svid", svid, "err", err)
			s.u.setErr(err.Error())
			continue
		}
		s.sch.mu.Lock()
		if s.sch.stations == nil {
			s.sch.stations = map[uint16]*schanStation{}
		}
		s.sch.stations[svid] = c
		s.sch.mu.Unlock()
		s.u.log.Info("S-channel station started", "svid", svid)
	}
}

// startStation opens S-channel svid's socket and runs a VDP station on it
// until ctx ends or the channel is stopped.
func (s *session) startStation(ctx context.Context, svid uint16) (*schanStation, error) {
	cfg := &s.u.cfg
	conn, err := cfg.ListenSChannel(cfg.Interface, svid)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: S-channel %d socket: %w", cfg.Interface, svid, err)
	}
	ch := fmt.Sprintf("%s/svid=%d", cfg.Interface, svid)
	timing := s.timing
	st, err := vdp.NewStation(rawsock.STagLink{Conn: conn, SVID: svid}, vdp.StationConfig{
		Name:     ch,
		LocalMAC: s.ifi.MAC,
		Timing:   &timing,
		CID:      cfg.CID,
		Security: vdp.Security{
			Sign:          vdp.BindingSigner(vdp.IdentitySigner(cfg.Signer, ch), cfg.CID, svid),
			Verify:        vdp.BindingVerifier(vdp.IdentityVerifier(cfg.Verifier, ch), cfg.CID, svid),
			PeerCapable:   s.peerCapable,
			RequireSigned: cfg.RequireSigned,
		},
		Logger:  cfg.Logger,
		OnEvent: s.onVDPEvent,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("uplink %s: S-channel %d: %w", cfg.Interface, svid, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &schanStation{svid: svid, st: st, timing: timing, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer conn.Close()
		if err := st.Run(cctx); err != nil && cctx.Err() == nil {
			s.u.log.Error("S-channel station stopped", "svid", svid, "err", err)
			s.markDirty()
		}
	}()
	return c, nil
}

// stopStations stops every S-channel station (the session ends).
func (s *session) stopStations() {
	s.sch.mu.Lock()
	all := s.sch.stations
	s.sch.stations = nil
	s.sch.mu.Unlock()
	for _, c := range all {
		c.cancel()
		<-c.done
	}
}

// submitTo sends a request for VM id on the station of its S-channel: the
// one its live VIFs' S-Tag names, or, with no live VIF left, the one that
// holds its VSI.
func (s *session) submitTo(id inventory.UUID, req vdp.Request, done func(vdp.Result)) error {
	svid, live := s.sch.vmSVID[id]
	if !live {
		svid = s.sch.heldOn[id]
	}
	if why := s.sch.mixed[id]; why != "" && req.Mode != wire.VSIDeAssociate {
		return fmt.Errorf("uplink %s: %s", s.u.cfg.Interface, why)
	}
	st := s.stations()[svid]
	if st == nil {
		return fmt.Errorf("uplink %s: S-channel with S-VID %d not assigned by the switch's CDCP yet", s.u.cfg.Interface, svid)
	}
	return st.Submit(req, done)
}
