package switchd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// opKind says what a port's worker has to do.
type opKind uint8

const (
	// opVSIGone: the bridge released a VSI (DE-ASSOCIATE, keep-alive
	// expiry, or a refusal after the decider had accepted).
	opVSIGone opKind = iota + 1
	// opNeighbour: the LLDP neighbour table changed.
	opNeighbour
	// opMigrated: a confirmed migration moved the VM's MACs to another
	// port (overlap.go).
	opMigrated
	// opOverlapCheck: a migration overlap's bound passed (overlap.go).
	opOverlapCheck
	// opOverlapDestGone: the destination of a migration overlap lost its
	// association (overlap.go).
	opOverlapDestGone
)

// op is one task for a port's worker.
type op struct {
	kind opKind
	key  vdp.Key
	gen  uint64
	vm   verify.UUID
	why  string
	// to, host, mac and dstate describe a migration's destination
	// (opMigrated, opOverlapDestGone): its port and host, the MAC it
	// took over, the VM manager's state of the VM there.
	to     string
	host   string
	mac    verify.MAC
	dstate verify.VMState
}

// opQueue is how many tasks may wait for a port's worker; beyond that the
// port is marked dirty and the next reconcile catches up.
const opQueue = 4096

// port is one managed port: its LLDP agent (bridge role, nearest customer
// bridge), its EVB/CDCP negotiation, its VDP bridge on ECP, and a worker
// that applies what the protocols report to the associations.
type port struct {
	d        *Daemon
	name     string
	lldpChan string
	ecpChan  string
	log      *slog.Logger
	ops      chan op

	mu       sync.Mutex
	running  bool
	lastErr  string
	iface    rawsock.Interface
	agent    *lldpagent.Agent
	bridge   *vdp.Bridge
	local    lldpagent.LocalInfo
	evbOp    evb.Operating
	channels []wire.SChannel
	capable  bool
	ident    verify.Neighbour
	identOK  bool
	identCh  chan struct{} // closed and replaced when the identity changes
	dirty    bool
	schans   map[uint16]*schan // S-channels' VDP bridges (schannel.go)
	// refusedLLDP is the port's last LLDPDU when Check refused it for an
	// unknown key (nil otherwise): SetHostKeys hands it back to the agent,
	// so a host enrolled since is the neighbour without waiting for its
	// next LLDPDU (up to tetherd's 30 s LLDP interval). One per port.
	refusedLLDP []byte
	// rechecking is the refusedLLDP handed back to the agent last: its
	// second refusal (still unknown, or a replay after a newer LLDPDU) is
	// no news for the rejects ring.
	rechecking []byte

	cancel context.CancelFunc
	done   chan struct{}
}

func newPort(d *Daemon, name string) *port {
	p := &port{
		d:        d,
		name:     name,
		lldpChan: name,
		ecpChan:  name + "/svid=1",
		log:      d.log.With("port", name),
		ops:      make(chan op, opQueue),
		identCh:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	op, tlv, _ := evb.Bridge(d.evbCfg, nil)
	cd, _ := evb.BridgeAssign(d.cdcpCfg, nil)
	p.evbOp, p.channels = op, cd.Channels
	p.local = lldpagent.LocalInfo{
		ChassisID:         wire.ChassisID{Subtype: lldp.ChassisIDSubtypeLocallyAssigned, ID: []byte(d.cfg.Name)},
		PortID:            wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(name)},
		PortDescription:   "tether-switchd " + d.cfg.Bridge + " port " + name,
		SystemName:        d.cfg.Name,
		SystemDescription: "tether-switchd " + d.opts.Version,
		Capabilities:      &wire.SystemCapabilities{System: wire.SysCapBridge, Enabled: wire.SysCapBridge},
		EVB:               &tlv,
		CDCP:              &cd,
		Tether:            d.capability(),
		TetherCID:         d.cid,
	}
	return p
}

