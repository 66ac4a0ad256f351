package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/wire"
)

// TestCheckUnsigned: interop mode's claims (no signature) are decided on
// the port's unsigned LLDP neighbour and the VM manager: a VM the VM
// manager confirms on the neighbour's host is accepted and its MAC becomes
// live there; every other case is refused with its reason and commits
// nothing, and CheckVerified still refuses an unsigned claim.
func TestCheckUnsigned(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	// swp3: an unsigned neighbour (lldpad) naming host A; swp4: none.
	w.nbrs.Set("swp3", verify.Neighbour{Host: "hostA"})
	claim := func(port string, stag uint16, v wire.VSI) verify.Claim {
		return verify.Claim{Port: port, Channel: port, VSI: v, STag: stag}
	}
	cases := []struct {
		name   string
		c      verify.Claim
		reason verify.Reason
		msg    string
	}{
		{"no neighbour", claim("swp4", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)), verify.ReasonNoNeighbour,
			"no single LLDP neighbour on port swp4 names its host"},
		{"signed neighbour: a downgrade", claim("swp1", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)),
			verify.ReasonNeighbourKeyMismatch, "is signed by key " + w.a.key.ID().String() + ", so its claims must be signed"},
		{"VM of another host", claim("swp3", 0, assocVSI(wire.VSIAssociate, vmB2, 100, macB2)), verify.ReasonVMManagerDenies,
			"does not confirm VM " + vmB2.String() + " on host \"hostA\""},
		{"wrong MAC", claim("swp3", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA3)), verify.ReasonVMManagerDenies,
			"with MAC " + macA3.String()},
		{"response", claim("swp3", 0, func() wire.VSI {
			v := assocVSI(wire.VSIAssociate, vmA1, 100, macA1)
			v.Status = wire.ResponseStatus(wire.VDPSuccess, false, false)
			return v
		}()), verify.ReasonMalformed, "is a response"},
	}
	for _, tc := range cases {
		d, err := w.v.CheckUnsigned(ctx, tc.c)
		if err != nil || d.Accepted || d.Reason != tc.reason || !strings.Contains(d.Message, tc.msg) || d.Signed {
			t.Errorf("%s: %+v %v, want %s with %q", tc.name, d, err, tc.reason, tc.msg)
		}
	}
	if w.locs.Len() != 0 || w.stags.Len() != 0 {
		t.Fatalf("refusals committed: %d locations, %d S-Tags", w.locs.Len(), w.stags.Len())
	}

	// CheckVerified never takes an unsigned claim.
	if d, _ := w.v.CheckVerified(ctx, claim("swp3", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)), nil); d.Accepted || d.Reason != verify.ReasonUnsigned {
		t.Fatalf("CheckVerified(nil peer): %+v", d)
	}

	d, err := w.v.CheckUnsigned(ctx, claim("swp3", 7, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	if err != nil || !d.Accepted || d.Signed || d.Host != "hostA" || d.VM != vmA1 {
		t.Fatalf("unsigned claim of a confirmed VM: %+v %v", d, err)
	}
	loc, ok, _ := w.locs.Lookup(ctx, macA1)
	if !ok || loc.Port != "swp3" || loc.Host != "hostA" || loc.VM != vmA1 {
		t.Fatalf("location after the unsigned ASSOCIATE: %+v %v", loc, ok)
	}
	if n, ok, _ := w.stags.Lookup(ctx, "swp3", 7); !ok || n.VM != vmA1 {
		t.Fatalf("S-Tag 7 after the unsigned ASSOCIATE: %+v %v", n, ok)
	}
	// The MAC is live on swp3: host B's signed claim of it (a clone) is
	// refused as for any signed claim.
	d, _ = w.v.Check(ctx, w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vmDup, 100, macA1)))
	if d.Accepted || d.Reason != verify.ReasonMACLiveElsewhere {
		t.Fatalf("signed claim of the MAC live on swp3: %+v", d)
	}
	// Another VM on the same S-Tag of swp3: refused.
	d, _ = w.v.CheckUnsigned(ctx, claim("swp3", 7, assocVSI(wire.VSIAssociate, vmA3, 100, macA3)))
	if d.Accepted || d.Reason != verify.ReasonSTagBoundElsewhere {
		t.Fatalf("second VM on S-Tag 7: %+v", d)
	}
	// DE-ASSOCIATE releases.
	if d, err := w.v.CheckUnsigned(ctx, claim("swp3", 7, assocVSI(wire.VSIDeAssociate, vmA1, 100, macA1))); err != nil || !d.Accepted {
		t.Fatalf("unsigned DE-ASSOCIATE: %+v %v", d, err)
	}
	if w.locs.Len() != 0 || w.stags.Len() != 0 {
		t.Fatalf("after DE-ASSOCIATE: %d locations, %d S-Tags", w.locs.Len(), w.stags.Len())
	}
	st := w.v.Stats()
	if st.Accepted != 2 || st.Refused[verify.ReasonVMManagerDenies] != 2 || st.Refused[verify.ReasonUnsigned] != 1 {
		t.Errorf("stats %+v", st)
	}
}
