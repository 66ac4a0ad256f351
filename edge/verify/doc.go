// Package verify is tether-switchd's closed-loop verifier (issue 4): it
// decides whether a VDP request (a VSI "claim": this VM, with these MACs,
// on this port) may make the MACs live on a switch port. Nothing is
// trusted on the host's word alone: the host's signed claim must agree
// with the LLDP neighbour on the port, with an independent VM manager, and
// with the data centre's table of live MACs.
//
// # Checks
//
// Check runs them in this order and stops at the first failure, which is
// a typed Reason with a human message:
//
//  1. signature: the ECPDU carries tether's signature TLV (else
//     unsigned-refused), its key is enrolled (else unknown-key), and the
//     Ed25519 signature verifies (else bad-signature);
//  2. the counter is beyond the channel's replay window (else replay); the
//     new high-water mark is durable before anything else happens;
//  3. the key is enrolled for the host that the port's LLDP neighbour
//     names (else key-not-enrolled-for-host: host A's key on host B's
//     port, a switch key, or no known host on the port);
//  4. the same key signed that LLDP neighbour (else
//     neighbour-key-mismatch);
//  5. the VM manager confirms the VM (the VSIID, a UUID) on that host with
//     each claimed MAC (else vm-manager-denies; no answer within
//     Config.VMTimeout is vm-manager-unavailable);
//  6. no claimed MAC is live on another port of the data centre, or for
//     another VM, unless this is a confirmed migration (else
//     mac-live-elsewhere);
//  7. the S-Tag is not bound to another vNIC on the port (else
//     stag-bound-elsewhere).
//
// A frame that is not an ECP VDP request, a VSI that is not one of the
// signed frame's VSI TLVs, a response, a VSIID that is not a UUID or a VSI
// without a unicast MAC filter is malformed. A failure of the verifier's
// own stores is internal (and also returned as an error).
//
// Every refusal is counted per reason (Stats) and logged with slog
// (component=edge/verify) at most Config.LogBurst lines at once and one
// per Config.LogInterval per port, so a flood of forged frames on one
// port neither floods the log nor hides other ports' refusals. A refusal
// changes nothing: no location claimed, no S-Tag bound.
//
// # Interop mode
//
// CheckUnsigned decides on a claim without signature (a plain 802.1Qbg
// station such as lldpad, on a switch configured with require_signed:
// false): checks 1 to 4 cannot run, so the port's LLDP neighbour must be
// unsigned and name its host (System Name TLV), and checks 5 to 7 run with
// that host. A port whose neighbour signs gets no unsigned claim accepted.
//
// # Modes
//
// ASSOCIATE runs all checks and commits: each MAC becomes live at this
// switch and port (Locations.Claim, a compare-and-swap against the entry
// that check 6 read, so two ports racing for one MAC cannot both win), and
// the S-Tag is bound; a lost race undoes the whole claim. PRE-ASSOCIATE
// (with or without resource reservation) runs all checks and commits
// nothing. DE-ASSOCIATE runs checks 1 to 4 and releases the association.
//
// # Confirmed migration
//
// A MAC live at another port for the same VM may be taken over when the
// VM manager says the VM is migrating into this host (libvirt: the
// destination domain is paused for an incoming migration) or has just
// migrated in (running with reason "migrated", or in post-copy); when the
// other port belongs to the same host (the vNIC moved uplinks); or when
// the VM manager, asked afresh about the other port's host (Forgetter),
// says the VM is gone from there or migrating out. The ASSOCIATE then
// moves the entry and reports the old location in Decision.Released, so
// the old port stops passing the MAC. A MAC held by another VM is never
// taken over.
//
// # Throughput and the replay store
//
// identity.Verifier persists each accepted counter in its CounterStore
// before it reports the frame good (Store returns only when the mark is
// durable) and holds the channel's window lock meanwhile, so every
// decision is returned only after its mark is durable, and one channel
// verifies at most one frame per write. Throughput therefore comes from
// many channels sharing each write (group commit):
//
//   - CheckBatch works on up to Config.MaxParallel channels at once, each
//     channel's claims in order; a frame with several VSI TLVs (a VDP
//     bridge batches up to 39 into one signed ECPDU) is verified once.
//     VDP bridges of different ports (Decider) are concurrent anyway.
//   - GroupCommitStore is the replay store to use: every Store waits on a
//     channel, and one flusher writes all the marks that arrived while the
//     other goroutines ran, with one atomic file write (two fsyncs).
//     identity.FileCounterStore also shares writes between concurrent
//     Stores, but it writes on the first Store's goroutine, in system
//     calls that keep the scheduler's P; with GOMAXPROCS=1 (one switch
//     core) nothing else runs meanwhile and its writes carry about one
//     mark each. The two use the same file format and lock file.
//
// BenchmarkVerifiedAssociates gives the figures; a single caller that
// waits for each decision before it sends the next (Check in a loop)
// stays at one write per claim whatever the store.
//
// # Tables
//
// Keys, Neighbours, VMManager, Locations and STags are small interfaces.
// StaticKeys, NeighbourTable, MemoryLocations and MemorySTags hold them in
// memory for one switch; NeighboursFromLLDP reads the LLDP agents'
// neighbour tables; package edge/vmmanager asks each host's libvirt. The
// data-centre-wide Locations table (etcd, issue 5) implements the same
// interface with the entry's revision as Location.Rev.
package verify
