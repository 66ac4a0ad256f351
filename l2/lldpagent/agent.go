package lldpagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// minFrameLen is the shortest Ethernet frame without FCS; shorter frames
// are padded with zeros after signing.
const minFrameLen = 60

// writeTimeout bounds one transmission, the shutdown LLDPDU included.
const writeTimeout = 2 * time.Second

// Stats are an agent's counters (802.1AB-2016 11.5 statistics, plus the
// port's receive budget).
type Stats struct {
	// FramesOut counts the LLDPDUs sent (lldpV2StatsTxPortFramesTotal),
	// shutdown LLDPDUs included.
	FramesOut uint64
	// ShutdownFramesOut counts the shutdown LLDPDUs sent.
	ShutdownFramesOut uint64
	// TxErrors counts transmissions that failed to build, sign or send.
	TxErrors uint64
	// FramesIn counts the well-formed LLDPDUs that passed Check
	// (lldpV2StatsRxPortFramesTotal).
	FramesIn uint64
	// Malformed counts the frames discarded because they did not decode
	// (lldpV2StatsRxPortFramesErrors and FramesDiscardedTotal).
	Malformed uint64
	// Rejected counts the well-formed LLDPDUs Check refused.
	Rejected uint64
	// OtherDestination counts frames to a destination this agent does not
	// accept (another agent's).
	OtherDestination uint64
	// TooManyNeighbors counts LLDPDUs from new neighbours dropped because
	// the table was full (lldpV2StatsRemTablesDrops).
	TooManyNeighbors uint64
	// Ageouts counts neighbours removed when their TTL ran out
	// (lldpV2StatsRxPortAgeoutsTotal).
	Ageouts uint64
	// Removed counts neighbours removed by Forget.
	Removed uint64
	// Inserts and Deletes count neighbour table insertions and removals.
	Inserts, Deletes uint64
	// Neighbors is the number of neighbours now.
	Neighbors int
	// Receive is the port's receive budget accounting:
	// Receive.Delivered = FramesIn + Malformed + Rejected + OtherDestination
	// once the agent has handled every delivered frame.
	Receive rawsock.ReceiverStats
}

// Agent is the LLDP agent of one port and destination address. Create it
// with New and start it with Run; its other methods are safe for
// concurrent use.
type Agent struct {
	conn rawsock.Conn
	cfg  Config
	ifi  rawsock.Interface
	ttl  uint16
	log  *slog.Logger

	changed chan struct{} // Update's signal, capacity 1
	recheck chan []byte   // Recheck's frame, capacity 1
	forget  chan struct{} // Forget's signal, capacity 1
	running atomic.Bool
	recv    atomic.Pointer[rawsock.Receiver]

	mu      sync.Mutex
	m       *machine
	forgets []func(*Neighbor) bool // Forget's predicates not yet applied

	// Owned by the Run goroutine.
	lastBuilt  []byte      // the last LLDPDU built, TTL 0, unsigned
	lastMSAP   wire.LLDPDU // chassis and port ID of the last LLDPDU sent
	sent       bool
	fullWarned bool // the table-full warning was logged

	framesOut, shutdownOut, txErrors atomic.Uint64

	// idle, when set (by tests), receives a value each time Run is about
	// to wait, so a test on a fake clock knows the agent has settled.
	idle chan<- struct{}
}

