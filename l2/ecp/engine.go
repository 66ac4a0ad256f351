package ecp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/wire"
)

// Limits of the EVB-negotiated ECP parameters (IEEE 802.1Q-2018 D.2.12:
// R is 3 bits, RTE 5 bits).
const (
	// MaxR is the largest number of retransmissions R can ask for.
	MaxR = 7
	// MaxRTE is the largest retransmission timer exponent.
	MaxRTE = 31
)

// Defaults used when a Config has no Params: lldpad's ECP defaults
// (qbg/ecp22.c: 3 retries, RTE 8, that is an ACK timer of 2.56 ms).
const (
	DefaultR   = 3
	DefaultRTE = 8
)

// DefaultQueueLen is how many received requests may wait for a slow
// Handler (at most 1.5 MB of frames). A signature verifier that persists
// every counter with an fsync takes about 1 ms a frame, while a peer sends
// one frame per round trip of a few tens of µs: the queue absorbs a burst
// of responses so ACKs stay prompt instead of the peer giving up after R
// retries.
const DefaultQueueLen = 1024

// Frame sizes.
const (
	// headerLen is the ECPDU header: version, operation, subtype and
	// sequence number (IEEE 802.1Qbg-2012 43.3).
	headerLen = 4
	// minFrameLen is the minimum Ethernet frame without FCS; shorter
	// frames are padded with zeros, as lldpad pads its requests.
	minFrameLen = 60
	// rxBufLen holds the largest frame a Link may hand over: 1500 bytes
	// of payload, a header and one 802.1Q tag, with room to spare.
	rxBufLen = 2048
)

// Errors reported to the upper-layer protocol through Source.Done or
// returned by Engine methods.
var (
	// ErrNoAck means a request was transmitted 1+R times without a
	// matching ACK and was dropped (IEEE 802.1Qbg-2012 43.3: the
	// transmitter gives up after maxRetries and moves to the next ULPDU).
	ErrNoAck = errors.New("ecp: no ACK")
	// ErrTooLarge means a ULPDU does not fit in one ECPDU.
	ErrTooLarge = errors.New("ecp: ULPDU does not fit in one ECPDU")
	// ErrStopped means the engine stopped (its Run returned) before the
	// request was acknowledged.
	ErrStopped = errors.New("ecp: engine stopped")
)

// Params are the ECP parameters an EVB TLV exchange negotiates
// (IEEE 802.1Q-2018 D.2.12; lldpad takes the larger of the local and the
// peer's value for each).
type Params struct {
	// R is the number of retransmissions of a request before the
	// transmitter gives up on it (0-7).
	R uint8
	// RTE is the retransmission timer exponent: the ACK timer is
	// 10 µs × 2^RTE (0-31).
	RTE uint8
}

// DefaultParams returns R = DefaultR and RTE = DefaultRTE.
func DefaultParams() Params { return Params{R: DefaultR, RTE: DefaultRTE} }

// AckTimeout returns the ACK timer, 10 µs × 2^RTE.
func (p Params) AckTimeout() time.Duration { return ExpDuration(p.RTE) }

// Validate reports a parameter out of its field's range.
func (p Params) Validate() error {
	if p.R > MaxR {
		return fmt.Errorf("ecp: R %d out of range 0-%d", p.R, MaxR)
	}
	if p.RTE > MaxRTE {
		return fmt.Errorf("ecp: RTE %d out of range 0-%d", p.RTE, MaxRTE)
	}
	return nil
}

// Source supplies the transmitter with upper-layer PDUs. The Engine calls
// Next whenever no request is outstanding: right after the ACK of the
// previous one, never on a timer, so the source can pack everything that
// queued up during the round trip into one ECPDU. Both methods are called
// from the Engine's transmit goroutine, one at a time, and must not block.
type Source interface {
	// Next appends the next ULPDU (the ECPDU's payload, after its 4-byte
	// header) to b, at most max bytes, and returns the extended slice and
	// true; or b and false when nothing is pending. It must not modify
	// b[:len(b)].
	Next(b []byte, max int) ([]byte, bool)
	// Done reports the fate of the ULPDU the last successful Next
	// returned: nil once its ACK arrived, or an error matching ErrNoAck
	// (retries exhausted), ErrTooLarge, ErrStopped or a signing error.
	Done(err error)
}