// enqueue hands o to the worker without blocking.
func (p *port) enqueue(o op) {
	select {
	case p.ops <- o:
	default:
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
		p.log.Warn("port worker queue full: the next reconcile catches up")
	}
}

// build is the LLDP agent's Config.Build.
func (p *port) build() (wire.LLDPDU, error) {
	p.mu.Lock()
	li := p.local
	p.mu.Unlock()
	return li.LLDPDU()
}

// peerCapable reports whether the port's neighbour advertises tether's
// capability (vdp.Security.PeerCapable).
func (p *port) peerCapable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capable
}

// neighbors returns the LLDP agent's table, nil when the port is not
// running.
func (p *port) neighbors() []lldpagent.Neighbor {
	p.mu.Lock()
	ag := p.agent
	p.mu.Unlock()
	if ag == nil {
		return nil
	}
	return ag.Neighbors()
}

// run opens the port's sockets and serves them until ctx ends, reopening
// them after a failure.
func (p *port) run(ctx context.Context) {
	defer close(p.done)
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		p.worker(wctx)
	}()
	defer func() {
		wcancel()
		<-workerDone
	}()
	for {
		conns, err := p.d.opts.OpenPort(ctx, p.name)
		if err == nil {
			err = p.serve(ctx, conns)
			if cerr := conns.Close(); cerr != nil {
				p.log.Debug("close port sockets", "err", cerr)
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.lastErr = err.Error()
		p.mu.Unlock()
		p.log.Error("port stopped; retrying", "err", err, "retry_in", p.d.opts.PortRetry)
		// Its VDP bridge is gone with the sockets: nothing it associated
		// is verified any more.
		p.dropAll(context.WithoutCancel(ctx), "the port's sockets failed: "+err.Error(), false)
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.d.opts.PortRetry):
		}
	}
}

// serve runs the LLDP agent and the VDP bridge on conns until ctx ends or
// one of them fails.
func (p *port) serve(ctx context.Context, conns PortConns) error {
	d := p.d
	agent, err := lldpagent.New(conns.LLDP, lldpagent.Config{
		Build:      p.build,
		Dest:       wire.NearestCustomerBridge,
		TxInterval: d.opts.LLDPTxInterval,
		Sign:       lldpagent.SignWith(d.signer, p.lldpChan),
		Check:      p.checkLLDP(p.noDowngrade(lldpagent.VerifyWith(d.verifier.Signatures(), p.lldpChan, d.cfg.RequireSigned))),
		OnEvent:    p.onLLDP,
		Logger:     d.log,
		TetherCID:  d.cid,
	})
	if err != nil {
		return fmt.Errorf("port %s: LLDP agent: %w", p.name, err)
	}
	p.mu.Lock()
	op := p.evbOp
	p.mu.Unlock()
	timing := vdp.Timing{R: op.R, RTE: op.RTE, RWD: op.RWD, RKA: op.RKA}
	bridge, err := vdp.NewBridge(retryLink{conns.ECP}, vdp.BridgeConfig{
		Name:     p.ecpChan,
		LocalMAC: conns.Interface.MAC,
		Timing:   &timing,
		CID:      d.cid,
		Security: vdp.Security{
			Sign: vdp.IdentitySigner(d.signer, p.ecpChan),
			// S-VID 0: a frame bound to an S-channel is refused here.
			Verify:        vdp.BindingVerifier(vdp.IdentityVerifier(d.verifier.Signatures(), p.ecpChan), d.cid, 0),
			PeerCapable:   p.peerCapable,
			RequireSigned: d.cfg.RequireSigned,
		},
		Decider: p,
		Logger:  d.log,
		OnEvent: p.onVDPOf(0),
	})
	if err != nil {
		return fmt.Errorf("port %s: VDP bridge: %w", p.name, err)
	}
	p.mu.Lock()
	p.iface, p.agent, p.bridge, p.running, p.lastErr = conns.Interface, agent, bridge, true, ""
	p.mu.Unlock()
	p.log.Info("port up", "mac", macString(conns.Interface.MAC))
	defer func() {
		p.mu.Lock()
		p.agent, p.bridge, p.running, p.capable = nil, nil, false, false
		p.refusedLLDP, p.rechecking = nil, nil
		if p.identOK {
			p.ident, p.identOK = verify.Neighbour{}, false
			close(p.identCh)
			p.identCh = make(chan struct{})
		}
		p.mu.Unlock()
	}()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- agent.Run(sctx) }()
	go func() { errc <- bridge.Run(sctx) }()
	schDone := make(chan struct{})
	go func() { defer close(schDone); p.runSChannels(sctx, conns.Interface) }()
	first := <-errc
	cancel()
	second := <-errc
	<-schDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if first == nil || errors.Is(first, context.Canceled) {
		first = second
	}
	if first == nil {
		first = errors.New("stopped")
	}
	return fmt.Errorf("port %s: %w", p.name, first)
}

