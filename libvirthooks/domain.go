package libvirthooks

import (
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// Domain is what tether needs of a libvirt domain XML.
type Domain struct {
	UUID   string   // canonical lower-case
	Name   string   // <name>
	ID     int      // <domain id=...> of a running domain, -1 when absent
	Labels []string // domain-wide tether metadata labels
	VIFs   []VIF    // interfaces of type network, bridge, direct, hostdev, ethernet, vhostuser, in document order
}

// domainXML is the part of <domain> tether reads. Decoding only this (rather
// than a whole libvirtxml.Domain) keeps a reconcile of 1,000 domains cheap
// and keeps a device tether does not care about from failing the parse;
// every element is still checked for well-formedness.
type domainXML struct {
	XMLName  xml.Name     `xml:"domain"`
	ID       *int         `xml:"id,attr"`
	Name     string       `xml:"name"`
	UUID     string       `xml:"uuid"`
	Metadata *metadataXML `xml:"metadata"`
	Devices  struct {
		Interfaces []interfaceXML `xml:"interface"`
	} `xml:"devices"`
}

// interfaceXML decodes one <interface> with libvirtxml and keeps the
// <source> attributes libvirtxml drops: in live XML libvirt writes the
// actual connection of a network interface inline, e.g.
// <interface type='direct'><source network='n' portgroup='p' portid='...'
// dev='eth0' mode='vepa'/>, and libvirtxml's direct and bridge sources have
// no network, portgroup or portid fields.
type interfaceXML struct {
	lv          libvirtxml.DomainInterface
	typ         string
	source      []xml.Attr
	vportType   string
	hasVirtPort bool
}

// UnmarshalXML records the element, scans its direct children, then replays
// it into libvirtxml.DomainInterface.
func (x *interfaceXML) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	x.typ = attr(start.Attr, "type")
	toks, err := recordElement(d, start, func(c xml.StartElement) {
		switch c.Name.Local {
		case "source":
			x.source = append([]xml.Attr(nil), c.Attr...)
		case "virtualport":
			x.hasVirtPort = true
			x.vportType = attr(c.Attr, "type")
		}
	})
	if err != nil {
		return err
	}
	return xml.NewTokenDecoder(&tokenReplay{toks: toks}).Decode(&x.lv)
}

// ParseDomain parses a libvirt domain XML (what qemu hooks get on stdin, and
// what virDomainGetXMLDesc returns) into a Domain. It fails with an
// *XMLError on malformed XML, a missing or invalid <uuid>, an invalid MAC,
// VLAN tag or virtualport, or invalid tether metadata. An interface without
// a MAC (inactive XML) is returned with MACMissing set.
func ParseDomain(data []byte) (Domain, error) {
	const doc = "domain"
	var dx domainXML
	if err := decodeDocument(data, &dx); err != nil {
		return Domain{}, &XMLError{Doc: doc, Kind: ErrMalformedXML, Err: err}
	}
	dom := Domain{Name: strings.TrimSpace(dx.Name), ID: -1}
	if dx.ID != nil {
		dom.ID = *dx.ID
	}
	if strings.TrimSpace(dx.UUID) == "" {
		return Domain{}, &XMLError{Doc: doc, Kind: ErrMissingUUID}
	}
	uuid, err := parseUUID(dx.UUID)
	if err != nil {
		return Domain{}, &XMLError{Doc: doc, Where: "<uuid>", Kind: ErrInvalidUUID, Value: dx.UUID, Err: err}
	}
	dom.UUID = uuid
	if dom.Name == "" {
		return Domain{}, &XMLError{Doc: doc, Kind: ErrMissingName}
	}

	meta, err := parseMetadata(dx.Metadata)
	if err != nil {
		return Domain{}, err
	}
	dom.Labels = meta.labels

	for i := range dx.Devices.Interfaces {
		v, ok, err := domainVIF(i+1, &dx.Devices.Interfaces[i])
		if err != nil {
			return Domain{}, err
		}
		if !ok {
			continue
		}
		if m, found := meta.vifs[v.MAC]; found && v.MAC != "" {
			m.apply(&v)
		}
		dom.VIFs = append(dom.VIFs, v)
	}
	return dom, nil
}

