package rawsock

import (
	"context"
	"sync"
)

// pipeQueue is how many frames a Pipe end buffers before it drops, like a
// NIC ring.
const pipeQueue = 1024

// Pipe returns two connected in-memory Conns, for tests: a frame written to
// one is read from the other. Like a wire, a Pipe end whose reader falls
// more than 1024 frames behind drops new frames (WriteFrame still succeeds).
// Frames are copied, so the writer may reuse its buffer. There is no
// EtherType filtering.
func Pipe(a, b Interface) (Conn, Conn) {
	ab := make(chan []byte, pipeQueue)
	ba := make(chan []byte, pipeQueue)
	pa := &pipeEnd{ifi: a, in: ba, peer: &pipeLink{ch: ab}, done: make(chan struct{})}
	pb := &pipeEnd{ifi: b, in: ab, peer: &pipeLink{ch: ba}, done: make(chan struct{})}
	pa.peerEnd, pb.peerEnd = pb, pa
	return pa, pb
}

// pipeLink is one direction of a Pipe.
type pipeLink struct {
	ch chan []byte
}

// pipeEnd is one end of a Pipe.
type pipeEnd struct {
	ifi     Interface
	in      chan []byte
	peer    *pipeLink
	peerEnd *pipeEnd
	once    sync.Once
	done    chan struct{}
}

var _ Conn = (*pipeEnd)(nil)

// ReadFrame implements Conn.
func (p *pipeEnd) ReadFrame(ctx context.Context, b []byte) (int, error) {
	select {
	case <-p.done:
		return 0, ErrClosed
	default:
	}
	select {
	case f := <-p.in:
		return copy(b, f), nil
	case <-p.done:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// WriteFrame implements Conn. A frame sent to a closed peer is lost, as on
// a wire whose far end is down.
func (p *pipeEnd) WriteFrame(ctx context.Context, frame []byte) error {
	if err := checkFrame(frame); err != nil {
		return err
	}
	select {
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	select {
	case <-p.peerEnd.done:
		return nil
	default:
	}
	select {
	case p.peer.ch <- append([]byte(nil), frame...):
	default: // the peer's queue is full: the frame is dropped
	}
	return nil
}

// Interface implements Conn.
func (p *pipeEnd) Interface() Interface { return p.ifi }

// Close implements Conn.
func (p *pipeEnd) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
