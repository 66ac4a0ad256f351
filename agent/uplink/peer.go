package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// peer is the loop's view of the switch on the link, read by the LLDP
// agent (Build) and the VDP station (PeerCapable) through an atomic
// pointer. It is never modified once stored.
type peer struct {
	// present reports an LLDP neighbour sending an EVB TLV in bridge mode.
	present bool
	// name names the switch in reasons: its System Name, or chassis ID.
	name string
	// evb, cdcp and tether are copies of the switch's TLVs (nil when
	// absent).
	evb    *wire.EVB
	cdcp   *wire.CDCP
	tether *wire.TetherCapability
	// signed and key report a valid signature on its last LLDPDU.
	signed bool
	key    identity.KeyID
	// usable reports that the signing policy allows VDP with the switch;
	// refused that the policy refuses it (VIFs are then rejected, not just
	// left pending); why says why it is not usable.
	usable  bool
	refused bool
	why     string
	// id identifies the switch, its TLVs and what the policy made of it,
	// to notice a change; who only the switch and the policy's verdict.
	id, who string
}

// noSwitch is the reason of VIFs that wait for a switch.
func (s *session) noSwitch() string {
	return "no tether switch on " + s.u.cfg.Interface
}

// build is the LLDP agent's Config.Build: the station's LLDPDU.
func (s *session) build() (wire.LLDPDU, error) {
	cfg := &s.u.cfg
	p := s.peer.Load()
	_, evbTLV, _ := evb.Station(cfg.EVB, p.evb)
	mac := s.ifi.MAC
	info := lldpagent.LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: net.HardwareAddr(mac[:])},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(cfg.Interface)},
		SystemName: cfg.SystemName,
		EVB:        &evbTLV,
		CDCP:       s.cdcpTLV(),
		ETS:        cfg.ETS,
		PFC:        cfg.PFC,
		Tether: &wire.TetherCapability{
			Version: wire.TetherProtocolVersion,
			Roles:   wire.TetherRoleHostAgent,
			KeyID:   cfg.Signer.KeyID(),
		},
		Inventory: s.inv.Load(),
		TetherCID: cfg.CID,
	}
	if cfg.RequireSigned {
		info.Tether.Flags |= wire.TetherFlagRequiresSignature
	}
	return info.LLDPDU()
}

// checkLLDP wraps the LLDP signature check so that the last refusal can be
// given as the reason when no switch is usable.
func (s *session) checkLLDP(check lldpagent.CheckFunc) lldpagent.CheckFunc {
	return func(ctx context.Context, frame []byte, du *wire.LLDPDU) (lldpagent.CheckResult, error) {
		res, err := check(ctx, frame, du)
		if err != nil {
			msg := err.Error()
			s.lldpErr.Store(&msg)
			s.markDirty()
		}
		return res, err
	}
}

// peerCapable is the VDP station's Security.PeerCapable: sign VDP when
// the switch advertises tether's capability and the policy accepts it.
func (s *session) peerCapable() bool {
	p := s.peer.Load()
	return p.usable && p.tether != nil
}

// updatePeer picks the switch among the LLDP neighbours, applies the
// signing policy and the EVB timing, and returns the view. When the view
// changed, the LLDP agent rebuilds its LLDPDU (the EVB TLV echoes the
// bridge's) and the backoffs are reset.
func (s *session) updatePeer() *peer {
	ns := s.agent.Neighbors()
	var best *lldpagent.Neighbor
	for i := range ns {
		n := &ns[i]
		if e := n.EVB(); e == nil || e.Mode != wire.EVBModeBridge {
			continue
		}
		if best == nil || (best.Tether() == nil && n.Tether() != nil) {
			best = n
		}
	}
	p := s.judge(best, ns)
	old := s.peer.Load()
	if old.id == p.id {
		return old
	}
	s.peer.Store(p)
	s.u.log.Info("switch on the uplink changed", "switch", p.name, "usable", p.usable, "why", p.why)
	o, _, err := evb.Station(s.u.cfg.EVB, p.evb)
	if err != nil {
		s.u.log.Warn("EVB negotiation", "err", err)
	}
	if t := timingOf(o); t != s.timing {
		if err := s.st.SetTiming(t); err != nil {
			s.u.log.Warn("VDP timing not applied", "timing", t, "err", err)
		} else {
			s.u.log.Info("EVB negotiated", "r", t.R, "rte", t.RTE, "rwd", t.RWD, "rka", t.RKA, "peer_seen", o.PeerSeen)
			s.timing = t
		}
	}
	if p.cdcp != nil {
		if _, err := evb.StationResult(*s.cdcpTLV(), p.cdcp); err != nil {
			s.u.log.Warn("switch's CDCP answer refused", "err", err)
		}
	}
	if p.who != old.who {
		// Another switch, or the same one back, or another verdict: retry
		// at once what failed, and repeat what the station holds.
		for _, r := range s.recs {
			r.retryAt, r.hard, r.backoff = time.Time{}, false, 0
		}
		s.resync = p.usable
	}
	s.agent.Update()
	return p
}

