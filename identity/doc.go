// Package identity holds tether's Ed25519 host and switch keys and signs and
// verifies tether's frames (DESIGN.md "Wire decisions").
//
// A PrivateKey is generated once per host or switch, saved with mode 0600
// and refused on load when group or others can read it. Its KeyID (the
// first 8 bytes of SHA-256 over the public key) names it on the wire and in
// the policy store, where the public key is enrolled.
//
// A Signer appends tether's signature TLV to an LLDP or ECP/VDP frame; a
// Verifier checks it against the enrolled key (a KeyStore) and a replay
// window. What the signature covers is defined in package wire (sign.go):
// destination MAC, source MAC, EtherType and every frame byte before the
// 64 signature bytes, key ID and counter included.
//
// # Counters and replay
//
// Every signature carries a 64-bit counter, strictly increasing per key and
// channel. A channel is a string the caller chooses for one ordered stream
// of frames, for example "eth2" for the LLDP agent of an uplink and
// "eth2/svid=5" for ECP on one S-channel. LLDP and ECP deliver frames in
// order (ECP is stop-and-wait), so the receiver accepts only a counter
// strictly greater than the last one it accepted on that channel (no
// IPsec-style reordering window). ECP retransmits a request unchanged after
// a lost ACK; the ECP receive state machine recognizes the repeated
// sequence number and only ACKs it, so a Verifier must see each ECPDU once,
// after that duplicate check.
//
// Both sides persist their counters in a CounterStore so a restart never
// weakens the guarantee:
//
//   - The Signer reserves counters in blocks: before using a counter above
//     the persisted mark it durably stores mark+Block. A crash loses at
//     most the unused rest of a block, and no counter is ever used twice,
//     at the cost of one synchronous write every Block frames.
//   - The Verifier persists the last accepted counter synchronously before
//     it reports the frame as good, so after a restart an old frame is
//     still refused. Batching here would open a replay window of the batch
//     size after a crash, or force the receiver to jump its mark forward
//     and refuse legitimate frames; neither is worth the saved write, since
//     FileCounterStore commits concurrent writes in one fsync (group commit)
//     and a channel carries at most one ECPDU per round trip anyway.
//
// Counters are scoped by channel, so a frame captured on one channel and
// replayed on another channel of the same receiver is judged against the
// other channel's mark. The receiver must therefore also check that the key
// belongs to the neighbour on that port (edge does), and a caller that
// needs more can use one channel per peer on both sides.
package identity
