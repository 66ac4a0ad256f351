package switchd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sort"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// BridgeInfo is what the kernel says about the bridge and its ports.
type BridgeInfo struct {
	// Ports are the names of the bridge's ports, sorted.
	Ports []string
	// STP is the bridge's stp_state: 0 off, 1 kernel STP, 2 user STP.
	STP uint32
}

// ReadBridge lists the ports of bridge and reads its STP state over
// rtnetlink, in the network namespace nsfd (0: the calling thread's).
func ReadBridge(nsfd int, bridge string) (BridgeInfo, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsfd})
	if err != nil {
		return BridgeInfo{}, fmt.Errorf("switchd: rtnetlink: %w", err)
	}
	defer c.Close()
	ifi := make([]byte, unix.SizeofIfInfomsg) // family AF_UNSPEC: every link
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   ifi,
	})
	if err != nil {
		return BridgeInfo{}, fmt.Errorf("switchd: list links: %w", err)
	}
	type link struct {
		index  int32
		name   string
		master uint32
		stp    uint32
	}
	links := make([]link, 0, len(msgs))
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		l := link{index: int32(nativeEndian.Uint32(m.Data[4:8]))}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			return BridgeInfo{}, fmt.Errorf("switchd: decode link: %w", err)
		}
		for ad.Next() {
			switch ad.Type() {
			case unix.IFLA_IFNAME:
				l.name = ad.String()
			case unix.IFLA_MASTER:
				l.master = ad.Uint32()
			case unix.IFLA_LINKINFO:
				ad.Nested(func(li *netlink.AttributeDecoder) error {
					for li.Next() {
						if li.Type() == unix.IFLA_INFO_DATA {
							li.Nested(func(bd *netlink.AttributeDecoder) error {
								for bd.Next() {
									if bd.Type() == unix.IFLA_BR_STP_STATE {
										l.stp = bd.Uint32()
									}
								}
								return nil
							})
						}
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return BridgeInfo{}, fmt.Errorf("switchd: decode link attributes: %w", err)
		}
		links = append(links, l)
	}
	var br *link
	for i := range links {
		if links[i].name == bridge {
			br = &links[i]
		}
	}
	if br == nil {
		return BridgeInfo{}, fmt.Errorf("switchd: bridge %q: %w", bridge, errNoBridge)
	}
	info := BridgeInfo{STP: br.stp}
	for _, l := range links {
		if l.master != 0 && l.master == uint32(br.index) {
			info.Ports = append(info.Ports, l.name)
		}
	}
	sort.Strings(info.Ports)
	return info, nil
}

// nativeEndian is the byte order of rtnetlink's fixed headers.
var nativeEndian = binary.NativeEndian

var errNoBridge = errors.New("no such interface")

// inNetNS runs fn on an OS thread switched into the network namespace nsfd
// (0: fn runs as it is), so that the sockets fn opens belong to that
// namespace; they keep it after the thread switches back.
func inNetNS(nsfd int, fn func() error) error {
	if nsfd == 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("switchd: open the current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("switchd: enter the bridge's network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- fmt.Errorf("switchd: leave the bridge's network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
