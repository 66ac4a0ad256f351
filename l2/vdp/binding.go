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
// before the signature, the channel binding (subtype
// TetherSubtypeChannelBinding, two bytes: the S-VID), so the S-VID is in
// the signed region: BindingSigner adds it, BindingVerifier refuses a frame
// whose binding is missing or names another S-VID before the signature and
// counter are checked (a frame of another channel cannot move this
// channel's replay window).

// TetherSubtypeChannelBinding is the subtype of the channel binding TLV
// under tether's Company ID (after wire's capability 1, inventory 2,
// profile 3 and signature 4).
const TetherSubtypeChannelBinding uint8 = 5

// ErrChannelBinding means a signed frame of an S-channel carries no channel
// binding, or one for another S-channel.
var ErrChannelBinding = errors.New("vdp: S-channel binding missing or for another S-channel")

// bindingTLVLen is the size of the binding TLV: header 2, CID 3, subtype 1,
// S-VID 2.
const bindingTLVLen = 8

// endOffset returns the offset of the End TLV (or the end) of the VDP TLVs
// of an untagged ECP frame, and the S-VID of a channel binding under cid
// found before it (0 when none).
func endOffset(frame []byte, cid wire.OUI) (end int, svid uint16, err error) {
	const start = wire.SignedHeaderLen + 4 // Ethernet header, ECP header
	if len(frame) < start || binary.BigEndian.Uint16(frame[12:14]) != wire.EtherTypeECP {
		return 0, 0, fmt.Errorf("vdp: channel binding: not an untagged ECP frame (%d bytes)", len(frame))
	}
	off := start
	for off < len(frame) && frame[off]>>1 != 0 {
		if len(frame)-off < 2 {
			return 0, 0, fmt.Errorf("vdp: channel binding: TLV header cut at offset %d", off)
		}
		typ, length := frame[off]>>1, int(binary.BigEndian.Uint16(frame[off:])&0x1ff)
		if length > len(frame)-off-2 {
			return 0, 0, fmt.Errorf("vdp: channel binding: TLV of type %d at offset %d overruns the frame", typ, off)
		}
		if typ == 127 && length == bindingTLVLen-2 && wire.OUI(frame[off+2:off+5]) == cid && frame[off+5] == TetherSubtypeChannelBinding {
			svid = binary.BigEndian.Uint16(frame[off+6:]) & 0x0fff
		}
		off += 2 + length
	}
	return off, svid, nil
}

// cidOr returns cid, or wire.DefaultCID for the zero value.
func cidOr(cid wire.OUI) wire.OUI {
	if cid == (wire.OUI{}) {
		return wire.DefaultCID
	}
	return cid
}

// BindingSigner wraps sign, the signing hook of S-channel svid, so that
// each frame gets the channel binding TLV (under cid, zero meaning
// wire.DefaultCID) before it is signed.
func BindingSigner(sign ecp.SignFunc, cid wire.OUI, svid uint16) ecp.SignFunc {
	cid = cidOr(cid)
	return func(ctx context.Context, frame []byte) ([]byte, error) {
		end, _, err := endOffset(frame, cid)
		if err != nil {
			return frame, err
		}
		b := make([]byte, 0, len(frame)+bindingTLVLen)
		b = append(b, frame[:end]...)
		b = binary.BigEndian.AppendUint16(b, 127<<9|(bindingTLVLen-2))
		b = append(b, cid[0], cid[1], cid[2], TetherSubtypeChannelBinding)
		b = binary.BigEndian.AppendUint16(b, svid&0x0fff)
		b = append(b, frame[end:]...)
		return sign(ctx, b)
	}
}

// BindingVerifier wraps verify, the verifying hook of S-channel svid: a
// signed frame must carry the channel binding of svid, checked before
// verify runs; an unsigned frame goes to verify as it is (the signing
// policy decides on it). svid 0 is the default S-channel, whose frames
// carry no binding: a signed frame bound to an S-channel is refused there.
func BindingVerifier(verify VerifyFunc, cid wire.OUI, svid uint16) VerifyFunc {
	cid = cidOr(cid)
	return func(ctx context.Context, frame []byte) (identity.Verified, error) {
		_, got, err := endOffset(frame, cid)
		if err != nil {
			return identity.Verified{}, err
		}
		if got != svid {
			if _, _, serr := wire.FindSignature(frame[wire.SignedHeaderLen:], wire.PDUKindECP, cid); serr == nil {
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
