// Package datapath ties each VIF of the inventory to its vNIC datapath and
// to the soft switch, and keeps both consistent with what the edge switch
// answered (DESIGN.md "The flow of one VM start", "Datapath modes").
//
// # Desired and observed state
//
// The desired state of a VIF is its inventory record (kind, host device,
// S-Tag, C-VID) plus the switch's answer to its association: the granted
// VID and, when the answer was signed by the switch and verified, the
// profile (rate, priority, S-Tag mode). package agent/uplink hands the
// answer over on every reconcile pass through [Reconciler.Granted]; the
// inventory feed says when a VIF appears, changes or goes.
//
// Level-triggered, as Kubernetes controllers and Neutron's L2 agents are:
// inventory events, new answers, backoff timers and a periodic resync only
// mark VIFs dirty; one loop compares desired with observed state and
// converges, through consumer-defined interfaces with adapters to the real
// packages:
//
//   - [VNICs] per VIF kind: agent/vnic/sriov ([SRIOV]) for vf VIFs and
//     agent/vnic/partition ([Partitions]) for partition VIFs. Kinds without
//     one (tap, macvtap, veth) have devices libvirt or CNI made.
//   - [SoftSwitch]: agent/softswitch/linuxbridge or agent/softswitch/ovs
//     ([Switch] adapts either) for tap and veth VIFs.
//
// # Order per VIF
//
//  1. The vNIC is ensured as soon as the VIF is in the inventory (pending),
//     before the switch answered: an SR-IOV VF gets its MAC, spoof checking
//     and its link disabled, so nothing it sends reaches the wire yet; a
//     partition gets its S-Tag device.
//  2. When the switch's answer arrives, the vNIC is ensured again with it
//     (the VF's VLAN, rate and link enabled; the partition's S-Tag mode) and
//     the soft-switch port is set from it: VID, MAC allow-list, rate,
//     S-Tag. Granted returns nil only once all of that is in place, and
//     agent/uplink holds the VIF at associated (with the reason Granted
//     gave) until then: a VIF is verified only when the soft switch and the
//     edge port agree.
//  3. When the VIF is gone (or removed, or rejected by the switch), the
//     soft-switch port is removed and the vNIC released (the VF's original
//     settings restored, the partition's devices deleted).
//
// Failures never stop the loop: each is kept as the VIF's datapath error
// and retried with a per-VIF backoff. Granted returns it, and agent/uplink
// then rejects the VIF with it as the reason (shown by `tetherctl vif`)
// until a retry succeeds; without an uplink ([Config.RecordStates]) the
// Reconciler writes that state and reason itself. The last failure is also
// in the datapath's source status (`tetherctl status`).
// Every periodic resync reads each soft-switch port back (Check) and
// repairs drift, or only reports it with [DriftReportOnly]. The drift
// policy is one setting (config key datapath.drift, [vnic.DriftPolicy])
// for the soft switch and both vNIC kinds: agent/vnic/sriov's drift watch
// and agent/vnic/partition's loop get the same one ([FromConfig]).
//
// The datapath's source status also lists every vNIC the managers hold
// ([StatusReporter]): its state (ok, pending, drifted, error), how it
// differs from the desired state and its last failure, which `tetherctl
// status` shows under the sources.
//
// After a restart nothing remembered is trusted: the first pass ensures
// every VIF of the inventory again (each step is idempotent), releases
// what the vNIC managers still hold for VIFs the inventory no longer has,
// and removes the soft-switch ports marked as tether's ([PortLister]) that
// no VIF of the inventory wants: those of VIFs that went while tetherd was
// down.
package datapath
