package partition

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/wire"
)

// Limits of a Spec.
const (
	// MinSTag and MaxSTag bound a partition's S-VID: S-VID 1 is CDCP's
	// default S-channel (802.1Qbg-2012 D.2.13), which is the uplink itself,
	// and 4095 is reserved (802.1Q-2018 9.6).
	MinSTag, MaxSTag = 2, 4094
	// MaxCVID is the largest C-VID; 0 means no C-VLAN device.
	MaxCVID = 4094
	// MinMTU is the smallest MTU a spec may ask for (IPv4's minimum, 68).
	MinMTU = 68
	// MaxMTU is the largest MTU a spec may ask for (the kernel's limit for a
	// VLAN device is its parent's MTU, checked when the device is made).
	MaxMTU = 65535
	// ioExtenderHeadroom is what I/O-extender mode takes from the MTU: the
	// S-Tag that travels on past the edge.
	ioExtenderHeadroom = 4
	// maxIfname is the longest Linux interface name (IFNAMSIZ - 1).
	maxIfname = 15
)

// Spec is the desired state of one partition vNIC.
type Spec struct {
	// ID is the vNIC's MAC address, canonical ("52:54:00:12:34:56"); Ensure
	// and Release canonicalise it.
	ID string `json:"id"`
	// Uplink is the name of the device the S-Tag device sits on.
	Uplink string `json:"uplink"`
	// STag is the S-VID, MinSTag to MaxSTag.
	STag uint16 `json:"stag"`
	// CVID is the C-VID of the 802.1Q device on top; 0 for none.
	CVID uint16 `json:"cvid,omitempty"`
	// Mode is how the edge treats the S-Tag; it sets the default MTU (see
	// the package documentation). The zero value means switch mode.
	Mode wire.TetherSTagMode `json:"mode"`
	// MTU of both devices; 0 derives it from the uplink and Mode.
	MTU int `json:"mtu,omitempty"`
	// Master, when set, is the bridge the top device is enslaved to; empty
	// leaves the top device's master to the soft switch.
	Master string `json:"master,omitempty"`
}

// CanonicalID returns the canonical form of a vNIC ID (a MAC address):
// lowercase, colon-separated, 6 bytes.
func CanonicalID(id string) (string, error) {
	mac, err := net.ParseMAC(id)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("vNIC ID %q is not a 6-byte MAC address", id)
	}
	return mac.String(), nil
}

// Validate checks the spec alone, without the kernel, and returns it with
// the ID canonical and a zero Mode made switch mode.
func (s Spec) Validate() (Spec, error) {
	id, err := CanonicalID(s.ID)
	if err != nil {
		return s, err
	}
	s.ID = id
	if err := validIfname("uplink", s.Uplink); err != nil {
		return s, err
	}
	if s.STag < MinSTag || s.STag > MaxSTag {
		return s, fmt.Errorf("S-Tag %d out of range %d-%d", s.STag, MinSTag, MaxSTag)
	}
	if s.CVID > MaxCVID {
		return s, fmt.Errorf("C-VID %d out of range 1-%d", s.CVID, MaxCVID)
	}
	switch s.Mode {
	case 0:
		s.Mode = wire.TetherSTagSwitch
	case wire.TetherSTagSwitch, wire.TetherSTagIOExtender:
	default:
		return s, fmt.Errorf("S-Tag mode %d, want switch (1) or io-extender (2)", s.Mode)
	}
	if s.MTU != 0 && (s.MTU < MinMTU || s.MTU > MaxMTU) {
		return s, fmt.Errorf("MTU %d out of range %d-%d", s.MTU, MinMTU, MaxMTU)
	}
	if s.Master != "" {
		if err := validIfname("master", s.Master); err != nil {
			return s, err
		}
	}
	return s, nil
}

// validIfname checks a Linux interface name: 1-15 bytes, no '/', ':',
// white space or NUL, not "." or "..".
func validIfname(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: empty interface name", what)
	}
	if len(name) > maxIfname {
		return fmt.Errorf("%s: interface name %q longer than %d bytes", what, name, maxIfname)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%s: interface name %q not allowed", what, name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/' || c == ':' || c <= ' ' || c == 0x7f:
			return fmt.Errorf("%s: interface name %q has a forbidden byte 0x%02x", what, name, c)
		}
	}
	return nil
}