// checkLLDP wraps the LLDP signature check so that a refused neighbour
// (an unenrolled host key, a bad signature, an unsigned LLDPDU under
// require_signed) shows in the rejects ring: otherwise the operator sees
// only a port with no neighbour and VIFs that never associate.
func (p *port) checkLLDP(check lldpagent.CheckFunc) lldpagent.CheckFunc {
	return func(ctx context.Context, frame []byte, du *wire.LLDPDU) (lldpagent.CheckResult, error) {
		res, err := check(ctx, frame, du)
		// Check runs on the agent's goroutine, one frame at a time: the
		// frame kept is the port's last one.
		var keep []byte
		if errors.Is(err, identity.ErrUnknownKey) {
			keep = slices.Clone(frame)
		}
		p.mu.Lock()
		p.refusedLLDP = keep
		again := len(frame) > 0 && len(p.rechecking) > 0 && &frame[0] == &p.rechecking[0]
		if again {
			p.rechecking = nil
		}
		p.mu.Unlock()
		if err != nil && !again {
			rj := rejectOf(p.d.now(), p.name, "LLDP", nil, frameReason(err),
				"LLDP neighbour refused, so no VDP from it is accepted on this port: "+err.Error())
			if du != nil {
				for _, t := range du.TLVs {
					if n, ok := t.(wire.SystemName); ok {
						rj.Host = string(n)
					}
				}
			}
			p.d.rej.add(rj)
		}
		return res, err
	}
}

// recheckLLDP hands the port's last LLDPDU refused for an unknown key back
// to its LLDP agent (after the enrolled host keys changed).
func (p *port) recheckLLDP() {
	p.mu.Lock()
	frame, ag := p.refusedLLDP, p.agent
	p.refusedLLDP = nil // Check keeps it again if still refused
	if frame != nil && ag != nil {
		p.rechecking = frame
	}
	p.mu.Unlock()
	if frame != nil && ag != nil {
		p.log.Debug("host keys changed: LLDPDU refused for an unknown key checked again")
		ag.Recheck(frame)
	}
}

// forgetLLDP removes from the port's LLDP neighbour table the neighbours
// whose last LLDPDU was signed by a key in revoked (after the enrolled host
// keys changed). The agent reports each with a NeighborRemoved event, which
// the worker handles as a lost neighbour.
func (p *port) forgetLLDP(revoked map[identity.KeyID]string) {
	if len(revoked) == 0 {
		return
	}
	p.mu.Lock()
	ag := p.agent
	p.mu.Unlock()
	if ag == nil {
		return
	}
	ag.Forget(func(n *lldpagent.Neighbor) bool {
		if !n.Check.Signed {
			return false
		}
		h, ok := revoked[identity.KeyID(n.Check.KeyID)]
		if ok {
			p.log.Info("LLDP neighbour removed: its key is no longer enrolled", "host", h, "key", identity.KeyID(n.Check.KeyID).String())
		}
		return ok
	})
}

// onLLDP hears the LLDP agent's neighbour events (on its goroutine).
func (p *port) onLLDP(ev lldpagent.Event) {
	p.enqueue(op{kind: opNeighbour, why: "LLDP neighbour " + ev.Kind.String()})
}

