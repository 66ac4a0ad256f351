package softswitch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/tether-net/tether/wire"
)

// MaxVID is the largest usable VLAN ID; 4095 is reserved (802.1Q-2018 9.6).
const MaxVID = 4094

// MaxIfname is the longest Linux interface name in bytes (IFNAMSIZ - 1).
const MaxIfname = 15

// Port is the desired (or observed) state of one VM port on a soft switch.
//
// VLANs: where STag is 0 the bridge is an 802.1Q bridge and VID is the
// port's access VLAN (PVID, egress untagged; 0 leaves the port untagged in
// the bridge's default VLAN). Where STag is set the S-Tag crosses the soft
// switch: the bridge is an 802.1ad (provider) bridge, the port's PVID is the
// S-VID (egress untagged toward the VM), frames leave on the uplink with an
// 0x88a8 S-Tag, and VID is the C-VLAN the VM's frames carry inside it (the
// soft switch does not push or pop the C-Tag: an 802.1ad bridge carries a
// customer's 0x8100 tag through as payload). Mode tells the edge switch what
// to do with the S-Tag; to the soft switch both modes look the same.
type Port struct {
	// Name is the ifname of the VM's tap or vNIC device on the host.
	Name string
	// MAC is the VM's MAC address: the only source MAC the port may send
	// with (the allow-list).
	MAC net.HardwareAddr
	// VID is the access VLAN (0 untagged); with STag set, the C-VLAN.
	VID uint16
	// Trunks lists further VLANs the port carries tagged, sorted, without
	// VID or STag.
	Trunks []uint16
	// STag is the 802.1ad S-VID the vNIC's frames carry on the wire, 0 for
	// none.
	STag uint16
	// Mode is the S-Tag handling mode the edge switch applies; 0 where STag
	// is 0.
	Mode wire.TetherSTagMode
	// RateKbps limits what the VM sends, in kbit/s; 0 means unlimited.
	RateKbps uint32
	// Priority is the 802.1Q priority code point, 0-7.
	Priority uint8
}

// FromProfile maps the profile the edge switch answered with onto the port
// named name for the VM's mac. stag is the S-VID the vNIC was given (by CDCP
// or the partition), 0 where the vNIC has none; trunks are extra tagged VLANs
// from the host's configuration (the profile carries none). The result is
// normalised (trunks sorted, deduplicated, without VID or STag) and
// validated. The profile's EtherTypes and ACL stay with the edge switch,
// which enforces them; the soft switch enforces the VLANs, the MAC
// allow-list and the rate.
func FromProfile(p wire.TetherProfile, name string, mac net.HardwareAddr, stag uint16, trunks ...uint16) (Port, error) {
	port := Port{
		Name:     name,
		MAC:      slices.Clone(mac),
		VID:      p.VID,
		Trunks:   slices.Clone(trunks),
		STag:     stag,
		RateKbps: p.RateKbps,
		Priority: p.Priority,
	}
	if stag != 0 {
		port.Mode = p.Mode
	}
	port.Normalize()
	if err := port.Validate(); err != nil {
		return Port{}, fmt.Errorf("port from profile %q: %w", p.Name, err)
	}
	return port, nil
}

// Normalize sorts and deduplicates Trunks and drops from them the port's
// VID and STag, so two equal ports compare equal.
func (p *Port) Normalize() {
	if len(p.Trunks) == 0 {
		p.Trunks = nil
		return
	}
	slices.Sort(p.Trunks)
	p.Trunks = slices.Compact(p.Trunks)
	p.Trunks = slices.DeleteFunc(p.Trunks, func(v uint16) bool {
		return (v == p.VID && p.STag == 0) || (p.STag != 0 && v == p.STag)
	})
	if len(p.Trunks) == 0 {
		p.Trunks = nil
	}
}

// Errors of Validate, matched with errors.Is.
var (
	// ErrInvalidPort marks a Port that cannot be enforced.
	ErrInvalidPort = errors.New("invalid port")
)