// Handler receives the new requests of the peer, in order and once each:
// duplicates (retransmissions whose ACK was lost) are acknowledged but not
// delivered. Receive is called from one goroutine, after the ACK was
// sent. Up to QueueLen requests wait for a slow Handler; a new request
// beyond that waits at most half an ACK timer for room, then goes
// unacknowledged, so the peer retransmits it later (flow control by ECP's
// own retransmission) while this engine's own ACKs keep being read.
type Handler interface {
	Receive(ctx context.Context, r *Received)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, r *Received)

// Receive implements Handler.
func (f HandlerFunc) Receive(ctx context.Context, r *Received) { f(ctx, r) }

// Received is one new request of the peer.
type Received struct {
	// Frame is the whole Ethernet frame as received, padding included;
	// the Handler owns it (it is not reused). A signature verifier reads
	// it.
	Frame []byte
	// Header is the frame's Ethernet header.
	Header wire.EthernetHeader
	// PDU is the decoded ECPDU; for subtype VDP, PDU.VDP holds the VDPDU.
	// Frames that do not decode are never delivered.
	PDU wire.ECPDU
}

// SignFunc appends tether's signature TLV to an outgoing frame (an
// identity.Signer's Sign with the channel bound). It may write into
// frame's array past len(frame), like append.
type SignFunc func(ctx context.Context, frame []byte) ([]byte, error)

// Config configures an Engine.
type Config struct {
	// Name names the port and S-channel in logs, for example
	// "eth2/svid=5".
	Name string
	// LocalMAC is the source address of every frame sent; required.
	// Frames received with this source address are ignored.
	LocalMAC [6]byte
	// PeerMAC is the destination of requests; zero means
	// wire.NearestCustomerBridge, as lldpad sends them. ACKs go to the
	// source address of the request they acknowledge.
	PeerMAC [6]byte
	// Subtype is the upper-layer protocol carried; zero means
	// wire.ECPSubtypeVDP. Frames of other subtypes are ignored.
	Subtype wire.ECPSubtype
	// Params are R and RTE; nil means DefaultParams(). SetParams changes
	// them at run time, after an EVB TLV exchange.
	Params *Params
	// CID is the Company ID tether's VDP TLVs are decoded under; zero
	// means wire.DefaultCID.
	CID wire.OUI
	// Sign, if set, signs every request frame before its first
	// transmission (retransmissions repeat the same bytes, counter
	// included). The transmitter then leaves wire.SignatureTLVLen bytes
	// of each ECPDU to it.
	Sign SignFunc
	// Source supplies the requests to send. Nil means an internal FIFO
	// fed by Enqueue, one ULPDU per ECPDU.
	Source Source
	// Handler receives the peer's requests; nil drops them (after the
	// ACK).
	Handler Handler
	// QueueLen bounds the received requests waiting for the Handler
	// (default DefaultQueueLen).
	QueueLen int
	// Clock is the time source; nil means SystemClock.
	Clock Clock
	// Logger receives the logs (default slog.Default()); they carry
	// component=l2/ecp and channel=Name.
	Logger *slog.Logger
}

