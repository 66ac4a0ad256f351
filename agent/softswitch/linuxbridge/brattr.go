package linuxbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Bridge attributes read and written here, from include/uapi/linux/if_link.h:
// IFLA_BR_VLAN_PROTOCOL (netlink v1.3.1's Bridge type has no field for it)
// is 8, right after IFLA_BR_VLAN_FILTERING; 46 is IFLA_BR_MULTI_BOOLOPT,
// which the kernel refuses with ERANGE for a 2-byte value.
const (
	iflaBrVlanFiltering = unix.IFLA_BR_VLAN_FILTERING // u8
	iflaBrVlanProtocol  = unix.IFLA_BR_VLAN_PROTOCOL  // be16
)

// VLAN protocols (TPIDs) of a bridge.
const (
	tpidCTag = 0x8100 // IEEE 802.1Q C-Tag
	tpidSTag = 0x88a8 // IEEE 802.1ad S-Tag
)

// ifinfomsgLen is sizeof(struct ifinfomsg).
const ifinfomsgLen = 16

// bridgeInfo is what the kernel reports of a bridge's VLAN handling.
type bridgeInfo struct {
	kind          string
	vlanFiltering bool
	vlanProtocol  uint16
}

// errNoLinkInfo is returned for an RTM_NEWLINK message without link info.
var errNoLinkInfo = errors.New("no IFLA_LINKINFO")

// parseLinkInfo decodes an RTM_NEWLINK message's payload (ifinfomsg and
// attributes) into the bridge's kind, vlan_filtering and vlan_protocol.
// It never panics on malformed input.
func parseLinkInfo(b []byte) (bridgeInfo, error) {
	var bi bridgeInfo
	if len(b) < ifinfomsgLen {
		return bi, fmt.Errorf("ifinfomsg is %d bytes, want %d", len(b), ifinfomsgLen)
	}
	ad, err := netlink.NewAttributeDecoder(b[ifinfomsgLen:])
	if err != nil {
		return bi, fmt.Errorf("link attributes: %w", err)
	}
	found := false
	for ad.Next() {
		if ad.Type() != unix.IFLA_LINKINFO {
			continue
		}
		found = true
		ad.Nested(func(li *netlink.AttributeDecoder) error {
			for li.Next() {
				switch li.Type() {
				case unix.IFLA_INFO_KIND:
					bi.kind = li.String()
				case unix.IFLA_INFO_DATA:
					li.Nested(func(d *netlink.AttributeDecoder) error {
						for d.Next() {
							switch d.Type() {
							case iflaBrVlanFiltering:
								if v := d.Bytes(); len(v) >= 1 {
									bi.vlanFiltering = v[0] != 0
								}
							case iflaBrVlanProtocol:
								if v := d.Bytes(); len(v) >= 2 {
									bi.vlanProtocol = binary.BigEndian.Uint16(v)
								}
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return bridgeInfo{}, fmt.Errorf("link attributes: %w", err)
	}
	if !found {
		return bridgeInfo{}, errNoLinkInfo
	}
	return bi, nil
}

// ifinfomsg encodes a struct ifinfomsg for the link index.
func ifinfomsg(index int) []byte {
	b := make([]byte, ifinfomsgLen)
	binary.NativeEndian.PutUint32(b[4:8], uint32(int32(index)))
	return b
}

// rtnl runs one request on a fresh rtnetlink socket in the namespace netns
// (0: the current one) under ctx's deadline.
func rtnl(ctx context.Context, netns int, req netlink.Message) ([]netlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msgs, err := c.Execute(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, err
	}
	return msgs, nil
}

// readBridgeInfo asks the kernel for the bridge with the given index.
func readBridgeInfo(ctx context.Context, netns, index int) (bridgeInfo, error) {
	msgs, err := rtnl(ctx, netns, netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   ifinfomsg(index),
	})
	if err != nil {
		return bridgeInfo{}, fmt.Errorf("read bridge %d: %w", index, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			bi, err := parseLinkInfo(m.Data)
			if err != nil {
				return bridgeInfo{}, fmt.Errorf("read bridge %d: %w", index, err)
			}
			return bi, nil
		}
	}
	return bridgeInfo{}, fmt.Errorf("read bridge %d: no RTM_NEWLINK answer", index)
}

// setBridgeVLANProtocol sets IFLA_BR_VLAN_PROTOCOL of the bridge with the
// given index: `ip link set BR type bridge vlan_protocol 802.1ad`.
func setBridgeVLANProtocol(ctx context.Context, netns, index int, tpid uint16) error {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(unix.IFLA_LINKINFO, func(li *netlink.AttributeEncoder) error {
		li.String(unix.IFLA_INFO_KIND, "bridge")
		li.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
			d.Bytes(iflaBrVlanProtocol, binary.BigEndian.AppendUint16(nil, tpid))
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return fmt.Errorf("encode vlan_protocol %#04x: %w", tpid, err)
	}
	_, err = rtnl(ctx, netns, netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(ifinfomsg(index), attrs...),
	})
	if err != nil {
		return fmt.Errorf("set vlan_protocol %#04x on bridge %d: %w", tpid, index, err)
	}
	return nil
}
