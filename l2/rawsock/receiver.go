package rawsock

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
)

// Receive budget defaults.
const (
	// DefaultQueue is the default capacity of a Receiver's channel.
	DefaultQueue = 64
	// DefaultRate is the default sustained number of frames per second a
	// Receiver admits. LLDP needs about one frame per second per neighbour
	// and agent (four during fast transmission, at most txCreditMax = 5 in
	// a burst). Protocols with more traffic per port (ECP during a mass
	// migration) set their own Rate.
	DefaultRate = 200
	// DefaultBurst is the default size of a Receiver's token bucket.
	DefaultBurst = 100
)

// ReceiverOptions configures a Receiver; the zero value gives the
// defaults.
type ReceiverOptions struct {
	// Queue is the capacity of the channel between the reading goroutine
	// and the protocol (default DefaultQueue).
	Queue int
	// Rate is the sustained number of frames per second admitted to the
	// channel (default DefaultRate); a negative value admits every frame.
	Rate float64
	// Burst is the token bucket size: how many frames may be admitted at
	// once after a quiet period (default DefaultBurst).
	Burst int
	// MaxFrame is the largest frame delivered (default MaxFrameLen);
	// longer frames are dropped and counted as Oversize.
	MaxFrame int
	// Now returns the current time for the token bucket (default
	// time.Now).
	Now func() time.Time
}

// Frame is one received frame. Data is owned by the receiver of the Frame:
// it is never reused by the Receiver.
type Frame struct {
	// Data is the whole Ethernet frame, header included.
	Data []byte
	// At is when the frame was read from the Conn.
	At time.Time
}

// ReceiverStats counts what a Receiver did with the frames it read.
// Received = Delivered + RateLimited + QueueFull + Oversize.
type ReceiverStats struct {
	// Received counts the frames read from the Conn.
	Received uint64
	// Delivered counts the frames put on the channel.
	Delivered uint64
	// RateLimited counts the frames dropped because the port's budget
	// (Rate, Burst) was spent.
	RateLimited uint64
	// QueueFull counts the frames dropped because the channel was full.
	QueueFull uint64
	// Oversize counts the frames dropped for exceeding MaxFrame.
	Oversize uint64
	// LinkDown counts the times the Conn reported the link down
	// (ENETDOWN); Run keeps reading through link flaps.
	LinkDown uint64
	// KernelPackets and KernelDrops are the socket's kernel counters
	// (KernelStats) when the Conn reports them: the kernel dropped
	// KernelDrops frames before the Receiver could read them.
	KernelPackets, KernelDrops uint64
}

// Dropped returns every frame dropped on this port before reaching the
// protocol: RateLimited + QueueFull + Oversize + KernelDrops.
func (s ReceiverStats) Dropped() uint64 {
	return s.RateLimited + s.QueueFull + s.Oversize + s.KernelDrops
}

// Receiver reads one port's Conn in its own goroutine and hands the frames
// to the protocol through a bounded channel, within a per-port budget (see
// the package documentation). Create it with NewReceiver, start Run, and
// read Frames until it is closed.
type Receiver struct {
	conn     Conn
	queue    chan Frame
	rate     float64
	burst    float64
	maxFrame int
	now      func() time.Time

	// token bucket, owned by the Run goroutine
	tokens float64
	last   time.Time

	started     atomic.Bool
	received    atomic.Uint64
	delivered   atomic.Uint64
	rateLimited atomic.Uint64
	queueFull   atomic.Uint64
	oversize    atomic.Uint64
	linkDown    atomic.Uint64
}

// NewReceiver returns a Receiver for conn. It does not read until Run.
func NewReceiver(conn Conn, opts ReceiverOptions) *Receiver {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = MaxFrameLen
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Receiver{
		conn:     conn,
		queue:    make(chan Frame, opts.Queue),
		rate:     opts.Rate,
		burst:    float64(opts.Burst),
		maxFrame: opts.MaxFrame,
		now:      opts.Now,
		tokens:   float64(opts.Burst),
	}
}

// Frames returns the channel of admitted frames. It is closed when Run
// returns.
func (r *Receiver) Frames() <-chan Frame { return r.queue }

// Run reads frames until ctx ends (it then returns nil) or the Conn fails
// (it returns the error); a link going down is not a failure. It closes the Frames channel on return. Run may
// be called once.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("rawsock: Receiver.Run called twice")
	}
	defer close(r.queue)
	// One byte more than the largest frame accepted, to see oversize
	// frames rather than silently truncating them.
	buf := make([]byte, r.maxFrame+1)
	for {
		n, err := r.conn.ReadFrame(ctx, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.ENETDOWN) {
				// The link went down (Linux reports it once per
				// packet socket); reading resumes when it comes
				// back up.
				r.linkDown.Add(1)
				continue
			}
			return fmt.Errorf("rawsock: receive on %s: %w", r.conn.Interface().Name, err)
		}
		r.received.Add(1)
		if n > r.maxFrame {
			r.oversize.Add(1)
			continue
		}
		at := r.now()
		if !r.admit(at) {
			r.rateLimited.Add(1)
			continue
		}
		f := Frame{Data: append(make([]byte, 0, n), buf[:n]...), At: at}
		select {
		case r.queue <- f:
			r.delivered.Add(1)
		default:
			r.queueFull.Add(1)
		}
	}
}

// admit takes one token from the bucket, refilled at rate per second up to
// burst, and reports whether there was one.
func (r *Receiver) admit(now time.Time) bool {
	if r.rate < 0 {
		return true
	}
	if !r.last.IsZero() {
		if d := now.Sub(r.last); d > 0 {
			r.tokens += d.Seconds() * r.rate
			if r.tokens > r.burst {
				r.tokens = r.burst
			}
		}
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}

// Stats returns the counters, safe to call while Run runs. The kernel counters are included when the
// Conn is a KernelStatser; querying them does not disturb the Conn.
func (r *Receiver) Stats() ReceiverStats {
	// Run counts a frame as received before it counts its fate, so
	// loading the fates first keeps Received >= the sum of the others
	// while Run is busy (they are equal once it is idle).
	var s ReceiverStats
	s.Delivered = r.delivered.Load()
	s.RateLimited = r.rateLimited.Load()
	s.QueueFull = r.queueFull.Load()
	s.Oversize = r.oversize.Load()
	s.LinkDown = r.linkDown.Load()
	s.Received = r.received.Load()
	if ks, ok := r.conn.(KernelStatser); ok {
		if k, err := ks.KernelStats(); err == nil {
			s.KernelPackets, s.KernelDrops = k.Packets, k.Drops
		}
	}
	return s
}
