package verify

import (
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/lldpagent"
)

// NeighboursFunc adapts a function to Neighbours.
type NeighboursFunc func(port string) (Neighbour, bool)

// Neighbour implements Neighbours.
func (f NeighboursFunc) Neighbour(port string) (Neighbour, bool) { return f(port) }

// NeighboursFromLLDP adapts the LLDP agents' neighbour tables (package
// l2/lldpagent, with Config.Check set by lldpagent.VerifyWith so that each
// entry records which key signed it): table returns the neighbours the
// agent of a port sees, for example agents[port].Neighbors(), or nil for
// an unknown port.
//
// A port with no neighbour, or with several that differ in host name or
// signing key (two hosts behind one port, a key rotation caught half-way,
// an impostor), has no Neighbour: the port's host is not known and every
// claim on it is refused until the extra entry ages out.
func NeighboursFromLLDP(table func(port string) []lldpagent.Neighbor) Neighbours {
	return NeighboursFunc(func(port string) (Neighbour, bool) {
		ns := table(port)
		if len(ns) == 0 {
			return Neighbour{}, false
		}
		first := fromLLDP(&ns[0])
		for i := 1; i < len(ns); i++ {
			if fromLLDP(&ns[i]) != first {
				return Neighbour{}, false
			}
		}
		return first, true
	})
}

// fromLLDP reads one neighbour table entry.
func fromLLDP(n *lldpagent.Neighbor) Neighbour {
	out := Neighbour{Host: n.SystemName(), Signed: n.Check.Signed}
	if out.Signed {
		out.Key = identity.KeyID(n.Check.KeyID)
	}
	return out
}
