package inventory

import "fmt"

// OpType says what an Op does.
type OpType uint8

// The operations a Change can hold.
const (
	// OpUpsertVM creates or replaces a VM record (Op.VM).
	OpUpsertVM OpType = iota + 1
	// OpUpsertVIF creates or updates a VIF record (Op.VIF); its VM must be
	// stored already or upserted earlier in the same Change. A new VIF
	// starts in pending; a gone one is re-added (pending); one whose
	// association-relevant attributes changed goes back to pending.
	// Otherwise the state is kept. Op.Reason, if set, replaces the default
	// reason of those transitions.
	OpUpsertVIF
	// OpRemoveVIF deletes the VIF Op.MAC. Removing an absent VIF is a no-op.
	OpRemoveVIF
	// OpRemoveVM deletes the VM Op.UUID and every VIF that belongs to it.
	// Removing an absent VM is a no-op.
	OpRemoveVM
	// OpSetState moves the VIF Op.MAC to Op.State for Op.Reason, if
	// CheckTransition allows it; moving to the current state is a no-op.
	OpSetState
)

var opNames = [...]string{
	OpUpsertVM:  "upsert-vm",
	OpUpsertVIF: "upsert-vif",
	OpRemoveVIF: "remove-vif",
	OpRemoveVM:  "remove-vm",
	OpSetState:  "set-state",
}

// String returns the operation's lower-case name ("upsert-vif", ...).
func (t OpType) String() string {
	if int(t) < len(opNames) && opNames[t] != "" {
		return opNames[t]
	}
	return fmt.Sprintf("op(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler with String's names.
func (t OpType) MarshalText() ([]byte, error) {
	if int(t) >= len(opNames) || opNames[t] == "" {
		return nil, fmt.Errorf("inventory: invalid op %d", uint8(t))
	}
	return []byte(opNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *OpType) UnmarshalText(b []byte) error {
	i, err := lookupName("op", opNames[:], b)
	*t = OpType(i)
	return err
}

// Op is one operation of a Change. Build it with UpsertVM, UpsertVIF,
// RemoveVIF, RemoveVM or SetState; only the fields of its Type are read.
type Op struct {
	// Type says what the operation does.
	Type OpType `json:"op"`
	// VM is the record for OpUpsertVM.
	VM VM `json:"vm,omitzero"`
	// VIF is the record for OpUpsertVIF.
	VIF VIF `json:"vif,omitzero"`
	// UUID names the VM for OpRemoveVM.
	UUID UUID `json:"uuid,omitzero"`
	// MAC names the VIF for OpRemoveVIF and OpSetState.
	MAC MAC `json:"mac,omitzero"`
	// State is the target state for OpSetState.
	State State `json:"state,omitzero"`
	// Reason explains an OpSetState (required) or the transition an
	// OpUpsertVIF causes (optional).
	Reason string `json:"reason,omitempty"`
}

// UpsertVM returns an Op that creates or replaces vm.
func UpsertVM(vm VM) Op { return Op{Type: OpUpsertVM, VM: vm} }

// UpsertVIF returns an Op that creates or updates v (State, Last and
// Generation are ignored; the store owns them).
func UpsertVIF(v VIF) Op { return Op{Type: OpUpsertVIF, VIF: v} }

// RemoveVIF returns an Op that deletes the VIF mac.
func RemoveVIF(mac MAC) Op { return Op{Type: OpRemoveVIF, MAC: mac} }

// RemoveVM returns an Op that deletes the VM id and all its VIFs.
func RemoveVM(id UUID) Op { return Op{Type: OpRemoveVM, UUID: id} }

// SetState returns an Op that moves the VIF mac to state "to" for reason.
func SetState(mac MAC, to State, reason string) Op {
	return Op{Type: OpSetState, MAC: mac, State: to, Reason: reason}
}

// Change is a batch of operations that the store applies in order in one
// transaction: all of them or, if any fails, none.
type Change struct {
	// Ops are applied in order; later ops see the effects of earlier ones.
	Ops []Op `json:"ops"`
}

// Add appends ops to c and returns c, for building a Change fluently.
func (c Change) Add(ops ...Op) Change {
	c.Ops = append(c.Ops, ops...)
	return c
}

// Result says what Apply did.
type Result struct {
	// Generation is the store generation after the Change: the new one if
	// it modified something, the unchanged current one if not.
	Generation uint64
	// Changed reports whether the Change modified anything.
	Changed bool
}
