package libvirthooks

import (
	"encoding/xml"
	"errors"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// Network is what tether needs of a libvirt network XML.
type Network struct {
	Name        string
	UUID        string       // canonical lower-case
	Bridge      string       // <bridge name>
	ForwardMode string       // <forward mode>: nat, route, bridge, vepa, passthrough, private, hostdev, open, or "" (isolated)
	ForwardDev  string       // <forward dev>
	PortGroups  []string     // names of <portgroup>
	VLANTags    []VLANTag    // network-wide <vlan>
	VirtualPort *VirtualPort // network-wide <virtualport>
}

// NetworkPort is a libvirt <networkport>: one interface plugged into a
// network (network hooks port-created and port-deleted).
type NetworkPort struct {
	UUID      string // the port's UUID (the domain interface's <source portid>)
	OwnerName string // domain name
	OwnerUUID string // domain UUID, canonical lower-case
	VIF       VIF    // the port as a VIF (no HostDev: the port XML does not name the tap)
}

// NetworkHookData is the stdin of a network hook.
type NetworkHookData struct {
	Network Network
	Port    *NetworkPort // nil unless the operation is port-created or port-deleted
}

// hookDataXML is <hookData>.
type hookDataXML struct {
	XMLName xml.Name                `xml:"hookData"`
	Network *libvirtxml.Network     `xml:"network"`
	Port    *libvirtxml.NetworkPort `xml:"networkport"`
}

// ParseNetworkHook parses the stdin of a network hook:
// <hookData><network>...</network>[<networkport>...</networkport>]</hookData>.
// It fails with an *XMLError on malformed XML, a missing or invalid network
// or port <uuid>, a missing network <name>, or a port without a valid MAC.
func ParseNetworkHook(data []byte) (NetworkHookData, error) {
	const doc = "network hook data"
	var hx hookDataXML
	if err := decodeDocument(data, &hx); err != nil {
		return NetworkHookData{}, &XMLError{Doc: doc, Kind: ErrMalformedXML, Err: err}
	}
	if hx.Network == nil {
		return NetworkHookData{}, &XMLError{Doc: doc, Where: "<hookData>", Kind: ErrMalformedXML, Err: errors.New("no <network>")}
	}
	nx := hx.Network
	n := Network{Name: strings.TrimSpace(nx.Name)}
	if n.Name == "" {
		return NetworkHookData{}, &XMLError{Doc: doc, Where: "<network>", Kind: ErrMissingName}
	}
	if strings.TrimSpace(nx.UUID) == "" {
		return NetworkHookData{}, &XMLError{Doc: doc, Where: "<network>", Kind: ErrMissingUUID}
	}
	uuid, err := parseUUID(nx.UUID)
	if err != nil {
		return NetworkHookData{}, &XMLError{Doc: doc, Where: "<network><uuid>", Kind: ErrInvalidUUID, Value: nx.UUID, Err: err}
	}
	n.UUID = uuid
	if nx.Bridge != nil {
		n.Bridge = nx.Bridge.Name
	}
	if nx.Forward != nil {
		n.ForwardMode, n.ForwardDev = nx.Forward.Mode, nx.Forward.Dev
	}
	for _, pg := range nx.PortGroups {
		n.PortGroups = append(n.PortGroups, pg.Name)
	}
	if nx.VLAN != nil {
		var v VIF
		tags := make([]vlanTag, len(nx.VLAN.Tags))
		for i, t := range nx.VLAN.Tags {
			tags[i] = vlanTag{id: t.ID, nativeMode: t.NativeMode}
		}
		if err := v.setVLAN(nx.VLAN.Trunk, tags); err != nil {
			return NetworkHookData{}, &XMLError{Doc: doc, Where: "<network><vlan>", Kind: ErrInvalidVLAN, Err: err}
		}
		n.VLANTags = v.VLANTags
	}
	if nx.VirtualPort != nil {
		vp, err := networkVPortParams(nx.VirtualPort).virtualPort()
		if err != nil {
			return NetworkHookData{}, &XMLError{Doc: doc, Where: "<network><virtualport>", Kind: ErrInvalidVirtualPort, Err: err}
		}
		n.VirtualPort = vp
	}
	hd := NetworkHookData{Network: n}
	if hx.Port != nil {
		p, err := networkPort(n.Name, hx.Port)
		if err != nil {
			return NetworkHookData{}, err
		}
		hd.Port = &p
	}
	return hd, nil
}

// networkPort converts a <networkport> of network netName.
func networkPort(netName string, px *libvirtxml.NetworkPort) (NetworkPort, error) {
	const doc = "network hook data"
	var p NetworkPort
	if strings.TrimSpace(px.UUID) == "" {
		return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport>", Kind: ErrMissingUUID}
	}
	uuid, err := parseUUID(px.UUID)
	if err != nil {
		return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><uuid>", Kind: ErrInvalidUUID, Value: px.UUID, Err: err}
	}
	p.UUID = uuid
	if o := px.Owner; o != nil {
		p.OwnerName = strings.TrimSpace(o.Name)
		if strings.TrimSpace(o.UUID) != "" {
			ou, err := parseUUID(o.UUID)
			if err != nil {
				return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><owner><uuid>", Kind: ErrInvalidUUID, Value: o.UUID, Err: err}
			}
			p.OwnerUUID = ou
		}
	}
	v := VIF{Network: netName, PortID: p.UUID, LibvirtPortGroup: px.Group, PortGroup: px.Group}
	if px.MAC == nil || strings.TrimSpace(px.MAC.Address) == "" {
		return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><mac address>", Kind: ErrInvalidMAC, Err: errors.New("missing")}
	}
	mac, err := parseMAC(px.MAC.Address)
	if err != nil {
		return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><mac address>", Kind: ErrInvalidMAC, Value: px.MAC.Address, Err: err}
	}
	v.MAC = mac
	if pl := px.Plug; pl != nil {
		switch {
		case pl.Bridge != nil:
			v.Type, v.Kind, v.Bridge = "bridge", KindTap, pl.Bridge.Bridge
		case pl.Network != nil:
			v.Type, v.Kind, v.Bridge = "network", KindTap, pl.Network.Bridge
		case pl.Direct != nil:
			v.Type, v.Kind, v.LinkDev, v.DirectMode = "direct", KindMacvtap, pl.Direct.Dev, pl.Direct.Mode
		case pl.HostDevPCI != nil:
			v.Type, v.Kind = "hostdev-pci", KindSRIOVVF
			if a := pl.HostDevPCI.Address; a != nil {
				v.PCIAddress = pciAddress(a.Domain, a.Bus, a.Slot, a.Function)
			}
		}
	}
	if vl := px.VLAN; vl != nil {
		tags := make([]vlanTag, len(vl.Tags))
		for i, t := range vl.Tags {
			tags[i] = vlanTag{id: t.ID, nativeMode: t.NativeMode}
		}
		if err := v.setVLAN(vl.Trunk, tags); err != nil {
			return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><vlan>", Kind: ErrInvalidVLAN, Err: err}
		}
	}
	if px.VirtualPort != nil {
		vp, err := networkVPortParams(px.VirtualPort).virtualPort()
		if err != nil {
			return NetworkPort{}, &XMLError{Doc: doc, Where: "<networkport><virtualport>", Kind: ErrInvalidVirtualPort, Err: err}
		}
		v.VirtualPort = vp
	}
	p.VIF = v
	return p, nil
}
