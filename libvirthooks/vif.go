package libvirthooks

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// Kind is how a VIF reaches the host: the datapath tether has to configure.
type Kind string

// VIF kinds. ParseDomain derives tap, macvtap, sriov-vf and vhostuser from
// the libvirt interface type; partition and veth come only from tether
// metadata (kind="...") or from other sources (CNI).
const (
	KindUnknown   Kind = ""          // not known yet (e.g. type='network' before libvirt allocated the port)
	KindTap       Kind = "tap"       // type network (bridge-backed), bridge, ethernet
	KindMacvtap   Kind = "macvtap"   // type direct
	KindSRIOVVF   Kind = "sriov-vf"  // type hostdev: an SR-IOV VF passed to the guest
	KindPartition Kind = "partition" // an 802.1ad S-channel (NIC partition) identified by an S-Tag
	KindVeth      Kind = "veth"      // a veth pair (containers)
	KindVhostUser Kind = "vhostuser" // type vhostuser (a userspace switch socket)
)

// valid reports whether k is one of the defined kinds (KindUnknown excluded).
func (k Kind) valid() bool {
	switch k {
	case KindTap, KindMacvtap, KindSRIOVVF, KindPartition, KindVeth, KindVhostUser:
		return true
	}
	return false
}

// VLANTag is one <vlan><tag id=... nativeMode=.../>.
type VLANTag struct {
	ID         uint16 // 0-4095
	NativeMode string // "", "tagged" or "untagged"
}

// VirtualPort is a libvirt <virtualport>: the port profile for 802.1Qbg
// (VDP), 802.1Qbh (VN-Tag), Open vSwitch or MidoNet.
type VirtualPort struct {
	// Type is "802.1Qbg", "802.1Qbh", "openvswitch", "midonet", or "" for an
	// untyped virtualport (libvirt merges it with the network's).
	Type string
	// 802.1Qbg (IEEE 802.1Qbg-2012 clause 41, VSI type/version and manager ID).
	ManagerID     *uint8  // VSI Manager ID, 0-255
	TypeID        *uint32 // VSI Type ID, 24 bits
	TypeIDVersion *uint8  // VSI Type Version, 0-255
	InstanceID    string  // VSI Instance ID (a UUID)
	// 802.1Qbh and openvswitch.
	ProfileID string
	// openvswitch and midonet.
	InterfaceID string
}

// VIF is one virtual interface of a domain, or the port of a network hook.
// Which fields are set depends on the interface type and on when the XML
// was taken: before "start begin" a type='network' interface has neither a
// bridge nor a host device; inactive XML may lack the MAC.
type VIF struct {
	// Position is the 1-based position among the domain's <interface>
	// elements (as in the XPath devices/interface[N]); 0 for a network port.
	Position int
	// Type is the libvirt interface type: network, bridge, direct, hostdev,
	// ethernet or vhostuser. For a network port it is the plug type
	// (bridge, network, direct, hostdev-pci).
	Type string
	Kind Kind

	// MAC is the lower-case, colon-separated MAC address; empty when the
	// XML has none (inactive XML), in which case MACMissing is true.
	MAC        string
	MACMissing bool

	// HostDev is the host-side device: <target dev>, the tap or macvtap
	// device (vnet0, macvtap0); for a hostdev interface (an SR-IOV VF) the
	// VF's PCI address, as PCIAddress.
	HostDev string
	Model   string // <model type>, e.g. virtio
	Alias   string // <alias name>, e.g. net0, ua-frontend

	Network          string // libvirt network (<source network>)
	Bridge           string // host bridge (<source bridge>)
	PortID           string // libvirt network port UUID (<source portid>)
	LinkDev          string // direct: the lower device (<source dev>)
	DirectMode       string // direct: vepa, bridge, private, passthrough
	PCIAddress       string // hostdev: the VF's PCI address, DDDD:BB:SS.F
	VhostUserSocket  string // vhostuser: the unix socket path
	LibvirtPortGroup string // <source portgroup> (libvirt's network port group)
	// PortGroup is tether's port group: the tether metadata portgroup if
	// set, otherwise LibvirtPortGroup.
	PortGroup string

	STag      uint16    // 802.1ad S-Tag from tether metadata, 0 if none
	CVID      uint16    // C-VID: the single tag of a non-trunk <vlan>, 0 if none
	VLANTrunk bool      // <vlan trunk='yes'>
	VLANTags  []VLANTag // every <vlan><tag>

	VirtualPort *VirtualPort // nil if the interface has no <virtualport>

	Labels []string // tether metadata labels of this VIF
}

