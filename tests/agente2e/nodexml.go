package agente2e

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/tether-net/tether/api"
)

// Domain is one domain of a libvirt test-driver node file (the test driver
// loads a file given as test:///ABSOLUTE/PATH; see [NodeXML]).
type Domain struct {
	// Name and UUID name the domain.
	Name, UUID string
	// Running is its run state: running, or shut off.
	Running bool
	// MACs are its vNICs, bridge interfaces on br0. The test driver names
	// the host device of vNIC j of a running domain "testnetJ".
	MACs []string
}

// DomainUUID is the UUID of domain i.
func DomainUUID(i int) string { return fmt.Sprintf("e2e0c0de-0000-4000-8000-%012x", i) }

// MAC is the MAC of vNIC j of domain i (i below 65,536, j below 256), in
// QEMU's 52:54:00 pool.
func MAC(i, j int) string { return fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>8&0xff, i&0xff, j) }

// NewDomain returns domain i (named vm-NNNN) with nics vNICs.
func NewDomain(i, nics int, running bool) Domain {
	d := Domain{Name: fmt.Sprintf("vm-%04d", i), UUID: DomainUUID(i), Running: running}
	for j := range nics {
		d.MACs = append(d.MACs, MAC(i, j))
	}
	return d
}

// Fleet returns n running domains with nics vNICs each.
func Fleet(n, nics int) []Domain {
	doms := make([]Domain, n)
	for i := range doms {
		doms[i] = NewDomain(i, nics, true)
	}
	return doms
}

// testNS is the test driver's XML namespace; its runstate element sets the
// state a domain loads in (5 is VIR_DOMAIN_SHUTOFF; the default is
// running).
const testNS = "http://libvirt.org/schemas/domain/test/1.0"

// XML returns d's definition for the test driver. It is also the document a
// qemu hook for d gets on its standard input.
func (d Domain) XML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test' xmlns:test='%s'>\n  <name>%s</name>\n  <uuid>%s</uuid>\n", testNS, d.Name, d.UUID)
	b.WriteString("  <memory>1024</memory>\n  <os><type>hvm</type></os>\n  <devices>\n")
	for _, m := range d.MACs {
		fmt.Fprintf(&b, "    <interface type='bridge'><mac address='%s'/><source bridge='br0'/></interface>\n", m)
	}
	b.WriteString("  </devices>\n")
	if !d.Running {
		b.WriteString("  <test:runstate>5</test:runstate>\n")
	}
	b.WriteString("</domain>\n")
	return b.String()
}

// NodeXML returns a test-driver node file that holds doms and nothing else
// (no default domain, network or pool).
func NodeXML(doms []Domain) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	for _, d := range doms {
		b.WriteString(d.XML())
	}
	b.WriteString("</node>\n")
	return b.String()
}

// WriteNode writes NodeXML(doms) to the absolute path and returns the URI
// that makes the test driver load it.
func WriteNode(path string, doms []Domain) (uri string, err error) {
	if err := os.WriteFile(path, []byte(NodeXML(doms)), 0o644); err != nil {
		return "", fmt.Errorf("write node file: %w", err)
	}
	return "test://" + path, nil
}

// Known is every VM UUID and MAC a test has ever let tetherd see, so that a
// record tetherd keeps of an earlier libvirt state (a gone VIF and its VM)
// is told apart from one that came from nowhere.
type Known struct {
	VMs, MACs map[string]bool
}

// Add records doms.
func (k *Known) Add(doms []Domain) {
	if k.VMs == nil {
		k.VMs, k.MACs = map[string]bool{}, map[string]bool{}
	}
	for _, d := range doms {
		k.VMs[d.UUID] = true
		for _, m := range d.MACs {
			k.MACs[m] = true
		}
	}
}

// maxDiffs bounds the differences CheckInventory reports.
const maxDiffs = 20

