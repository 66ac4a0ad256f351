package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"github.com/tether-net/tether/wire"
)

// KeyStore looks up enrolled public keys; tether-switchd backs it with the
// policy store.
type KeyStore interface {
	// PublicKey returns the enrolled public key with ID id, or an error
	// matching ErrUnknownKey when there is none.
	PublicKey(ctx context.Context, id KeyID) (ed25519.PublicKey, error)
}

// StaticKeys is a fixed KeyStore, for tests and small deployments.
type StaticKeys struct {
	keys map[KeyID]ed25519.PublicKey
}

var _ KeyStore = (*StaticKeys)(nil)

// NewStaticKeys returns a KeyStore holding copies of pubs.
func NewStaticKeys(pubs ...ed25519.PublicKey) (*StaticKeys, error) {
	s := &StaticKeys{keys: make(map[KeyID]ed25519.PublicKey, len(pubs))}
	for i, p := range pubs {
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("identity: public key %d is %d bytes, want %d", i, len(p), ed25519.PublicKeySize)
		}
		s.keys[KeyIDOf(p)] = append(ed25519.PublicKey(nil), p...)
	}
	return s, nil
}

// PublicKey implements KeyStore.
func (s *StaticKeys) PublicKey(_ context.Context, id KeyID) (ed25519.PublicKey, error) {
	if p, ok := s.keys[id]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKey, id)
}

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// CID is the Company ID of tether's TLVs; zero means wire.DefaultCID.
	CID wire.OUI
}

// Verified describes a frame that passed Verify.
type Verified struct {
	// Key is the key that signed the frame.
	Key KeyID
	// Counter is the frame's counter, now the channel's high-water mark.
	Counter uint64
	// Kind is the PDU's kind, from its EtherType.
	Kind wire.PDUKind
	// SigOffset is the offset of the signature TLV in the PDU (the bytes
	// after the EtherType).
	SigOffset int
}

// Verifier checks tether's signature on incoming frames: the signature
// under the enrolled key first, then the replay window of the key and
// channel. It keeps one high-water mark per key and channel and persists it
// in its CounterStore before reporting a frame good, so a replay is refused
// after a restart too. It is safe for concurrent use.
type Verifier struct {
	keys  KeyStore
	store CounterStore
	cid   wire.OUI

	mu      sync.RWMutex
	windows map[CounterKey]*window
	scratch sync.Pool // *[]byte, for tagged frames
}

// window is the replay state of one key and channel.
type window struct {
	mu     sync.Mutex
	loaded bool
	high   uint64 // last accepted counter
}

// NewVerifier returns a Verifier that looks keys up in keys and persists
// high-water marks in store, which must not be shared with a Signer.
func NewVerifier(keys KeyStore, store CounterStore, opts VerifierOptions) (*Verifier, error) {
	if keys == nil || store == nil {
		return nil, errors.New("identity: NewVerifier needs a key store and a counter store")
	}
	return &Verifier{keys: keys, store: store, cid: opts.CID, windows: make(map[CounterKey]*window)}, nil
}

// Verify checks the signature of frame, received on channel, and advances
// the channel's replay window. frame is an Ethernet frame as Signer.Sign
// describes (at most one 802.1Q tag; padding after End is ignored).
//
// Errors match ErrUnsigned (no signature TLV: plain standard LLDP/VDP),
// ErrUnknownKey, ErrBadSignature or ErrReplay (a *ReplayError); a malformed
// frame gives a wrapped *wire.Error. Only a nil error means the frame may be
// acted on. For ECP, call Verify once per new sequence number, after the
// ECP receive state machine has set duplicates aside: a retransmission
// carries the same counter and would be refused as a replay.
//
// An untagged frame is verified in place, without allocating.
func (v *Verifier) Verify(ctx context.Context, channel string, frame []byte) (Verified, error) {
	var h wire.EthernetHeader
	pdu, err := h.Parse(frame)
	if err != nil {
		return Verified{}, fmt.Errorf("identity: verify: %w", err)
	}
	kind, ok := wire.PDUKindOf(h.EtherType)
	if !ok {
		return Verified{}, fmt.Errorf("identity: verify: EtherType %#04x is neither LLDP nor ECP", h.EtherType)
	}
	off, sig, err := wire.FindSignature(pdu, kind, v.cid)
	if err != nil {
		if wire.IsUnsigned(err) {
			return Verified{}, fmt.Errorf("%w: %s frame on channel %q: %w", ErrUnsigned, kind, channel, err)
		}
		return Verified{}, fmt.Errorf("identity: verify %s frame on channel %q: %w", kind, channel, err)
	}
	id := KeyID(sig.KeyID)
	pub, err := v.keys.PublicKey(ctx, id)
	if err != nil {
		return Verified{}, fmt.Errorf("identity: verify %s frame on channel %q: key %s: %w", kind, channel, id, err)
	}
	if len(pub) != ed25519.PublicKeySize || KeyIDOf(pub) != id {
		return Verified{}, fmt.Errorf("identity: verify %s frame on channel %q: key store returned a key that is not %s", kind, channel, id)
	}
	hdrLen := len(frame) - len(pdu)
	var good bool
	if hdrLen == wire.SignedHeaderLen {
		good = ed25519.Verify(pub, frame[:wire.SignedMessageLen(off)], sig.Sig[:])
	} else {
		bp := v.buffer()
		msg, err := wire.AppendSignedMessage((*bp)[:0], h.Dst, h.Src, h.EtherType, pdu, off)
		if err != nil {
			v.scratch.Put(bp)
			return Verified{}, fmt.Errorf("identity: verify %s frame on channel %q: %w", kind, channel, err)
		}
		good = ed25519.Verify(pub, msg, sig.Sig[:])
		*bp = msg
		v.scratch.Put(bp)
	}
	if !good {
		return Verified{}, fmt.Errorf("%w: %s frame on channel %q, key %s, counter %d", ErrBadSignature, kind, channel, id, sig.Counter)
	}
	if err := v.accept(ctx, id, channel, sig.Counter); err != nil {
		return Verified{}, err
	}
	return Verified{Key: id, Counter: sig.Counter, Kind: kind, SigOffset: off}, nil
}

// accept advances the replay window of (id, channel) to counter, durably,
// or refuses counter as a replay.
func (v *Verifier) accept(ctx context.Context, id KeyID, channel string, counter uint64) error {
	k := CounterKey{id, channel}
	v.mu.RLock()
	w := v.windows[k]
	v.mu.RUnlock()
	if w == nil {
		// Windows are only created for frames with a good signature under
		// an enrolled key, so an attacker cannot grow the map.
		v.mu.Lock()
		if w = v.windows[k]; w == nil {
			w = new(window)
			v.windows[k] = w
		}
		v.mu.Unlock()
	}
	// Holding the window's lock across the store keeps the check and the
	// advance atomic per channel; other channels proceed.
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.loaded {
		high, err := v.store.Load(ctx, id, channel)
		if err != nil {
			return fmt.Errorf("identity: load high-water mark of key %s on channel %q: %w", id, channel, err)
		}
		w.high, w.loaded = high, true
	}
	if counter <= w.high {
		return &ReplayError{Key: id, Channel: channel, Counter: counter, HighWater: w.high}
	}
	if err := v.store.Store(ctx, id, channel, counter); err != nil {
		return fmt.Errorf("identity: persist high-water mark of key %s on channel %q: %w", id, channel, err)
	}
	w.high = counter
	return nil
}

// buffer returns a scratch buffer for building a signed message.
func (v *Verifier) buffer() *[]byte {
	if bp, ok := v.scratch.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 1536)
	return &b
}
