// Package enforce programs the edge switch's datapath so that a managed port
// forwards only frames from verified (source MAC, VID) pairs. It owns one
// nftables table in the bridge family (github.com/google/nftables) and is
// what tether-switchd calls once an ASSOCIATE has been verified, and again
// on DE-ASSOCIATE, keepalive timeout or a lost LLDP neighbour.
//
// # Ruleset
//
// The table (default "tether") holds, with P standing for a port's name:
//
//	chain prerouting { type filter hook prerouting priority -200; policy accept;
//		iifname vmap @ports }
//	map ports { type ifname : verdict }        "P" : jump port-P, one per managed port
//	set control { type ether_addr . ether_type }  LLDP and ECP to 01:80:c2:00:00:{00,03,0e}
//	chain port-P {
//		ether daddr . ether type @control counter name ctl-P [meta broute set 1] accept
//		ether type 0x8100 ether saddr . vlan id @allow-P counter name acc-P accept
//		ether type != {0x8100, 0x88a8, 0x9100} ether saddr . 0 @allow-P counter name acc-P accept
//		counter name drop-P drop }
//	set allow-P, held-P { type ether_addr . inet_service }   the pairs, VID in the second field
//	counter ctl-P, acc-P, drop-P
//
// Every per-pair operation is one element added to or deleted from a set:
// a single netlink transaction with no chain rewrite, O(1) in the kernel's
// hash set whatever the number of pairs. That is what keeps "event to rule
// installed" far below the 5 ms target (see BenchmarkAllowRevoke).
// Managing a port adds its chain, sets, counters and dispatch element in
// one transaction, so a port is never half set up.
//
// # Why the prerouting hook
//
// The bridge family's prerouting hook sees every frame that enters the
// bridge from a port, whether it will be forwarded to another port or
// delivered to the bridge's own stack (switchd's address on br0): one hook
// covers both, where forward would miss traffic to the switch itself and
// input would miss forwarded traffic. Above all, prerouting runs before the
// bridge learns the source address (br_handle_frame_finish): a frame
// dropped here never enters the FDB, so a host cannot steal a verified
// VM's MAC on another port by merely sending from it. The forward hook
// runs after learning and would let that poisoning through. The tests
// check the FDB.
//
// Link-local frames (01:80:c2:00:00:0X) follow their own path in the
// bridge: 01:80:c2:00:00:0e (LLDP) is handed to the port's sockets without
// any netfilter hook, and the other addresses not forwarded by
// group_fwd_mask only see the input hook; the bridge never forwards them,
// so the enforcer has nothing to do for them. 01:80:c2:00:00:00 is the
// exception: with STP off the Linux bridge forwards (floods) it like any
// multicast, and it does pass prerouting.
//
// # Control frames
//
// LLDP (EtherType 0x88cc) and ECP (0x8940) sent to one of the three IEEE
// 802.1 group addresses always pass, whatever their source, since they are
// how a host gets verified. The match is narrow on purpose: LLDP or ECP
// EtherTypes to any other destination are dropped like other unverified
// traffic, so they cannot carry data between hosts.
//
// "Pass" has to mean reaching switchd's AF_PACKET socket on the port (a
// socket bound to the EtherType, as l2/rawsock opens them). For
// 01:80:c2:00:00:0e and :03 the bridge does that by itself. For
// 01:80:c2:00:00:00 (nearest customer bridge: LLDP with EVB/CDCP, and
// ECP/VDP) on a bridge with STP off it does not: the frame is flooded to
// the other ports and never handed to the port's own protocol sockets. On
// kernels with NFT_META_BRI_BROUTE (Linux 6.4 and later, built with
// CONFIG_NFT_BRIDGE_META) the control rule sets `meta broute`, which makes
// the bridge hand the frame to the port's sockets instead of bridging it
// (as ebtables' broute table did). New probes for it; Enforcer.Broute
// reports the result. Without it (Debian 12's 6.1, or a kernel without
// CONFIG_NFT_BRIDGE_META) such frames are accepted and bridged: switchd then
// has to read them with an ETH_P_ALL socket on the port, or run the bridge
// with STP on (the bridge then keeps 01:80:c2:00:00:00 to itself).
//
// # Tagged and untagged frames
//
// A Pair's VID names the outer tag with the configured TPID (0x8100 by
// default; 0x88a8 for switch-mode ports). In the bridge hooks the kernel has
// already moved the tag into the skb's metadata; nftables payload loads at
// the link-layer header put it back, so `ether type` reads the TPID and
// bytes 14-15 the TCI, of which the rule keeps the 12-bit VID. `vlan id`
// only ever matches tagged frames, so untagged frames get their own rule:
// any frame whose EtherType is not a tag (0x8100, 0x88a8, 0x9100) looks up
// the key (source MAC, 0), VID 0 being written into the key's second field
// by an immediate. Pair{VID: 0} therefore means untagged, and also covers
// priority-tagged frames (802.1Q tag with VID 0), as IEEE 802.1Q treats
// them. With TPID 0x8100 a pair may also name an S-channel (Pair.SVID):
// frames in an 802.1ad S-Tag (0x88a8) look up (source MAC, S-VID, VID),
// the VID being the one of a C-Tag inside the S-Tag or 0 without one; a
// pair without SVID never matches a frame in an S-Tag, nor one with SVID a
// frame without. Frames with another tag than the configured TPID never match. `nft
// list ruleset` prints the untagged rule's constant as "0x0 [invalid
// type]": cosmetic, the kernel's rule is exact.
//
// # Pending pairs
//
// Pending installs a pair into the port's held set, which no rule looks
// at: the pair is in the kernel (it survives a restart, Observed reports
// it) but lets nothing through. Activate moves it to the allow set in one
// transaction (add to allow, delete from held): atomic, one round trip.
// This is the hook for VDP PRE-ASSOCIATE before a migration.
//
// # Restarts
//
// The kernel is the truth. Close leaves the table in place, so traffic of
// verified pairs keeps flowing while switchd restarts. A new Enforcer
// (New is idempotent and keeps every port and pair) reads the state back
// with Observed; switchd re-learns its associations and calls Sync with
// the complete desired state. Sync adds what is missing before it removes
// anything, never touches a pair present on both sides, and removes only
// what desired lacks; a port desired lists is repaired if its chain was
// changed behind the Enforcer's back (rules carry a "tether/v1 ..."
// comment naming their role, compared on every ManagePort and Sync).
//
// Everything works per network namespace: Options.NetNS selects the
// namespace the netlink socket is opened in.
package enforce
