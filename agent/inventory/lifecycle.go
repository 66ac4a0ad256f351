package inventory

import (
	"errors"
	"fmt"
)

// ErrIllegalTransition is wrapped by every *TransitionError.
var ErrIllegalTransition = errors.New("inventory: illegal transition")

// TransitionError says that a VIF may not go from one state to another.
type TransitionError struct {
	// From is the VIF's current state.
	From State
	// To is the state it was asked to move to.
	To State
}

// Error names the two states and, for gone, how to leave it.
func (e *TransitionError) Error() string {
	switch {
	case !e.From.valid() || !e.To.valid():
		return fmt.Sprintf("inventory: illegal transition %s -> %s: not a VIF state", e.From, e.To)
	case e.From == StateGone:
		return fmt.Sprintf("inventory: illegal transition gone -> %s: gone is terminal until the VIF is re-added", e.To)
	}
	return fmt.Sprintf("inventory: illegal transition %s -> %s", e.From, e.To)
}

// Unwrap returns ErrIllegalTransition.
func (e *TransitionError) Unwrap() error { return ErrIllegalTransition }

// legal[from] is the set of states reachable from "from" by SetState.
var legal = [...]uint8{
	StatePending:       bits(StatePreAssociated, StateAssociated, StateRejected, StateGone),
	StatePreAssociated: bits(StatePending, StateAssociated, StateRejected, StateGone),
	StateAssociated:    bits(StatePending, StateVerified, StateRejected, StateGone),
	StateVerified:      bits(StatePending, StateRejected, StateGone),
	StateRejected:      bits(StatePending, StateGone),
	StateGone:          0,
}

func bits(states ...State) uint8 {
	var b uint8
	for _, s := range states {
		b |= 1 << s
	}
	return b
}

// CheckTransition returns nil when a VIF in state from may be moved to state
// to with SetState, and a *TransitionError otherwise. Moving to the current
// state is always allowed (it is a no-op). Leaving gone is never allowed
// here: UpsertVIF re-adds a gone VIF, which puts it back in pending.
func CheckTransition(from, to State) error {
	if !from.valid() || !to.valid() {
		return &TransitionError{From: from, To: to}
	}
	if from == to || legal[from]&(1<<to) != 0 {
		return nil
	}
	return &TransitionError{From: from, To: to}
}
