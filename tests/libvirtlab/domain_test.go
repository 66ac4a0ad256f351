package libvirtlab

import (
	"encoding/xml"
	"testing"
)

func TestTinyDomainXML(t *testing.T) {
	type iface struct {
		Type string `xml:"type,attr"`
		MAC  struct {
			Address string `xml:"address,attr"`
		} `xml:"mac"`
		Source struct {
			Bridge string `xml:"bridge,attr"`
		} `xml:"source"`
		Model struct {
			Type string `xml:"type,attr"`
		} `xml:"model"`
	}
	type domain struct {
		Type   string `xml:"type,attr"`
		Name   string `xml:"name"`
		UUID   string `xml:"uuid"`
		Memory struct {
			Unit  string `xml:"unit,attr"`
			Value int    `xml:",chardata"`
		} `xml:"memory"`
		Disks  []struct{} `xml:"devices>disk"`
		Ifaces []iface    `xml:"devices>interface"`
	}
	var dom domain
	s := TinyDomainXML("a<b&'c", "6a1f3c2e-1b7d-4c55-9b1e-0d2f4a6b8c01", []NIC{
		{MAC: "52:54:00:00:00:01", Bridge: "br0"},
		{Bridge: `br"1`},
	})
	if err := xml.Unmarshal([]byte(s), &dom); err != nil {
		t.Fatalf("not XML: %v\n%s", err, s)
	}
	if dom.Type != "qemu" || dom.Name != "a<b&'c" || dom.UUID != "6a1f3c2e-1b7d-4c55-9b1e-0d2f4a6b8c01" {
		t.Errorf("type %q name %q uuid %q", dom.Type, dom.Name, dom.UUID)
	}
	if dom.Memory.Unit != "MiB" || dom.Memory.Value > 64 || dom.Memory.Value < 32 {
		t.Errorf("memory %d %s, want 32-64 MiB", dom.Memory.Value, dom.Memory.Unit)
	}
	if len(dom.Disks) != 0 {
		t.Errorf("%d disks, want none", len(dom.Disks))
	}
	if len(dom.Ifaces) != 2 {
		t.Fatalf("%d interfaces, want 2", len(dom.Ifaces))
	}
	want := []iface{dom.Ifaces[0], dom.Ifaces[1]}
	want[0].Type, want[0].MAC.Address, want[0].Source.Bridge, want[0].Model.Type = "bridge", "52:54:00:00:00:01", "br0", "virtio"
	want[1].Type, want[1].MAC.Address, want[1].Source.Bridge, want[1].Model.Type = "bridge", "", `br"1`, "virtio"
	for i := range want {
		if dom.Ifaces[i] != want[i] {
			t.Errorf("interface %d = %+v, want %+v", i, dom.Ifaces[i], want[i])
		}
	}

	var bare domain
	if s := TinyDomainXML("x", "", nil); xml.Unmarshal([]byte(s), &bare) != nil || bare.UUID != "" || len(bare.Ifaces) != 0 {
		t.Errorf("no uuid, no NICs:\n%s", s)
	}
}
