package rawsock

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/tether-net/tether/wire"
)

// DefaultGroups returns the IEEE 802.1 group addresses a Socket joins when
// Options.Groups is nil (IEEE 802.1AB-2016 7.1, IEEE 802.1Q-2018 8.6.3): the
// nearest customer bridge (01-80-C2-00-00-00: LLDP with EVB and CDCP, and
// ECP), the nearest non-TPMR bridge (01-80-C2-00-00-03) and the nearest
// bridge (01-80-C2-00-00-0E).
func DefaultGroups() [][6]byte {
	return [][6]byte{wire.NearestCustomerBridge, wire.NearestNonTPMRBridge, wire.NearestBridge}
}

// HeaderLen is the size of an untagged Ethernet II header: destination MAC,
// source MAC, EtherType.
const HeaderLen = 14

// MaxFrameLen is the largest frame, without FCS, that a Receiver delivers
// by default: a 1500-byte payload behind a header with one 802.1Q tag.
const MaxFrameLen = 1500 + HeaderLen + 4

// ErrClosed is returned by a Conn's methods after Close.
var ErrClosed = errors.New("rawsock: connection closed")

// Interface describes the network interface a Conn is bound to.
type Interface struct {
	// Name is the interface name, for example "eth2".
	Name string
	// Index is the interface index (0 for an in-memory Conn).
	Index int
	// MAC is the interface's hardware address, the source address of the
	// frames the protocols send.
	MAC [6]byte
}

// String returns the interface name.
func (i Interface) String() string { return i.Name }

// Conn sends and receives complete Ethernet frames (destination MAC, source
// MAC, optional 802.1Q tag, EtherType, payload; no FCS) of one EtherType on
// one interface. One goroutine may read while another writes.
type Conn interface {
	// ReadFrame blocks until a frame arrives, copies it into b and returns
	// its length. A frame longer than b is cut to len(b). It returns
	// ctx.Err() when ctx ends first and ErrClosed after Close.
	ReadFrame(ctx context.Context, b []byte) (int, error)
	// WriteFrame sends frame, which starts with its destination MAC. It
	// returns ctx.Err() when ctx ends before the frame could be handed to
	// the interface.
	WriteFrame(ctx context.Context, frame []byte) error
	// Interface describes the interface the Conn is bound to.
	Interface() Interface
	// Close releases the Conn; blocked reads and writes return ErrClosed.
	Close() error
}

// KernelStats are the kernel's counters of an AF_PACKET socket since it was
// opened (PACKET_STATISTICS).
type KernelStats struct {
	// Packets counts the frames that reached the socket, dropped ones
	// included.
	Packets uint64
	// Drops counts the frames the kernel dropped because the socket's
	// receive buffer was full.
	Drops uint64
}

// KernelStatser is implemented by Conns that can report kernel counters
// (Socket does; the in-memory Pipe does not).
type KernelStatser interface {
	// KernelStats returns the counters since the Conn was opened.
	KernelStats() (KernelStats, error)
}

// checkFrame rejects a frame too short to carry an Ethernet header.
func checkFrame(frame []byte) error {
	if len(frame) < HeaderLen {
		return fmt.Errorf("rawsock: frame is %d bytes, shorter than an Ethernet header (%d)", len(frame), HeaderLen)
	}
	return nil
}

// hardwareAddr converts an interface's address to [6]byte; anything but a
// 6-byte EUI-48 is refused.
func hardwareAddr(ifi *net.Interface) ([6]byte, error) {
	var mac [6]byte
	if len(ifi.HardwareAddr) != len(mac) {
		return mac, fmt.Errorf("rawsock: interface %s has a %d-byte hardware address, want an EUI-48", ifi.Name, len(ifi.HardwareAddr))
	}
	copy(mac[:], ifi.HardwareAddr)
	return mac, nil
}
