// Package vnic is tetherd's vNIC datapath: the host-side devices that carry
// each vNIC to the edge switch, and the small types its two kinds share.
//
// Two kinds, one package each:
//
//   - agent/vnic/partition: NIC partitions in software, an IEEE 802.1ad
//     S-Tag device per vNIC on the uplink with an 802.1Q C-VLAN device on
//     top when the profile asks for a C-VID.
//   - agent/vnic/sriov: SR-IOV virtual functions, configured on the
//     physical function (MAC, VLAN and protocol, QoS, spoofchk, trust, link
//     state, rates) with the VF's original settings saved durably first.
//
// Both follow the same contract, the one Kubernetes controllers and
// Neutron's L2 agents follow:
//
//   - Ensure(ctx, spec) and Release(ctx, id) are idempotent: a repeat makes
//     no netlink write, and a crash between any two steps is repaired by the
//     next call (or by the reconcile that follows a restart).
//   - The desired state is durable (a state file under the state directory,
//     replaced atomically); the observed state is always read back from the
//     kernel, never remembered. On start, what an earlier instance made and
//     is no longer wanted is swept, and only devices tether marked as its
//     own are ever touched.
//   - Drift (an operator deletes or changes a device) is noticed through a
//     netlink subscription, which only marks vNICs dirty; one reconcile loop
//     compares desired with observed state and repairs, or only reports
//     when the policy is [DriftReportOnly].
package vnic

import "fmt"

// DriftPolicy says what the reconcile loop does about a vNIC whose devices
// differ from the desired state (config key `drift`).
type DriftPolicy uint8

// The drift policies. The zero value repairs.
const (
	// DriftRepair puts the devices back as desired.
	DriftRepair DriftPolicy = iota
	// DriftReportOnly logs the difference, counts it and shows it in the
	// vNIC's status, and changes nothing.
	DriftReportOnly
)

var driftPolicyNames = [...]string{DriftRepair: "repair", DriftReportOnly: "report-only"}

// String returns the policy's config spelling ("repair", "report-only").
func (p DriftPolicy) String() string {
	if int(p) < len(driftPolicyNames) {
		return driftPolicyNames[p]
	}
	return fmt.Sprintf("DriftPolicy(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p DriftPolicy) MarshalText() ([]byte, error) {
	if int(p) >= len(driftPolicyNames) {
		return nil, fmt.Errorf("vnic: invalid drift policy %d", uint8(p))
	}
	return []byte(driftPolicyNames[p]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "repair" or
// "report-only".
func (p *DriftPolicy) UnmarshalText(b []byte) error {
	for i, n := range driftPolicyNames {
		if string(b) == n {
			*p = DriftPolicy(i)
			return nil
		}
	}
	return fmt.Errorf("vnic: drift policy %q, want repair or report-only", b)
}
