package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on the text fields, checked by Validate and by the record decoder.
const (
	// MaxNameLen bounds VM.Name and Transition.Reason, in bytes.
	MaxNameLen = 1024
	// MaxFieldLen bounds every other text field (host device, port group,
	// profile ID, source), in bytes.
	MaxFieldLen = 255
	// MaxVID is the largest usable VLAN ID (IEEE 802.1Q-2022 table 9-2;
	// 4095 is reserved). 0 means "no tag".
	MaxVID = 4094
	// MaxTypeID is the largest 802.1Qbg VSI type ID (24 bits, IEEE
	// 802.1Qbg-2012 41.2.6).
	MaxTypeID = 1<<24 - 1
)

// lookupName finds b in names (an enum's text forms, indexed by value).
func lookupName(what string, names []string, b []byte) (int, error) {
	for i, n := range names {
		if n != "" && string(b) == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("inventory: unknown %s %q", what, b)
}

// Kind is how a VIF is plumbed on the host.
type Kind uint8

// The VIF kinds. The zero Kind is not valid for a stored VIF.
const (
	// KindUnknown is the zero Kind; Validate refuses it.
	KindUnknown Kind = iota
	// KindTap is a tap device on a Linux bridge or Open vSwitch
	// (libvirt <interface type='bridge'|'network'|'ethernet'>).
	KindTap
	// KindMacvtap is a macvtap device on a lower device
	// (libvirt <interface type='direct'>).
	KindMacvtap
	// KindVF is an SR-IOV virtual function passed to the VM
	// (libvirt <interface type='hostdev'>).
	KindVF
	// KindPartition is a NIC partition identified by an 802.1ad S-Tag.
	KindPartition
	// KindVeth is one end of a veth pair (a container, through CNI).
	KindVeth
)

var kindNames = [...]string{
	KindUnknown:   "unknown",
	KindTap:       "tap",
	KindMacvtap:   "macvtap",
	KindVF:        "vf",
	KindPartition: "partition",
	KindVeth:      "veth",
}

// String returns the kind's lower-case name ("tap", "vf", ...).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) >= len(kindNames) {
		return nil, fmt.Errorf("inventory: invalid kind %d", uint8(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	i, err := lookupName("kind", kindNames[:], b)
	*k = Kind(i)
	return err
}

// State is a VIF's lifecycle state; the package documentation draws the
// machine and CheckTransition enforces it.
type State uint8

// The VIF lifecycle states.
const (
	// StateNone is the zero State: the "from" of the transition that creates
	// a VIF. No stored VIF is in it.
	StateNone State = iota
	// StatePending: recorded, not (or no longer) associated with the switch.
	StatePending
	// StatePreAssociated: the bridge accepted a VDP PRE-ASSOCIATE.
	StatePreAssociated
	// StateAssociated: the bridge accepted a VDP ASSOCIATE.
	StateAssociated
	// StateVerified: the association's signed profile was checked and applied.
	StateVerified
	// StateRejected: the bridge or the closed-loop check refused the VIF.
	StateRejected
	// StateGone: the vNIC left the host; a DE-ASSOCIATE is due.
	StateGone
)

var stateNames = [...]string{
	StateNone:          "none",
	StatePending:       "pending",
	StatePreAssociated: "pre-associated",
	StateAssociated:    "associated",
	StateVerified:      "verified",
	StateRejected:      "rejected",
	StateGone:          "gone",
}

// String returns the state's lower-case name ("pending", "pre-associated", ...).
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (s State) MarshalText() ([]byte, error) {
	if int(s) >= len(stateNames) {
		return nil, fmt.Errorf("inventory: invalid state %d", uint8(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	i, err := lookupName("state", stateNames[:], b)
	*s = State(i)
	return err
}

// valid reports whether s is a state a stored VIF can be in.
func (s State) valid() bool { return s >= StatePending && s <= StateGone }

// VMState is a VM's run state as libvirt reports it (virDomainState).
type VMState uint8

// The VM run states, in libvirt's order.
const (
	// VMStateUnknown is libvirt's VIR_DOMAIN_NOSTATE.
	VMStateUnknown VMState = iota
	// VMStateRunning is VIR_DOMAIN_RUNNING.
	VMStateRunning
	// VMStateBlocked is VIR_DOMAIN_BLOCKED.
	VMStateBlocked
	// VMStatePaused is VIR_DOMAIN_PAUSED (also an incoming migration).
	VMStatePaused
	// VMStateShutdown is VIR_DOMAIN_SHUTDOWN (shutting down).
	VMStateShutdown
	// VMStateShutoff is VIR_DOMAIN_SHUTOFF.
	VMStateShutoff
	// VMStateCrashed is VIR_DOMAIN_CRASHED.
	VMStateCrashed
	// VMStatePMSuspended is VIR_DOMAIN_PMSUSPENDED.
	VMStatePMSuspended
)

var vmStateNames = [...]string{
	VMStateUnknown:     "unknown",
	VMStateRunning:     "running",
	VMStateBlocked:     "blocked",
	VMStatePaused:      "paused",
	VMStateShutdown:    "shutdown",
	VMStateShutoff:     "shutoff",
	VMStateCrashed:     "crashed",
	VMStatePMSuspended: "pmsuspended",
}

// String returns the state's lower-case name ("running", "shutoff", ...).
func (s VMState) String() string {
	if int(s) < len(vmStateNames) {
		return vmStateNames[s]
	}
	return fmt.Sprintf("vmstate(%d)", uint8(s))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (s VMState) MarshalText() ([]byte, error) {
	if int(s) >= len(vmStateNames) {
		return nil, fmt.Errorf("inventory: invalid VM state %d", uint8(s))
	}
	return []byte(vmStateNames[s]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *VMState) UnmarshalText(b []byte) error {
	i, err := lookupName("VM state", vmStateNames[:], b)
	*s = VMState(i)
	return err
}

// VirtualPortType is the type of a libvirt <virtualport> element.
type VirtualPortType uint8

// The virtual port types. Their text forms are libvirt's attribute values.
const (
	// VirtualPortNone: the interface has no <virtualport>.
	VirtualPortNone VirtualPortType = iota
	// VirtualPort8021Qbg: VDP (IEEE 802.1Qbg), type='802.1Qbg'.
	VirtualPort8021Qbg
	// VirtualPort8021Qbh: VN-Tag port profiles (IEEE 802.1Qbh), type='802.1Qbh'.
	VirtualPort8021Qbh
	// VirtualPortOpenvswitch: an Open vSwitch port, type='openvswitch'.
	VirtualPortOpenvswitch
)

var virtualPortNames = [...]string{
	VirtualPortNone:        "none",
	VirtualPort8021Qbg:     "802.1Qbg",
	VirtualPort8021Qbh:     "802.1Qbh",
	VirtualPortOpenvswitch: "openvswitch",
}

// String returns libvirt's name for the type ("802.1Qbg", "openvswitch", ...).
func (t VirtualPortType) String() string {
	if int(t) < len(virtualPortNames) {
		return virtualPortNames[t]
	}
	return fmt.Sprintf("virtualport(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (t VirtualPortType) MarshalText() ([]byte, error) {
	if int(t) >= len(virtualPortNames) {
		return nil, fmt.Errorf("inventory: invalid virtual port type %d", uint8(t))
	}
	return []byte(virtualPortNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. Case is ignored, as
// libvirt ignores it ("802.1qbg" is accepted).
func (t *VirtualPortType) UnmarshalText(b []byte) error {
	for i, n := range virtualPortNames {
		if bytes.EqualFold(b, []byte(n)) {
			*t = VirtualPortType(i)
			return nil
		}
	}
	return fmt.Errorf("inventory: unknown virtual port type %q", b)
}

// VirtualPort holds the parameters of a libvirt <virtualport>. Only the
// fields of its Type may be set; Validate checks that.
type VirtualPort struct {
	// Type selects which of the parameters below apply.
	Type VirtualPortType `json:"type"`
	// ManagerID is the 802.1Qbg VSI Manager ID (managerid, 0-255).
	ManagerID uint8 `json:"managerid,omitempty"`
	// TypeID is the 802.1Qbg VSI Type ID (typeid, 24 bits).
	TypeID uint32 `json:"typeid,omitempty"`
	// TypeIDVersion is the 802.1Qbg VSI Type Version (typeidversion, 0-255).
	TypeIDVersion uint8 `json:"typeidversion,omitempty"`
	// InstanceID is the 802.1Qbg VSI Instance ID (instanceid).
	InstanceID UUID `json:"instanceid,omitzero"`
	// ProfileID is the 802.1Qbh port profile (profileid, required there) or
	// the Open vSwitch port profile (profileid, optional).
	ProfileID string `json:"profileid,omitempty"`
	// InterfaceID is the Open vSwitch interface ID (interfaceid).
	InterfaceID UUID `json:"interfaceid,omitzero"`
}

// Validate reports whether vp's parameters fit its type.
func (vp VirtualPort) Validate() error {
	if err := vp.validate(); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

func (vp VirtualPort) validate() error {
	qbg := vp.ManagerID != 0 || vp.TypeID != 0 || vp.TypeIDVersion != 0 || !vp.InstanceID.IsZero()
	switch vp.Type {
	case VirtualPortNone:
		if qbg || vp.ProfileID != "" || !vp.InterfaceID.IsZero() {
			return errors.New("virtual port of type none has parameters")
		}
	case VirtualPort8021Qbg:
		if vp.ProfileID != "" || !vp.InterfaceID.IsZero() {
			return errors.New("802.1Qbg virtual port has profileid or interfaceid")
		}
		if vp.TypeID > MaxTypeID {
			return fmt.Errorf("802.1Qbg typeid %d exceeds 24 bits", vp.TypeID)
		}
	case VirtualPort8021Qbh:
		if qbg || !vp.InterfaceID.IsZero() {
			return errors.New("802.1Qbh virtual port has parameters other than profileid")
		}
		if vp.ProfileID == "" {
			return errors.New("802.1Qbh virtual port needs a profileid")
		}
	case VirtualPortOpenvswitch:
		if qbg {
			return errors.New("openvswitch virtual port has 802.1Qbg parameters")
		}
	default:
		return fmt.Errorf("invalid virtual port type %d", uint8(vp.Type))
	}
	return checkText("virtual port profileid", vp.ProfileID, MaxFieldLen)
}

// Transition is one change of a VIF's lifecycle state.
type Transition struct {
	// From is the state before; StateNone for the transition that created
	// the VIF.
	From State `json:"from"`
	// To is the state after.
	To State `json:"to"`
	// Reason says why, for an operator ("VDP ASSOCIATE accepted", "re-added").
	Reason string `json:"reason"`
	// At is when the store committed it.
	At time.Time `json:"at"`
}

// VM is a virtual machine (a libvirt domain, or a CNI sandbox).
type VM struct {
	// UUID identifies the VM; it is the record's key.
	UUID UUID `json:"uuid"`
	// Name is the domain name.
	Name string `json:"name"`
	// State is the run state libvirt last reported.
	State VMState `json:"state"`
	// Source names what reported the VM ("libvirt", "cni"); a full reconcile
	// from one source (Diff) only touches that source's VMs.
	Source string `json:"source,omitempty"`
	// Generation is the store generation that last wrote this record. The
	// store sets it; it is ignored on input.
	Generation uint64 `json:"generation"`
}

// Validate reports what is wrong with vm, or nil.
func (vm VM) Validate() error {
	if vm.UUID.IsZero() {
		return errors.New("inventory: VM has the zero UUID")
	}
	if int(vm.State) >= len(vmStateNames) {
		return fmt.Errorf("inventory: VM %s: invalid state %d", vm.UUID, uint8(vm.State))
	}
	if err := checkText("VM name", vm.Name, MaxNameLen); err != nil {
		return fmt.Errorf("inventory: VM %s: %w", vm.UUID, err)
	}
	if err := checkText("VM source", vm.Source, MaxFieldLen); err != nil {
		return fmt.Errorf("inventory: VM %s: %w", vm.UUID, err)
	}
	return nil
}

// sameAs reports whether vm and o hold the same data, ignoring Generation.
func (vm VM) sameAs(o VM) bool {
	return vm.UUID == o.UUID && vm.Name == o.Name && vm.State == o.State && vm.Source == o.Source
}

// VIF is a vNIC of a VM: a virtual interface keyed by its MAC address.
type VIF struct {
	// MAC is the vNIC's address; it is the record's key.
	MAC MAC `json:"mac"`
	// VM is the UUID of the VM the vNIC belongs to; that VM must be stored.
	VM UUID `json:"vm"`
	// HostDev is the host-side device (tap or macvtap name, the VF's or the
	// partition's netdev, the host end of a veth).
	HostDev string `json:"hostdev,omitempty"`
	// Kind is how the vNIC is plumbed.
	Kind Kind `json:"kind"`
	// STag is the 802.1ad S-VID that identifies the vNIC on the wire; 0 for none.
	STag uint16 `json:"stag,omitempty"`
	// CVID is the 802.1Q C-VID; 0 for none.
	CVID uint16 `json:"cvid,omitempty"`
	// VirtualPort holds the libvirt <virtualport> parameters.
	VirtualPort VirtualPort `json:"virtualport,omitzero"`
	// PortGroup is the port group (libvirt portgroup, or tether's profile
	// group) whose policy applies.
	PortGroup string `json:"portgroup,omitempty"`
	// State is the lifecycle state. The store owns it: it is ignored by
	// UpsertVIF and changed with SetState.
	State State `json:"state"`
	// Last is the transition into State, with its reason. Store-owned too.
	Last Transition `json:"last"`
	// Generation is the store generation that last wrote this record.
	// Store-owned.
	Generation uint64 `json:"generation"`
}

// Vendor is the vendor pool of the VIF's MAC.
func (v VIF) Vendor() Vendor { return v.MAC.Vendor() }

// Validate reports what is wrong with the caller-owned fields of v (not
// State, Last or Generation), or nil.
func (v VIF) Validate() error {
	if err := v.MAC.validate(); err != nil {
		return err
	}
	if err := v.validateAttrs(); err != nil {
		return fmt.Errorf("inventory: VIF %s: %w", v.MAC, err)
	}
	return nil
}

func (v VIF) validateAttrs() error {
	if v.VM.IsZero() {
		return errors.New("no VM UUID")
	}
	if v.Kind == KindUnknown || int(v.Kind) >= len(kindNames) {
		return fmt.Errorf("invalid kind %d", uint8(v.Kind))
	}
	if v.STag > MaxVID {
		return fmt.Errorf("S-Tag %d out of range 1-%d", v.STag, MaxVID)
	}
	if v.CVID > MaxVID {
		return fmt.Errorf("C-VID %d out of range 1-%d", v.CVID, MaxVID)
	}
	if v.Kind == KindPartition && v.STag == 0 {
		return errors.New("an 802.1ad partition needs an S-Tag")
	}
	if err := v.VirtualPort.validate(); err != nil {
		return err
	}
	if err := checkText("host device", v.HostDev, MaxFieldLen); err != nil {
		return err
	}
	return checkText("port group", v.PortGroup, MaxFieldLen)
}

// validateStored checks everything, store-owned fields included.
func (v VIF) validateStored() error {
	if err := v.Validate(); err != nil {
		return err
	}
	if !v.State.valid() {
		return fmt.Errorf("inventory: VIF %s: invalid state %d", v.MAC, uint8(v.State))
	}
	if v.Last.To != v.State {
		return fmt.Errorf("inventory: VIF %s: last transition ends in %s, state is %s", v.MAC, v.Last.To, v.State)
	}
	if v.Last.From != StateNone && v.Last.From != StateGone {
		if err := CheckTransition(v.Last.From, v.Last.To); err != nil {
			return fmt.Errorf("inventory: VIF %s: recorded %w", v.MAC, err)
		}
	} else if v.Last.To != StatePending {
		return fmt.Errorf("inventory: VIF %s: recorded transition %s -> %s", v.MAC, v.Last.From, v.Last.To)
	}
	return checkText("reason", v.Last.Reason, MaxNameLen)
}

// associationDiff names the fields whose change invalidates an association
// with the edge switch, or returns "" when none differ.
func (v VIF) associationDiff(o VIF) string {
	var b []byte
	add := func(changed bool, name string) {
		if changed {
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, name...)
		}
	}
	add(v.VM != o.VM, "vm")
	add(v.Kind != o.Kind, "kind")
	add(v.STag != o.STag, "s-tag")
	add(v.CVID != o.CVID, "c-vid")
	add(v.VirtualPort != o.VirtualPort, "virtualport")
	add(v.PortGroup != o.PortGroup, "portgroup")
	return string(b)
}

// sameAttrs reports whether the caller-owned fields of v and o are equal.
func (v VIF) sameAttrs(o VIF) bool {
	return v.MAC == o.MAC && v.VM == o.VM && v.HostDev == o.HostDev && v.Kind == o.Kind &&
		v.STag == o.STag && v.CVID == o.CVID && v.VirtualPort == o.VirtualPort && v.PortGroup == o.PortGroup
}

func checkText(what, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%s is %d bytes long, limit %d", what, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}
