package switchd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// S-channels (IEEE 802.1Qbg-2012 clauses 42 and D.2.13). CDCP assigns each
// S-channel a station asks for (SCID) an S-VID; the default S-channel
// (SCID 1, S-VID 1) is untagged on the wire. A vNIC that is a NIC
// partition sends its frames, its VDP included, in an 802.1ad S-Tag with
// its channel's S-VID. For each assigned S-channel other than the default
// one switchd runs a VDP bridge of its own on an ECP socket that reads only
// that S-VID's frames (rawsock Options.SChannel) and writes them tagged;
// its replay window and signature counters are the channel's
// ("swp3/svid=5"), and every signed frame on it carries the channel binding
// (vdp.BindingSigner, vdp.BindingVerifier: the S-VID in the signed region,
// so a frame signed for one S-channel is refused on another). A claim that
// comes in on it carries the S-VID
// (verify.Claim.STag: the verifier binds one vNIC to each S-Tag of a port,
// stag-bound-elsewhere otherwise), and its pairs carry it too
// (enforce.Pair.SVID), so the rule passes the vNIC's frames only inside its
// S-Tag.

// schanPoll is how often a port compares its running S-channel bridges with
// the CDCP assignment.
const schanPoll = 250 * time.Millisecond

// schan is one running S-channel bridge of a port.
type schan struct {
	svid   uint16
	name   string
	bridge *vdp.Bridge
	timing vdp.Timing
	cancel context.CancelFunc
	done   chan struct{}
}

// SChannelOpener opens the ECP link of S-channel svid of a port: frames
// read are that S-VID's only (untagged when read), frames written get the
// S-Tag. close releases it.
type SChannelOpener func(ctx context.Context, port string, svid uint16) (link ecp.Link, close func() error, err error)