// domainVIF converts the pos-th <interface>; ok is false for interface
// types tether does not manage (user, mcast, udp, vdpa, null, ...).
func domainVIF(pos int, x *interfaceXML) (v VIF, ok bool, err error) {
	const doc = "domain"
	where := func(what string) string { return fmt.Sprintf("devices/interface[%d] %s", pos, what) }
	src := x.lv.Source
	if x.typ == "hostdev" && (src == nil || src.Hostdev == nil) {
		return VIF{}, false, &XMLError{Doc: doc, Where: where("<source><address>"), Kind: ErrInvalidHostdev, Err: errNoHostdevSource}
	}
	if src == nil {
		return VIF{}, false, nil
	}
	v = VIF{Position: pos, Type: x.typ}
	switch {
	case src.Network != nil:
		v.Network, v.LibvirtPortGroup, v.PortID, v.Bridge = src.Network.Network, src.Network.PortGroup, src.Network.PortID, src.Network.Bridge
		if v.Bridge != "" {
			v.Kind = KindTap
		}
	case src.Bridge != nil:
		v.Kind, v.Bridge = KindTap, src.Bridge.Bridge
	case src.Ethernet != nil:
		v.Kind = KindTap
	case src.Direct != nil:
		v.Kind, v.LinkDev, v.DirectMode = KindMacvtap, src.Direct.Dev, src.Direct.Mode
	case src.Hostdev != nil:
		// Only a PCI function (an SR-IOV VF) is a vNIC tether configures:
		// its address is what agent/datapath finds the VF's PF and index
		// by, so it is also the VIF's host device.
		v.Kind = KindSRIOVVF
		addr, err := hostdevPCI(src.Hostdev)
		if err != nil {
			return VIF{}, false, &XMLError{Doc: doc, Where: where("<source><address>"), Kind: ErrInvalidHostdev, Err: err}
		}
		v.PCIAddress = addr
	case src.VHostUser != nil:
		v.Kind = KindVhostUser
		if c := src.VHostUser.Chardev; c != nil && c.UNIX != nil {
			v.VhostUserSocket = c.UNIX.Path
		}
	default:
		return VIF{}, false, nil
	}
	// Live XML of a network-backed bridge or direct interface carries the
	// network's name, port group and port ID on <source> too.
	if src.Network == nil {
		v.Network, v.LibvirtPortGroup, v.PortID = attr(x.source, "network"), attr(x.source, "portgroup"), attr(x.source, "portid")
	}
	v.PortGroup = v.LibvirtPortGroup

	if x.lv.MAC == nil || strings.TrimSpace(x.lv.MAC.Address) == "" {
		v.MACMissing = true
	} else {
		mac, err := parseMAC(x.lv.MAC.Address)
		if err != nil {
			return VIF{}, false, &XMLError{Doc: doc, Where: where("<mac address>"), Kind: ErrInvalidMAC, Value: x.lv.MAC.Address, Err: err}
		}
		v.MAC = mac
	}
	if x.lv.Target != nil && x.lv.Target.Dev != "" {
		v.HostDev = x.lv.Target.Dev
	} else if v.PCIAddress != "" {
		v.HostDev = v.PCIAddress
	}
	if x.lv.Model != nil {
		v.Model = x.lv.Model.Type
	}
	if x.lv.Alias != nil {
		v.Alias = x.lv.Alias.Name
	}
	if vl := x.lv.VLan; vl != nil {
		tags := make([]vlanTag, len(vl.Tags))
		for i, t := range vl.Tags {
			tags[i] = vlanTag{id: t.ID, nativeMode: t.NativeMode}
		}
		if err := v.setVLAN(vl.Trunk, tags); err != nil {
			return VIF{}, false, &XMLError{Doc: doc, Where: where("<vlan>"), Kind: ErrInvalidVLAN, Err: err}
		}
	}
	if x.hasVirtPort && x.lv.VirtualPort != nil {
		vp, err := domainVPortParams(x.lv.VirtualPort, x.vportType).virtualPort()
		if err != nil {
			return VIF{}, false, &XMLError{Doc: doc, Where: where("<virtualport>"), Kind: ErrInvalidVirtualPort, Err: err}
		}
		v.VirtualPort = vp
	}
	return v, true, nil
}
