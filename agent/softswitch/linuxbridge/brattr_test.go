package linuxbridge

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/softswitch"
)

// linkMsg builds an RTM_NEWLINK payload for a bridge whose IFLA_INFO_DATA
// holds data.
func linkMsg(t testing.TB, kind string, data func(*netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, "br0")
	ae.Nested(unix.IFLA_LINKINFO, func(li *netlink.AttributeEncoder) error {
		li.String(unix.IFLA_INFO_KIND, kind)
		if data != nil {
			li.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error { data(d); return nil })
		}
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(ifinfomsg(3), b...)
}

func TestParseLinkInfo(t *testing.T) {
	b := linkMsg(t, "bridge", func(d *netlink.AttributeEncoder) {
		d.Uint8(iflaBrVlanFiltering, 1)
		d.Bytes(iflaBrVlanProtocol, []byte{0x88, 0xa8})
	})
	bi, err := parseLinkInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if bi != (bridgeInfo{kind: "bridge", vlanFiltering: true, vlanProtocol: tpidSTag}) {
		t.Errorf("parsed %+v", bi)
	}
	if got := binary.NativeEndian.Uint32(b[4:8]); got != 3 {
		t.Errorf("ifinfomsg index %d, want 3", got)
	}
}

func TestParseLinkInfoMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "ifinfomsg is 0 bytes, want 16"},
		{"short header", make([]byte, 15), "ifinfomsg is 15 bytes, want 16"},
		{"no link info", append(ifinfomsg(1), 8, 0, 3, 0, 'b', 'r', '0', 0), "no IFLA_LINKINFO"},
		{"attribute past the end", append(ifinfomsg(1), 12, 0, 3, 0, 'b'), "link attributes: invalid attribute; length too short or too large"},
		{"attribute length below header", append(ifinfomsg(1), 2, 0, 3, 0), "link attributes: invalid attribute; length too short or too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLinkInfo(tc.b)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("parseLinkInfo = %v, want %q", err, tc.want)
			}
		})
	}
	// Short attribute values are ignored, not read past.
	bi, err := parseLinkInfo(linkMsg(t, "bridge", func(d *netlink.AttributeEncoder) {
		d.Bytes(iflaBrVlanProtocol, []byte{0x88})
		d.Bytes(iflaBrVlanFiltering, nil)
	}))
	if err != nil || bi.vlanProtocol != 0 || bi.vlanFiltering {
		t.Errorf("short values: %+v, %v", bi, err)
	}
	if _, err := parseLinkInfo(append(ifinfomsg(1), 4, 0, 3, 0)); !errors.Is(err, errNoLinkInfo) {
		t.Errorf("want errNoLinkInfo, got %v", err)
	}
}

// FuzzParseLinkInfo: the decoder of the kernel's RTM_NEWLINK answers never
// panics.
func FuzzParseLinkInfo(f *testing.F) {
	f.Add(linkMsg(f, "bridge", func(d *netlink.AttributeEncoder) {
		d.Uint8(iflaBrVlanFiltering, 1)
		d.Bytes(iflaBrVlanProtocol, []byte{0x81, 0x00})
	}))
	f.Add(linkMsg(f, "veth", nil))
	f.Add(ifinfomsg(1))
	f.Fuzz(func(t *testing.T, b []byte) {
		bi, err := parseLinkInfo(b)
		if err != nil && bi != (bridgeInfo{}) {
			t.Fatalf("error %v with a non-zero result %+v", err, bi)
		}
	})
}

func TestCheckPortMalformed(t *testing.T) {
	q := &Switch{opts: Options{Bridge: "br0", Uplink: "eth0", UntaggedVID: 1}}
	ad := &Switch{opts: Options{Bridge: "br0", Uplink: "eth0", UntaggedVID: 1, STag: true}}
	m := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	for _, tc := range []struct {
		name string
		s    *Switch
		p    softswitch.Port
		want string
	}{
		{"invalid", q, softswitch.Port{Name: "vnet0", MAC: m, VID: 5000}, "linuxbridge: invalid port: vnet0: VID 5000 out of range 0-4094"},
		{"S-Tag on 802.1Q", q, softswitch.Port{Name: "vnet0", MAC: m, STag: 9, Mode: 1}, "linuxbridge: invalid port: vnet0 has S-Tag 9 but bridge br0 is an 802.1Q bridge"},
		{"no S-Tag on 802.1ad", ad, softswitch.Port{Name: "vnet0", MAC: m}, "linuxbridge: invalid port: vnet0 has no S-Tag but bridge br0 is an 802.1ad bridge"},
		{"the uplink", q, softswitch.Port{Name: "eth0", MAC: m}, "linuxbridge: invalid port: eth0 is the bridge or its uplink"},
		{"the bridge", q, softswitch.Port{Name: "br0", MAC: m}, "linuxbridge: invalid port: br0 is the bridge or its uplink"},
		{"untagged VID", q, softswitch.Port{Name: "vnet0", MAC: m, VID: 1}, "linuxbridge: invalid port: vnet0: VLAN 1 is the bridge's untagged VLAN"},
		{"untagged trunk", q, softswitch.Port{Name: "vnet0", MAC: m, VID: 5, Trunks: []uint16{1}}, "linuxbridge: invalid port: vnet0: trunk 1 is the bridge's untagged VLAN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.checkPort(tc.p)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("checkPort = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, softswitch.ErrInvalidPort) {
				t.Errorf("not ErrInvalidPort")
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	if _, err := ensureRate(nil, nil, maxRateKbps+1); err == nil || err.Error() != "rate 34359739 kbit/s is above the police action's 34359738 kbit/s" {
		t.Errorf("ensureRate above the limit: %v", err)
	}
	if b := rateBurst(125); b != 16*1024 {
		t.Errorf("burst at 1 kbit/s: %d", b)
	}
	if b := rateBurst(125_000_000); b != 6_250_000 {
		t.Errorf("burst at 1 Gbit/s: %d", b)
	}
}