// onVDP hears the VDP bridge's events (on its goroutines; must not block).
func (p *port) onVDP(ev vdp.Event) {
	k := recKey{p.name, ev.Key}
	switch ev.Kind {
	case vdp.EventDeassociated:
		p.enqueue(op{kind: opVSIGone, key: ev.Key, gen: p.d.tbl.genOf(k), why: "DE-ASSOCIATE from the station"})
	case vdp.EventKeepaliveExpired:
		p.enqueue(op{kind: opVSIGone, key: ev.Key, gen: p.d.tbl.genOf(k), why: "keep-alive timeout"})
	case vdp.EventRejected:
		// The decider refused (and already removed what it had to), or
		// it accepted too late or with filters the bridge refused: then
		// the VSI is gone from the bridge but its record is not.
		if ev.State == vdp.StateNone {
			if g := p.d.tbl.genOf(k); g != 0 {
				p.enqueue(op{kind: opVSIGone, key: ev.Key, gen: g, why: "the bridge refused the request after the decider accepted it: " + errString(ev.Err)})
			}
		}
	case vdp.EventFrameRefused:
		rj := rejectOf(p.d.now(), p.name, "", nil, "frame-refused", errString(ev.Err))
		rj.Reason = frameReason(ev.Err)
		p.d.rej.add(rj)
	case vdp.EventResponseLost:
		p.log.Warn("ECP gave up on a frame of responses", "err", ev.Err)
	}
}

// frameReason names why the VDP bridge refused a frame.
func frameReason(err error) string {
	switch {
	case errors.Is(err, vdp.ErrPeerNotCapable):
		return "peer-not-capable"
	case errors.Is(err, vdp.ErrUnsignedRefused), errors.Is(err, identity.ErrUnsigned):
		return "unsigned-refused"
	case errors.Is(err, identity.ErrBadSignature):
		return "bad-signature"
	case errors.Is(err, identity.ErrUnknownKey):
		return "unknown-key"
	case errors.Is(err, identity.ErrReplay):
		return "replay"
	case errors.Is(err, vdp.ErrChannelBinding):
		return "channel-binding"
	}
	return "frame-refused"
}

// worker applies the port's tasks, and reconciles the associations with
// the VDP bridge and the LLDP neighbour every reconcileInterval.
func (p *port) worker(ctx context.Context) {
	tick := time.NewTicker(p.d.opts.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-p.ops:
			p.apply(ctx, o)
		case <-tick.C:
			p.reconcile(ctx)
		}
	}
}

// apply runs one task.
func (p *port) apply(ctx context.Context, o op) {
	switch o.kind {
	case opVSIGone:
		if o.gen == 0 {
			return
		}
		k := recKey{p.name, o.key}
		p.drop(ctx, k, o.gen, o.why, false)
	case opNeighbour:
		p.negotiate()
		p.checkNeighbour(ctx, o.why)
	case opMigrated:
		p.migrated(ctx, o)
	case opOverlapCheck:
		p.checkOverlaps(ctx)
	case opOverlapDestGone:
		p.destGone(ctx, o)
	}
}