// judge builds the view of neighbour n (nil when no neighbour is an EVB
// bridge) under the signing policy.
func (s *session) judge(n *lldpagent.Neighbor, all []lldpagent.Neighbor) *peer {
	ifname := s.u.cfg.Interface
	if n == nil {
		p := &peer{why: s.noSwitch()}
		if len(all) > 0 {
			p.why += fmt.Sprintf(" (LLDP neighbour %s sends no EVB TLV in bridge mode)", neighborName(&all[0]))
		} else if e := s.lldpErr.Load(); e != nil {
			p.why += " (last LLDPDU refused: " + *e + ")"
		}
		p.who = "none"
		p.id = "none|" + p.why
		return p
	}
	p := &peer{present: true, name: neighborName(n), signed: n.Check.Signed, key: n.Check.KeyID}
	if e := n.EVB(); e != nil {
		c := *e
		p.evb = &c
	}
	if c := n.CDCP(); c != nil {
		cc := *c
		cc.Channels = slices.Clone(c.Channels)
		p.cdcp = &cc
	}
	if t := n.Tether(); t != nil {
		c := *t
		p.tether = &c
	}
	switch {
	case p.tether != nil && !p.signed:
		p.refused = true
		p.why = fmt.Sprintf("switch %s on %s advertises tether's capability but its LLDPDU is not signed", p.name, ifname)
	case p.tether != nil && p.key != identity.KeyID(p.tether.KeyID):
		p.refused = true
		p.why = fmt.Sprintf("switch %s on %s advertises key %x but signs with key %s", p.name, ifname, p.tether.KeyID, p.key)
	case p.tether == nil && s.u.cfg.RequireSigned:
		p.refused = true
		p.why = fmt.Sprintf("require_signed: switch %s on %s does not advertise tether's capability; plain VDP refused", p.name, ifname)
	default:
		p.usable = true
	}
	p.who = fmt.Sprintf("%x|%x|%s|%v", n.ChassisID.ID, n.PortID.ID, p.key, p.usable)
	p.id = fmt.Sprintf("%s|%s|%+v|%+v", p.who, p.why, p.evb, p.tether)
	return p
}

// neighborName names a neighbour: System Name, else chassis ID.
func neighborName(n *lldpagent.Neighbor) string {
	if name := n.SystemName(); name != "" && utf8.ValidString(name) {
		return fmt.Sprintf("%q", name)
	}
	id := n.ChassisID.ID
	if n.ChassisID.Subtype == lldp.ChassisIDSubtypeMACAddress && len(id) == 6 {
		return net.HardwareAddr(id).String()
	}
	if utf8.Valid(id) {
		return fmt.Sprintf("%q", id)
	}
	return hex.EncodeToString(id)
}

// timingOf converts the EVB outcome to VDP timing.
func timingOf(o evb.Operating) vdp.Timing {
	return vdp.Timing{R: o.R, RTE: o.RTE, RWD: o.RWD, RKA: o.RKA}
}

// Digest returns the inventory digest tetherd advertises in LLDP: SHA-256
// over, for every VIF that is not gone in MAC order, its MAC (6 bytes),
// VM UUID (16), C-VID and S-Tag (2 each, big-endian) and kind (1); and the
// number of those VIFs. vifs must be ordered by MAC (as Snapshot returns
// them).
func Digest(vifs []inventory.VIF) (digest [32]byte, n uint32) {
	h := sha256.New()
	var b [27]byte
	for i := range vifs {
		v := &vifs[i]
		if v.State == inventory.StateGone {
			continue
		}
		copy(b[0:6], v.MAC[:])
		copy(b[6:22], v.VM[:])
		binary.BigEndian.PutUint16(b[22:24], v.CVID)
		binary.BigEndian.PutUint16(b[24:26], v.STag)
		b[26] = byte(v.Kind)
		h.Write(b[:])
		n++
	}
	h.Sum(digest[:0])
	return digest, n
}

// updateDigest advertises snap's digest when it changed (the LLDP agent
// then fast-transmits); the generation sent is the one at which the
// digest last changed.
func (s *session) updateDigest(snap *inventory.Snapshot) {
	d, n := Digest(snap.VIFs)
	if cur := s.inv.Load(); cur != nil && cur.Digest == d && cur.VIFs == n {
		return
	}
	s.inv.Store(&wire.TetherInventory{Alg: wire.TetherDigestSHA256, Digest: d, VIFs: n, Generation: snap.Generation})
	if s.agent != nil {
		s.agent.Update()
	}
}
