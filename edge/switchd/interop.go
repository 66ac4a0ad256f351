package switchd

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/wire"
)

// check runs the verifier on a claim the VDP bridge let through: a signed
// one (peer set) gets the whole closed loop (CheckVerified). An unsigned
// one reaches the decider only in interop mode (require_signed: false and a
// peer that does not advertise tether's capability: the VDP bridge refuses
// unsigned frames otherwise); it gets what the verifier can check without
// a signature (CheckUnsigned: the port's unsigned LLDP neighbour names the
// host, the VM manager confirms the VM there with its MACs, no MAC live
// elsewhere, the S-Tag free), except that a host with an enrolled key must
// sign: an unsigned claim naming it is refused (unsigned-refused).
func (p *port) check(ctx context.Context, c verify.Claim, peer *identity.Verified) (verify.Decision, error) {
	d := p.d
	if peer != nil || d.cfg.RequireSigned {
		return d.verifier.CheckVerified(ctx, c, peer)
	}
	if nb, ok := d.neighbours.Neighbour(p.name); ok && !nb.Signed && nb.Host != "" {
		d.mu.Lock()
		_, enrolled := d.opts.HostKeys[nb.Host]
		d.mu.Unlock()
		if enrolled {
			return verify.Decision{Mode: c.VSI.Mode, VM: verify.UUID(c.VSI.VSIID), Host: nb.Host, Reason: verify.ReasonUnsigned,
				Message: fmt.Sprintf("host %q has an enrolled key, so its claims must be signed; this one is not (and its LLDP neighbour on port %s is unsigned)",
					nb.Host, p.name)}, nil
		}
	}
	return d.verifier.CheckUnsigned(ctx, c)
}

// vouchedBy reports whether the port's LLDP neighbour nb still vouches for
// r: the same host, and the same key, or, for an association made in
// interop mode (no signer), a neighbour that is still unsigned.
func (r *record) vouchedBy(nb verify.Neighbour) bool {
	if nb.Host != r.host {
		return false
	}
	if r.signer == (identity.KeyID{}) {
		return !nb.Signed
	}
	return nb.Signed && nb.Key == r.signer
}

// keyIDString is the API's rendering of the key that verified an
// association: "" for one made in interop mode, without a signature.
func keyIDString(k identity.KeyID) string {
	if k == (identity.KeyID{}) {
		return ""
	}
	return k.String()
}

// noDowngrade wraps the LLDP signature check: in interop mode unsigned
// LLDPDUs are accepted, but not one that carries the MSAP (chassis ID and
// port ID) of a neighbour the port holds as signed. Otherwise one forged
// LLDPDU in a tether host's name would replace its signed entry, and with
// it every association the host's key verified on the port.
func (p *port) noDowngrade(check lldpagent.CheckFunc) lldpagent.CheckFunc {
	return func(ctx context.Context, frame []byte, du *wire.LLDPDU) (lldpagent.CheckResult, error) {
		res, err := check(ctx, frame, du)
		if err != nil || res.Signed || du == nil {
			return res, err
		}
		for _, n := range p.neighbors() {
			if n.Check.Signed && n.ChassisID.Subtype == du.ChassisID.Subtype && bytes.Equal(n.ChassisID.ID, du.ChassisID.ID) &&
				n.PortID.Subtype == du.PortID.Subtype && bytes.Equal(n.PortID.ID, du.PortID.ID) {
				return lldpagent.CheckResult{}, fmt.Errorf("switchd: unsigned LLDPDU in the name of the signed neighbour %q refused (a downgrade or a forgery): %w",
					n.SystemName(), identity.ErrUnsigned)
			}
		}
		return res, nil
	}
}