// CheckInventory compares tetherd's VMs and VIFs (as the API lists them)
// with doms, the domains of the test driver's node file, after a full
// reconcile, by the rules of inventory.Diff. It returns nil when they
// match, and otherwise one error per difference (at most 20), joined:
//
//   - every domain is a VM with its name and state (running or shutoff);
//   - the VIFs that are not gone are exactly the vNICs of the running
//     domains, each pending, of kind tap, on its VM, on device testnetJ;
//   - every other VIF is gone and was listed once (known has it);
//   - a VM that is not listed was listed once and is kept only for its
//     gone VIFs (a VM with no VIF left is removed).
func CheckInventory(doms []Domain, known Known, vms []api.VM, vifs []api.VIF) error {
	var errs []error
	add := func(format string, args ...any) {
		if len(errs) < maxDiffs {
			errs = append(errs, fmt.Errorf(format, args...))
		} else if len(errs) == maxDiffs {
			errs = append(errs, errors.New("... (more differences)"))
		}
	}
	listed := map[string]Domain{}
	type nic struct {
		vm     string
		device string
	}
	live := map[string]nic{}
	for _, d := range doms {
		listed[d.UUID] = d
		if d.Running {
			for j, m := range d.MACs {
				live[m] = nic{d.UUID, fmt.Sprintf("testnet%d", j)}
			}
		}
	}
	vifsOf := map[string]int{}
	seenMAC := map[string]bool{}
	for _, v := range vifs {
		seenMAC[v.MAC] = true
		vifsOf[v.VM]++
		want, isLive := live[v.MAC]
		switch {
		case isLive && (v.State != "pending" || v.VM != want.vm || v.Device != want.device || v.Kind != "tap"):
			add("VIF %s: state %s, VM %s, device %q, kind %s; want pending, VM %s, device %q, kind tap",
				v.MAC, v.State, v.VM, v.Device, v.Kind, want.vm, want.device)
		case !isLive && !known.MACs[v.MAC]:
			add("VIF %s (VM %s, state %s) was never listed by libvirt", v.MAC, v.VM, v.State)
		case !isLive && v.State != "gone":
			add("VIF %s of VM %s is %s; libvirt does not list it live, want gone", v.MAC, v.VM, v.State)
		}
	}
	for m, want := range live {
		if !seenMAC[m] {
			add("VIF %s of running VM %s is missing", m, want.vm)
		}
	}
	seenVM := map[string]bool{}
	for _, vm := range vms {
		seenVM[vm.UUID] = true
		d, ok := listed[vm.UUID]
		switch {
		case ok:
			state := "shutoff"
			if d.Running {
				state = "running"
			}
			if vm.Name != d.Name || vm.State != state {
				add("VM %s: name %q, state %s; want %q, %s", vm.UUID, vm.Name, vm.State, d.Name, state)
			}
		case !known.VMs[vm.UUID]:
			add("VM %s (%q) was never listed by libvirt", vm.UUID, vm.Name)
		case vifsOf[vm.UUID] == 0:
			add("VM %s (%q) is no longer listed and has no VIF left: want it removed", vm.UUID, vm.Name)
		}
	}
	for _, d := range doms {
		if !seenVM[d.UUID] {
			add("VM %s (%s) is missing", d.UUID, d.Name)
		}
	}
	return errors.Join(errs...)
}

// LiveMACs returns the sorted MACs of the running domains of doms.
func LiveMACs(doms []Domain) []string {
	var out []string
	for _, d := range doms {
		if d.Running {
			out = append(out, d.MACs...)
		}
	}
	slices.Sort(out)
	return out
}

// RemoteTestURI returns the URI that makes the libvirtd of lab (through its
// socket, as lab.URI names it) load the node file at the absolute path
// with its test driver: test+unix:///PATH?socket=SOCKET. Unlike test:///PATH,
// which runs the test driver inside the client, the domains then live in
// libvirtd, as they do with qemu:///system, and every call is an RPC.
func RemoteTestURI(labURI, path string) (string, error) {
	u, err := url.Parse(labURI)
	if err != nil {
		return "", fmt.Errorf("parse libvirtd URI: %w", err)
	}
	sock := u.Query().Get("socket")
	if sock == "" {
		return "", fmt.Errorf("libvirtd URI %s names no socket", labURI)
	}
	return "test+unix://" + path + "?socket=" + sock, nil
}
