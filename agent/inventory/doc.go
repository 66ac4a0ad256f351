// Package inventory is tetherd's record of the virtual machines on this host
// and their virtual interfaces (VIFs): the model, the MAC vendor pools, the
// VIF lifecycle state machine and the durable store.
//
// # Model
//
// A VM is a libvirt domain (or a CNI sandbox) named by its UUID. A VIF is one
// vNIC of a VM, named by its MAC address: the host device that carries it,
// its kind (tap, macvtap, SR-IOV VF, 802.1ad partition, veth), its S-Tag and
// C-VID, the libvirt <virtualport> parameters, its port group, and its
// lifecycle state with the last transition and its reason.
//
// # Lifecycle
//
// A VIF's state follows this machine; the VDP requests (IEEE 802.1Qbg-2012
// clause 41) drive most edges. The usual life of a vNIC is
//
//	added -> pending -> associated -> verified -> gone -> deleted (RemoveVIF)
//
// and on a host that a VM migrates to
//
//	added -> pending -> pre-associated -> associated -> verified
//
// The legal edges, exactly (see [CheckTransition]):
//
//	pending        -> pre-associated, associated, rejected, gone
//	pre-associated -> pending, associated, rejected, gone
//	associated     -> pending, verified, rejected, gone
//	verified       -> pending, rejected, gone
//	rejected       -> pending, gone
//	gone           -> (none: terminal until the VIF is re-added)
//
// A transition to the state a VIF is already in is a no-op and is legal from
// every state, so repeating a Change is harmless. pending means recorded and
// not yet associated with the edge switch; pre-associated means the bridge
// accepted a VDP PRE-ASSOCIATE (migration in progress towards this host);
// associated means the bridge accepted a VDP ASSOCIATE; verified means the
// answer carried a signed profile that the agent checked and applied;
// rejected means the bridge or the closed-loop check refused the VIF (it goes
// back to pending when retried); gone means the vNIC left this host and a
// DE-ASSOCIATE is due; the record is deleted (RemoveVIF) once that is done.
//
// UpsertVIF owns two edges itself: re-adding a gone VIF moves it to pending
// ("re-added"), and changing what the edge switch associated (VM, kind,
// S-Tag, C-VID, virtual port, port group) moves a VIF that is not pending
// back to pending ("attributes changed: ..."), because the old association
// no longer describes it.
//
// # Store
//
// [Store] keeps the inventory in a bbolt file (default [DefaultPath]). Every
// [Change] is a batch of operations applied in one bbolt transaction: all of
// them or none. The store keeps a generation number that grows by exactly
// one with every committed Change that modified something and is written in
// the same transaction; a Change that modifies nothing (for example the same
// Change applied twice) commits nothing and leaves the generation alone.
// Every record carries the generation of the Change that last wrote it.
// Records are a compact binary encoding with a type tag, a record version and
// a CRC-32C, so a damaged file is detected record by record; Open checks the
// whole file and quarantines what it cannot trust (see [Report]).
//
// Subscribers get the committed changes as [Event]s in generation order,
// through a buffered channel each; a subscriber that falls behind is dropped
// (its channel is closed and [Subscription.Err] says why), never waited for.
package inventory
