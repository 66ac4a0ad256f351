// Package evb negotiates the IEEE 802.1Qbg-2012 (now IEEE 802.1Q-2018
// clauses 40-43 and D.2.12-D.2.13) parameters that an EVB station and an
// EVB Bridge exchange in LLDP: the EVB TLV (reflective relay, ECP and VDP
// timers) and the CDCP TLV (S-channels). Everything here is a pure
// function of the local configuration and the peer's TLV, so both sides
// (tetherd as the station, tether-switchd as the bridge) compute the same
// result from the same two TLVs.
//
// # EVB TLV
//
// Both roles take, for each of R (ECP retries), RTE (ECP retransmission
// timer exponent), RWD (VDP resource wait delay exponent) and RKA (VDP
// reinit keep-alive exponent), the larger of the local and the peer's
// value, and set the ROL bit of RWD and RKA when the value used is the
// peer's. This is what lldpad's 802.1Qbg-2012 implementation (the
// reference EVB Bridge tether is tested against) computes on both sides;
// taking the maximum means the station never waits less than the bridge
// needs (RWD) and the bridge never times out a VSI the station keeps
// alive (RKA), whichever side is configured larger.
//
// Reflective relay: the station asks with RRREQ; the bridge sets RRCTR
// when the station asks and it has RRCAP; the station reports RRSTAT:
// RRStatusUnknown before it has heard from a bridge, RRStatusEnabled once
// the bridge has set RRCTR, RRStatusNotEnabled otherwise. Group IDs are
// used when the bridge sets BGID and the station SGID.
//
// # CDCP
//
// The station proposes S-channels by S-channel ID (SCID) with S-VID 0
// ("assign one"); the bridge answers with the S-VID it assigns to each
// SCID it accepts. SCID 1 is the default S-channel and always maps to
// S-VID 1. Neither side uses more channels than the smaller of the two
// channel capacities (ChnCap).
package evb
