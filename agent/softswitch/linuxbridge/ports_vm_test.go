package linuxbridge

import (
	"slices"
	"testing"

	"github.com/tether-net/tether/agent/softswitch"
)

// TestVMPorts: Ports lists the ports marked as tether's (those Ensure
// configured), still listing one whose interface was deleted behind the
// switch's back (a tap gone while tetherd was down), and never a port
// other software enslaved to the bridge; Remove takes a listed port off
// the list.
func TestVMPorts(t *testing.T) {
	v := newVMLab(t, false, 3)
	if ports, err := v.sw.Ports(v.ctx); err != nil || len(ports) != 0 {
		t.Fatalf("Ports of a fresh switch = %q, %v; want none", ports, err)
	}
	p1 := softswitch.Port{Name: v.port(1), MAC: mac(1), VID: 100}
	p2 := softswitch.Port{Name: v.port(2), MAC: mac(2), VID: 200}
	v.ensure(t, p1)
	v.ensure(t, p2)
	// Port 3 joins the bridge the way libvirt adds a tap: not tether's.
	br, err := v.h.LinkByName(v.opts.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	l3, err := v.h.LinkByName(v.port(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.h.LinkSetMaster(l3, br); err != nil {
		t.Fatal(err)
	}
	// Port 1's interface goes (its pair is deleted with it).
	l1, err := v.h.LinkByName(p1.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.h.LinkDel(l1); err != nil {
		t.Fatal(err)
	}
	want := []string{p1.Name, p2.Name}
	slices.Sort(want)
	if ports, err := v.sw.Ports(v.ctx); err != nil || !slices.Equal(ports, want) {
		t.Fatalf("Ports = %q, %v; want %q", ports, err, want)
	}
	if err := v.sw.Remove(v.ctx, p1.Name); err != nil {
		t.Fatalf("Remove of the gone port: %v", err)
	}
	if ports, err := v.sw.Ports(v.ctx); err != nil || !slices.Equal(ports, []string{p2.Name}) {
		t.Fatalf("Ports after Remove = %q, %v; want [%s]", ports, err, p2.Name)
	}
	if l3, err := v.h.LinkByName(v.port(3)); err != nil || l3.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("the port tether does not own left the bridge: %v", err)
	}
}