// parseMAC normalises a 48-bit unicast MAC to lower-case colon form.
func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	if len(hw) != 6 {
		return "", fmt.Errorf("%d-byte address, want 6", len(hw))
	}
	if hw[0]&1 != 0 {
		return "", fmt.Errorf("multicast address")
	}
	return hw.String(), nil
}

// vlanTag is the common shape of libvirtxml's domain and port VLAN tags.
type vlanTag struct {
	id         uint
	nativeMode string
}

// setVLAN fills the VLAN fields of v.
func (v *VIF) setVLAN(trunk string, tags []vlanTag) error {
	v.VLANTrunk = trunk == "yes"
	for _, t := range tags {
		if t.id > 4095 {
			return fmt.Errorf("tag id %d out of range 0-4095", t.id)
		}
		v.VLANTags = append(v.VLANTags, VLANTag{ID: uint16(t.id), NativeMode: t.nativeMode})
	}
	if len(v.VLANTags) == 1 && !v.VLANTrunk {
		v.CVID = v.VLANTags[0].ID
	}
	return nil
}

// vportParams is the union of libvirtxml's virtualport parameter shapes.
type vportParams struct {
	typ                                string
	managerID, typeID, typeIDVersion   *uint
	instanceID, profileID, interfaceID string
}

// virtualPort converts and range-checks virtualport parameters.
func (p vportParams) virtualPort() (*VirtualPort, error) {
	vp := &VirtualPort{
		Type:        p.typ,
		InstanceID:  p.instanceID,
		ProfileID:   p.profileID,
		InterfaceID: p.interfaceID,
	}
	if p.managerID != nil {
		if *p.managerID > 0xff {
			return nil, fmt.Errorf("managerid %d out of range 0-255", *p.managerID)
		}
		m := uint8(*p.managerID)
		vp.ManagerID = &m
	}
	if p.typeID != nil {
		if *p.typeID > 0xffffff {
			return nil, fmt.Errorf("typeid %d out of range 0-16777215", *p.typeID)
		}
		t := uint32(*p.typeID)
		vp.TypeID = &t
	}
	if p.typeIDVersion != nil {
		if *p.typeIDVersion > 0xff {
			return nil, fmt.Errorf("typeidversion %d out of range 0-255", *p.typeIDVersion)
		}
		t := uint8(*p.typeIDVersion)
		vp.TypeIDVersion = &t
	}
	return vp, nil
}

// domainVPortParams flattens a domain <virtualport>; rawType is the type
// attribute as written, used when libvirtxml does not know the type.
func domainVPortParams(vp *libvirtxml.DomainInterfaceVirtualPort, rawType string) vportParams {
	p := vportParams{typ: rawType}
	if vp.Params == nil {
		return p
	}
	switch x := vp.Params; {
	case x.VEPA8021QBG != nil:
		p.typ = "802.1Qbg"
		p.managerID, p.typeID, p.typeIDVersion, p.instanceID = x.VEPA8021QBG.ManagerID, x.VEPA8021QBG.TypeID, x.VEPA8021QBG.TypeIDVersion, x.VEPA8021QBG.InstanceID
	case x.VNTag8011QBH != nil:
		p.typ = "802.1Qbh"
		p.profileID = x.VNTag8011QBH.ProfileID
	case x.OpenVSwitch != nil:
		p.typ = "openvswitch"
		p.interfaceID, p.profileID = x.OpenVSwitch.InterfaceID, x.OpenVSwitch.ProfileID
	case x.MidoNet != nil:
		p.typ = "midonet"
		p.interfaceID = x.MidoNet.InterfaceID
	case x.Any != nil:
		p.typ = ""
		p.managerID, p.typeID, p.typeIDVersion = x.Any.ManagerID, x.Any.TypeID, x.Any.TypeIDVersion
		p.instanceID, p.profileID, p.interfaceID = x.Any.InstanceID, x.Any.ProfileID, x.Any.InterfaceID
	}
	return p
}

