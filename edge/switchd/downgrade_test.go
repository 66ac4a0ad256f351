//go:build linux

package switchd

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/wire"
)

// TestNetnsInteropNoDowngrade: in interop mode (require_signed: false)
// switchd accepts unsigned LLDPDUs, but not one in the name of a host
// whose signed LLDPDUs it holds: an unsigned LLDPDU with host A's chassis
// ID and port ID (a forgery, or a downgrade) is refused and recorded, host
// A stays swA's signed neighbour and its verified VM keeps its rule.
func TestNetnsInteropNoDowngrade(t *testing.T) {
	l := newLab(t, 1)
	l.cfg.RequireSigned = false
	sd := l.start(t)
	a := l.station(t, l.A, l.hostA)
	waitFor(t, 10*time.Second, "host A's signed LLDP on swA", func() bool {
		nb, ok := sd.d.neighbours.Neighbour("swA")
		return ok && nb.Signed && nb.Host == "hostA" && a.switchNeighbour()
	})
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatalf("associate VM1: %v", res.Err)
	}
	pair := pairN(1, 100)
	if !l.allowed(t, "swA", pair) {
		t.Fatal("no rule for VM1")
	}

	// The forgery: host A's MSAP, its system name, no signature.
	tx := l.A.Listen(t, "eth0", 0x88b7, false)
	mac := tx.Interface().MAC
	info := lldpagent.LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: mac[:]},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("eth0")},
		SystemName: "hostA",
	}
	du, err := info.LLDPDU()
	if err != nil {
		t.Fatal(err)
	}
	du.TTL = 120
	pdu, err := du.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	h := wire.EthernetHeader{Dst: wire.NearestCustomerBridge, Src: mac, EtherType: wire.EtherTypeLLDP}
	frame := append(h.Append(nil), pdu...)
	for len(frame) < 60 {
		frame = append(frame, 0)
	}
	for range 3 {
		if err := tx.WriteFrame(context.Background(), frame); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, "the unsigned LLDPDU refused", func() bool {
		return slices.ContainsFunc(sd.d.Rejects(), func(r switchapi.Reject) bool {
			return r.Port == "swA" && r.Mode == "LLDP" && r.Reason == "unsigned-refused" && r.Host == "hostA" &&
				strings.Contains(r.Message, `unsigned LLDPDU in the name of the signed neighbour "hostA" refused`)
		})
	})
	time.Sleep(3 * l.cfgReconcile())
	if nb, ok := sd.d.neighbours.Neighbour("swA"); !ok || !nb.Signed || nb.Key != l.hostA.key.ID() {
		t.Fatalf("swA's neighbour after the forgery: %+v %v", nb, ok)
	}
	if !l.allowed(t, "swA", pair) || len(sd.d.VMs()) != 1 {
		t.Fatalf("VM1's association lost to an unsigned LLDPDU: %+v", sd.d.VMs())
	}
}

// cfgReconcile is the reconcile interval the lab's switchd runs with.
func (l *lab) cfgReconcile() time.Duration { return 200 * time.Millisecond }
