package libvirtlab

import (
	"encoding/xml"
	"strings"
)

// NIC is one network interface of a [TinyDomainXML] domain: a virtio NIC
// whose host side is a tap device that libvirtd plugs into Bridge.
type NIC struct {
	// MAC is the guest MAC address; empty lets libvirt pick one.
	MAC string
	// Bridge is the Linux bridge, in the daemon's network namespace (see
	// [Daemon.AddBridge]), the tap device joins.
	Bridge string
}

// TinyDomainXML returns the XML of the smallest useful domain: type qemu
// (TCG, no KVM needed), 32 MiB, one vCPU, machine "pc", no disk, no display,
// no USB, no balloon, and one virtio NIC with <interface type='bridge'> per
// entry of nics (option ROMs off, so no iPXE is loaded). libvirt reports it
// running as soon as QEMU has started; the guest just sits in SeaBIOS looking
// for a boot device, at a few percent of one CPU.
//
// An empty uuid lets libvirt generate one. Values are XML-escaped.
func TinyDomainXML(name, uuid string, nics []NIC) string {
	var b strings.Builder
	b.WriteString("<domain type='qemu'>\n")
	b.WriteString("  <name>" + escape(name) + "</name>\n")
	if uuid != "" {
		b.WriteString("  <uuid>" + escape(uuid) + "</uuid>\n")
	}
	b.WriteString(`  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
`)
	for _, n := range nics {
		b.WriteString("    <interface type='bridge'>\n")
		if n.MAC != "" {
			b.WriteString("      <mac address='" + escape(n.MAC) + "'/>\n")
		}
		b.WriteString("      <source bridge='" + escape(n.Bridge) + "'/>\n")
		b.WriteString("      <model type='virtio'/>\n")
		b.WriteString("      <rom enabled='no'/>\n")
		b.WriteString("    </interface>\n")
	}
	b.WriteString(`    <video>
      <model type='none'/>
    </video>
    <memballoon model='none'/>
  </devices>
</domain>
`)
	return b.String()
}

// escape returns s escaped for use in XML text and in quoted attributes.
func escape(s string) string {
	var b strings.Builder
	// xml.EscapeText writes to a strings.Builder, which never fails.
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