// Validate reports why p cannot be enforced, or nil.
func (p Port) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPort, fmt.Sprintf(format, args...))
	}
	switch {
	case p.Name == "":
		return bad("empty name")
	case len(p.Name) > MaxIfname:
		return bad("name %q is %d bytes, at most %d", p.Name, len(p.Name), MaxIfname)
	case len(p.MAC) != 6:
		return bad("%s: MAC %q is not a 6-byte Ethernet address", p.Name, p.MAC)
	case p.MAC[0]&1 != 0:
		return bad("%s: MAC %s is a group address", p.Name, p.MAC)
	case bytes.Equal(p.MAC, make(net.HardwareAddr, 6)):
		return bad("%s: MAC is all zeros", p.Name)
	case p.VID > MaxVID:
		return bad("%s: VID %d out of range 0-%d", p.Name, p.VID, MaxVID)
	case p.STag > MaxVID:
		return bad("%s: S-Tag %d out of range 0-%d", p.Name, p.STag, MaxVID)
	case p.STag != 0 && p.Mode != wire.TetherSTagSwitch && p.Mode != wire.TetherSTagIOExtender:
		return bad("%s: S-Tag %d with mode %d, want 1 (switch) or 2 (I/O extender)", p.Name, p.STag, p.Mode)
	case p.STag == 0 && p.Mode != 0:
		return bad("%s: S-Tag mode %d without an S-Tag", p.Name, p.Mode)
	case p.Priority > 7:
		return bad("%s: priority %d out of range 0-7", p.Name, p.Priority)
	}
	for _, v := range p.Trunks {
		if v == 0 || v > MaxVID {
			return bad("%s: trunk VID %d out of range 1-%d", p.Name, v, MaxVID)
		}
	}
	return nil
}

// BridgeVID is the VLAN the port is a PVID member of in the soft switch: the
// S-Tag where one is set (an 802.1ad bridge), the VID otherwise; 0 means the
// bridge's default VLAN.
func (p Port) BridgeVID() uint16 {
	if p.STag != 0 {
		return p.STag
	}
	return p.VID
}

// Difference is one field on which an observed port differs from the
// desired one.
type Difference struct {
	// Port is the port's name.
	Port string
	// Field names the field: "present", "MAC", "VID", "Trunks", "STag",
	// "Mode", "RateKbps", "Priority", or an implementation's own (e.g.
	// "allow-list", "bridge").
	Field string
	// Want is the desired value, as text.
	Want string
	// Got is the observed value, as text.
	Got string
}

// String renders the difference for logs and test failures.
func (d Difference) String() string {
	return fmt.Sprintf("%s: %s: want %s, got %s", d.Port, d.Field, d.Want, d.Got)
}

// Compare lists the fields on which observed differs from desired, in a
// fixed order; nil means the soft switch's port equals the profile. Both are
// compared normalised. A soft switch that cannot observe a field (e.g. the
// priority) copies it from desired before comparing.
func Compare(desired, observed Port) []Difference {
	desired.Normalize()
	observed.Normalize()
	var out []Difference
	add := func(field string, want, got any) {
		out = append(out, Difference{Port: desired.Name, Field: field, Want: fmt.Sprint(want), Got: fmt.Sprint(got)})
	}
	if desired.Name != observed.Name {
		add("Name", desired.Name, observed.Name)
	}
	if !bytes.Equal(desired.MAC, observed.MAC) {
		add("MAC", desired.MAC, observed.MAC)
	}
	if desired.VID != observed.VID {
		add("VID", desired.VID, observed.VID)
	}
	if !slices.Equal(desired.Trunks, observed.Trunks) {
		add("Trunks", desired.Trunks, observed.Trunks)
	}
	if desired.STag != observed.STag {
		add("STag", desired.STag, observed.STag)
	}
	if desired.Mode != observed.Mode {
		add("Mode", desired.Mode, observed.Mode)
	}
	if desired.RateKbps != observed.RateKbps {
		add("RateKbps", desired.RateKbps, observed.RateKbps)
	}
	if desired.Priority != observed.Priority {
		add("Priority", desired.Priority, observed.Priority)
	}
	return out
}

// Switch is what tetherd needs of a soft switch: idempotent Ensure and
// Remove of one port, and a Check that reads the port back from the kernel
// (or OVSDB) and compares it with the desired state.
type Switch interface {
	// Ensure makes the port match p, repairing whatever differs; calling it
	// again with the same p changes nothing.
	Ensure(ctx context.Context, p Port) error
	// Remove takes the port's configuration off the soft switch; removing a
	// port that is not there is not an error.
	Remove(ctx context.Context, name string) error
	// Check reads the port back and returns how it differs from p; nil
	// means consistent.
	Check(ctx context.Context, p Port) ([]Difference, error)
}
