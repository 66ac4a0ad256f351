package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Domain is one VM with its vNICs as a source (libvirt, CNI) lists them for
// a full reconcile.
type Domain struct {
	// VM is the VM; an empty Source is set to Diff's source.
	VM VM
	// VIFs are its vNICs; a zero VIF.VM is set to VM.UUID. State, Last and
	// Generation are ignored.
	VIFs []VIF
}

// Diff returns the Change that brings the inventory's VMs of one source to
// what that source lists now (desired), given current (a Snapshot; nil means
// empty). It is the full reconcile: apply its result in one transaction.
//
// VMs and VIFs that are new or differ are upserted (a gone VIF is re-added);
// a VIF of this source that is no longer listed goes to gone (its
// DE-ASSOCIATE is still due, so it is not deleted); a VM of this source that
// is no longer listed and has no VIF left is removed. VMs of other sources
// are left alone. Applying the result to current and diffing again gives an
// empty Change.
//
// Entries that cannot be applied (invalid, a VM or MAC listed twice, a VM
// UUID or a live MAC that belongs to another source) are left out, their
// current records untouched, and reported in the error, which joins one
// error per problem; the Change still holds everything else, so one bad
// domain does not stop the reconcile. The operations are in a stable order:
// VM upserts by UUID, VIF upserts by MAC, then gone transitions and VM
// removals in the snapshot's order (by MAC, by UUID).
func Diff(source string, desired []Domain, current *Snapshot) (Change, error) {
	if current == nil {
		current = &Snapshot{}
	}
	curVM := make(map[UUID]*VM, len(current.VMs))
	for i := range current.VMs {
		curVM[current.VMs[i].UUID] = &current.VMs[i]
	}
	curVIF := make(map[MAC]*VIF, len(current.VIFs))
	for i := range current.VIFs {
		curVIF[current.VIFs[i].MAC] = &current.VIFs[i]
	}
	ours := func(id UUID) bool {
		vm, ok := curVM[id]
		return ok && vm.Source == source
	}

	doms := slices.Clone(desired)
	slices.SortStableFunc(doms, func(a, b Domain) int { return bytes.Compare(a.VM.UUID[:], b.VM.UUID[:]) })

	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("inventory: diff %s: "+format, append([]any{source}, args...)...))
	}
	var vmOps, vifOps []Op
	listedVM := make(map[UUID]bool, len(doms))
	listedMAC := make(map[MAC]bool, 4*len(doms))
	// Entries left out for an error keep their current records untouched:
	// they are not gone, the source just described them badly.
	keepVM, keepMAC := map[UUID]bool{}, map[MAC]bool{}
	for _, d := range doms {
		vm := d.VM
		if vm.Source == "" {
			vm.Source = source
		}
		switch cur, ok := curVM[vm.UUID]; {
		case vm.Source != source:
			fail("VM %s: source %q is not this source", vm.UUID, vm.Source)
			continue
		case listedVM[vm.UUID]:
			fail("VM %s listed twice", vm.UUID)
			continue
		case ok && cur.Source != source:
			fail("VM %s belongs to source %q", vm.UUID, cur.Source)
			continue
		}
		if err := vm.Validate(); err != nil {
			fail("%w", unprefixed{err})
			keepVM[vm.UUID] = true
			for _, v := range d.VIFs {
				keepMAC[v.MAC] = true
			}
			continue
		}
		listedVM[vm.UUID] = true
		if cur, ok := curVM[vm.UUID]; !ok || !cur.sameAs(vm) {
			vmOps = append(vmOps, UpsertVM(vm))
		}
		for _, v := range d.VIFs {
			if v.VM.IsZero() {
				v.VM = vm.UUID
			}
			v.State, v.Last, v.Generation = StateNone, Transition{}, 0
			cur, ok := curVIF[v.MAC]
			switch {
			case v.VM != vm.UUID:
				fail("VIF %s of VM %s names VM %s", v.MAC, vm.UUID, v.VM)
				keepMAC[v.MAC] = true
				continue
			case listedMAC[v.MAC]:
				fail("VIF %s listed twice (again in VM %s)", v.MAC, vm.UUID)
				continue
			case ok && cur.State != StateGone && !ours(cur.VM):
				fail("VIF %s of VM %s is live in VM %s of another source", v.MAC, vm.UUID, cur.VM)
				continue
			}
			if err := v.Validate(); err != nil {
				fail("%w", unprefixed{err})
				keepMAC[v.MAC] = true
				continue
			}
			listedMAC[v.MAC] = true
			if !ok || cur.State == StateGone || !cur.sameAttrs(v) {
				vifOps = append(vifOps, UpsertVIF(v))
			}
		}
	}
	slices.SortFunc(vifOps, func(a, b Op) int { return bytes.Compare(a.VIF.MAC[:], b.VIF.MAC[:]) })

	var goneOps, rmOps []Op
	left := map[UUID]int{} // VIFs that stay with an unlisted VM of ours
	for i := range current.VIFs {
		v := &current.VIFs[i]
		if !ours(v.VM) || listedMAC[v.MAC] {
			continue
		}
		if !listedVM[v.VM] {
			left[v.VM]++ // it stays with its VM: gone now, or gone already
		}
		if v.State != StateGone && !keepMAC[v.MAC] {
			goneOps = append(goneOps, SetState(v.MAC, StateGone, "absent from "+source))
		}
	}
	for i := range current.VMs {
		vm := &current.VMs[i]
		if vm.Source == source && !listedVM[vm.UUID] && !keepVM[vm.UUID] && left[vm.UUID] == 0 {
			rmOps = append(rmOps, RemoveVM(vm.UUID))
		}
	}
	ops := make([]Op, 0, len(vmOps)+len(vifOps)+len(goneOps)+len(rmOps))
	ops = append(append(append(append(ops, vmOps...), vifOps...), goneOps...), rmOps...)
	return Change{Ops: ops}, errors.Join(errs...)
}
