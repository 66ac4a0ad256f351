package inventory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpError says which operation of a Change failed and why; nothing of the
// Change was written.
type OpError struct {
	// Index is the operation's position in Change.Ops.
	Index int
	// Op is the operation's type.
	Op OpType
	// Key names the record: a VM UUID or a VIF MAC.
	Key string
	// Err is the cause; errors.Is sees through it (ErrNotFound,
	// ErrIllegalTransition, ErrInvalidMAC, ErrCorrupt).
	Err error
}

// Error reads "inventory: op 2 set-state 52:54:00:12:34:56: <cause>".
func (e *OpError) Error() string {
	return fmt.Sprintf("inventory: op %d %s %s: %s", e.Index, e.Op, e.Key,
		strings.TrimPrefix(e.Err.Error(), "inventory: "))
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// txn is one Change being applied inside a bbolt write transaction.
type txn struct {
	vms, vifs, meta *bolt.Bucket
	gen             uint64 // the generation this Change commits as
	now             time.Time
	events          []Event
}

func newTxn(tx *bolt.Tx, now time.Time) *txn {
	t := &txn{
		vms:  tx.Bucket(bucketVMs),
		vifs: tx.Bucket(bucketVIFs),
		meta: tx.Bucket(bucketMeta),
		// Transition times are stored with nanosecond precision and no
		// monotonic reading, in UTC, so events and records compare equal.
		now: now.UTC().Round(0),
	}
	t.gen = readGeneration(tx) + 1
	return t
}

func (t *txn) changed() bool { return len(t.events) > 0 }

func (t *txn) apply(ctx context.Context, c Change) error {
	for i, op := range c.Ops {
		if i%128 == 127 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted at op %d: %w", i, err)
			}
		}
		var err error
		var key string
		switch op.Type {
		case OpUpsertVM:
			key = op.VM.UUID.String()
			err = t.upsertVM(op.VM)
		case OpUpsertVIF:
			key = op.VIF.MAC.String()
			err = t.upsertVIF(op.VIF, op.Reason)
		case OpRemoveVIF:
			key = op.MAC.String()
			err = t.removeVIF(op.MAC)
		case OpRemoveVM:
			key = op.UUID.String()
			err = t.removeVM(op.UUID)
		case OpSetState:
			key = op.MAC.String()
			err = t.setState(op.MAC, op.State, op.Reason)
		default:
			err = fmt.Errorf("unknown operation %d", uint8(op.Type))
		}
		if err != nil {
			return &OpError{Index: i, Op: op.Type, Key: key, Err: err}
		}
	}
	if t.changed() {
		if err := t.meta.Put(keyGeneration, binary.BigEndian.AppendUint64(nil, t.gen)); err != nil {
			return fmt.Errorf("write generation: %w", err)
		}
	}
	return nil
}

func (t *txn) getVM(id UUID) (VM, bool, error) {
	b := t.vms.Get(id[:])
	if b == nil {
		return VM{}, false, nil
	}
	vm, err := decodeVM(b, nil)
	return vm, true, err
}

func (t *txn) getVIF(mac MAC) (VIF, bool, error) {
	b := t.vifs.Get(mac[:])
	if b == nil {
		return VIF{}, false, nil
	}
	v, err := decodeVIF(b, nil)
	return v, true, err
}

func (t *txn) upsertVM(vm VM) error {
	if err := vm.Validate(); err != nil {
		return err
	}
	old, ok, err := t.getVM(vm.UUID)
	if err != nil {
		return err
	}
	if ok && old.sameAs(vm) {
		return nil
	}
	vm.Generation = t.gen
	b, err := vm.MarshalBinary()
	if err != nil {
		return err
	}
	if err := t.vms.Put(append([]byte(nil), vm.UUID[:]...), b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	t.events = append(t.events, Event{Generation: t.gen, Type: EventVMUpserted, VM: vm})
	return nil
}

func (t *txn) upsertVIF(v VIF, reason string) error {
	v.State, v.Last, v.Generation = StateNone, Transition{}, 0
	if err := v.Validate(); err != nil {
		return err
	}
	if err := checkText("reason", reason, MaxNameLen); err != nil {
		return err
	}
	if t.vms.Get(v.VM[:]) == nil {
		return fmt.Errorf("VM %s %w", v.VM, ErrNotFound)
	}
	old, ok, err := t.getVIF(v.MAC)
	if err != nil {
		return err
	}
	moved := func(from State, why string) {
		if reason != "" {
			why = reason
		}
		v.State = StatePending
		v.Last = Transition{From: from, To: StatePending, Reason: why, At: t.now}
	}
	switch {
	case !ok:
		moved(StateNone, "added")
	case old.State == StateGone:
		moved(StateGone, "re-added")
	default:
		if d := old.associationDiff(v); d != "" && old.State != StatePending {
			moved(old.State, "attributes changed: "+d)
			break
		}
		if v.sameAttrs(old) {
			return nil
		}
		v.State, v.Last = old.State, old.Last
	}
	v.Generation = t.gen
	b, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	if err := t.vifs.Put(append([]byte(nil), v.MAC[:]...), b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	ev := Event{Generation: t.gen, Type: EventVIFUpserted, VIF: v}
	if !ok || v.State != old.State || v.Last != old.Last {
		ev.Transition = v.Last
	}
	t.events = append(t.events, ev)
	return nil
}

func (t *txn) setState(mac MAC, to State, reason string) error {
	if reason == "" {
		return errors.New("a state change needs a reason")
	}
	if err := checkText("reason", reason, MaxNameLen); err != nil {
		return err
	}
	v, ok, err := t.getVIF(mac)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("VIF %s %w", mac, ErrNotFound)
	}
	if err := CheckTransition(v.State, to); err != nil {
		return err
	}
	if v.State == to {
		return nil
	}
	v.Last = Transition{From: v.State, To: to, Reason: reason, At: t.now}
	v.State = to
	v.Generation = t.gen
	b, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	if err := t.vifs.Put(append([]byte(nil), mac[:]...), b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	t.events = append(t.events, Event{Generation: t.gen, Type: EventVIFState, VIF: v, Transition: v.Last})
	return nil
}

func (t *txn) removeVIF(mac MAC) error {
	b := t.vifs.Get(mac[:])
	if b == nil {
		return nil
	}
	last, err := decodeVIF(b, nil)
	if err != nil {
		// The record is being deleted anyway; report what is known.
		last = VIF{MAC: mac}
	}
	if err := t.vifs.Delete(mac[:]); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	t.events = append(t.events, Event{Generation: t.gen, Type: EventVIFRemoved, VIF: last})
	return nil
}

func (t *txn) removeVM(id UUID) error {
	// VIFs first, so that no VIF is ever left without its VM. The scan reads
	// the VM UUID straight from each encoded record.
	var macs []MAC
	c := t.vifs.Cursor()
	for k, b := c.First(); k != nil; k, b = c.Next() {
		if vm, ok := vifVM(b); ok && vm == id && len(k) == len(MAC{}) {
			macs = append(macs, MAC(k))
		}
	}
	for _, m := range macs {
		if err := t.removeVIF(m); err != nil {
			return err
		}
	}
	b := t.vms.Get(id[:])
	if b == nil {
		return nil
	}
	last, err := decodeVM(b, nil)
	if err != nil {
		last = VM{UUID: id}
	}
	if err := t.vms.Delete(id[:]); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	t.events = append(t.events, Event{Generation: t.gen, Type: EventVMRemoved, VM: last})
	return nil
}
