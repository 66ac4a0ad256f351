// Package uplink is tetherd's side of the link to the edge switch: on one
// uplink interface it runs the LLDP agent (station, to the nearest
// customer bridge), negotiates EVB as the station, runs the VDP station
// over ECP, and reconciles the inventory's VIFs with the station's VSIs
// (DESIGN.md "The flow of one VM start").
//
// # LLDP
//
// The LLDPDU carries the EVB TLV (package evb, station role, echoing the
// bridge's), a CDCP request for the default S-channel, the DCBX ETS and PFC
// TLVs from configuration, tether's capability TLV (protocol version, host
// role, host key ID, and the require-signatures flag) and the inventory
// digest, and is signed with the host key. The digest is SHA-256 over the
// sorted (MAC, VM UUID, C-VID, S-Tag, kind) of every VIF that is not gone,
// so it changes when what the switch should have associated changes, not
// with every state transition; each change starts LLDP fast transmission.
//
// The switch is the LLDP neighbour that sends an EVB TLV in bridge mode
// (preferring one with tether's capability). Received LLDPDUs are checked
// against the enrolled switch keys; an unsigned one is kept as plain LLDP
// and judged by the policy below, a badly signed one is dropped.
//
// # VSIs
//
// One VSI per VM: the VSIID is the VM's UUID (format UUID, which the
// switch's closed-loop check reads as the VM), and the VSI has one MAC/VID
// filter per VIF of the VM that is not gone, ordered by MAC, with the VIF's
// C-VID as VID (0 is the null VID: the switch assigns one). A VM that is
// paused and not yet associated (the destination of a live migration) is
// PRE-ASSOCIATEd; a running one ASSOCIATEd.
//
// # Reconciliation
//
// Level-triggered: inventory events, LLDP neighbour changes, VDP outcomes
// and backoff timers only mark the uplink dirty. One loop then takes a
// snapshot of the inventory, compares it with the VSIs the station holds
// and converges:
//
//   - a VM whose filters the station does not hold (or holds with other
//     MACs or VIDs) is (re-)associated;
//   - a VM whose VIFs are all gone is de-associated, and a gone VIF is
//     removed from the inventory (RemoveVIF) once the station no longer
//     holds it in a VSI;
//   - every VIF's state follows what the station holds: associated when
//     the switch granted its filter, verified when that answer was signed
//     by the enrolled switch key the switch's LLDPDU advertises and carried
//     a profile whose VID matches the grant; rejected, with the switch's
//     reason code, when the switch refused it.
//
// Refusals and timeouts back off per VM (Config.RetryMin doubling up to
// Config.RetryMax); a refusal with the hard-error bit is not retried until
// the VM's filters change. The station's keep-alives (package vdp) keep
// associations alive; a failed keep-alive or a DE-ASSOCIATE from the
// switch moves the VIFs back to pending and the loop re-associates them.
//
// Nothing is trusted across a restart: when an uplink session starts (and
// after the link fails) every VIF that is not pending or gone goes back to
// pending and is associated again; the switch treats a repeat of the same
// association as a keep-alive.
//
// # Live migration
//
// Migrations takes libvirt's qemu hooks on the destination of a live
// migration (see its documentation for the hook order relied on): the
// migrate hook records the incoming VM, paused, and its vNICs from the XML
// at once, so the loop PRE-ASSOCIATEs them before the VM runs; the started
// hook marks the VM running (the loop ASSOCIATEs it) and returns only when
// the switch has granted the ASSOCIATE (WaitAssociated, at most
// migration.started_wait), so libvirt resumes the guest with its rule
// live. With migration.mode post-move (Config.PostMove) nothing is
// pre-associated and the started hook does not wait: the older behaviour,
// kept to measure against (tests/lab: make demo).
//
// # Signing policy
//
// VDP is signed when the switch advertises tether's capability and plain
// (interop mode) otherwise. With RequireSigned a switch that does not
// advertise the capability, or whose LLDPDUs are not signed by an enrolled
// key, gets no VDP at all: its VIFs are rejected with a reason that says
// so, and are retried when the neighbour changes.
package uplink
