package lldpagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// SignWith returns a SignFunc that signs with s on channel (identity's
// replay scope, for example the port name). The signature TLV becomes the
// last TLV before End, as DESIGN.md "Wire decisions" requires.
func SignWith(s *identity.Signer, channel string) SignFunc {
	return func(ctx context.Context, frame []byte) ([]byte, error) {
		return s.Sign(ctx, channel, frame)
	}
}

// VerifyWith returns a CheckFunc that verifies signed LLDPDUs with v on
// channel. An LLDPDU without a signature is accepted as plain standard LLDP
// (CheckResult.Signed false) unless requireSigned; a bad signature, an
// unknown key or a replayed counter is refused.
func VerifyWith(v *identity.Verifier, channel string, requireSigned bool) CheckFunc {
	return func(ctx context.Context, frame []byte, _ *wire.LLDPDU) (CheckResult, error) {
		got, err := v.Verify(ctx, channel, frame)
		if err != nil {
			if errors.Is(err, identity.ErrUnsigned) && !requireSigned {
				return CheckResult{}, nil
			}
			return CheckResult{}, fmt.Errorf("lldpagent: verify LLDPDU: %w", err)
		}
		return CheckResult{Signed: true, KeyID: got.Key, Counter: got.Counter}, nil
	}
}