// Stats are an Engine's counters.
type Stats struct {
	// TxRequests counts requests transmitted for the first time.
	TxRequests uint64 `json:"tx_requests"`
	// TxRetransmits counts retransmissions after the ACK timer expired.
	TxRetransmits uint64 `json:"tx_retransmits"`
	// TxAcked counts requests whose ACK arrived.
	TxAcked uint64 `json:"tx_acked"`
	// TxGiveUps counts requests dropped after R retransmissions.
	TxGiveUps uint64 `json:"tx_give_ups"`
	// TxErrors counts frames the Link failed to send and requests the
	// signer refused.
	TxErrors uint64 `json:"tx_errors"`
	// TxAcks counts ACKs sent (one per request received, duplicates
	// included).
	TxAcks uint64 `json:"tx_acks"`
	// RxRequests counts requests received, duplicates included.
	RxRequests uint64 `json:"rx_requests"`
	// RxDuplicates counts requests received again (same sequence number
	// as the last one), ACKed but not delivered.
	RxDuplicates uint64 `json:"rx_duplicates"`
	// RxDelivered counts requests handed to the Handler.
	RxDelivered uint64 `json:"rx_delivered"`
	// RxAcks counts ACKs received.
	RxAcks uint64 `json:"rx_acks"`
	// RxStaleAcks counts ACKs that matched no outstanding request.
	RxStaleAcks uint64 `json:"rx_stale_acks"`
	// RxMalformed counts ECP frames with a bad header, and new requests
	// whose payload does not decode (ACKed, never delivered).
	RxMalformed uint64 `json:"rx_malformed"`
	// RxQueueFull counts new requests left unacknowledged because the
	// Handler stayed QueueLen requests behind for half an ACK timer (the
	// peer retransmits them).
	RxQueueFull uint64 `json:"rx_queue_full"`
	// RxIgnored counts frames of other EtherTypes or subtypes, frames
	// sent by this engine's own address or by a group address, and
	// unicast frames for others.
	RxIgnored uint64 `json:"rx_ignored"`
}

// stats holds the counters; each is written by one goroutine.
type stats struct {
	txRequests, txRetransmits, txAcked, txGiveUps, txErrors, txAcks atomic.Uint64
	rxRequests, rxDuplicates, rxDelivered, rxAcks, rxStaleAcks      atomic.Uint64
	rxMalformed, rxIgnored, rxQueueFull                             atomic.Uint64
}

// Engine is the ECP entity of one port and S-channel (IEEE 802.1Qbg-2012
// clause 43): a transmit state machine with one outstanding request at a
// time, and a receive state machine that acknowledges every request and
// delivers each sequence number once.
//
// Transmit: a request gets the next sequence number (never 0, as lldpad)
// and is sent; the ACK timer, 10 µs × 2^RTE, is armed. The matching ACK
// ends the request and the next one is pulled from the Source and sent at
// once, without waiting for any timer (lldpad waits for the ACK timer and
// so manages 6 VSIs/s at RTE 14). When the timer expires the request is
// sent again, unchanged, up to R times; then it is dropped, the Source
// hears ErrNoAck, and the next request goes out: order is kept.
//
// Receive: the first request sets lastSeq to its sequence number minus 1
// (RX_FIRST in lldpad's qbg/ecp22.c); a request whose sequence number
// equals lastSeq is a retransmission and is only acknowledged; any other
// is new: lastSeq takes its number, it is acknowledged, then decoded and
// handed to the Handler. Since a retransmission repeats the signed frame
// and its counter, signature verification belongs after this duplicate
// check, in the Handler (identity.Verifier.Verify).
type Engine struct {
	link    Link
	cfg     Config
	log     *slog.Logger
	clock   Clock
	subtype wire.ECPSubtype
	peer    [6]byte
	reserve int // bytes of each ECPDU left for the signature

	params  atomic.Uint32 // R<<8 | RTE
	kick    chan struct{} // capacity 1: "the Source may have data"
	acks    chan uint16   // sequence numbers of received ACKs
	deliver chan rxFrame  // new requests for the Handler
	queue   *fifo         // the internal Source when Config.Source is nil
	running atomic.Bool
	st      stats

	// Receive state, owned by the reader goroutine.
	rxStarted bool
	lastSeq   uint16
	ackBuf    [minFrameLen]byte
	rxWait    Timer // bounds the wait for room in deliver
}