// OpenSChannel is the SChannelOpener of tether-switchd: an AF_PACKET tap
// on port in the network namespace nsfd filtered to ECP frames in an S-Tag
// with svid, writing through rawsock.STagLink.
func OpenSChannel(nsfd int, port string, svid uint16) (ecp.Link, func() error, error) {
	var s *rawsock.Socket
	err := inNetNS(nsfd, func() error {
		var err error
		s, err = rawsock.Listen(port, wire.EtherTypeECP, rawsock.Options{ReceiveBuffer: ecpReceiveBuffer, BridgePort: true, SChannel: svid})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("switchd: open S-channel %d of port %s: %w", svid, port, err)
	}
	return rawsock.STagLink{Conn: s, SVID: svid}, s.Close, nil
}

// channelName is the replay and signature channel of S-VID svid of port
// (the default S-channel is S-VID 1).
func channelName(port string, svid uint16) string { return fmt.Sprintf("%s/svid=%d", port, svid) }

// claimOf returns the verifier's claim for a request a VDP bridge of the
// port received: its channel, and the S-VID of a channel other than the
// default one as the claim's S-Tag.
func (p *port) claimOf(req *vdp.DecideRequest) verify.Claim {
	c := verify.Claim{Port: p.name, Channel: p.ecpChan, VSI: req.VSI}
	if req.Channel == "" || req.Channel == p.ecpChan {
		return c
	}
	if _, svid, err := verify.ParseChannel(req.Channel); err == nil && svid > 1 {
		c.Channel, c.STag = req.Channel, svid
	}
	return c
}

// withSVID sets the S-VID of every pair (0: none) and returns pairs.
func withSVID(pairs []enforce.Pair, svid uint16) []enforce.Pair {
	for i := range pairs {
		pairs[i].SVID = svid
	}
	return pairs
}

// svidOf returns the S-VID of an association's pairs (0 for the default
// S-channel).
func svidOf(pairs []enforce.Pair) uint16 {
	if len(pairs) == 0 {
		return 0
	}
	return pairs[0].SVID
}

// pairEnforcer is implemented by enforcers that can match an S-VID
// (edge/enforce's *Enforcer).
type pairEnforcer interface {
	AllowPair(ctx context.Context, port string, p enforce.Pair) error
	PendingPair(ctx context.Context, port string, p enforce.Pair) error
	ActivatePair(ctx context.Context, port string, p enforce.Pair) error
	RevokePair(ctx context.Context, port string, p enforce.Pair) error
}

var _ pairEnforcer = (*enforce.Enforcer)(nil)

// errNoSVID: the enforcer cannot match S-VIDs.
var errNoSVID = errors.New("switchd: the enforcer cannot match an S-VID")

// pairOp applies one per-pair operation: by (MAC, VID) for a pair without
// S-VID, through pairEnforcer for one with.
func (d *Daemon) pairOp(pr enforce.Pair, plain func(net.HardwareAddr, uint16) error, withS func(pairEnforcer) error) error {
	if pr.SVID == 0 {
		return plain(net.HardwareAddr(pr.MAC[:]), pr.VID)
	}
	pe, ok := d.enf.(pairEnforcer)
	if !ok {
		return errNoSVID
	}
	return withS(pe)
}

func (d *Daemon) enfAllow(ctx context.Context, port string, pr enforce.Pair) error {
	return d.pairOp(pr, func(m net.HardwareAddr, v uint16) error { return d.enf.Allow(ctx, port, m, v) },
		func(pe pairEnforcer) error { return pe.AllowPair(ctx, port, pr) })
}

func (d *Daemon) enfPending(ctx context.Context, port string, pr enforce.Pair) error {
	return d.pairOp(pr, func(m net.HardwareAddr, v uint16) error { return d.enf.Pending(ctx, port, m, v) },
		func(pe pairEnforcer) error { return pe.PendingPair(ctx, port, pr) })
}

func (d *Daemon) enfActivate(ctx context.Context, port string, pr enforce.Pair) error {
	return d.pairOp(pr, func(m net.HardwareAddr, v uint16) error { return d.enf.Activate(ctx, port, m, v) },
		func(pe pairEnforcer) error { return pe.ActivatePair(ctx, port, pr) })
}

func (d *Daemon) enfRevoke(ctx context.Context, port string, pr enforce.Pair) error {
	return d.pairOp(pr, func(m net.HardwareAddr, v uint16) error { return d.enf.Revoke(ctx, port, m, v) },
		func(pe pairEnforcer) error { return pe.RevokePair(ctx, port, pr) })
}

// bridgeOf returns the VDP bridge of the S-channel of svid (the default
// one for 0), nil when it is not running.
func (p *port) bridgeOf(svid uint16) *vdp.Bridge {
	p.mu.Lock()
	defer p.mu.Unlock()
	if svid == 0 {
		return p.bridge
	}
	if c := p.schans[svid]; c != nil {
		return c.bridge
	}
	return nil
}

// bridges returns every running VDP bridge of the port, the default
// S-channel's first.
func (p *port) bridges() []*vdp.Bridge {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*vdp.Bridge
	if p.bridge != nil {
		out = append(out, p.bridge)
	}
	svids := make([]uint16, 0, len(p.schans))
	for s := range p.schans {
		svids = append(svids, s)
	}
	slices.Sort(svids)
	for _, s := range svids {
		out = append(out, p.schans[s].bridge)
	}
	return out
}

// wantSChannels returns the S-VIDs of the port's assigned S-channels other
// than the default one, and the VDP timing.
func (p *port) wantSChannels() ([]uint16, vdp.Timing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var svids []uint16
	for _, c := range p.channels {
		if c.SCID != 1 && c.SVID > 1 && c.SVID <= 4094 && !slices.Contains(svids, c.SVID) {
			svids = append(svids, c.SVID)
		}
	}
	op := p.evbOp
	return svids, vdp.Timing{R: op.R, RTE: op.RTE, RWD: op.RWD, RKA: op.RKA}
}

// runSChannels keeps one VDP bridge running per assigned S-channel until
// ctx ends, then stops them all. It does nothing without an
// Options.OpenSChannel.
func (p *port) runSChannels(ctx context.Context, iface rawsock.Interface) {
	open := p.d.opts.OpenSChannel
	if open == nil {
		return
	}
	defer func() {
		p.mu.Lock()
		all := p.schans
		p.schans = nil
		p.mu.Unlock()
		for _, c := range all {
			c.cancel()
			<-c.done
		}
	}()
	t := time.NewTicker(schanPoll)
	defer t.Stop()
	for {
		p.syncSChannels(ctx, open, iface)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncSChannels starts the bridges of newly assigned S-channels, stops
// those no longer assigned (their associations go) and passes a changed
// timing on.
func (p *port) syncSChannels(ctx context.Context, open SChannelOpener, iface rawsock.Interface) {
	want, timing := p.wantSChannels()
	p.mu.Lock()
	var stop []*schan
	for svid, c := range p.schans {
		if !slices.Contains(want, svid) {
			stop = append(stop, c)
			delete(p.schans, svid)
		}
	}
	var retime []*schan
	for _, c := range p.schans {
		if c.timing != timing {
			c.timing = timing
			retime = append(retime, c)
		}
	}
	var start []uint16
	for _, svid := range want {
		if p.schans[svid] == nil {
			start = append(start, svid)
		}
	}
	p.mu.Unlock()
	for _, c := range stop {
		c.cancel()
		<-c.done
		p.dropSVID(ctx, c.svid, fmt.Sprintf("S-channel S-VID %d is no longer assigned", c.svid))
		p.log.Info("S-channel stopped", "svid", c.svid)
	}
	for _, c := range retime {
		if err := c.bridge.SetTiming(timing); err != nil {
			p.log.Error("VDP timing of an S-channel", "svid", c.svid, "err", err)
		}
	}
	for _, svid := range start {
		c, err := p.startSChannel(ctx, open, iface, svid, timing)
		if err != nil {
			p.log.Error("start an S-channel's VDP bridge", "svid", svid, "err", err)
			continue
		}
		p.mu.Lock()
		if p.schans == nil {
			p.schans = make(map[uint16]*schan)
		}
		p.schans[svid] = c
		p.mu.Unlock()
		p.log.Info("S-channel up", "svid", svid, "channel", c.name)
	}
}

// startSChannel opens S-channel svid's link and runs its VDP bridge.
func (p *port) startSChannel(ctx context.Context, open SChannelOpener, iface rawsock.Interface, svid uint16, timing vdp.Timing) (*schan, error) {
	d := p.d
	link, closeLink, err := open(ctx, p.name, svid)
	if err != nil {
		return nil, err
	}
	name := channelName(p.name, svid)
	tm := timing
	br, err := vdp.NewBridge(retryLink{link}, vdp.BridgeConfig{
		Name:     name,
		LocalMAC: iface.MAC,
		Timing:   &tm,
		CID:      d.cid,
		Security: vdp.Security{
			// The S-VID is bound into the signed region both ways
			// (vdp.BindingSigner): a frame of another S-channel is
			// refused before its counter is looked at.
			Sign:          vdp.BindingSigner(vdp.IdentitySigner(d.signer, name), d.cid, svid),
			Verify:        vdp.BindingVerifier(vdp.IdentityVerifier(d.verifier.Signatures(), name), d.cid, svid),
			PeerCapable:   p.peerCapable,
			RequireSigned: d.cfg.RequireSigned,
		},
		Decider: p,
		Logger:  d.log,
		OnEvent: p.onVDPOf(svid),
	})
	if err != nil {
		_ = closeLink()
		return nil, fmt.Errorf("VDP bridge of %s: %w", name, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &schan{svid: svid, name: name, bridge: br, timing: timing, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer closeLink()
		if err := br.Run(cctx); err != nil && cctx.Err() == nil {
			p.log.Error("S-channel VDP bridge stopped", "svid", svid, "err", err)
		}
	}()
	return c, nil
}

// dropSVID removes every association of the port's S-channel svid.
func (p *port) dropSVID(ctx context.Context, svid uint16, why string) {
	for _, r := range p.d.tbl.port(p.name) {
		if svidOf(r.pairs) != svid {
			continue
		}
		k := recKey{p.name, r.key}
		p.drop(ctx, k, r.gen, why, false)
	}
}

// onVDPOf is the OnEvent hook of the VDP bridge of S-channel svid (0: the
// default one). Associations are keyed by port and VSI, so an event of one
// channel's bridge about a VSI whose association lives on another channel
// (a claim of the VM there, refused) must not touch that association.
func (p *port) onVDPOf(svid uint16) func(vdp.Event) {
	return func(ev vdp.Event) {
		switch ev.Kind {
		case vdp.EventDeassociated, vdp.EventKeepaliveExpired, vdp.EventRejected:
			if r := p.d.tbl.get(recKey{p.name, ev.Key}); r != nil && svidOf(r.pairs) != svid {
				return
			}
		}
		p.onVDP(ev)
	}
}
