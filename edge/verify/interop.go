package verify

import (
	"context"
	"fmt"
)

// CheckUnsigned decides on an unsigned claim in interop mode (the switch's
// require_signed: false, a station such as lldpad that speaks plain
// standard VDP). Without a signature checks 1 to 4 cannot run; what is left
// of the closed loop runs instead:
//
//   - the port has a single LLDP neighbour that names its host (its System
//     Name TLV), else no-lldp-neighbour;
//   - that neighbour is unsigned: a port whose neighbour signs its LLDPDUs
//     gets signed claims only, an unsigned claim there is a downgrade or a
//     forgery (neighbour-key-mismatch);
//   - checks 5 to 7 as for a signed claim, with the neighbour's host: the
//     VM manager confirms the VM on that host with each MAC, no MAC is live
//     elsewhere, the S-Tag is free.
//
// The caller decides whether interop mode is allowed at all; the verifier
// itself never takes an unsigned frame for a signed one (CheckVerified with
// a nil peer still refuses). The decision has Signed false and the host
// set.
func (v *Verifier) CheckUnsigned(ctx context.Context, c Claim) (Decision, error) {
	d := Decision{Mode: c.VSI.Mode, VM: UUID(c.VSI.VSIID)}
	d, err := v.decideUnsigned(ctx, &c, d)
	return v.record(ctx, &c, d, err)
}

// decideUnsigned runs CheckUnsigned's checks.
func (v *Verifier) decideUnsigned(ctx context.Context, c *Claim, d Decision) (Decision, error) {
	vsi := &c.VSI
	macs, why := requestMACs(vsi)
	if why != "" {
		return refuse(d, ReasonMalformed, why), nil
	}
	nb, ok := v.nbrs.Neighbour(c.Port)
	switch {
	case !ok || nb.Host == "":
		return refuse(d, ReasonNoNeighbour,
			fmt.Sprintf("no single LLDP neighbour on port %s names its host (System Name TLV), so the unsigned claim names no host", c.Port)), nil
	case nb.Signed:
		d.Host = nb.Host
		return refuse(d, ReasonNeighbourKeyMismatch,
			fmt.Sprintf("the LLDP neighbour %q on port %s is signed by key %s, so its claims must be signed: an unsigned one is a downgrade or a forgery",
				nb.Host, c.Port, nb.Key)), nil
	}
	d.Host = nb.Host
	return v.decideOnHost(ctx, c, d, nb.Host, macs)
}
