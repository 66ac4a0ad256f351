// Package vdp is the VSI Discovery and Configuration Protocol of
// IEEE 802.1Qbg-2012 clause 41 (VDP 2.2): the station and bridge state
// machines for each VSI (41.5), on top of an ECP engine (package ecp, clause
// 43), with tether's signing policy (DESIGN.md "Wire decisions").
//
// A Station (tetherd, one per uplink and S-channel) asks the bridge to
// PRE-ASSOCIATE (with or without resource reservation), ASSOCIATE or
// DE-ASSOCIATE a VSI, waits for the answer at most Timing.ResponseWait,
// keeps the association alive with a repeat of its request every
// Timing.KeepAlive, and reports what the bridge does on its own.
//
// A Bridge (tether-switchd, one per port and S-channel) answers requests,
// asking a pluggable Decider (the closed-loop verifier) for every request
// that changes a VSI's state, assigns a VID for a null VID through it,
// sends the profile TLV with its answer, and releases VSIs whose
// keep-alives stop.
//
// # Batching
//
// Both roles queue their VSI TLVs and let the ECP engine pull them when
// its transmitter is free: every TLV that queued up during a round trip
// goes in the next ECPDU, up to 1500 bytes, under one VSI Manager ID TLV
// (see package ecp for what lldpad accepts). 4,096 ASSOCIATE requests with
// one MAC/VID filter each (35 bytes) travel in about 100 ECPDUs of up to 42
// TLVs (39 when signed) instead of 4,096.
//
// # Signatures
//
// Security says how frames are signed and checked. When the peer
// advertises tether's capability, every ECPDU this package sends carries
// the signature TLV (the ECP engine signs each request frame once; a
// retransmission repeats it), and every ECPDU it receives must carry a
// valid one; the check runs after ECP's duplicate detection, since a
// retransmission repeats the counter. A peer without the capability gets
// plain standard VDP, and its plain VDP is accepted (interop mode), unless
// RequireSigned refuses both. ACKs carry no payload and are not signed: a
// forged ACK can at worst make a request look delivered, and the
// response wait timer catches that.
//
// An organizationally specific TLV in a VDPDU belongs to the VSI TLV
// before it (tether's profile TLV follows the VSI TLV it answers); the
// signature TLV ends the VDPDU.
package vdp
