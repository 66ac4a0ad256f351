//go:build linux

package switchd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// TestNetnsMigrationOverlap runs a live migration of VM 1 from host A
// (swA) to host B (swB) through tether-switchd for real (bridge, nftables,
// AF_PACKET, signed VDP), in libvirt's order: the destination
// pre-associates (held back: its frames are dropped), then associates in
// the migration's Prepare phase while the guest still runs on host A.
// During that overlap real frames from VM 1's MAC cross the switch from
// both ports, the kernel's table allows the pair on both, and tetherctl
// switch vms lists both ports with the source noted as migrating; the
// source's DE-ASSOCIATE (its stopped hook after the switchover) then
// removes swA's pair only.
func TestNetnsMigrationOverlap(t *testing.T) {
	l := newLab(t, 1)
	place := filepath.Join(l.dir, "placements.yaml")
	writePlacements(t, place, "{}\n")
	l.cfg.Placements = place
	sd := l.start(t)
	a := l.station(t, l.A, l.hostA)
	b := l.station(t, l.B, l.hostB)
	waitFor(t, 10*time.Second, "LLDP both ways on both ports", func() bool {
		na, okA := sd.d.neighbours.Neighbour("swA")
		nb, okB := sd.d.neighbours.Neighbour("swB")
		return okA && okB && na.Host == "hostA" && nb.Host == "hostB" && a.switchNeighbour() && b.switchNeighbour()
	})
	l.WaitForwarding(t)
	pair1 := pairN(1, 100)
	vsi := vsiOf(uuidN(1), macN(1), 0, 1)
	if res := a.do(wire.VSIAssociate, vsi); res.Err != nil {
		t.Fatalf("associate VM1 on host A: %v (rejects %+v)", res.Err, sd.d.Rejects())
	}
	if !l.Send(t, macN(1), 100, 2*time.Second) {
		t.Fatal("VM1's frame from host A did not cross")
	}

	// The VM manager (placement records) reports the migration.
	vm, mac := uuidN(1).String(), macN(1).String()
	writePlacements(t, place, "hostA:\n  - {uuid: "+vm+", name: vm1, state: migrating-out, macs: [\""+mac+"\"]}\n"+
		"hostB:\n  - {uuid: "+vm+", name: vm1, state: migrating-in, macs: [\""+mac+"\"]}\n")
	if res := b.do(wire.VSIPreAssociate, vsi); res.Err != nil {
		t.Fatalf("pre-associate on host B: %v (rejects %+v)", res.Err, sd.d.Rejects())
	}
	if l.allowed(t, "swB", pair1) || l.SendFromB(t, macN(1), 100, 300*time.Millisecond) {
		t.Fatal("VM1's pair passes on swB while only pre-associated")
	}
	if res := b.do(wire.VSIAssociate, vsi); res.Err != nil {
		t.Fatalf("associate on host B: %v (rejects %+v)", res.Err, sd.d.Rejects())
	}
	if !l.allowed(t, "swB", pair1) {
		t.Fatal("swB's pair not allowed once host B heard success")
	}
	waitFor(t, 30*time.Second, "tetherctl switch vms listing VM1 on swA (migrating) and swB", func() bool {
		out, _, code := l.tetherctl(t, "switch", "vms")
		return code == 0 && strings.Count(out, "\n"+mac) == 2 && strings.Contains(out, "migrating: source until de-associate (destination port swB")
	})
	out, _, _ := l.tetherctl(t, "switch", "vms")
	t.Logf("tetherctl switch vms during the overlap:\n%s", out)

	// The overlap: real frames from both ports, interleaved.
	const n = 40
	fromA, fromB := 0, 0
	for range n {
		if l.Send(t, macN(1), 100, time.Second) {
			fromA++
		}
		if l.SendFromB(t, macN(1), 100, time.Second) {
			fromB++
		}
	}
	t.Logf("during the overlap: %d/%d frames from swA and %d/%d from swB crossed", fromA, n, fromB, n)
	// Both pairs are in the kernel's table and the frames cross from
	// both ports. Up to 2 of each 40 may go missing: the kernel drops
	// from its per-CPU backlog, shared with every other test running on
	// the machine, before the bridge sees a frame; a missing rule drops
	// them all.
	if fromA < n-2 || fromB < n-2 || !l.allowed(t, "swA", pair1) || !l.allowed(t, "swB", pair1) {
		t.Fatalf("during the overlap %d/%d frames from swA and %d/%d from swB crossed; want all but 2 (swA allowed %v, swB allowed %v)",
			fromA, n, fromB, n, l.allowed(t, "swA", pair1), l.allowed(t, "swB", pair1))
	}

	// The switchover: the source's stopped hook, DE-ASSOCIATE. The VM
	// manager's records change after it here: switchd drops the source on
	// whichever comes first (records polled), so writing them first
	// would race the station's DE-ASSOCIATE ("VSI not associated").
	if res := a.do(wire.VSIDeAssociate, wire.VSI{VSITypeID: 1, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: uuidN(1),
		FilterFormat: wire.FilterMACVID, Filters: []wire.Filter{{MAC: macN(1), VID: 100}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, 10*time.Second, "swA's pair revoked", func() bool { return !l.allowed(t, "swA", pair1) })
	if l.Send(t, macN(1), 100, 300*time.Millisecond) {
		t.Fatal("VM1's frame from host A crossed after its DE-ASSOCIATE")
	}
	if !l.allowed(t, "swB", pair1) || !l.SendFromB(t, macN(1), 100, time.Second) {
		t.Fatal("the source's DE-ASSOCIATE cost the destination its pair")
	}
	// The VM manager's records catch up: the destination keeps its pair.
	writePlacements(t, place, "hostA: []\nhostB:\n  - {uuid: "+vm+", name: vm1, state: migrated-in, macs: [\""+mac+"\"]}\n")
	// The records are read on the next question: host B's next
	// keep-alive is one.
	time.Sleep(2 * netTiming.KeepAlive())
	if !l.allowed(t, "swB", pair1) || !l.SendFromB(t, macN(1), 100, time.Second) {
		t.Fatal("the records' switchover cost the destination its pair")
	}
	select {
	case ev := <-b.events:
		if ev.Kind == vdp.EventBridgeDeassociated {
			t.Fatalf("host B was de-associated: %+v", ev)
		}
	default:
	}
}

func writePlacements(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}
