// Package partition makes NIC partitions in software: one IEEE 802.1ad
// S-Tag device per vNIC on the uplink (an S-channel of the station,
// 802.1Qbg-2012 clause 40), with an IEEE 802.1Q C-VLAN device on top when
// the profile asks for a C-VID. The vNIC's traffic leaves the host as
//
//	dst src 0x88a8 S-TCI [0x8100 C-TCI] EtherType payload
//
// # Devices and names
//
// For a vNIC with S-VID s on an uplink with ifindex i:
//
//   - the S-Tag device "tp<i in hex>.<s>": kind vlan, protocol 802.1ad,
//     VLAN ID s, parent the uplink;
//   - when the spec has a C-VID c, the C-VLAN device "tq<i in hex>.<s>":
//     kind vlan, protocol 802.1Q, VLAN ID c, parent the S-Tag device.
//
// The top device (the C-VLAN device if any, else the S-Tag device) is what
// the soft switch attaches. Names are at most 15 bytes ("tp" + at most 8 hex
// digits + "." + at most 4 digits) and deterministic: the uplink's ifindex
// rather than its name keeps them short, and the S-VID suffices because an
// S-Tag is never bound to two vNICs of one uplink. Both devices carry the
// ifalias "tether:<vNIC MAC>"; only VLAN devices with that mark are ever
// changed or deleted. A device that has one of our names, the right kind,
// protocol, VLAN ID and parent but no alias at all is taken as ours: it is
// what a crash between creating a device and marking it leaves (the kernel
// ignores IFLA_IFALIAS in a create request). Any other device with one of
// our names is an *ForeignDeviceError.
//
// # Switch and I/O-extender mode
//
// The mode comes from the switch's signed profile (wire.TetherProfile.Mode)
// for an S-channel the CDCP negotiation made operational ([Negotiated]). In
// both modes the host pushes the S-Tag on every frame of the vNIC and pops
// it on receive (the station always terminates its own S-channels), so the
// device stack is the same. The mode says what the edge does with the tag,
// and the host follows in one thing: the MTU.
//
//   - Switch mode ([wire.TetherSTagSwitch]): the edge strips the S-Tag on
//     ingress, so past the edge the frame is as long as on an unpartitioned
//     uplink. Both devices get the uplink's MTU.
//   - I/O-extender mode ([wire.TetherSTagIOExtender]): the S-Tag travels on
//     into the network, so every frame of the vNIC is 4 bytes longer there
//     than in switch mode. The host takes those 4 bytes from the vNIC: both
//     devices get the uplink's MTU minus 4, so a network sized for the
//     uplink's MTU carries the vNIC's frames. The soft switch must not
//     strip or rewrite the S-Tag for such a vNIC's port (it never sees it:
//     the S-Tag device terminates it below the bridge port).
//
// A spec's MTU, when set, overrides both (at most the uplink's MTU).
//
// # Bindings and durable state
//
// An S-Tag of an uplink is bound to at most one vNIC: ensuring a second
// vNIC with it is an *STagBoundError (errors.Is ErrSTagBound) and changes
// nothing. (The scope is the uplink: an S-VID names an S-channel of one
// station-bridge link.) The desired state, bindings included, lives in the
// directory StateDir ("partitions") under the state directory, one small
// JSON file per vNIC replaced atomically (internal/atomicfile), so an
// Ensure's durable write costs the same with 10 vNICs as with 4,000. It is
// written before any device changes: Ensure records first and then makes
// the devices, Release forgets first and then deletes them, so a crash at
// any step leaves either a desired vNIC the next reconcile finishes or a
// marked device the next sweep deletes. On Open, every VLAN device read
// back from the kernel that carries the mark but is not desired (or not
// under its desired name) is deleted. A vNIC whose devices could not be
// made (uplink missing, a foreign device in the way) stays desired and
// bound, in state "error", and the loop retries it with a backoff until
// it converges or is released.
//
// # Drift
//
// A netlink link subscription in the manager's network namespace marks a
// vNIC dirty when one of its devices or its uplink changes; the events are
// hints, never trusted. Run's loop reads the dirty vNICs back from the
// kernel and compares them with the desired state: missing device, down,
// MTU, kind, protocol, VLAN ID, parent and master. With vnic.DriftRepair it
// puts them back; with vnic.DriftReportOnly it logs the difference once per
// change, counts it (Stats.Drifts) and shows it in Status. A full resync
// marks every vNIC dirty periodically and after the subscription fails.
package partition
