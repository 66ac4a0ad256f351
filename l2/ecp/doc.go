// Package ecp is the Edge Control Protocol of IEEE 802.1Qbg-2012 clause 43:
// a reliable, ordered, stop-and-wait transport for upper-layer PDUs (VDP,
// clause 41) between an EVB station and the adjacent EVB Bridge, over
// frames of EtherType 0x8940. One Engine serves one port and S-channel, for
// both roles: a station and a bridge each run one and talk through it.
//
// # Not timer-paced
//
// DESIGN.md: "ECP must not be timer-paced: the next PDU goes when the ACK
// arrives". lldpad (qbg/ecp22.c) notes the ACK but only moves on when its
// ACK timer fires, so it sends one ECPDU per 10 µs × 2^RTE. An Engine
// pulls the next ULPDU from its Source in the same step that consumes the
// ACK; the timer only paces retransmissions.
//
// # Batching
//
// The Source is asked for the next ULPDU only when the transmitter is free
// and is told how many bytes fit (1500 less the 4-byte header, less the
// 86-byte signature TLV when signing), so a VDP source packs every VSI TLV
// that queued up during the last round trip into one ECPDU. Whether that is
// allowed was checked against lldpad's VDP 2.2 receiver (qbg/vdp22sm.c,
// vdp22_ecp22in and vdp22_input): it requires a VSI Manager ID TLV first,
// drops a VDPDU with a second Manager ID TLV, and then processes every VSI
// TLV that follows, one after the other, each under that Manager ID.
// lldpad's own sender always puts exactly one VSI TLV in a VDPDU. So a
// batch is one Manager ID TLV followed by any number of VSI TLVs that
// share it (package wire enforces the single Manager ID too); VSIs under
// another manager go in the next ECPDU. The text of the standard itself
// was not available to check beyond that.
//
// # Time
//
// All timers run on a Clock; tests use ecptest.FakeClock and drive them by
// hand. ecptest also has an in-memory lossy Link (Pipe) and an AF_PACKET
// Link for veth pairs in network namespaces.
package ecp