// negotiate runs the EVB and CDCP exchanges against the neighbour's TLVs
// and updates what the port advertises and the VDP bridge's timers.
func (p *port) negotiate() {
	var peerEVB *wire.EVB
	var peerCDCP *wire.CDCP
	capable := false
	nbs := p.neighbors()
	for _, n := range nbs {
		if e := n.EVB(); e != nil && peerEVB == nil {
			peerEVB = e
		}
		if c := n.CDCP(); c != nil && peerCDCP == nil {
			peerCDCP = c
		}
		capable = capable || n.Tether() != nil
	}
	op, tlv, err := evb.Bridge(p.d.evbCfg, peerEVB)
	if err != nil {
		p.log.Warn("EVB TLV from the station ignored", "err", err)
		op, tlv, _ = evb.Bridge(p.d.evbCfg, nil)
	}
	p.mu.Lock()
	cc := p.d.cdcpCfg
	cc.Current = p.channels
	p.mu.Unlock()
	cd, err := evb.BridgeAssign(cc, peerCDCP)
	if err != nil {
		p.log.Error("CDCP", "err", err)
		cd, _ = evb.BridgeAssign(p.d.cdcpCfg, nil)
	}
	p.mu.Lock()
	changed := p.local.EVB == nil || *p.local.EVB != tlv || p.local.CDCP == nil || !sameCDCP(p.local.CDCP, &cd)
	timingChanged := op.R != p.evbOp.R || op.RTE != p.evbOp.RTE || op.RWD != p.evbOp.RWD || op.RKA != p.evbOp.RKA
	p.local.EVB, p.local.CDCP = &tlv, &cd
	p.evbOp, p.channels = op, cd.Channels
	if len(nbs) > 0 {
		// Without a neighbour the peer's capability is unknown: keep the
		// last one, so the DE-ASSOCIATEs that a lost neighbour causes
		// still go out signed, and unsigned VDP is still refused from a
		// peer that signed before.
		p.capable = capable
	}
	br, ag := p.bridge, p.agent
	p.mu.Unlock()
	if timingChanged && br != nil {
		if err := br.SetTiming(vdp.Timing{R: op.R, RTE: op.RTE, RWD: op.RWD, RKA: op.RKA}); err != nil {
			p.log.Error("VDP timing", "err", err)
		} else {
			p.log.Info("EVB negotiated", "peer_seen", op.PeerSeen, "r", op.R, "rte", op.RTE, "rwd", op.RWD, "rka", op.RKA,
				"reflective_relay", op.ReflectiveRelay)
		}
	}
	if op.PeerSeen {
		p.d.extendGrace(op.KeepAlive())
	}
	if changed && ag != nil {
		ag.Update()
	}
}

func sameCDCP(a, b *wire.CDCP) bool {
	return a.Role == b.Role && a.SComp == b.SComp && a.ChnCap == b.ChnCap && slices.Equal(a.Channels, b.Channels)
}

// checkNeighbour removes every association that the port's LLDP neighbour
// no longer vouches for: all of them when the neighbour is lost (expired,
// shut down, or two identities behind the port), those verified under
// another host or key when it changed.
func (p *port) checkNeighbour(ctx context.Context, why string) {
	nb, ok := p.d.neighbours.Neighbour(p.name)
	p.mu.Lock()
	changed := ok != p.identOK || nb != p.ident
	p.ident, p.identOK = nb, ok
	if changed {
		close(p.identCh)
		p.identCh = make(chan struct{})
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("LLDP neighbour identity", "present", ok, "host", nb.Host, "signed", nb.Signed, "key", keyString(nb))
	}
	for _, r := range p.d.tbl.port(p.name) {
		if ok && r.vouchedBy(nb) {
			continue
		}
		reason := "the LLDP neighbour is lost (" + why + ")"
		if ok {
			reason = fmt.Sprintf("the LLDP neighbour is now host %q key %s, not %q key %s (%s)", nb.Host, keyString(nb), r.host, r.signer, why)
		}
		k := recKey{p.name, r.key}
		p.drop(ctx, k, r.gen, reason, true)
	}
}

func keyString(nb verify.Neighbour) string {
	if !nb.Signed {
		return "-"
	}
	return nb.Key.String()
}

