package inventory

import (
	"errors"
	"net"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		mac  string
		want Vendor
	}{
		{"52:54:00:12:34:56", VendorQEMU},
		{"52:54:00:AB:CD:EF", VendorQEMU}, // upper case
		{"52-54-00-ab-cd-ef", VendorQEMU}, // hyphens
		{"5254.00ab.cdef", VendorQEMU},    // dotted
		{"00:16:3e:00:00:01", VendorXen},
		{"00:16:3E:7F:FF:FF", VendorXen},
		{"00:50:56:00:00:01", VendorVMware},
		{"00:0c:29:aa:bb:cc", VendorVMware},
		{"00:0C:29:AA:BB:CC", VendorVMware},
		{"00:05:69:00:00:01", VendorVMware},
		{"00:15:5d:01:02:03", VendorHyperV},
		{"00:15:5D:01:02:03", VendorHyperV},
		{"08:00:27:00:00:01", VendorVirtualBox},
		{"00:1c:42:00:00:01", VendorParallels},
		{"00:1C:42:00:00:01", VendorParallels},
		// Locally administered (bit 0x02 of the first octet), not QEMU's pool.
		{"02:00:00:00:00:01", VendorLocal},
		{"06:11:22:33:44:55", VendorLocal},
		{"fe:ff:ff:ff:ff:ff", VendorLocal},
		{"52:54:01:12:34:56", VendorLocal}, // next to QEMU's pool, still local
		{"52:55:00:12:34:56", VendorLocal},
		// Universally administered, unknown OUI.
		{"00:1b:21:00:00:01", VendorOther}, // an Intel NIC
		{"00:16:3f:00:00:01", VendorOther}, // next to Xen's pool
		{"0c:29:00:00:00:01", VendorOther},
		// Invalid for a vNIC.
		{"01:00:5e:00:00:01", VendorInvalid}, // IPv4 multicast
		{"33:33:00:00:00:01", VendorInvalid}, // IPv6 multicast
		{"01:80:c2:00:00:0e", VendorInvalid}, // LLDP nearest bridge
		{"ff:ff:ff:ff:ff:ff", VendorInvalid}, // broadcast
		{"53:54:00:12:34:56", VendorInvalid}, // QEMU's OUI with the group bit
		{"00:00:00:00:00:00", VendorInvalid},
		{"52:54:00:12:34:56:78:9a", VendorInvalid}, // EUI-64
	}
	for _, tt := range tests {
		hw, err := net.ParseMAC(tt.mac)
		if err != nil {
			t.Fatalf("net.ParseMAC(%q): %v", tt.mac, err)
		}
		if got := Classify(hw); got != tt.want {
			t.Errorf("Classify(%s) = %s, want %s", tt.mac, got, tt.want)
		}
		if tt.want == VendorInvalid {
			if ValidateMAC(hw) == nil {
				t.Errorf("ValidateMAC(%s) = nil, want an error", tt.mac)
			}
			continue
		}
		m, err := ParseMAC(tt.mac)
		if err != nil {
			t.Errorf("ParseMAC(%q): %v", tt.mac, err)
			continue
		}
		if m.Vendor() != tt.want {
			t.Errorf("MAC(%s).Vendor() = %s, want %s", tt.mac, m.Vendor(), tt.want)
		}
	}
}

func TestClassifyWrongLength(t *testing.T) {
	for _, hw := range []net.HardwareAddr{nil, {}, {0x52, 0x54, 0x00}, {0x52, 0x54, 0x00, 1, 2, 3, 4}} {
		if got := Classify(hw); got != VendorInvalid {
			t.Errorf("Classify(% x) = %s, want invalid", []byte(hw), got)
		}
	}
}

func TestValidateMACErrors(t *testing.T) {
	tests := []struct {
		hw   net.HardwareAddr
		want string
	}{
		{net.HardwareAddr{0x52, 0x54, 0x00, 1, 2, 3}, ""},
		{net.HardwareAddr{0x01, 0x00, 0x5e, 0, 0, 1}, "inventory: invalid vNIC MAC: 01:00:5e:00:00:01 is a multicast address"},
		{net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "inventory: invalid vNIC MAC: ff:ff:ff:ff:ff:ff is a multicast address"},
		{net.HardwareAddr{0, 0, 0, 0, 0, 0}, "inventory: invalid vNIC MAC: 00:00:00:00:00:00 is all zeros"},
		{net.HardwareAddr{0x52, 0x54, 0x00}, `inventory: invalid vNIC MAC: "52:54:00" has 3 bytes, want 6`},
		{nil, `inventory: invalid vNIC MAC: "" has 0 bytes, want 6`},
		{net.HardwareAddr{0x52, 0x54, 0x00, 1, 2, 3, 4, 5}, `inventory: invalid vNIC MAC: "52:54:00:01:02:03:04:05" has 8 bytes, want 6`},
	}
	for _, tt := range tests {
		err := ValidateMAC(tt.hw)
		if tt.want == "" {
			if err != nil {
				t.Errorf("ValidateMAC(%s) = %v, want nil", tt.hw, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("ValidateMAC(%s) = %v, want %q", tt.hw, err, tt.want)
		}
		if !errors.Is(err, ErrInvalidMAC) {
			t.Errorf("ValidateMAC(%s) = %v, does not wrap ErrInvalidMAC", tt.hw, err)
		}
	}
}

func TestParseMAC(t *testing.T) {
	for _, s := range []string{"52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef", "52-54-00-Ab-cD-eF"} {
		m, err := ParseMAC(s)
		if err != nil {
			t.Fatalf("ParseMAC(%q): %v", s, err)
		}
		if got := m.String(); got != "52:54:00:ab:cd:ef" {
			t.Errorf("ParseMAC(%q).String() = %q", s, got)
		}
	}
	for _, s := range []string{"", "52:54:00", "zz:54:00:ab:cd:ef", "01:00:5e:00:00:01", "00:00:00:00:00:00", "52:54:00:12:34:56:78:9a"} {
		if _, err := ParseMAC(s); !errors.Is(err, ErrInvalidMAC) {
			t.Errorf("ParseMAC(%q) = %v, want ErrInvalidMAC", s, err)
		}
	}
	var m MAC
	if err := m.UnmarshalText([]byte("08:00:27:00:00:01")); err != nil || m.Vendor() != VendorVirtualBox {
		t.Errorf("UnmarshalText: %v, %s", err, m.Vendor())
	}
	if got := mustMAC(t, "00:16:3E:00:00:01").HardwareAddr().String(); got != "00:16:3e:00:00:01" {
		t.Errorf("HardwareAddr().String() = %q", got)
	}
}

func TestVendorText(t *testing.T) {
	for v := VendorInvalid; v <= VendorOther; v++ {
		b, err := v.MarshalText()
		if err != nil {
			t.Fatalf("%d: %v", v, err)
		}
		var got Vendor
		if err := got.UnmarshalText(b); err != nil || got != v {
			t.Errorf("round trip %s: got %s, %v", b, got, err)
		}
	}
	if _, err := Vendor(99).MarshalText(); err == nil {
		t.Error("Vendor(99).MarshalText succeeded")
	}
}

// mustMAC parses s or fails the test.
func mustMAC(t testing.TB, s string) MAC {
	t.Helper()
	m, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
