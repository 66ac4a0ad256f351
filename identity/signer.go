package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/tether-net/tether/wire"
)

// DefaultBlock is how many counters a Signer reserves with one write to its
// CounterStore.
const DefaultBlock = 1024

// SignerOptions configures a Signer.
type SignerOptions struct {
	// CID is the Company ID of tether's TLVs; zero means wire.DefaultCID.
	CID wire.OUI
	// Block is how many counters one CounterStore write reserves; zero
	// means DefaultBlock. A larger block writes less often and skips more
	// counters after a crash.
	Block uint64
}

// Signer appends tether's signature TLV to outgoing LLDP and ECP/VDP
// frames. It keeps one counter per channel, reserved in blocks from its
// CounterStore so a counter is never used twice, across restarts and
// crashes included. It is safe for concurrent use; frames of one channel
// must be signed in the order they are sent (one goroutine per channel),
// since the receiver refuses a counter lower than one it has seen.
type Signer struct {
	key   *PrivateKey
	store CounterStore
	cid   wire.OUI
	block uint64

	mu       sync.RWMutex
	channels map[string]*sendCounter
	scratch  sync.Pool // *[]byte, for tagged frames
}

// sendCounter is one channel's counter state.
type sendCounter struct {
	mu       sync.Mutex
	loaded   bool
	next     uint64 // the next counter to use
	reserved uint64 // counters up to this one are durably reserved
}

// NewSigner returns a Signer that signs with key and reserves counters in
// store, which must not be shared with a Verifier.
func NewSigner(key *PrivateKey, store CounterStore, opts SignerOptions) (*Signer, error) {
	if key == nil || store == nil {
		return nil, errors.New("identity: NewSigner needs a key and a counter store")
	}
	if opts.Block == 0 {
		opts.Block = DefaultBlock
	}
	return &Signer{
		key:      key,
		store:    store,
		cid:      opts.CID,
		block:    opts.Block,
		channels: make(map[string]*sendCounter),
	}, nil
}

// KeyID returns the ID of the signing key.
func (s *Signer) KeyID() KeyID { return s.key.ID() }

// counter returns the state of channel, creating it.
func (s *Signer) counter(channel string) *sendCounter {
	s.mu.RLock()
	c := s.channels[channel]
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c = s.channels[channel]; c == nil {
		c = new(sendCounter)
		s.channels[channel] = c
	}
	return c
}

// nextCounter returns the next counter of channel, reserving a new block in
// the store first when the reserved one is used up.
func (s *Signer) nextCounter(ctx context.Context, channel string) (uint64, error) {
	c := s.counter(channel)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		mark, err := s.store.Load(ctx, s.key.ID(), channel)
		if err != nil {
			return 0, fmt.Errorf("identity: load counter of channel %q: %w", channel, err)
		}
		// Every counter up to mark may have been used before a crash.
		c.next, c.reserved, c.loaded = mark+1, mark, true
		if mark == math.MaxUint64 {
			c.next = 0
		}
	}
	n := c.next
	if n == 0 || n == math.MaxUint64 {
		return 0, fmt.Errorf("%w on channel %q", ErrCounterExhausted, channel)
	}
	if n > c.reserved {
		r := n + (s.block - 1)
		if r < n { // overflow
			r = math.MaxUint64 - 1
		}
		if err := s.store.Store(ctx, s.key.ID(), channel, r); err != nil {
			return 0, fmt.Errorf("identity: reserve counters on channel %q: %w", channel, err)
		}
		c.reserved = r
	}
	c.next = n + 1
	return n, nil
}

// Sign signs frame for channel and returns it with the signature TLV
// appended, reusing frame's array when it has room (86 bytes more) so
// signing does not allocate.
//
// frame is an Ethernet frame: destination and source MAC, at most one
// 802.1Q tag, EtherType 0x88cc (LLDP) or 0x8940 (ECP), then the encoded
// LLDPDU or ECPDU without signature. If the PDU ends with an End TLV
// (possibly followed by zero padding), the signature goes before End and
// End is re-appended; the padding is dropped, so pad after signing. The
// signature covers what package wire's sign.go describes.
//
// Like append, Sign writes into frame's array past the PDU's TLVs (over End
// and padding). On error frame is returned unchanged. A counter is never
// reused, even when a later step fails.
func (s *Signer) Sign(ctx context.Context, channel string, frame []byte) ([]byte, error) {
	var h wire.EthernetHeader
	pdu, err := h.Parse(frame)
	if err != nil {
		return frame, fmt.Errorf("identity: sign: %w", err)
	}
	kind, ok := wire.PDUKindOf(h.EtherType)
	if !ok {
		return frame, fmt.Errorf("identity: sign: EtherType %#04x is neither LLDP nor ECP", h.EtherType)
	}
	at, hasEnd, err := wire.SignatureInsertOffset(pdu, kind, s.cid)
	if err != nil {
		return frame, fmt.Errorf("identity: sign %s frame: %w", kind, err)
	}
	if !allZero(pdu[at:]) {
		return frame, fmt.Errorf("identity: sign %s frame: End and the padding after it must be zero bytes", kind)
	}
	ctr, err := s.nextCounter(ctx, channel)
	if err != nil {
		return frame, err
	}
	hdrLen := len(frame) - len(pdu)
	out := frame[:hdrLen+at]
	out = wire.AppendSignaturePrefix(out, s.cid, s.key.ID(), ctr)
	var sig []byte
	if hdrLen == wire.SignedHeaderLen {
		// Untagged: the message is the frame so far.
		sig = ed25519.Sign(s.key.priv, out)
	} else {
		bp := s.buffer()
		msg, err := wire.AppendSignedMessage((*bp)[:0], h.Dst, h.Src, h.EtherType, out[hdrLen:], at)
		if err != nil {
			s.scratch.Put(bp)
			return frame, fmt.Errorf("identity: sign %s frame: %w", kind, err)
		}
		sig = ed25519.Sign(s.key.priv, msg)
		*bp = msg
		s.scratch.Put(bp)
	}
	out = append(out, sig...)
	if hasEnd {
		out = wire.AppendEnd(out)
	}
	return out, nil
}

// buffer returns a scratch buffer for building a signed message.
func (s *Signer) buffer() *[]byte {
	if bp, ok := s.scratch.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 1536)
	return &b
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
