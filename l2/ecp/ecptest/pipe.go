package ecptest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/tether-net/tether/l2/ecp"
)

// ErrClosed is returned by a closed Link.
var ErrClosed = errors.New("ecptest: link closed")

// DropFunc decides whether the n-th frame sent on a pipe end (counting
// from 1) is lost.
type DropFunc func(n uint64, frame []byte) bool

// DropEveryNth loses every n-th frame (n, 2n, ...); n < 1 loses nothing.
func DropEveryNth(n uint64) DropFunc {
	return func(i uint64, _ []byte) bool { return n > 0 && i%n == 0 }
}

// DropFrames loses the frames with the given numbers.
func DropFrames(nums ...uint64) DropFunc {
	return func(i uint64, _ []byte) bool {
		for _, n := range nums {
			if i == n {
				return true
			}
		}
		return false
	}
}

// PipeEnd is one end of an in-memory point-to-point Link. Frames are
// copied on WriteFrame and delivered in order unless its DropFunc loses them.
type PipeEnd struct {
	in  chan []byte
	out chan []byte

	mu     sync.Mutex
	drop   DropFunc
	tap    func(frame []byte, dropped bool)
	sent   atomic.Uint64
	lost   atomic.Uint64
	closed chan struct{}
	once   *sync.Once // shared by both ends: closing either end closes the pipe
}

var _ ecp.Link = (*PipeEnd)(nil)

// Pipe returns two connected ends; each buffers up to buf frames in flight
// towards it (default 1024), beyond which WriteFrame blocks.
func Pipe(buf int) (a, b *PipeEnd) {
	if buf <= 0 {
		buf = 1024
	}
	ab := make(chan []byte, buf)
	ba := make(chan []byte, buf)
	closed, once := make(chan struct{}), new(sync.Once)
	a = &PipeEnd{in: ba, out: ab, closed: closed, once: once}
	b = &PipeEnd{in: ab, out: ba, closed: closed, once: once}
	return a, b
}

// SetDrop sets the loss of frames sent from this end; nil loses nothing.
func (p *PipeEnd) SetDrop(f DropFunc) {
	p.mu.Lock()
	p.drop = f
	p.mu.Unlock()
}

// SetTap calls f with every frame sent from this end (before the loss
// decision takes effect), from the sending goroutine.
func (p *PipeEnd) SetTap(f func(frame []byte, dropped bool)) {
	p.mu.Lock()
	p.tap = f
	p.mu.Unlock()
}

// Sent returns the number of frames sent from this end, lost ones
// included.
func (p *PipeEnd) Sent() uint64 { return p.sent.Load() }

// Lost returns the number of frames from this end that were lost.
func (p *PipeEnd) Lost() uint64 { return p.lost.Load() }

// Close makes both ends fail with ErrClosed.
func (p *PipeEnd) Close() { p.once.Do(func() { close(p.closed) }) }

// WriteFrame implements ecp.Link.
func (p *PipeEnd) WriteFrame(ctx context.Context, frame []byte) error {
	n := p.sent.Add(1)
	p.mu.Lock()
	drop, tap := p.drop, p.tap
	p.mu.Unlock()
	lost := drop != nil && drop(n, frame)
	if tap != nil {
		tap(frame, lost)
	}
	if lost {
		p.lost.Add(1)
		return nil
	}
	select {
	case p.out <- append([]byte(nil), frame...):
		return nil
	case <-p.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadFrame implements ecp.Link.
func (p *PipeEnd) ReadFrame(ctx context.Context, buf []byte) (int, error) {
	select {
	case f := <-p.in:
		return copy(buf, f), nil
	case <-p.closed:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Inject sends frame from this end to the other, bypassing loss, tap and
// counters: a test playing the peer by hand uses it with ReadSent.
func (p *PipeEnd) Inject(ctx context.Context, frame []byte) error {
	select {
	case p.out <- append([]byte(nil), frame...):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadSent returns the next frame sent from the other end towards this
// one, like ReadFrame but without a caller's buffer.
func (p *PipeEnd) ReadSent(ctx context.Context) ([]byte, error) {
	select {
	case f := <-p.in:
		return f, nil
	case <-p.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
