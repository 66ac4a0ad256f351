package inventory

import (
	"errors"
	"fmt"
	"net"
)

// ErrInvalidMAC is wrapped by every error about a MAC address that cannot be
// a vNIC's: wrong length, multicast (which includes broadcast) or all zeros.
var ErrInvalidMAC = errors.New("inventory: invalid vNIC MAC")

// MAC is a vNIC's EUI-48 address, the key of a VIF. Unlike net.HardwareAddr
// it is comparable, usable as a map key, and marshals to JSON as text.
type MAC [6]byte

// ParseMAC parses an EUI-48 address in any form net.ParseMAC accepts
// (colons, hyphens or dots; either case) and checks it with ValidateMAC.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("%w: %q: %v", ErrInvalidMAC, s, err)
	}
	return MACFrom(hw)
}

// MACFrom converts hw after checking it with ValidateMAC.
func MACFrom(hw net.HardwareAddr) (MAC, error) {
	if err := ValidateMAC(hw); err != nil {
		return MAC{}, err
	}
	return MAC(hw), nil
}

// ValidateMAC reports why hw cannot be a vNIC's MAC address, or nil: it must
// be 6 bytes long, unicast (bit 0x01 of the first octet clear) and not all
// zeros.
func ValidateMAC(hw net.HardwareAddr) error {
	if len(hw) != 6 {
		return fmt.Errorf("%w: %q has %d bytes, want 6", ErrInvalidMAC, hw.String(), len(hw))
	}
	return MAC(hw).validate()
}

// validate is ValidateMAC for an address known to be 6 bytes long; it takes
// an array so that checking a record does not allocate.
func (m MAC) validate() error {
	if m[0]&0x01 != 0 {
		return fmt.Errorf("%w: %s is a multicast address", ErrInvalidMAC, m)
	}
	if m == (MAC{}) {
		return fmt.Errorf("%w: %s is all zeros", ErrInvalidMAC, m)
	}
	return nil
}

// HardwareAddr returns m as a net.HardwareAddr (a new slice).
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(m[:]) }

// String returns m in lower-case colon form, 52:54:00:12:34:56.
func (m MAC) String() string {
	const digits = "0123456789abcdef"
	var b [17]byte
	for i, o := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = digits[o>>4]
		b[3*i+1] = digits[o&0x0f]
	}
	return string(b[:])
}

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// Vendor is the hypervisor vendor pool that a MAC address comes from.
func (m MAC) Vendor() Vendor { return Classify(m[:]) }

// MarshalText implements encoding.TextMarshaler with String's form.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; see ParseMAC.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Vendor names the pool a vNIC MAC address was drawn from: a hypervisor
// vendor's OUI, any other locally administered address, or another OUI.
type Vendor uint8

// The vendor pools. The OUIs are the ones each hypervisor assigns vNIC MACs
// from by default.
const (
	// VendorInvalid is what Classify returns for an address ValidateMAC
	// refuses (wrong length, multicast, all zeros).
	VendorInvalid Vendor = iota
	// VendorQEMU is QEMU/KVM and libvirt's default pool, 52:54:00 (a locally
	// administered prefix; it is matched before VendorLocal).
	VendorQEMU
	// VendorXen is Xen, 00:16:3E.
	VendorXen
	// VendorVMware is VMware: 00:50:56 (static and vCenter), 00:0C:29
	// (ESXi automatic) and 00:05:69 (older products).
	VendorVMware
	// VendorHyperV is Microsoft Hyper-V, 00:15:5D.
	VendorHyperV
	// VendorVirtualBox is Oracle VirtualBox, 08:00:27.
	VendorVirtualBox
	// VendorParallels is Parallels, 00:1C:42.
	VendorParallels
	// VendorLocal is any other locally administered unicast address (bit
	// 0x02 of the first octet set), as CNI plugins and containers use.
	VendorLocal
	// VendorOther is a universally administered unicast address outside the
	// pools above (a physical NIC's or a VF's burnt-in address, say).
	VendorOther
)

var vendorNames = [...]string{
	VendorInvalid:    "invalid",
	VendorQEMU:       "qemu",
	VendorXen:        "xen",
	VendorVMware:     "vmware",
	VendorHyperV:     "hyper-v",
	VendorVirtualBox: "virtualbox",
	VendorParallels:  "parallels",
	VendorLocal:      "local",
	VendorOther:      "other",
}

// Classify names the vendor pool of mac. It returns VendorInvalid for an
// address that ValidateMAC refuses; call ValidateMAC to learn why.
func Classify(mac net.HardwareAddr) Vendor {
	if ValidateMAC(mac) != nil {
		return VendorInvalid
	}
	switch [3]byte(mac[:3]) {
	case [3]byte{0x52, 0x54, 0x00}:
		return VendorQEMU
	case [3]byte{0x00, 0x16, 0x3e}:
		return VendorXen
	case [3]byte{0x00, 0x50, 0x56}, [3]byte{0x00, 0x0c, 0x29}, [3]byte{0x00, 0x05, 0x69}:
		return VendorVMware
	case [3]byte{0x00, 0x15, 0x5d}:
		return VendorHyperV
	case [3]byte{0x08, 0x00, 0x27}:
		return VendorVirtualBox
	case [3]byte{0x00, 0x1c, 0x42}:
		return VendorParallels
	}
	if mac[0]&0x02 != 0 {
		return VendorLocal
	}
	return VendorOther
}

// String returns the vendor's lower-case name ("qemu", "hyper-v", ...).
func (v Vendor) String() string {
	if int(v) < len(vendorNames) {
		return vendorNames[v]
	}
	return fmt.Sprintf("vendor(%d)", uint8(v))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (v Vendor) MarshalText() ([]byte, error) {
	if int(v) >= len(vendorNames) {
		return nil, fmt.Errorf("inventory: invalid vendor %d", uint8(v))
	}
	return []byte(vendorNames[v]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Vendor) UnmarshalText(b []byte) error {
	i, err := lookupName("vendor", vendorNames[:], b)
	*v = Vendor(i)
	return err
}
