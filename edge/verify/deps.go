package verify

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tether-net/tether/identity"
)

// UUID is a VM's UUID, the VSIID of a VDP request in the UUID format
// (IEEE 802.1Qbg-2012 41.2; libvirt and lldpad send the domain's UUID or
// the interface's instance ID there).
type UUID [16]byte

// String formats u as 8-4-4-4-12 lower-case hex digits.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// ParseUUID parses a UUID in the 8-4-4-4-12 form (any case) or as 32 hex
// digits.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	var digits []byte
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, fmt.Errorf("verify: UUID %q: dashes not at 8-4-4-4-12", s)
		}
		digits = []byte(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	case 32:
		digits = []byte(s)
	default:
		return u, fmt.Errorf("verify: UUID %q: %d characters, want 36 or 32", s, len(s))
	}
	if _, err := hex.Decode(u[:], digits); err != nil {
		return UUID{}, fmt.Errorf("verify: UUID %q: %w", s, err)
	}
	return u, nil
}

// MAC is an Ethernet MAC address.
type MAC [6]byte

// String formats m as aa:bb:cc:dd:ee:ff.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// ParseMAC parses a 48-bit MAC address in any form net.ParseMAC accepts.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("verify: %w", err)
	}
	if len(hw) != len(MAC{}) {
		return MAC{}, fmt.Errorf("verify: MAC %q is %d bytes, want 6", s, len(hw))
	}
	return MAC(hw), nil
}

// Enrolment is what the policy store holds about one enrolled key.
type Enrolment struct {
	// Host is the hypervisor the key is enrolled for; empty for a key
	// that is not a host key (a switch's), which can never claim a VM.
	Host string
	// Public is the Ed25519 public key.
	Public ed25519.PublicKey
}

// Keys looks enrolled keys up (tether-policyd's key enrolment; a static
// table in tests and small deployments).
type Keys interface {
	// Enrolment returns the enrolment of the key with ID id, or an error
	// matching identity.ErrUnknownKey when the key is not enrolled.
	Enrolment(ctx context.Context, id identity.KeyID) (Enrolment, error)
}

// Neighbour is the LLDP neighbour a switch port currently sees.
type Neighbour struct {
	// Host is the host name the neighbour advertises (LLDP System Name);
	// empty when it advertises none.
	Host string
	// Signed reports that the neighbour's last LLDPDU carried a valid
	// signature; Key is then the key that made it.
	Signed bool
	// Key is the signing key of the neighbour's last LLDPDU.
	Key identity.KeyID
}

// Neighbours tells which LLDP neighbour a switch port sees (the LLDP
// agents' neighbour tables; see NeighboursFromLLDP).
type Neighbours interface {
	// Neighbour returns the neighbour of port. ok is false when the port
	// has no neighbour, or more than one that differ in host or key (the
	// port's host is then not known).
	Neighbour(port string) (n Neighbour, ok bool)
}

// VMState is what a VM manager knows about a VM on one host.
type VMState uint8

// VM states.
const (
	// VMAbsent: the host has no such VM.
	VMAbsent VMState = iota
	// VMInactive: the VM is defined on the host but not running (shut
	// off, crashed).
	VMInactive
	// VMRunning: the VM runs on the host.
	VMRunning
	// VMPaused: the VM is on the host, paused (by a user, for a
	// snapshot, ...), not for a migration.
	VMPaused
	// VMMigratingIn: the host is the destination of a live migration of
	// the VM that has not finished (libvirt: an incoming migration job,
	// or paused with reason "migration").
	VMMigratingIn
	// VMMigratedIn: the VM runs on the host after an incoming migration
	// (libvirt: running with reason "migrated", or in post-copy).
	VMMigratedIn
	// VMMigratingOut: the host is the source of a migration of the VM in
	// progress or in its last phase.
	VMMigratingOut
)

// String returns "absent", "inactive", "running", "paused",
// "migrating-in", "migrated-in" or "migrating-out".
func (s VMState) String() string {
	switch s {
	case VMAbsent:
		return "absent"
	case VMInactive:
		return "inactive"
	case VMRunning:
		return "running"
	case VMPaused:
		return "paused"
	case VMMigratingIn:
		return "migrating-in"
	case VMMigratedIn:
		return "migrated-in"
	case VMMigratingOut:
		return "migrating-out"
	}
	return fmt.Sprintf("vm-state-%d", uint8(s))
}

// Present reports whether the VM is on the host in a state that may own
// a vNIC there: every state but absent and inactive.
func (s VMState) Present() bool { return s >= VMRunning }

// Confirmation is a VM manager's answer about one VM, host and MAC.
type Confirmation struct {
	// Confirmed reports that the VM is present on the host (State) and
	// has an interface with the MAC.
	Confirmed bool
	// State is the VM's state on the host.
	State VMState
	// Reason says why the VM is not confirmed, for logs (empty when it
	// is).
	Reason string
}