// Names returns the S-Tag device's name and the C-VLAN device's name for a
// vNIC with S-VID stag on the uplink with ifindex uplink (see the package
// documentation). The C-VLAN name is returned even when the spec has no
// C-VID (the sweep looks for it).
func Names(uplink int, stag uint16) (sdev, cdev string) {
	suffix := strconv.FormatUint(uint64(uint32(uplink)), 16) + "." + strconv.FormatUint(uint64(stag), 10)
	return "tp" + suffix, "tq" + suffix
}

// ModeName is a mode's spelling in the state file and in Status:
// "switch" or "io-extender".
func ModeName(m wire.TetherSTagMode) string {
	switch m {
	case wire.TetherSTagSwitch:
		return "switch"
	case wire.TetherSTagIOExtender:
		return "io-extender"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

func parseModeName(s string) (wire.TetherSTagMode, error) {
	switch s {
	case "switch":
		return wire.TetherSTagSwitch, nil
	case "io-extender":
		return wire.TetherSTagIOExtender, nil
	}
	return 0, fmt.Errorf("mode %q, want switch or io-extender", s)
}

// desiredMTU is the MTU both devices of s get on an uplink with MTU
// uplinkMTU.
func desiredMTU(s Spec, uplinkMTU int) (int, error) {
	if s.MTU != 0 {
		if s.MTU > uplinkMTU {
			return 0, fmt.Errorf("MTU %d above the uplink's %d", s.MTU, uplinkMTU)
		}
		return s.MTU, nil
	}
	if s.Mode == wire.TetherSTagIOExtender {
		if uplinkMTU-ioExtenderHeadroom < MinMTU {
			return 0, fmt.Errorf("uplink MTU %d leaves no room for an I/O-extender S-Tag", uplinkMTU)
		}
		return uplinkMTU - ioExtenderHeadroom, nil
	}
	return uplinkMTU, nil
}

// ErrSChannelPending means CDCP has not (yet) given the vNIC's S-channel an
// S-VID: the bridge has not assigned it.
var ErrSChannelPending = errors.New("partition: S-channel not assigned by the bridge")

// Negotiated returns the S-Tag and mode of the vNIC on S-channel scid, from
// the station's CDCP result and the switch's signed profile for the vNIC:
// the S-Tag is the S-VID the bridge assigned to scid, the mode is the
// profile's. Before the profile arrives (nil), the vNIC runs in switch
// mode. The default S-channel (SCID 1) is the uplink itself and never a
// partition; a requested SCID the bridge has not assigned is
// ErrSChannelPending.
func Negotiated(res evb.CDCPResult, scid uint16, profile *wire.TetherProfile) (uint16, wire.TetherSTagMode, error) {
	if scid == evb.DefaultSCID {
		return 0, 0, fmt.Errorf("partition: SCID %d is the default S-channel, not a partition", scid)
	}
	var stag uint16
	for _, ch := range res.Channels {
		if ch.SCID == scid {
			stag = ch.SVID
		}
	}
	if stag == 0 {
		for _, p := range res.Pending {
			if p == scid {
				return 0, 0, fmt.Errorf("partition: SCID %d: %w", scid, ErrSChannelPending)
			}
		}
		return 0, 0, fmt.Errorf("partition: SCID %d was not requested in CDCP", scid)
	}
	if stag < MinSTag || stag > MaxSTag {
		return 0, 0, fmt.Errorf("partition: SCID %d has S-VID %d, out of range %d-%d", scid, stag, MinSTag, MaxSTag)
	}
	mode := wire.TetherSTagSwitch
	if profile != nil {
		switch profile.Mode {
		case wire.TetherSTagSwitch, wire.TetherSTagIOExtender:
			mode = profile.Mode
		default:
			return 0, 0, fmt.Errorf("partition: profile S-Tag mode %d, want switch (1) or io-extender (2)", profile.Mode)
		}
	}
	return stag, mode, nil
}
