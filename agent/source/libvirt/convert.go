package libvirt

import (
	"errors"
	"fmt"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/libvirthooks"
	virt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"
)

// SourceName is the inventory source of the VMs this package records
// (inventory.VM.Source); a full reconcile touches only those.
const SourceName = "libvirt"

// networkKindFunc says how the interfaces of a libvirt network are plumbed
// on the host. It resolves the kind of a type='network' interface whose
// XML does not say (see convertVIF).
type networkKindFunc func(network string) (inventory.Kind, error)

// convertDomain maps a parsed domain and its run state to an inventory
// Domain. Only an active domain (its live XML has an id) lists VIFs: a
// defined but shut-off domain is recorded as a VM without vNICs, because
// its vNICs exist on no host yet. An interface that cannot be mapped is
// left out and reported in skipped; err is set only when the domain itself
// is unusable (its UUID).
func convertDomain(d libvirthooks.Domain, state virt.DomainState, netKind networkKindFunc) (dom inventory.Domain, skipped []error, err error) {
	id, err := inventory.ParseUUID(d.UUID)
	if err != nil {
		return inventory.Domain{}, nil, fmt.Errorf("domain %q: uuid: %w", d.Name, err)
	}
	dom.VM = inventory.VM{UUID: id, Name: d.Name, State: vmState(state), Source: SourceName}
	if d.ID < 0 {
		return dom, nil, nil
	}
	dom.VIFs = make([]inventory.VIF, 0, len(d.VIFs))
	for _, v := range d.VIFs {
		iv, err := convertVIF(id, v, netKind)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("domain %s (%s): interface %d: %w", d.Name, d.UUID, v.Position, err))
			continue
		}
		dom.VIFs = append(dom.VIFs, iv)
	}
	return dom, skipped, nil
}

// vmState maps virDomainState to the inventory's VM state (same order).
func vmState(s virt.DomainState) inventory.VMState {
	switch s {
	case virt.DOMAIN_RUNNING:
		return inventory.VMStateRunning
	case virt.DOMAIN_BLOCKED:
		return inventory.VMStateBlocked
	case virt.DOMAIN_PAUSED:
		return inventory.VMStatePaused
	case virt.DOMAIN_SHUTDOWN:
		return inventory.VMStateShutdown
	case virt.DOMAIN_SHUTOFF:
		return inventory.VMStateShutoff
	case virt.DOMAIN_CRASHED:
		return inventory.VMStateCrashed
	case virt.DOMAIN_PMSUSPENDED:
		return inventory.VMStatePMSuspended
	}
	return inventory.VMStateUnknown
}

// errNoMAC is why an interface without a MAC (possible only in inactive
// XML) is left out: the inventory keys vNICs by MAC.
var errNoMAC = errors.New("no MAC address")

// convertVIF maps one interface of the VM id. A type='network' interface
// whose live XML names no bridge (libvirt's test driver writes none) gets
// the kind of its network's forward mode, from netKind.
func convertVIF(id inventory.UUID, v libvirthooks.VIF, netKind networkKindFunc) (inventory.VIF, error) {
	if v.MACMissing || v.MAC == "" {
		return inventory.VIF{}, errNoMAC
	}
	mac, err := inventory.ParseMAC(v.MAC)
	if err != nil {
		return inventory.VIF{}, fmt.Errorf("mac %q: %w", v.MAC, err)
	}
	kind, err := vifKind(v, netKind)
	if err != nil {
		return inventory.VIF{}, fmt.Errorf("%s: %w", mac, err)
	}
	vp, err := virtualPort(v.VirtualPort)
	if err != nil {
		return inventory.VIF{}, fmt.Errorf("%s: virtualport: %w", mac, err)
	}
	out := inventory.VIF{
		MAC:         mac,
		VM:          id,
		HostDev:     v.HostDev,
		Kind:        kind,
		STag:        v.STag,
		CVID:        v.CVID,
		VirtualPort: vp,
		PortGroup:   v.PortGroup,
	}
	if err := out.Validate(); err != nil {
		return inventory.VIF{}, err
	}
	return out, nil
}