// New returns an agent that speaks on conn. The agent does not own conn:
// the caller closes it after Run returns.
func New(conn rawsock.Conn, cfg Config) (*Agent, error) {
	if conn == nil {
		return nil, errors.New("lldpagent: New needs a Conn")
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	ifi := conn.Interface()
	return &Agent{
		conn:    conn,
		cfg:     cfg,
		ifi:     ifi,
		ttl:     cfg.ttl(),
		log:     cfg.Logger.With("component", "lldpagent", "port", ifi.Name),
		changed: make(chan struct{}, 1),
		recheck: make(chan []byte, 1),
		forget:  make(chan struct{}, 1),
		m:       newMachine(cfg),
	}, nil
}

// TTL returns the Time To Live the agent advertises, in seconds.
func (a *Agent) TTL() uint16 { return a.ttl }

// Interface returns the agent's port.
func (a *Agent) Interface() rawsock.Interface { return a.ifi }

// Update tells the agent that what Config.Build returns may have changed.
// If the LLDPDU did change, the agent starts fast transmission. It does not
// block.
func (a *Agent) Update() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// Recheck hands frame, an LLDPDU the agent received and Config.Check
// refused, back to the agent: it runs through Check and the neighbour
// table again as if it had just been received (its TTL counts from now).
// It is for a Check whose verdict may have changed since, for example a
// signer's key enrolled after its LLDPDU was refused, so the neighbour
// need not wait for its next LLDPDU. The agent owns frame from now on. It
// does not block: a frame still waiting from an earlier Recheck is
// replaced.
func (a *Agent) Recheck(frame []byte) {
	for {
		select {
		case a.recheck <- frame:
			return
		default:
		}
		select {
		case <-a.recheck:
		default:
		}
	}
}

// Forget removes from the neighbour table every neighbour for which match
// returns true, with a NeighborRemoved event for each, as a TTL running
// out would. It is for neighbours that Check would no longer accept, for
// example those verified under a key revoked since, so they need not stay
// until their TTL ends. match is called on the agent's goroutine and must
// not modify the Neighbor or call the agent. Forget does not block; the
// agent finishes the frame it is handling first, so a neighbour that Check
// accepted before the caller revoked its key is removed too. A neighbour
// that sends again afterwards is judged by Check as a new one. Calls made
// before Run are applied when Run starts.
func (a *Agent) Forget(match func(*Neighbor) bool) {
	if match == nil {
		return
	}
	a.mu.Lock()
	a.forgets = append(a.forgets, match)
	a.mu.Unlock()
	select {
	case a.forget <- struct{}{}:
	default:
	}
}

// ForgetKey is Forget for the neighbours whose last LLDPDU was signed by
// the key id (CheckResult.KeyID).
func (a *Agent) ForgetKey(id [8]byte) {
	a.Forget(func(n *Neighbor) bool { return n.Check.Signed && n.Check.KeyID == id })
}

// applyForgets runs the predicates Forget queued.
func (a *Agent) applyForgets(now time.Time) {
	a.mu.Lock()
	fs := a.forgets
	a.forgets = nil
	var evs []Event
	for _, f := range fs {
		evs = append(evs, a.m.remove(now, a.ifi.Name, f)...)
	}
	a.mu.Unlock()
	a.emit(evs)
}

// Neighbors returns the neighbour table, sorted by chassis ID then port ID.
func (a *Agent) Neighbors() []Neighbor {
	a.mu.Lock()
	ns := a.m.neighbors()
	a.mu.Unlock()
	sort.Slice(ns, func(i, j int) bool {
		if c := bytes.Compare(ns[i].ChassisID.ID, ns[j].ChassisID.ID); c != 0 {
			return c < 0
		}
		return bytes.Compare(ns[i].PortID.ID, ns[j].PortID.ID) < 0
	})
	return ns
}

// Stats returns the counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	c := a.m.counters
	n := len(a.m.table)
	a.mu.Unlock()
	s := Stats{
		FramesOut:         a.framesOut.Load(),
		ShutdownFramesOut: a.shutdownOut.Load(),
		TxErrors:          a.txErrors.Load(),
		FramesIn:          c.framesIn,
		Malformed:         c.malformed,
		Rejected:          c.rejected,
		OtherDestination:  c.otherDestination,
		TooManyNeighbors:  c.tooMany,
		Ageouts:           c.ageouts,
		Removed:           c.removed,
		Inserts:           c.inserts,
		Deletes:           c.deletes,
		Neighbors:         n,
	}
	if r := a.recv.Load(); r != nil {
		s.Receive = r.Stats()
	}
	return s
}

