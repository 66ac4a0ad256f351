package vdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/wire"
)

// S-channel binding. The frames of an S-channel travel in an 802.1ad S-Tag
// that the receiving kernel strips before any socket reads them, and
// tether's signature covers the frame without its tags; each channel has
// its own counters and replay window ("eth0/svid=5"), but a frame signed
// for one S-channel and sent on another would still verify there. A VDP
// frame of an S-channel therefore carries one more of tether's org TLVs
// before the signature, the channel binding (wire.TetherChannelBinding:
// the S-VID), so the S-VID is in the signed region: BindingSigner adds it,
// BindingVerifier refuses a frame whose binding is missing or names
// another S-VID before the signature and counter are checked (a frame of
// another channel cannot move this channel's replay window).

// ErrChannelBinding means a signed frame of an S-channel carries no channel
// binding, or one for another S-channel.
var ErrChannelBinding = errors.New("vdp: S-channel binding missing or for another S-channel")

// ecpPDU returns the ECPDU of an untagged ECP frame: the bytes after the
// EtherType.
func ecpPDU(frame []byte) ([]byte, error) {
	if len(frame) < wire.SignedHeaderLen || binary.BigEndian.Uint16(frame[12:14]) != wire.EtherTypeECP {
		return nil, fmt.Errorf("vdp: channel binding: not an untagged ECP frame (%d bytes)", len(frame))
	}
	return frame[wire.SignedHeaderLen:], nil
}

// BindingSigner wraps sign, the signing hook of S-channel svid (1-4094),
// so that each frame gets the channel binding TLV (under cid, zero meaning
// wire.DefaultCID) where its signature will go, before it is signed. A
// frame that is already bound or signed is refused.
func BindingSigner(sign ecp.SignFunc, cid wire.OUI, svid uint16) ecp.SignFunc {
	return func(ctx context.Context, frame []byte) ([]byte, error) {
		pdu, err := ecpPDU(frame)
		if err != nil {
			return frame, err
		}
		off, bound, err := wire.FindChannelBinding(pdu, cid)
		switch {
		case err != nil:
			return frame, fmt.Errorf("vdp: channel binding: %w", err)
		case off >= 0:
			return frame, fmt.Errorf("vdp: channel binding: the frame is already bound to S-channel %d", bound.SVID)
		}
		end, _, err := wire.SignatureInsertOffset(pdu, wire.PDUKindECP, cid)
		if err != nil {
			return frame, fmt.Errorf("vdp: channel binding: %w", err)
		}
		end += wire.SignedHeaderLen
		b := make([]byte, 0, len(frame)+wire.ChannelBindingTLVLen)
		b, err = wire.AppendChannelBinding(append(b, frame[:end]...), cid, svid)
		if err != nil {
			return frame, fmt.Errorf("vdp: channel binding: %w", err)
		}
		return sign(ctx, append(b, frame[end:]...))
	}
}

// BindingVerifier wraps verify, the verifying hook of S-channel svid: a
// signed frame must carry the channel binding of svid, checked before
// verify runs; an unsigned frame goes to verify as it is (the signing
// policy decides on it). svid 0 is the default S-channel, whose frames
// carry no binding: a signed frame bound to an S-channel is refused there.
// A frame whose binding is malformed (wire.FindChannelBinding's errors) is
// refused, signed or not.
func BindingVerifier(verify VerifyFunc, cid wire.OUI, svid uint16) VerifyFunc {
	return func(ctx context.Context, frame []byte) (identity.Verified, error) {
		pdu, err := ecpPDU(frame)
		if err != nil {
			return identity.Verified{}, err
		}
		off, bound, err := wire.FindChannelBinding(pdu, cid)
		if err != nil {
			return identity.Verified{}, fmt.Errorf("vdp: channel binding: %w", err)
		}
		var got uint16 // 0: no binding
		if off >= 0 {
			got = bound.SVID
		}
		if got != svid {
			if _, _, serr := wire.FindSignature(pdu, wire.PDUKindECP, cid); serr == nil {
				switch {
				case got == 0:
					return identity.Verified{}, fmt.Errorf("%w: a signed frame on S-channel %d without binding", ErrChannelBinding, svid)
				case svid == 0:
					return identity.Verified{}, fmt.Errorf("%w: a frame bound to S-channel %d on the default S-channel", ErrChannelBinding, got)
				}
				return identity.Verified{}, fmt.Errorf("%w: a frame bound to S-channel %d on S-channel %d", ErrChannelBinding, got, svid)
			}
		}
		return verify(ctx, frame)
	}
}
