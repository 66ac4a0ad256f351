package vmmanager

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/tether-net/tether/edge/verify"
	virt "libvirt.org/go/libvirt"
)

// classify maps a domain's libvirt state and reason, and the operation of
// its current job when known, to the verifier's VM state, with a short
// description ("paused (migration)").
//
// The destination of a live migration holds the domain paused with reason
// "migration" until the switch-over (or running in post-copy, while the
// source is paused with reason "post-copy"); after it the domain runs with
// reason "migrated". A paused domain with reason "migration" is also the
// source of an offline migration, so a migration job's direction, when the
// job is visible (virDomainGetJobStats), decides; without it such a domain
// counts as migrating in: the verifier only asks when the VM's MAC is live
// on another host's port, where a source could not be.
func classify(st virt.DomainState, reason int, op virt.DomainJobOperationType, opKnown bool) (verify.VMState, string) {
	detail := stateName(st, reason)
	if opKnown {
		switch op {
		case virt.DOMAIN_JOB_OPERATION_MIGRATION_IN:
			if active(st) {
				return verify.VMMigratingIn, detail + ", incoming migration job"
			}
		case virt.DOMAIN_JOB_OPERATION_MIGRATION_OUT:
			if active(st) {
				return verify.VMMigratingOut, detail + ", outgoing migration job"
			}
		}
	}
	switch st {
	case virt.DOMAIN_RUNNING:
		switch virt.DomainRunningReason(reason) {
		case virt.DOMAIN_RUNNING_MIGRATED, virt.DOMAIN_RUNNING_POSTCOPY:
			return verify.VMMigratedIn, detail
		}
		return verify.VMRunning, detail
	case virt.DOMAIN_BLOCKED, virt.DOMAIN_SHUTDOWN, virt.DOMAIN_PMSUSPENDED:
		// Still on the host with its vNICs.
		return verify.VMRunning, detail
	case virt.DOMAIN_PAUSED:
		switch virt.DomainPausedReason(reason) {
		case virt.DOMAIN_PAUSED_MIGRATION:
			return verify.VMMigratingIn, detail
		case virt.DOMAIN_PAUSED_POSTCOPY, virt.DOMAIN_PAUSED_POSTCOPY_FAILED:
			return verify.VMMigratingOut, detail
		}
		return verify.VMPaused, detail
	}
	return verify.VMInactive, detail
}

// active reports whether a domain in state st has a running process.
func active(st virt.DomainState) bool {
	switch st {
	case virt.DOMAIN_NOSTATE, virt.DOMAIN_SHUTOFF, virt.DOMAIN_CRASHED:
		return false
	}
	return true
}

// stateName describes a state and reason as virsh domstate --reason does
// (in short).
func stateName(st virt.DomainState, reason int) string {
	var s, r string
	switch st {
	case virt.DOMAIN_NOSTATE:
		s = "no state"
	case virt.DOMAIN_RUNNING:
		s = "running"
		switch virt.DomainRunningReason(reason) {
		case virt.DOMAIN_RUNNING_BOOTED:
			r = "booted"
		case virt.DOMAIN_RUNNING_MIGRATED:
			r = "migrated"
		case virt.DOMAIN_RUNNING_RESTORED:
			r = "restored"
		case virt.DOMAIN_RUNNING_UNPAUSED:
			r = "unpaused"
		case virt.DOMAIN_RUNNING_MIGRATION_CANCELED:
			r = "migration canceled"
		case virt.DOMAIN_RUNNING_POSTCOPY:
			r = "post-copy"
		}
	case virt.DOMAIN_BLOCKED:
		s = "blocked"
	case virt.DOMAIN_PAUSED:
		s = "paused"
		switch virt.DomainPausedReason(reason) {
		case virt.DOMAIN_PAUSED_USER:
			r = "user"
		case virt.DOMAIN_PAUSED_MIGRATION:
			r = "migration"
		case virt.DOMAIN_PAUSED_SAVE:
			r = "saving"
		case virt.DOMAIN_PAUSED_IOERROR:
			r = "I/O error"
		case virt.DOMAIN_PAUSED_STARTING_UP:
			r = "starting up"
		case virt.DOMAIN_PAUSED_POSTCOPY:
			r = "post-copy"
		case virt.DOMAIN_PAUSED_POSTCOPY_FAILED:
			r = "post-copy failed"
		}
	case virt.DOMAIN_SHUTDOWN:
		s = "shutting down"
	case virt.DOMAIN_SHUTOFF:
		s = "shut off"
		switch virt.DomainShutoffReason(reason) {
		case virt.DOMAIN_SHUTOFF_MIGRATED:
			r = "migrated"
		case virt.DOMAIN_SHUTOFF_DESTROYED:
			r = "destroyed"
		case virt.DOMAIN_SHUTOFF_SHUTDOWN:
			r = "shutdown"
		}
	case virt.DOMAIN_CRASHED:
		s = "crashed"
	case virt.DOMAIN_PMSUSPENDED:
		s = "pm-suspended"
	default:
		s = fmt.Sprintf("state %d", int(st))
	}
	if r == "" {
		r = fmt.Sprintf("reason %d", reason)
	}
	return s + " (" + r + ")"
}

// domainXML is the part of a domain's XML the manager reads.
type domainXML struct {
	Devices struct {
		Interfaces []struct {
			MAC struct {
				Address string `xml:"address,attr"`
			} `xml:"mac"`
			VirtualPort *struct {
				Params *struct {
					InstanceID string `xml:"instanceid,attr"`
				} `xml:"parameters"`
			} `xml:"virtualport"`
		} `xml:"interface"`
	} `xml:"devices"`
}

// parseInterfaces returns the MACs of a domain's interfaces and the
// instance IDs of those with an 802.1Qbg virtual port (libvirt sends them
// as VSIIDs). Interfaces whose MAC or instance ID does not parse are
// skipped.
func parseInterfaces(doc string) (macs []verify.MAC, insts []verify.UUID, err error) {
	var d domainXML
	if err := xml.NewDecoder(strings.NewReader(doc)).Decode(&d); err != nil {
		return nil, nil, fmt.Errorf("parse domain XML: %w", err)
	}
	for _, ifc := range d.Devices.Interfaces {
		if m, err := verify.ParseMAC(ifc.MAC.Address); err == nil {
			macs = append(macs, m)
		}
		if vp := ifc.VirtualPort; vp != nil && vp.Params != nil && vp.Params.InstanceID != "" {
			if u, err := verify.ParseUUID(vp.Params.InstanceID); err == nil {
				insts = append(insts, u)
			}
		}
	}
	return macs, insts, nil
}