// Run runs the agent until ctx ends, then sends a shutdown LLDPDU and
// returns nil. If the Conn fails it returns the error without a shutdown
// LLDPDU. A link going down is not a failure: transmissions fail (counted
// in TxErrors) until it comes back, and the neighbours age out by their
// TTL. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("lldpagent: Run called twice")
	}
	recv := rawsock.NewReceiver(a.conn, a.cfg.Receive)
	a.recv.Store(recv)
	rctx, stopRecv := context.WithCancel(ctx)
	var recvErr error
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		recvErr = recv.Run(rctx)
	}()
	defer func() {
		stopRecv()
		<-recvDone
	}()

	clock := a.cfg.Clock
	a.mu.Lock()
	a.m.start(clock.Now())
	a.mu.Unlock()
	a.log.Info("LLDP agent started", "dest", macString(a.cfg.Dest), "ttl", a.ttl, "tx_interval", a.cfg.TxInterval)

	timer := clock.NewTimer(time.Hour)
	defer timer.Stop()
	frames := recv.Frames()
	for {
		wake := a.step(ctx, clock.Now())
		timer.Reset(wake.Sub(clock.Now()))
		if a.idle != nil {
			a.idle <- struct{}{}
		}
		select {
		case <-ctx.Done():
			a.shutdown(ctx)
			a.log.Info("LLDP agent stopped")
			return nil
		case f, ok := <-frames:
			if !ok {
				<-recvDone
				if recvErr == nil {
					// The receiver stopped because ctx ended and
					// this case won the race with the one above.
					a.shutdown(ctx)
					a.log.Info("LLDP agent stopped")
					return nil
				}
				a.log.Error("LLDP agent stopped: port failed", "err", recvErr)
				return fmt.Errorf("lldpagent: %s: %w", a.ifi.Name, recvErr)
			}
			a.handleFrame(ctx, clock.Now(), f.Data)
		case <-timer.C():
		case <-a.changed:
			a.checkLocalChange(clock.Now())
		case f := <-a.recheck:
			a.handleFrame(ctx, clock.Now(), f)
		case <-a.forget:
			a.applyForgets(clock.Now())
		}
	}
}

