// Package switchd is tether-switchd's logic (issue 4): the bridge role of
// LLDP, EVB, CDCP and VDP/ECP on every managed port of a Linux bridge, the
// closed-loop verification of every association (package edge/verify), and
// its enforcement with nftables in the bridge family (package edge/enforce).
// cmd/tether-switchd only parses flags and calls RunConfig.
//
// # One port
//
// For each managed port (a list, or every port of the bridge, followed as
// ports join and leave it) switchd opens two AF_PACKET taps filtered to
// LLDP and ECP (rawsock's BridgePort mode: the bridge consumes a port's
// frames before EtherType-bound sockets would see them) and runs:
//
//   - an LLDP agent (lldpagent) to the nearest customer bridge address,
//     signed with the switch key, advertising tether's capability, the EVB
//     TLV in bridge mode and the CDCP answer; received LLDPDUs are verified
//     against the enrolled host keys (VerifyWith). The agent's neighbour
//     table is the verifier's Neighbours: which host, and which key, is
//     behind the port;
//   - the EVB and CDCP negotiation (package evb) on every neighbour change:
//     the operating R, RTE, RWD and RKA become the VDP bridges' timing; the
//     CDCP assignment is advertised, and each assigned S-channel besides
//     the default one gets a VDP bridge of its own (schannel.go: an ECP
//     tap of that S-VID only, frames written in its S-Tag, the S-VID
//     bound into the signatures; its claims carry the S-Tag and its rules
//     match it);
//   - a VDP bridge (vdp.Bridge) on its own ECP engine, whose signatures are
//     checked with the verifier's identity.Verifier (one replay window per
//     channel, shared with the LLDP checks, persisted under state_dir) and
//     whose Decider is the port (Decide);
//   - a worker that applies what the protocols report: DE-ASSOCIATE,
//     keep-alive expiry, a neighbour lost or changed, a VM that migrated
//     away, and every ReconcileInterval compares the associations with the
//     VDP bridge and the neighbour (level-triggered: events only speed it
//     up).
//
// # One request
//
// Decide runs the verifier's checks 3 to 7 (CheckVerified; in interop mode,
// require_signed: false, an unsigned request from a station that is not
// tether-capable gets CheckUnsigned instead: the port's unsigned LLDP
// neighbour names the host, the rest of the loop is the same; key enrolled for
// the host the LLDP neighbour names, same key on the neighbour, the VM
// manager confirms the VM on that host with those MACs, no MAC live
// elsewhere unless a confirmed migration, S-Tag free), asks the
// ProfileSource for the profile (see Profiles below), gives a null VID the
// profile's VID,
// and then programs the enforcer before it returns: PRE-ASSOCIATE installs
// the (MAC, VID) pairs held back (Pending), ASSOCIATE allows them (Activate
// when they were pending, Allow otherwise). Only then does the VDP bridge
// send "success" with the VID and the profile TLV, in an ECPDU signed with
// the switch key: the rule is in place when the station hears it. Every
// refusal, the verifier's or switchd's own (no-profile, vid-mismatch,
// enforce-failed, neighbour-changed), and every frame the VDP bridge
// refuses (bad signature, replay, unknown key, unsigned) goes into the
// rejects ring of the API.
//
// The work on one VSI of one port (its decisions and its removals) is
// serialized by a striped lock; every record carries a generation, so an
// event about an older association never removes a newer one.
//
// # Profiles
//
// The profile of an accepted request comes from a ProfileSource
// (Options.Profiles), which answers from memory. Stack mode
// (StackProfiles, what RunConfig sets up): the configuration file's
// profiles: (by VSI Type ID, else the port group the request names, else
// "default"), read again when the file's content changes (polled every
// second: size, modification time and SHA-256) and on SIGHUP; a file that
// does not parse or validate keeps the profiles in force and logs why.
// DC-wide (PolicyProfiles; RunConfig with the configuration's policy:
// section, see dcpolicy.go): the VM's port group and profile from
// tether-policyd's store through the watch-fed policy/cache, whose
// placement records are also the VM manager (PolicyVMManager). A change
// announced by the source (ProfileNotifier) is re-applied to the live
// associations (ReapplyProfiles): a new VID ends the association (rule
// revoked, DE-ASSOCIATE) so that the station associates again and is
// granted the new VID, rule first; any other change replaces the VDP
// bridge's grant, which the answer to the next keep-alive carries.
//
// # Live migration
//
// The destination's tetherd PRE-ASSOCIATEs the incoming VM before it runs
// (from libvirt's migrate hook): verified like any request (the VM manager
// must report the VM migrating in, or already there), the profile fetched,
// the pairs installed held back. Its ASSOCIATE (from the started hook)
// activates them, which a confirmed migration lets take the MACs over from
// the source's port. libvirt runs that started hook in the migration's
// Prepare phase, before the memory transfer, while the guest still runs on
// the source: so when the VM manager confirms the migration in progress
// (the source reports the VM migrating out or the destination migrating
// in, and the source still has it), the source's pairs keep passing
// (migration overlap, overlap.go) until the source de-associates (its
// stopped hook after the switchover), its keep-alives stop, the VM manager
// no longer reports the VM there, or migration_overlap (default 1m) after
// the destination's ASSOCIATE; tetherctl switch vms shows both ports
// meanwhile, the source's with the note "migrating: source until
// de-associate". Otherwise the source's association ends at once and its
// station is told. Only that VM's pairs on those two ports overlap; any
// other claim on its MACs is still refused (mac-live-elsewhere). The
// profile is looked up the same way at both ends, so the destination gets
// the source's. Stack mode's placements: file (PlacementVMManager)
// records which VMs run where, in which state, for hosts without a libvirt
// VM manager (and for the lab, where libvirt's test driver cannot migrate).
//
// # What removes a rule
//
// A DE-ASSOCIATE from the station, the VDP bridge's keep-alive timeout, a
// refusal without KEEP of a VSI that was associated, the port's LLDP
// neighbour expiring, shutting down, or changing host or key (every rule of
// the port goes, and the station is told with DE-ASSOCIATE), a confirmed
// migration of the VM to another port of this switch (at once, or at the
// end of the migration overlap), the port failing or
// leaving the bridge. Each revokes the pairs and releases the MACs in the
// verifier's table of live MACs.
//
// # Restarts
//
// The kernel's table is the truth about what passes, and switchd never
// flushes it at start. Stopping switchd leaves every rule in place
// (enforce.Enforcer.Close), so verified traffic keeps flowing while it is
// down. A new switchd puts each managed port under enforcement again
// (ManagePort is idempotent and keeps the pairs), reads what it inherited
// (Observed) and waits for the stations: their next keep-alive is a request
// for a VSI the new VDP bridge does not know, so it is verified afresh and
// re-populates the association (and re-installs the pair, a no-op). A
// request that arrives before the station's next LLDPDU waits up to
// NeighbourWait for it. Only after a grace period of twice the VDP
// keep-alive period (10 µs × 2^RKA, the larger of the configured and any
// station's negotiated value, or restart_grace) does switchd Sync the
// enforcer with the associations it has re-learnt: pairs no station
// re-associated are removed then, and only then. Every ResyncInterval
// afterwards the same Sync repairs drift. Sync never removes a pair that
// is desired, and per-pair changes wait while it runs.
//
// What is lost across a restart is what lived only in switchd's memory:
// the table of live MACs (edge/verify's MemoryLocations, until issue 5's
// etcd table), the VDP bridges' VSIs and the rejects ring. During the grace
// period a MAC whose association has not been re-learnt yet is therefore
// not known to be live on its port; a claim for it from another port still
// has to pass the VM manager check.
//
// # The bridge and 01:80:c2:00:00:00
//
// LLDP with EVB/CDCP and ECP go to the nearest customer bridge address,
// 01:80:c2:00:00:00. A Linux bridge with STP off floods frames to that
// address to its other ports (the taps still hear them, but so do the other
// hosts); with STP on it keeps them. On kernels with nftables' meta broute
// the enforcer keeps them from being bridged; on others (Debian 12's 6.1, the
// test machines' 6.18 without CONFIG_NFT_BRIDGE_META) run the bridge with
// STP on. RunConfig warns when neither holds.
package switchd