// reconcile compares the associations of the port with its VDP bridge and
// its LLDP neighbour and repairs what events missed: a record whose VSI the
// bridge no longer holds is dropped; a VSI the bridge holds without a
// record is de-associated (the station then associates it again, and is
// verified again).
func (p *port) reconcile(ctx context.Context) {
	p.mu.Lock()
	br := p.bridge
	p.dirty = false
	p.mu.Unlock()
	p.checkNeighbour(ctx, "reconcile")
	p.checkOverlaps(ctx)
	if br == nil {
		return
	}
	for _, r := range p.d.tbl.port(p.name) {
		k := recKey{p.name, r.key}
		mu := p.d.str.of(k)
		mu.Lock()
		var info vdp.VSIInfo
		ok := false
		if rb := p.bridgeOf(svidOf(r.pairs)); rb != nil {
			info, ok = rb.Lookup(r.key)
		}
		if cur := p.d.tbl.get(k); cur != nil && cur.gen == r.gen && (!ok || (info.State == vdp.StateNone && info.Pending == 0)) {
			p.dropLocked(ctx, k, r.gen, "the VDP bridge no longer holds the VSI", false)
		}
		mu.Unlock()
	}
	for _, br := range p.bridges() {
		p.deassociateOrphans(br)
	}
}

// deassociateOrphans de-associates the VSIs br holds without a verified
// association (reconcile).
func (p *port) deassociateOrphans(br *vdp.Bridge) {
	for _, info := range br.VSIs() {
		if info.State == vdp.StateNone || info.Pending != 0 {
			continue
		}
		k := recKey{p.name, info.Key}
		mu := p.d.str.of(k)
		mu.Lock()
		if p.d.tbl.get(k) == nil {
			if cur, ok := br.Lookup(info.Key); ok && cur.State != vdp.StateNone && cur.Pending == 0 {
				p.log.Warn("VSI held by the bridge without a verified association: de-associating", "vsi", info.Key.String())
				if err := br.Deassociate(info.Key); err != nil && !errors.Is(err, vdp.ErrNotAssociated) {
					p.log.Error("de-associate", "vsi", info.Key.String(), "err", err)
				}
			}
		}
		mu.Unlock()
	}
}

// dropAll removes every association of the port.
func (p *port) dropAll(ctx context.Context, why string, tell bool) {
	for _, r := range p.d.tbl.port(p.name) {
		k := recKey{p.name, r.key}
		p.drop(ctx, k, r.gen, why, tell)
	}
}

// drop is dropLocked under the stripe lock of k.
func (p *port) drop(ctx context.Context, k recKey, gen uint64, why string, tell bool) {
	mu := p.d.str.of(k)
	mu.Lock()
	defer mu.Unlock()
	p.dropLocked(ctx, k, gen, why, tell)
}

// dropLocked removes the association k if its generation is gen: its
// pairs are revoked, the verifier releases its MACs, and with tell the
// station hears DE-ASSOCIATE. The stripe of k is held.
func (p *port) dropLocked(ctx context.Context, k recKey, gen uint64, why string, tell bool) {
	r := p.d.tbl.remove(k, gen)
	if r == nil {
		return
	}
	p.d.revoke(ctx, p.name, r.pairs)
	if err := p.d.verifier.Release(ctx, p.name, r.vm); err != nil {
		p.log.Error("verifier release", "vm", r.vm.String(), "err", err)
	}
	p.d.destinationGone(p.name, r)
	if tell {
		br := p.bridgeOf(svidOf(r.pairs))
		if br != nil {
			if err := br.Deassociate(k.vsi); err != nil && !errors.Is(err, vdp.ErrNotAssociated) {
				p.log.Error("de-associate", "vsi", k.vsi.String(), "err", err)
			}
		}
	}
	p.log.Info("association removed", "vm", r.vm.String(), "host", r.host, "state", r.state.String(),
		"pairs", pairsString(r.pairs), "why", why)
}

// retryLink is an ECP link that reads through link flaps: a read that
// finds the link down (ENETDOWN) waits and reads again, as rawsock's
// Receiver does for LLDP.
type retryLink struct{ ecp.Link }

// ReadFrame implements ecp.Link.
func (l retryLink) ReadFrame(ctx context.Context, b []byte) (int, error) {
	for {
		n, err := l.Link.ReadFrame(ctx, b)
		if err == nil || !errors.Is(err, syscall.ENETDOWN) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func macString(m [6]byte) string { return verify.MAC(m).String() }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