// step ages out neighbours, transmits when the state machine says so, and
// returns when it next needs to run.
func (a *Agent) step(ctx context.Context, now time.Time) time.Time {
	a.mu.Lock()
	evs := a.m.ageOut(now, a.ifi.Name)
	tx := a.m.advance(now)
	a.mu.Unlock()
	a.emit(evs)
	if tx {
		a.transmit(ctx)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m.nextWake()
}

// emit hands events to OnEvent and logs them.
func (a *Agent) emit(evs []Event) {
	for _, ev := range evs {
		a.log.Info("LLDP neighbour "+ev.Kind.String(),
			"chassis", idString(ev.Neighbor.ChassisID.ID), "port_id", idString(ev.Neighbor.PortID.ID),
			"system_name", ev.Neighbor.SystemName(), "ttl", ev.Neighbor.TTL)
		if a.cfg.OnEvent != nil {
			a.cfg.OnEvent(ev)
		}
	}
}

// build returns the LLDPDU from Config.Build with the agent's CID.
func (a *Agent) build() (wire.LLDPDU, error) {
	du, err := a.cfg.Build()
	if err != nil {
		return du, fmt.Errorf("build LLDPDU: %w", err)
	}
	if du.TetherCID == (wire.OUI{}) {
		du.TetherCID = a.cfg.TetherCID
	}
	return du, nil
}

// checkLocalChange rebuilds the LLDPDU after Update and starts fast
// transmission when it differs from the last one built.
func (a *Agent) checkLocalChange(now time.Time) {
	du, err := a.build()
	if err != nil {
		a.txErrors.Add(1)
		a.log.Error("LLDPDU build failed", "err", err)
		return
	}
	du.TTL = 0
	b, err := du.MarshalBinary()
	if err != nil {
		a.txErrors.Add(1)
		a.log.Error("LLDPDU encoding failed", "err", err)
		return
	}
	if a.lastBuilt != nil && bytes.Equal(b, a.lastBuilt) {
		return
	}
	a.log.Debug("local change: fast transmission")
	a.mu.Lock()
	a.m.localChange(now)
	a.mu.Unlock()
}

// transmit builds, signs and sends one LLDPDU.
func (a *Agent) transmit(ctx context.Context) {
	du, err := a.build()
	if err == nil {
		du.TTL = 0
		var b []byte
		if b, err = du.MarshalBinary(); err == nil {
			a.lastBuilt = b
		}
		du.TTL = a.ttl
	}
	if err == nil {
		err = a.send(ctx, &du)
	}
	if err != nil {
		a.txErrors.Add(1)
		a.log.Error("LLDPDU not sent", "err", err)
		return
	}
	a.lastMSAP = wire.LLDPDU{ChassisID: du.ChassisID, PortID: du.PortID, TetherCID: du.TetherCID}
	a.sent = true
	a.framesOut.Add(1)
}

// send encodes du into a frame, signs it, pads it and writes it.
func (a *Agent) send(ctx context.Context, du *wire.LLDPDU) error {
	h := wire.EthernetHeader{Dst: a.cfg.Dest, Src: a.ifi.MAC, EtherType: wire.EtherTypeLLDP}
	frame := h.Append(make([]byte, 0, 256))
	frame, err := du.AppendBinary(frame)
	if err != nil {
		return fmt.Errorf("encode LLDPDU: %w", err)
	}
	if a.cfg.Sign != nil {
		if frame, err = a.cfg.Sign(ctx, frame); err != nil {
			return fmt.Errorf("sign LLDPDU: %w", err)
		}
		if n := len(frame) - h.Len(); n > wire.MaxLLDPDU {
			return fmt.Errorf("signed LLDPDU is %d bytes, at most %d fit in a frame", n, wire.MaxLLDPDU)
		}
	}
	for len(frame) < minFrameLen {
		frame = append(frame, 0)
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := a.conn.WriteFrame(wctx, frame); err != nil {
		return fmt.Errorf("send LLDPDU: %w", err)
	}
	return nil
}

// shutdown sends the shutdown LLDPDU (802.1AB-2016 9.2.7.x
// mibConstrShutdownLLDPDU: chassis ID, port ID, TTL 0, End), signed when
// the agent signs, if the agent sent anything before.
func (a *Agent) shutdown(ctx context.Context) {
	if !a.sent {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	du := a.lastMSAP
	du.TTL = 0
	if err := a.send(ctx, &du); err != nil {
		a.txErrors.Add(1)
		a.log.Warn("shutdown LLDPDU not sent", "err", err)
		return
	}
	a.framesOut.Add(1)
	a.shutdownOut.Add(1)
}

// handleFrame runs one received frame through decoding, Check and the
// neighbour table. frame is owned by the agent from now on.
func (a *Agent) handleFrame(ctx context.Context, now time.Time, frame []byte) {
	du, src, err := a.decode(frame)
	if err != nil {
		a.mu.Lock()
		if errors.Is(err, errOtherDestination) {
			a.m.otherDestination++
		} else {
			a.m.malformed++
		}
		a.mu.Unlock()
		a.log.Debug("LLDP frame dropped", "err", err)
		return
	}
	var res CheckResult
	if a.cfg.Check != nil {
		if res, err = a.cfg.Check(ctx, frame, &du); err != nil {
			a.mu.Lock()
			a.m.rejected++
			a.mu.Unlock()
			a.log.Debug("LLDP frame rejected", "src", macString(src), "err", err)
			return
		}
	}
	a.mu.Lock()
	dropped := a.m.tooMany
	evs, isNew := a.m.apply(now, a.ifi.Name, frame, src, du, res)
	if isNew {
		a.m.fastStart(now)
	}
	dropped = a.m.tooMany - dropped
	full := a.m.full
	a.mu.Unlock()
	switch {
	case dropped > 0 && !a.fullWarned:
		a.fullWarned = true
		a.log.Warn("LLDP neighbour table full: LLDPDUs from new neighbours are dropped", "max", a.cfg.MaxNeighbors, "src", macString(src))
	case !full:
		a.fullWarned = false
	}
	a.emit(evs)
}

// errOtherDestination marks a frame for a destination the agent ignores.
var errOtherDestination = errors.New("destination address not accepted by this agent")

// decode parses the Ethernet header and the LLDPDU of frame.
func (a *Agent) decode(frame []byte) (wire.LLDPDU, [6]byte, error) {
	var h wire.EthernetHeader
	du := wire.LLDPDU{TetherCID: a.cfg.TetherCID}
	payload, err := h.Parse(frame)
	if err != nil {
		return du, h.Src, fmt.Errorf("parse Ethernet header: %w", err)
	}
	if h.EtherType != wire.EtherTypeLLDP {
		return du, h.Src, fmt.Errorf("frame has EtherType %#04x, not LLDP", h.EtherType)
	}
	accepted := false
	for _, d := range a.cfg.Accept {
		if h.Dst == d {
			accepted = true
			break
		}
	}
	if !accepted {
		return du, h.Src, fmt.Errorf("%w: %s", errOtherDestination, macString(h.Dst))
	}
	if err := du.UnmarshalBinary(payload); err != nil {
		return du, h.Src, fmt.Errorf("decode LLDPDU: %w", err)
	}
	return du, h.Src, nil
}

// macString formats a MAC address as 01:80:c2:00:00:0e.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// idString renders a chassis or port ID for logs: printable ASCII as is,
// anything else in hex.
func idString(id []byte) string {
	for _, c := range id {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%x", id)
		}
	}
	return string(id)
}
