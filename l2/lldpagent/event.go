package lldpagent

import (
	"time"

	"github.com/tether-net/tether/wire"
)

// EventKind says what happened to a neighbour.
type EventKind uint8

// Neighbour events.
const (
	// NeighborAdded: an LLDPDU from a new MSAP identifier was accepted.
	NeighborAdded EventKind = iota + 1
	// NeighborUpdated: a known neighbour's LLDPDU changed (TTL and
	// signature aside).
	NeighborUpdated
	// NeighborExpired: a neighbour's TTL ran out (802.1AB rxInfoAge).
	NeighborExpired
	// NeighborShutdown: a neighbour sent a shutdown LLDPDU (TTL 0).
	NeighborShutdown
	// NeighborRemoved: the agent's user removed the neighbour with
	// Agent.Forget, for example because the key that verified it was
	// revoked.
	NeighborRemoved
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case NeighborAdded:
		return "added"
	case NeighborUpdated:
		return "updated"
	case NeighborExpired:
		return "expired"
	case NeighborShutdown:
		return "shutdown"
	case NeighborRemoved:
		return "removed"
	}
	return "unknown"
}

// Event reports a change in an agent's neighbour table.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// Port is the name of the agent's interface.
	Port string
	// Neighbor is the neighbour's state (for Expired, Shutdown and
	// Removed, the last state before removal).
	Neighbor Neighbor
	// At is when it happened, on the agent's Clock.
	At time.Time
}

// Neighbor is one entry of the neighbour table (802.1AB remote systems
// MIB). Frame and the slices in PDU are shared between snapshots and must
// not be modified.
type Neighbor struct {
	// ChassisID and PortID are the MSAP identifier, the table's key.
	ChassisID wire.ChassisID
	PortID    wire.PortID
	// Source is the source MAC address of the last LLDPDU.
	Source [6]byte
	// TTL is the Time To Live of the last LLDPDU, in seconds.
	TTL uint16
	// PDU is the last LLDPDU, decoded; it aliases Frame.
	PDU wire.LLDPDU
	// Frame is the last received Ethernet frame, padding included.
	Frame []byte
	// Check is what Config.Check reported for the last LLDPDU.
	Check CheckResult
	// FirstSeen is when the neighbour was added, LastSeen when its last
	// LLDPDU arrived, and ExpiresAt when it will age out (LastSeen + TTL).
	FirstSeen, LastSeen, ExpiresAt time.Time
}

// SystemName returns the System Name TLV's value, or "".
func (n *Neighbor) SystemName() string {
	for _, t := range n.PDU.TLVs {
		if s, ok := t.(wire.SystemName); ok {
			return string(s)
		}
	}
	return ""
}

// EVB returns the neighbour's EVB TLV, or nil.
func (n *Neighbor) EVB() *wire.EVB {
	for _, t := range n.PDU.TLVs {
		if e, ok := t.(*wire.EVB); ok {
			return e
		}
	}
	return nil
}

// CDCP returns the neighbour's CDCP TLV, or nil.
func (n *Neighbor) CDCP() *wire.CDCP {
	for _, t := range n.PDU.TLVs {
		if c, ok := t.(*wire.CDCP); ok {
			return c
		}
	}
	return nil
}

// Tether returns the neighbour's tether capability TLV, or nil.
func (n *Neighbor) Tether() *wire.TetherCapability {
	for _, t := range n.PDU.TLVs {
		if c, ok := t.(*wire.TetherCapability); ok {
			return c
		}
	}
	return nil
}