// VMManager is the independent source of truth on where VMs run (the
// closed loop's second witness after the host's own signed claim):
// package edge/vmmanager asks each host's libvirt; the policy store of a
// later issue plugs in here too.
type VMManager interface {
	// Confirm says whether the VM with UUID vm is present on host with an
	// interface of MAC mac. An error means it could not tell (the
	// manager is unreachable or too slow); the verifier then refuses
	// with ReasonVMManagerUnavailable. It must honour ctx's deadline.
	Confirm(ctx context.Context, host string, vm UUID, mac MAC) (Confirmation, error)
}

// Forgetter is an optional interface of a VMManager with a cache: Forget
// drops what it cached about vm on host, so the next Confirm asks the
// source. The verifier calls it before it asks whether a migrating VM has
// left its previous host, where a stale "still running there" would
// refuse a legitimate migration.
type Forgetter interface {
	Forget(host string, vm UUID)
}

// Location is where a MAC is live in the data centre.
type Location struct {
	// Switch and Port name the switch port where the MAC is live.
	Switch, Port string
	// VM is the VSIID (VM UUID) that claimed the MAC.
	VM UUID
	// Host is the host the VM was confirmed on.
	Host string
	// Since is when the MAC became live there.
	Since time.Time
	// Rev is the store's revision of the entry; Claim compares it. Zero
	// means "no entry".
	Rev uint64
}

// samePlace reports whether l and o are the same port and VM.
func (l Location) samePlace(o Location) bool {
	return l.Switch == o.Switch && l.Port == o.Port && l.VM == o.VM
}

// String formats the location as "switch/port (vm on host)".
func (l Location) String() string {
	return fmt.Sprintf("%s/%s (VM %s on %s)", l.Switch, l.Port, l.VM, l.Host)
}

// ErrConflict means a Locations.Claim found another revision than the
// one it was given: someone else changed the entry in between.
var ErrConflict = errors.New("verify: location changed concurrently")

// Locations is the data-centre-wide table of live MACs. MemoryLocations
// serves one switch; the etcd-backed table of issue 5 implements the same
// interface, with the entry's ModRevision as Rev, so every method is one
// etcd request (Claim a transaction comparing the revision).
type Locations interface {
	// Lookup returns where mac is live, and false when it is nowhere.
	Lookup(ctx context.Context, mac MAC) (Location, bool, error)
	// Claim makes mac live at loc if the entry still has revision prev
	// (0: no entry), and returns the stored entry (with its new Rev and
	// Since, which stays unchanged when the entry already named the same
	// switch, port and VM). Otherwise it returns the current entry and an
	// error matching ErrConflict.
	Claim(ctx context.Context, mac MAC, loc Location, prev uint64) (Location, error)
	// Release removes mac's entry if it still names loc's switch, port
	// and VM, and does nothing otherwise.
	Release(ctx context.Context, mac MAC, loc Location) error
}

// VNIC identifies one vNIC as the S-Tag table binds it.
type VNIC struct {
	// VM is the VSIID (VM UUID).
	VM UUID
	// MAC is the vNIC's (first) MAC.
	MAC MAC
}

// String formats the vNIC as "MAC of VM".
func (n VNIC) String() string { return n.MAC.String() + " of VM " + n.VM.String() }

// ErrSTagBound means the S-Tag is bound to another vNIC on the port; the
// error is an *STagBoundError.
var ErrSTagBound = errors.New("verify: S-Tag bound to another vNIC")

// STagBoundError reports the vNIC that holds an S-Tag. It matches
// ErrSTagBound.
type STagBoundError struct {
	// Port and STag are the binding asked for.
	Port string
	STag uint16
	// Holder is the vNIC bound to it.
	Holder VNIC
}

// Error implements error.
func (e *STagBoundError) Error() string {
	return fmt.Sprintf("verify: S-Tag %d on port %s is bound to %s", e.STag, e.Port, e.Holder)
}

// Unwrap returns ErrSTagBound.
func (e *STagBoundError) Unwrap() error { return ErrSTagBound }

// STags binds S-Tags to vNICs per switch port (DESIGN.md "Datapath
// modes": in switch mode the S-Tag identifies the vNIC on the wire).
// MemorySTags serves one switch; a persistent one fits the same interface.
type STags interface {
	// Lookup returns the vNIC bound to stag on port.
	Lookup(ctx context.Context, port string, stag uint16) (VNIC, bool, error)
	// Bind binds stag on port to n. Binding what is already bound to n
	// succeeds with fresh false; a binding to another vNIC is an
	// *STagBoundError. Other bindings of n are left alone (the
	// verifier releases an S-Tag a vNIC no longer uses).
	Bind(ctx context.Context, port string, stag uint16, n VNIC) (fresh bool, err error)
	// Release unbinds stag on port if it is bound to n.
	Release(ctx context.Context, port string, stag uint16, n VNIC) error
}
