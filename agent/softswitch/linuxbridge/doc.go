// Package linuxbridge is tetherd's soft switch on a Linux bridge: it
// enforces a [softswitch.Port] (the profile the edge switch answered with)
// on the port of a VM's tap or vNIC, so that the soft switch and the edge
// port agree (DESIGN.md "Datapath modes", VEB).
//
// What it keeps, all read back from the kernel (the kernel is the truth,
// not memory of what was configured):
//
//   - The bridge, with vlan_filtering on and vlan_default_pvid 0 (a port
//     forwards nothing until Ensure gives it VLANs). Where S-Tags cross the
//     soft switch (Options.STag) the bridge's vlan_protocol is 802.1ad, set
//     with a raw RTM_NEWLINK request (IFLA_BR_VLAN_PROTOCOL: netlink v1.3.1's
//     Bridge type has no field for it); frames then leave the uplink with an
//     0x88a8 S-Tag, otherwise with an 0x8100 C-Tag.
//   - Per port, the bridge VLANs (`bridge vlan`): the port's VLAN
//     ([softswitch.Port.BridgeVID], or Options.UntaggedVID for 0) as PVID,
//     egress untagged; trunks tagged. The uplink carries the union of the
//     ports' VLANs tagged (Options.UntaggedVID untagged), pruned on Remove.
//   - Per port, the MAC allow-list in an nftables bridge-family table
//     (default "tether-sw-" + bridge): a prerouting chain at priority -200
//     dispatches on iifname through a verdict map to the port's chain, which
//     accepts frames whose source MAC is in the port's set and drops (and
//     counts) the rest, before the bridge learns or forwards them.
//   - Per port, the rate: what the VM sends arrives on the host side of its
//     tap as received traffic, so an ingress qdisc with a matchall filter
//     and a police action (exceed: drop) on the port limits what the VM
//     sends, without delaying what it receives.
//
// Not enforced here: the priority (a bridge tags frames with PCP 0) and,
// on an 802.1ad bridge, the C-VLAN inside the S-Tag; the S-Tag mode matters
// only to the edge switch. Check copies these fields from the desired port.
//
// Ensure and Remove are idempotent and repair whatever differs; Check
// compares the port read back with the desired one; Sync, on start, repairs
// every desired port and removes ports an earlier instance left.
package linuxbridge