// networkVPortParams flattens a network or network port <virtualport>.
func networkVPortParams(vp *libvirtxml.NetworkVirtualPort) vportParams {
	var p vportParams
	if vp.Params == nil {
		return p
	}
	switch x := vp.Params; {
	case x.VEPA8021QBG != nil:
		p.typ = "802.1Qbg"
		p.managerID, p.typeID, p.typeIDVersion, p.instanceID = x.VEPA8021QBG.ManagerID, x.VEPA8021QBG.TypeID, x.VEPA8021QBG.TypeIDVersion, x.VEPA8021QBG.InstanceID
	case x.VNTag8011QBH != nil:
		p.typ = "802.1Qbh"
		p.profileID = x.VNTag8011QBH.ProfileID
	case x.OpenVSwitch != nil:
		p.typ = "openvswitch"
		p.interfaceID, p.profileID = x.OpenVSwitch.InterfaceID, x.OpenVSwitch.ProfileID
	case x.MidoNet != nil:
		p.typ = "midonet"
		p.interfaceID = x.MidoNet.InterfaceID
	case x.Any != nil:
		p.managerID, p.typeID, p.typeIDVersion = x.Any.ManagerID, x.Any.TypeID, x.Any.TypeIDVersion
		p.instanceID, p.profileID, p.interfaceID = x.Any.InstanceID, x.Any.ProfileID, x.Any.InterfaceID
	}
	return p
}

// pciAddress formats a PCI address as DDDD:BB:SS.F, or "" if incomplete.
func pciAddress(domain, bus, slot, function *uint) string {
	if bus == nil || slot == nil || function == nil {
		return ""
	}
	var d uint
	if domain != nil {
		d = *domain
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", d, *bus, *slot, *function)
}

// errNoHostdevSource is why a hostdev interface without a PCI source is
// refused.
var errNoHostdevSource = errors.New("want <source><address type='pci' domain= bus= slot= function=/></source>")

// hostdevPCI returns the PCI address of a hostdev interface's source as
// DDDD:BB:SS.F (the form /sys/bus/pci/devices uses). A missing domain is
// 0, as libvirt reads it; bus, slot and function are required.
func hostdevPCI(h *libvirtxml.DomainInterfaceSourceHostdev) (string, error) {
	if h.PCI == nil || h.PCI.Address == nil {
		if h.USB != nil {
			return "", errors.New("a USB device is not an SR-IOV VF: want <address type='pci' .../>")
		}
		return "", errNoHostdevSource
	}
	a := h.PCI.Address
	for _, f := range []struct {
		name string
		v    *uint
		max  uint
	}{{"domain", a.Domain, 0xffff}, {"bus", a.Bus, 0xff}, {"slot", a.Slot, 0x1f}, {"function", a.Function, 7}} {
		if f.v == nil {
			if f.name == "domain" {
				continue
			}
			return "", fmt.Errorf("PCI address without %s", f.name)
		}
		if *f.v > f.max {
			return "", fmt.Errorf("PCI %s %#x out of range 0-%#x", f.name, *f.v, f.max)
		}
	}
	return pciAddress(a.Domain, a.Bus, a.Slot, a.Function), nil
}