// rxFrame is a new request on its way to the Handler.
type rxFrame struct {
	frame []byte
	hdr   wire.EthernetHeader
	off   int // offset of the ECPDU in frame
}

// New returns an Engine sending and receiving on link. Run starts it.
func New(link Link, cfg Config) (*Engine, error) {
	if link == nil {
		return nil, errors.New("ecp: New needs a Link")
	}
	if cfg.LocalMAC == ([6]byte{}) {
		return nil, errors.New("ecp: Config.LocalMAC is required")
	}
	p := DefaultParams()
	if cfg.Params != nil {
		p = *cfg.Params
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		link:    link,
		cfg:     cfg,
		clock:   cfg.Clock,
		subtype: cfg.Subtype,
		peer:    cfg.PeerMAC,
		kick:    make(chan struct{}, 1),
		acks:    make(chan uint16, 64),
	}
	if e.clock == nil {
		e.clock = SystemClock{}
	}
	if e.subtype == 0 {
		e.subtype = wire.ECPSubtypeVDP
	}
	if e.subtype != wire.ECPSubtypeVDP && e.subtype != wire.ECPSubtypePECSP {
		return nil, fmt.Errorf("ecp: subtype %d is not defined", e.subtype)
	}
	if e.peer == ([6]byte{}) {
		e.peer = wire.NearestCustomerBridge
	}
	if cfg.Sign != nil {
		e.reserve = wire.SignatureTLVLen
	}
	n := cfg.QueueLen
	if n <= 0 {
		n = DefaultQueueLen
	}
	e.deliver = make(chan rxFrame, n)
	if cfg.Source == nil {
		e.queue = &fifo{}
		e.cfg.Source = e.queue
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e.log = log.With("component", "l2/ecp", "channel", cfg.Name)
	e.rxWait = e.clock.NewTimer()
	e.setParams(p)
	return e, nil
}

func (e *Engine) setParams(p Params) { e.params.Store(uint32(p.R)<<8 | uint32(p.RTE)) }

// Params returns the current R and RTE.
func (e *Engine) Params() Params {
	v := e.params.Load()
	return Params{R: uint8(v >> 8), RTE: uint8(v)}
}

// SetParams changes R and RTE, for example after the EVB TLV exchange
// negotiated new values; the next arming of the ACK timer uses them.
func (e *Engine) SetParams(p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	e.setParams(p)
	return nil
}

// MaxPayload returns how many bytes of ULPDU one ECPDU carries: 1500 less
// the ECP header, less the signature TLV when Config.Sign is set.
func (e *Engine) MaxPayload() int { return wire.MaxECPDULen - headerLen - e.reserve }

// Kick tells the transmitter that the Source has data. It never blocks;
// calling it when nothing is pending is harmless.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Enqueue appends a ULPDU to the internal FIFO (Config.Source must be nil)
// and kicks the transmitter. done, if not nil, is called once from the
// transmit goroutine with nil when the ACK arrives or with the error that
// dropped the ULPDU; it must not block. The engine keeps payload until
// then: do not modify it.
func (e *Engine) Enqueue(payload []byte, done func(error)) error {
	if e.queue == nil {
		return errors.New("ecp: Enqueue needs the internal queue, but Config.Source is set")
	}
	if len(payload) > e.MaxPayload() {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(payload), e.MaxPayload())
	}
	e.queue.push(payload, done)
	e.Kick()
	return nil
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := &e.st
	return Stats{
		TxRequests:    s.txRequests.Load(),
		TxRetransmits: s.txRetransmits.Load(),
		TxAcked:       s.txAcked.Load(),
		TxGiveUps:     s.txGiveUps.Load(),
		TxErrors:      s.txErrors.Load(),
		TxAcks:        s.txAcks.Load(),
		RxRequests:    s.rxRequests.Load(),
		RxDuplicates:  s.rxDuplicates.Load(),
		RxDelivered:   s.rxDelivered.Load(),
		RxAcks:        s.rxAcks.Load(),
		RxStaleAcks:   s.rxStaleAcks.Load(),
		RxMalformed:   s.rxMalformed.Load(),
		RxQueueFull:   s.rxQueueFull.Load(),
		RxIgnored:     s.rxIgnored.Load(),
	}
}

