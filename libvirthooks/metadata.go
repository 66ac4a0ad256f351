package libvirthooks

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// MetadataNamespace is the XML namespace of tether's domain metadata (see
// the package documentation for the format). The struct tags below spell
// it out because tags must be literals; a test keeps them in step.
const MetadataNamespace = "https://tether-net.github.io/xmlns/tether/1"

// maxLabelLen bounds a tether label, like a DNS name.
const maxLabelLen = 253

// metadataXML is <metadata>, of which tether reads only its own namespace.
type metadataXML struct {
	Containers []tetherMetaXML `xml:"https://tether-net.github.io/xmlns/tether/1 tether"`
	VIFs       []vifMetaXML    `xml:"https://tether-net.github.io/xmlns/tether/1 vif"`
}

// tetherMetaXML is the <tether:tether> container.
type tetherMetaXML struct {
	Labels []string     `xml:"https://tether-net.github.io/xmlns/tether/1 label"`
	VIFs   []vifMetaXML `xml:"https://tether-net.github.io/xmlns/tether/1 vif"`
}

// vifMetaXML is one <tether:vif>.
type vifMetaXML struct {
	MAC       string   `xml:"mac,attr"`
	STag      string   `xml:"stag,attr"`
	PortGroup string   `xml:"portgroup,attr"`
	Kind      string   `xml:"kind,attr"`
	Labels    []string `xml:"https://tether-net.github.io/xmlns/tether/1 label"`
}

// vifMeta is a validated <tether:vif>.
type vifMeta struct {
	stag      uint16
	portGroup string
	kind      Kind
	labels    []string
}

// apply overlays the metadata on v.
func (m vifMeta) apply(v *VIF) {
	v.STag = m.stag
	if m.portGroup != "" {
		v.PortGroup = m.portGroup
	}
	if m.kind != KindUnknown {
		v.Kind = m.kind
	}
	v.Labels = m.labels
}

// metadata is validated tether metadata: domain labels and VIFs by MAC.
type metadata struct {
	labels []string
	vifs   map[string]vifMeta
}

// parseMetadata validates tether's part of <metadata>.
func parseMetadata(mx *metadataXML) (metadata, error) {
	var md metadata
	if mx == nil {
		return md, nil
	}
	bad := func(where, value string, err error) error {
		return &XMLError{Doc: "domain", Where: "metadata " + where, Kind: ErrInvalidMetadata, Value: value, Err: err}
	}
	var raw []vifMetaXML
	raw = append(raw, mx.VIFs...)
	for _, c := range mx.Containers {
		for _, l := range c.Labels {
			label, err := parseLabel(l)
			if err != nil {
				return metadata{}, bad("<tether:label>", l, err)
			}
			md.labels = append(md.labels, label)
		}
		raw = append(raw, c.VIFs...)
	}
	for i, r := range raw {
		where := func(what string) string { return fmt.Sprintf("<tether:vif> #%d %s", i+1, what) }
		mac, err := parseMAC(r.MAC)
		if err != nil {
			return metadata{}, bad(where("mac"), r.MAC, err)
		}
		if _, dup := md.vifs[mac]; dup {
			return metadata{}, bad(where("mac"), r.MAC, fmt.Errorf("duplicate"))
		}
		m := vifMeta{portGroup: strings.TrimSpace(r.PortGroup), kind: Kind(strings.TrimSpace(r.Kind))}
		if s := strings.TrimSpace(r.STag); s != "" {
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil || n < 1 || n > 4094 {
				return metadata{}, bad(where("stag"), r.STag, fmt.Errorf("want 1-4094"))
			}
			m.stag = uint16(n)
		}
		if m.kind != KindUnknown && !m.kind.valid() {
			return metadata{}, bad(where("kind"), r.Kind, fmt.Errorf("want tap, macvtap, sriov-vf, partition, veth or vhostuser"))
		}
		for _, l := range r.Labels {
			label, err := parseLabel(l)
			if err != nil {
				return metadata{}, bad(where("<tether:label>"), l, err)
			}
			m.labels = append(m.labels, label)
		}
		if md.vifs == nil {
			md.vifs = make(map[string]vifMeta)
		}
		md.vifs[mac] = m
	}
	return md, nil
}

// parseLabel trims and validates a label.
func parseLabel(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fmt.Errorf("empty")
	case len(s) > maxLabelLen:
		return "", fmt.Errorf("longer than %d bytes", maxLabelLen)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", fmt.Errorf("contains a control character")
	}
	return s, nil
}
