package vdp

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
)

// Errors of the signing policy.
var (
	// ErrPeerNotCapable means signatures are required but the peer does
	// not advertise tether's capability, so there is no VDP with it.
	ErrPeerNotCapable = errors.New("vdp: signatures required but the peer is not tether-capable")
	// ErrUnsignedRefused means a frame without signature was refused:
	// signatures are required, or the peer is tether-capable and so must
	// sign (an unsigned frame then is a downgrade or a forgery).
	ErrUnsignedRefused = errors.New("vdp: unsigned frame refused")
)

// VerifyFunc checks the signature of a received frame; see
// identity.Verifier.Verify, whose errors it returns (identity.ErrUnsigned
// for a frame without signature).
type VerifyFunc func(ctx context.Context, frame []byte) (identity.Verified, error)

// Security is the signing policy of one VDP channel (DESIGN.md "Wire
// decisions": every VDP frame carries tether's signature TLV when the peer
// advertises tether's capability; plain standard VDP otherwise, refused
// when signatures are required).
type Security struct {
	// Sign signs outgoing frames; IdentitySigner adapts an
	// identity.Signer. Nil sends every frame unsigned.
	Sign ecp.SignFunc
	// Verify checks incoming frames after ECP's duplicate check (a
	// retransmission carries the same counter); IdentityVerifier adapts
	// an identity.Verifier. Nil treats every frame as unsigned.
	Verify VerifyFunc
	// PeerCapable reports whether the peer advertises tether's
	// capability TLV in LLDP. Nil means capable exactly when Sign is set.
	// It is read for every frame, so it may change at run time.
	PeerCapable func() bool
	// RequireSigned refuses VDP with a peer that is not tether-capable
	// and every unsigned frame (config require_signed: true). It needs
	// Sign and Verify.
	RequireSigned bool
}

// validate checks that the policy can be applied.
func (s *Security) validate() error {
	if s.RequireSigned && (s.Sign == nil || s.Verify == nil) {
		return errors.New("vdp: RequireSigned needs Sign and Verify")
	}
	return nil
}

// capable reports whether the peer is tether-capable.
func (s *Security) capable() bool {
	if s.PeerCapable != nil {
		return s.PeerCapable()
	}
	return s.Sign != nil
}

// usable reports whether VDP may run with the peer at all.
func (s *Security) usable() error {
	if s.RequireSigned && !s.capable() {
		return ErrPeerNotCapable
	}
	return nil
}

// signFrame is the ECP engine's signing hook: it signs when the peer is
// tether-capable, sends plain VDP otherwise (interop), and refuses when
// that is not allowed.
func (s *Security) signFrame(ctx context.Context, frame []byte) ([]byte, error) {
	if !s.capable() || s.Sign == nil {
		if s.RequireSigned {
			return frame, ErrPeerNotCapable
		}
		return frame, nil
	}
	return s.Sign(ctx, frame)
}

// check verifies a received frame. It returns the signer, or nil for an
// unsigned frame that interop mode accepts, or an error saying why the
// frame must be dropped.
func (s *Security) check(ctx context.Context, frame []byte) (*identity.Verified, error) {
	if s.Verify == nil {
		return nil, nil
	}
	v, err := s.Verify(ctx, frame)
	switch {
	case err == nil:
		return &v, nil
	case errors.Is(err, identity.ErrUnsigned):
		if s.RequireSigned || s.capable() {
			return nil, fmt.Errorf("%w: %w", ErrUnsignedRefused, err)
		}
		return nil, nil
	}
	return nil, err
}

// IdentitySigner adapts s to the signing hook of one channel (for example
// "eth2/svid=5"; see package identity on channels).
func IdentitySigner(s *identity.Signer, channel string) ecp.SignFunc {
	return func(ctx context.Context, frame []byte) ([]byte, error) {
		return s.Sign(ctx, channel, frame)
	}
}

// IdentityVerifier adapts v to the verifying hook of one channel.
func IdentityVerifier(v *identity.Verifier, channel string) VerifyFunc {
	return func(ctx context.Context, frame []byte) (identity.Verified, error) {
		return v.Verify(ctx, channel, frame)
	}
}