// Run runs the receive and transmit state machines until ctx is done or
// the Link fails, and returns ctx.Err() or the Link's error. The receive
// state (lastSeq) starts afresh on every Run, as on a port coming up
// (BEGIN). A request outstanding when Run returns is reported to the
// Source as ErrStopped. An Engine runs once at a time.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("ecp: engine is already running")
	}
	defer e.running.Store(false)
	e.rxStarted = false
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	wg.Add(3)
	go func() { defer wg.Done(); fail(e.readLoop(ctx)) }()
	go func() { defer wg.Done(); fail(e.deliverLoop(ctx)) }()
	go func() { defer wg.Done(); fail(e.transmitLoop(ctx)) }()
	wg.Wait()
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) && !errors.Is(firstErr, context.DeadlineExceeded) {
		return firstErr
	}
	return ctx.Err()
}

// nextSeq returns the sequence number after s, skipping 0 (lldpad's
// inc_seqno).
func nextSeq(s uint16) uint16 {
	s++
	if s == 0 {
		s = 1
	}
	return s
}

// transmitLoop is the transmit state machine.
func (e *Engine) transmitLoop(ctx context.Context) error {
	timer := e.clock.NewTimer()
	defer timer.Stop()
	buf := make([]byte, 0, rxBufLen)
	// Start at a random sequence number, so that after a restart the
	// peer, whose lastSeq may have survived, does not take the first
	// request for a retransmission of the last one.
	seq := uint16(rand.N(65535)) + 1
	var (
		out   []byte // the outstanding request, nil when none
		tries int    // transmissions of out so far
	)
	send := func() {
		tries++
		// Arm before sending: whoever sees the frame sees the timer armed.
		timer.Reset(e.Params().AckTimeout())
		if err := e.link.WriteFrame(ctx, out); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.st.txErrors.Add(1)
			e.log.Warn("send request", "seq", seq, "attempt", tries, "err", err)
		}
	}
	for {
		if out == nil {
			frame, ok, err := e.build(ctx, buf[:0], nextSeq(seq))
			if err != nil {
				e.st.txErrors.Add(1)
				e.log.Warn("request dropped before sending", "err", err)
				e.cfg.Source.Done(err)
				continue
			}
			if ok {
				seq = nextSeq(seq)
				out, tries = frame, 0
				buf = frame[:0]
				e.st.txRequests.Add(1)
				send()
				continue
			}
			select {
			case <-e.kick:
			case s := <-e.acks:
				e.st.rxStaleAcks.Add(1)
				e.log.Debug("stale ACK", "seq", s)
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		select {
		case s := <-e.acks:
			if s != seq {
				e.st.rxStaleAcks.Add(1)
				e.log.Debug("stale ACK", "seq", s, "outstanding", seq)
				continue
			}
			timer.Stop()
			out = nil
			e.st.txAcked.Add(1)
			e.cfg.Source.Done(nil)
		case <-timer.C():
			// select picks at random among ready cases: an ACK that
			// arrived with the timer must still win.
			if e.ackWaiting(seq) {
				out = nil
				e.st.txAcked.Add(1)
				e.cfg.Source.Done(nil)
				continue
			}
			if p := e.Params(); tries > int(p.R) {
				out = nil
				e.st.txGiveUps.Add(1)
				err := fmt.Errorf("%w for sequence number %d: sent %d times, %v apart", ErrNoAck, seq, tries, p.AckTimeout())
				e.log.Warn("request dropped", "seq", seq, "err", err)
				e.cfg.Source.Done(err)
				continue
			}
			e.st.txRetransmits.Add(1)
			send()
		case <-ctx.Done():
			e.cfg.Source.Done(fmt.Errorf("%w: sequence number %d unacknowledged: %w", ErrStopped, seq, ctx.Err()))
			return ctx.Err()
		}
	}
}

// ackWaiting drains the ACKs already received and reports whether one
// acknowledges seq.
func (e *Engine) ackWaiting(seq uint16) bool {
	for {
		select {
		case s := <-e.acks:
			if s == seq {
				return true
			}
			e.st.rxStaleAcks.Add(1)
		default:
			return false
		}
	}
}

// build pulls the next ULPDU from the Source and returns the complete
// request frame (signed and padded) in b's array, or ok false when the
// Source has nothing. A non-nil error means the Source gave a ULPDU that
// cannot be sent; the caller reports it through Done.
func (e *Engine) build(ctx context.Context, b []byte, seq uint16) (frame []byte, ok bool, err error) {
	b = append(b, e.peer[:]...)
	b = append(b, e.cfg.LocalMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, wire.EtherTypeECP)
	b = binary.BigEndian.AppendUint16(b, uint16(wire.ECPVersion)<<12|uint16(wire.ECPRequest)<<10|uint16(e.subtype))
	b = binary.BigEndian.AppendUint16(b, seq)
	start := len(b)
	max := e.MaxPayload()
	out, ok := e.cfg.Source.Next(b, max)
	if !ok {
		return nil, false, nil
	}
	if n := len(out) - start; n < 0 || n > max {
		return nil, true, fmt.Errorf("%w: the source gave %d bytes, at most %d fit", ErrTooLarge, n, max)
	}
	if e.cfg.Sign != nil {
		out, err = e.cfg.Sign(ctx, out)
		if err != nil {
			return nil, true, fmt.Errorf("ecp: sign request: %w", err)
		}
	}
	for len(out) < minFrameLen {
		out = append(out, 0)
	}
	return out, true, nil
}

// readLoop reads frames and runs the receive state machine; ACKs go to
// the transmitter.
func (e *Engine) readLoop(ctx context.Context) error {
	buf := make([]byte, rxBufLen)
	for {
		n, err := e.link.ReadFrame(ctx, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("ecp %s: receive: %w", e.cfg.Name, err)
		}
		e.handleFrame(ctx, buf[:n])
	}
}

// handleFrame classifies one received frame: ACKs go to the transmitter,
// requests through the receive state machine.
func (e *Engine) handleFrame(ctx context.Context, f []byte) {
	var h wire.EthernetHeader
	p, err := h.Parse(f)
	switch {
	case err != nil, h.EtherType != wire.EtherTypeECP, h.Src == e.cfg.LocalMAC,
		h.Src[0]&1 != 0, // a group address is no sender (IEEE 802.3 3.2.3)
		h.Dst != e.cfg.LocalMAC && h.Dst[0]&1 == 0:
		e.st.rxIgnored.Add(1)
		return
	case len(p) < headerLen:
		e.st.rxMalformed.Add(1)
		return
	}
	w := binary.BigEndian.Uint16(p)
	ver, op, sub := uint8(w>>12), wire.ECPOp(w>>10&0x3), wire.ECPSubtype(w&0x3ff)
	seq := binary.BigEndian.Uint16(p[2:])
	switch {
	case ver != wire.ECPVersion:
		e.st.rxMalformed.Add(1)
		return
	case sub != e.subtype:
		e.st.rxIgnored.Add(1)
		return
	}
	switch op {
	case wire.ECPAck:
		e.st.rxAcks.Add(1)
		select {
		case e.acks <- seq:
		default:
			// The transmitter has 64 unread ACKs: all but one are stale.
			e.st.rxStaleAcks.Add(1)
		}
	case wire.ECPRequest:
		e.receiveRequest(ctx, f, h, len(f)-len(p), seq)
	default:
		e.st.rxMalformed.Add(1)
	}
}

// receiveRequest is the receive state machine for one request.
func (e *Engine) receiveRequest(ctx context.Context, f []byte, h wire.EthernetHeader, off int, seq uint16) {
	e.st.rxRequests.Add(1)
	if !e.rxStarted {
		e.rxStarted = true
		e.lastSeq = seq - 1
	}
	if seq == e.lastSeq {
		e.sendAck(ctx, h.Src, seq)
		e.st.rxDuplicates.Add(1)
		return
	}
	// A new request. When the Handler is QueueLen requests behind, wait
	// for it, but at most half an ACK timer: this goroutine also reads the
	// ACKs of this engine's own requests. Past that, take the request as
	// lost: no ACK, lastSeq unchanged, so the peer sends it again after
	// its ACK timer (flow control by retransmission).
	rx := rxFrame{frame: append([]byte(nil), f...), hdr: h, off: off}
	select {
	case e.deliver <- rx:
	default:
		e.rxWait.Reset(e.Params().AckTimeout() / 2)
		select {
		case e.deliver <- rx:
			e.rxWait.Stop()
		case <-e.rxWait.C():
			e.st.rxQueueFull.Add(1)
			return
		case <-ctx.Done():
			e.rxWait.Stop()
			return
		}
	}
	e.lastSeq = seq
	e.sendAck(ctx, h.Src, seq)
}

// sendAck acknowledges the request seq from dst.
func (e *Engine) sendAck(ctx context.Context, dst [6]byte, seq uint16) {
	b := e.ackBuf[:]
	copy(b[0:6], dst[:])
	copy(b[6:12], e.cfg.LocalMAC[:])
	binary.BigEndian.PutUint16(b[12:], wire.EtherTypeECP)
	binary.BigEndian.PutUint16(b[14:], uint16(wire.ECPVersion)<<12|uint16(wire.ECPAck)<<10|uint16(e.subtype))
	binary.BigEndian.PutUint16(b[16:], seq)
	clear(b[18:])
	if err := e.link.WriteFrame(ctx, b); err != nil {
		if ctx.Err() == nil {
			e.st.txErrors.Add(1)
			e.log.Warn("send ACK", "seq", seq, "err", err)
		}
		return
	}
	e.st.txAcks.Add(1)
}

// deliverLoop decodes new requests and hands them to the Handler, in
// order.
func (e *Engine) deliverLoop(ctx context.Context) error {
	for {
		select {
		case rx := <-e.deliver:
			e.deliverOne(ctx, rx)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deliverOne decodes one new request and hands it to the Handler; a
// request that does not decode is counted and dropped.
func (e *Engine) deliverOne(ctx context.Context, rx rxFrame) {
	r := &Received{Frame: rx.frame, Header: rx.hdr}
	r.PDU.TetherCID = e.cfg.CID
	if err := r.PDU.UnmarshalBinary(rx.frame[rx.off:]); err != nil {
		e.st.rxMalformed.Add(1)
		e.log.Debug("request does not decode, dropped", "src", macString(rx.hdr.Src), "err", err)
		return
	}
	e.st.rxDelivered.Add(1)
	if e.cfg.Handler != nil {
		e.cfg.Handler.Receive(ctx, r)
	}
}

// macString formats a MAC address for logs.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// fifo is the internal Source: one ULPDU per ECPDU, first in first out.
type fifo struct {
	mu      sync.Mutex
	items   []fifoItem
	current *fifoItem
}

type fifoItem struct {
	payload []byte
	done    func(error)
}

func (q *fifo) push(payload []byte, done func(error)) {
	q.mu.Lock()
	q.items = append(q.items, fifoItem{payload, done})
	q.mu.Unlock()
}

// Next implements Source.
func (q *fifo) Next(b []byte, max int) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return b, false
	}
	it := q.items[0]
	q.items[0] = fifoItem{}
	q.items = q.items[1:]
	q.current = &it
	return append(b, it.payload...), true
}

// Done implements Source.
func (q *fifo) Done(err error) {
	q.mu.Lock()
	it := q.current
	q.current = nil
	q.mu.Unlock()
	if it != nil && it.done != nil {
		it.done(err)
	}
}
