// Package softswitch holds what the host's soft switches share: the desired
// state of one VM port ([Port]), its mapping from the profile the edge switch
// answered with ([FromProfile]), and the comparison of observed against
// desired state ([Compare]) that keeps the soft switch consistent with the
// edge port (DESIGN.md "Datapath modes", VEB).
//
// In VEB mode the soft switch forwards VM-to-VM traffic on one host and the
// edge switch forwards between hosts; the soft switch gets the same VID, MAC
// allow-list and rate as the edge port, so a VM that sends with a MAC it does
// not own is dropped at the soft switch, before the wire.
//
// Two implementations enforce a Port: agent/softswitch/linuxbridge (a Linux
// bridge with vlan_filtering, the MAC allow-list in the nftables bridge
// family, the rate with tc) and agent/softswitch/ovs (Open vSwitch through
// OVSDB). Each reads its ports back from the kernel or OVSDB as Port values,
// so [Compare] tells what differs.
package softswitch