// vifKind maps libvirthooks' kind to the inventory's.
func vifKind(v libvirthooks.VIF, netKind networkKindFunc) (inventory.Kind, error) {
	switch v.Kind {
	case libvirthooks.KindTap:
		return inventory.KindTap, nil
	case libvirthooks.KindMacvtap:
		return inventory.KindMacvtap, nil
	case libvirthooks.KindSRIOVVF:
		return inventory.KindVF, nil
	case libvirthooks.KindPartition:
		return inventory.KindPartition, nil
	case libvirthooks.KindVeth:
		return inventory.KindVeth, nil
	case libvirthooks.KindVhostUser:
		return inventory.KindUnknown, errors.New("vhostuser interfaces have no inventory kind yet")
	case libvirthooks.KindUnknown:
		if v.Network == "" || netKind == nil {
			return inventory.KindUnknown, fmt.Errorf("cannot tell how a type %q interface is plumbed", v.Type)
		}
		k, err := netKind(v.Network)
		if err != nil {
			return inventory.KindUnknown, fmt.Errorf("network %q: %w", v.Network, err)
		}
		return k, nil
	}
	return inventory.KindUnknown, fmt.Errorf("unknown kind %q", v.Kind)
}

// networkKind maps a libvirt network XML's forward mode to the kind of its
// interfaces (https://libvirt.org/formatnetwork.html#connectivity): a
// bridge for none, nat, route, open and a bridge-mode network with a bridge
// name; macvtap for bridge mode without one, private, vepa and passthrough;
// an SR-IOV VF for hostdev.
func networkKind(xml string) (inventory.Kind, error) {
	var n libvirtxml.Network
	if err := n.Unmarshal(xml); err != nil {
		return inventory.KindUnknown, fmt.Errorf("parse network XML: %w", err)
	}
	mode := ""
	if n.Forward != nil {
		mode = n.Forward.Mode
	}
	switch mode {
	case "", "nat", "route", "open":
		return inventory.KindTap, nil
	case "bridge":
		if n.Bridge != nil && n.Bridge.Name != "" {
			return inventory.KindTap, nil
		}
		return inventory.KindMacvtap, nil
	case "private", "vepa", "passthrough":
		return inventory.KindMacvtap, nil
	case "hostdev":
		return inventory.KindVF, nil
	}
	return inventory.KindUnknown, fmt.Errorf("unknown forward mode %q", mode)
}

// virtualPort maps a <virtualport>. An untyped one (libvirt merges it with
// the network's; live XML has the merged, typed one) and a MidoNet one
// (no inventory type) are recorded as none.
func virtualPort(vp *libvirthooks.VirtualPort) (inventory.VirtualPort, error) {
	if vp == nil {
		return inventory.VirtualPort{}, nil
	}
	var out inventory.VirtualPort
	var err error
	switch vp.Type {
	case "802.1Qbg":
		out.Type = inventory.VirtualPort8021Qbg
		if vp.ManagerID != nil {
			out.ManagerID = *vp.ManagerID
		}
		if vp.TypeID != nil {
			out.TypeID = *vp.TypeID
		}
		if vp.TypeIDVersion != nil {
			out.TypeIDVersion = *vp.TypeIDVersion
		}
		if vp.InstanceID != "" {
			if out.InstanceID, err = inventory.ParseUUID(vp.InstanceID); err != nil {
				return inventory.VirtualPort{}, fmt.Errorf("instanceid: %w", err)
			}
		}
	case "802.1Qbh":
		out.Type, out.ProfileID = inventory.VirtualPort8021Qbh, vp.ProfileID
	case "openvswitch":
		out.Type, out.ProfileID = inventory.VirtualPortOpenvswitch, vp.ProfileID
		if vp.InterfaceID != "" {
			if out.InterfaceID, err = inventory.ParseUUID(vp.InterfaceID); err != nil {
				return inventory.VirtualPort{}, fmt.Errorf("interfaceid: %w", err)
			}
		}
	default:
		return inventory.VirtualPort{}, nil
	}
	if err := out.Validate(); err != nil {
		return inventory.VirtualPort{}, err
	}
	return out, nil
}
