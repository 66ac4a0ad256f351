package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
)

// MaxVID is the largest VLAN ID a Pair may carry. 4095 is reserved by IEEE
// 802.1Q-2018 table 9-2 and never identifies a VLAN.
const MaxVID = 4094

// keyLen is the length of a Pair's key in the per-port sets: the source MAC
// padded to two 32-bit registers, then the S-VID and the VID, each padded
// to one (nftables pads every field of a concatenation to a multiple of 4
// bytes).
const keyLen = 16

// maxPortLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxPortLen = 15

// Errors returned for invalid input. They are wrapped with the offending
// value; test with errors.Is.
var (
	// ErrInvalidPort is returned for an interface name that is empty,
	// longer than 15 bytes or holds a byte other than ASCII letters,
	// digits, '_', '.' and '-'.
	ErrInvalidPort = errors.New("enforce: invalid port name")
	// ErrInvalidPair is returned for a MAC that is not 6 bytes long, is a
	// group (multicast) address or is all zeros, and for a VID above
	// MaxVID.
	ErrInvalidPair = errors.New("enforce: invalid (MAC, VID) pair")
	// ErrNotManaged is returned by the per-pair operations on a port that
	// ManagePort has not set up.
	ErrNotManaged = errors.New("enforce: port not managed")
)

// Pair is one (source MAC, VID) the enforcer lets through on a port.
//
// VID 0 stands for untagged frames: frames without an 802.1Q tag, and
// priority-tagged frames (an 802.1Q tag with VID 0), which IEEE 802.1Q-2018
// 6.9.1 treats like untagged ones.
type Pair struct {
	// MAC is the source MAC address.
	MAC [6]byte
	// VID is the 802.1Q VLAN ID of the frame's outer tag, 0 for untagged;
	// with SVID set, of the tag inside the S-Tag, 0 for none.
	VID uint16
	// SVID is the S-VID of the 802.1ad S-Tag (TPID 0x88a8) a frame of an
	// S-channel arrives in (IEEE 802.1Qbg-2012 clause 42: in switch mode
	// the S-Tag identifies the vNIC), 0 for frames without one. It is used
	// only by an Enforcer whose TPID is 0x8100 (with TPID 0x88a8 the
	// S-Tag's VID is the pair's VID).
	SVID uint16
}

// NewPair checks mac and vid and returns them as a Pair. It fails with
// ErrInvalidPair unless mac is a 6-byte unicast, non-zero address and vid
// is at most MaxVID.
func NewPair(mac net.HardwareAddr, vid uint16) (Pair, error) {
	if len(mac) != 6 {
		return Pair{}, fmt.Errorf("%w: MAC %q is %d bytes, want 6", ErrInvalidPair, mac.String(), len(mac))
	}
	p := Pair{VID: vid}
	copy(p.MAC[:], mac)
	return p, p.Validate()
}

// Validate reports whether p can be installed: a unicast, non-zero source
// MAC and a VID of at most MaxVID. Its errors wrap ErrInvalidPair.
func (p Pair) Validate() error {
	if p.MAC[0]&1 != 0 {
		return fmt.Errorf("%w: %s is a group address, never a source", ErrInvalidPair, p)
	}
	if p.MAC == [6]byte{} {
		return fmt.Errorf("%w: all-zero MAC", ErrInvalidPair)
	}
	if p.VID > MaxVID {
		return fmt.Errorf("%w: VID %d above %d", ErrInvalidPair, p.VID, MaxVID)
	}
	if p.SVID > MaxVID {
		return fmt.Errorf("%w: S-VID %d above %d", ErrInvalidPair, p.SVID, MaxVID)
	}
	return nil
}

// String formats p as "aa:bb:cc:dd:ee:ff/100", or ".../untagged" for VID 0;
// a pair of an S-channel as "aa:bb:cc:dd:ee:ff/svid=5/100".
func (p Pair) String() string {
	mac := net.HardwareAddr(p.MAC[:]).String()
	if p.SVID != 0 {
		mac += fmt.Sprintf("/svid=%d", p.SVID)
	}
	if p.VID == 0 {
		return mac + "/untagged"
	}
	return fmt.Sprintf("%s/%d", mac, p.VID)
}

// key encodes p as the kernel stores it in a pair set (pairSetType): the
// MAC, two bytes of padding, the S-VID in network byte order, two bytes of
// padding, the VID in network byte order, two bytes of padding.
func (p Pair) key() []byte {
	var k [keyLen]byte
	copy(k[:6], p.MAC[:])
	binary.BigEndian.PutUint16(k[8:10], p.SVID)
	binary.BigEndian.PutUint16(k[12:14], p.VID)
	return k[:]
}

// pairFromKey decodes a set element key written by key (or by anyone else
// writing a set of the same type).
func pairFromKey(k []byte) (Pair, error) {
	if len(k) != keyLen {
		return Pair{}, fmt.Errorf("enforce: set key of %d bytes, want %d", len(k), keyLen)
	}
	var p Pair
	copy(p.MAC[:], k[:6])
	p.SVID = binary.BigEndian.Uint16(k[8:10]) & 0x0fff
	p.VID = binary.BigEndian.Uint16(k[12:14]) & 0x0fff
	return p, nil
}

// validPort validates an interface name. The byte set is narrower than
// what Linux accepts, so that every chain, set and counter name derived
// from it stays printable and parseable by `nft list ruleset`.
func validPort(port string) error {
	if port == "" || len(port) > maxPortLen {
		return fmt.Errorf("%w: %q (1 to %d bytes)", ErrInvalidPort, port, maxPortLen)
	}
	for i := 0; i < len(port); i++ {
		c := port[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q holds %q", ErrInvalidPort, port, c)
		}
	}
	return nil
}
