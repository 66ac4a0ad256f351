package switchd

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// revokeCalls counts the enforcer's revocations on port.
func revokeCalls(f *fakeEnforcer, port string) int {
	n := 0
	for _, c := range f.callList() {
		if strings.HasPrefix(c, "revoke "+port+" ") {
			n++
		}
	}
	return n
}

// TestRevokedKeyRemovesNeighbour: when SetHostKeys revokes a host's key
// (not enrolled any more, or replaced by another), the LLDP neighbour
// verified under it leaves the port at once, not when its TTL ends (120 s
// for a station sending every 30 s): the port shows no neighbour, its
// associations are torn down once (one revocation per rule), and the
// neighbour of another port, signed by another key, stays.
func TestRevokedKeyRemovesNeighbour(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys func(hv1, hv2 *hostID) map[string]ed25519.PublicKey
	}{
		{"not-enrolled", func(_, hv2 *hostID) map[string]ed25519.PublicKey {
			return map[string]ed25519.PublicKey{"hv2": hv2.key.Public()}
		}},
		{"replaced", func(_, hv2 *hostID) map[string]ed25519.PublicKey {
			other, err := identity.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			return map[string]ed25519.PublicKey{"hv1": other.Public(), "hv2": hv2.key.Public()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newMemRig(t, "p1", "p2")
			hv1, hv2 := newHostID(t, "hv1"), newHostID(t, "hv2")
			r.enrol(hv1)
			r.enrol(hv2)
			r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
			r.vmm.set("hv1", uuidN(2), verify.VMRunning, macN(2))
			r.vmm.set("hv2", uuidN(3), verify.VMRunning, macN(3))
			r.start(nil)
			a := r.station(hv1, "p1")
			b := r.station(hv2, "p2")
			for _, n := range []int{1, 2} {
				if res := a.do(wire.VSIAssociate, vsiOf(uuidN(n), macN(n), 0, 1)); res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			if res := b.do(wire.VSIAssociate, vsiOf(uuidN(3), macN(3), 0, 1)); res.Err != nil {
				t.Fatal(res.Err)
			}
			if sp := portView(t, r.d, "p1"); sp.Neighbors != 1 || sp.Neighbor == nil || sp.Neighbor.SystemName != "hv1" {
				t.Fatalf("p1 before: %+v", sp)
			}

			if err := r.d.SetHostKeys(context.Background(), tc.keys(hv1, hv2)); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			waitFor(t, 2*time.Second, "no LLDP neighbour on p1", func() bool {
				sp := portView(t, r.d, "p1")
				_, ok := r.d.neighbours.Neighbour("p1")
				return sp.Neighbors == 0 && sp.Neighbor == nil && !ok
			})
			t.Logf("SetHostKeys to no neighbour on p1: %v", time.Since(t0).Round(100*time.Microsecond))
			// The port's worker has handled the removal as a lost
			// neighbour.
			p := r.d.ports["p1"]
			waitFor(t, 2*time.Second, "p1's neighbour identity cleared", func() bool {
				p.mu.Lock()
				defer p.mu.Unlock()
				return !p.identOK
			})
			for _, n := range []int{1, 2} {
				if r.enf.allowed("p1", pairN(n, 100)) {
					t.Fatalf("VM%d's rule kept", n)
				}
			}
			if n := revokeCalls(r.enf, "p1"); n != 2 {
				t.Fatalf("%d revocations on p1, want 2 (one per rule): %v", n, r.enf.callList())
			}
			gone := map[vdp.Key]int{}
			for len(gone) < 2 {
				ev := a.waitEvent(vdp.EventBridgeDeassociated, 2*time.Second)
				gone[ev.Key]++
			}
			if nb, ok := r.d.neighbours.Neighbour("p2"); !ok || nb.Host != "hv2" || nb.Key != hv2.key.ID() {
				t.Fatalf("p2's neighbour: %+v %v", nb, ok)
			}
			if !r.enf.allowed("p2", pairN(3, 100)) || revokeCalls(r.enf, "p2") != 0 {
				t.Fatalf("hv2 on p2 touched: %v", r.enf.callList())
			}
		})
	}
}

// portView returns the API view of port name.
func portView(t *testing.T, d *Daemon, name string) (sp switchapi.Port) {
	t.Helper()
	for _, p := range d.Ports(context.Background()) {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no port %s", name)
	return sp
}
