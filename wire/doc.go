// Package wire holds tether's pure wire formats: the LLDPDU (IEEE 802.1AB-2016,
// built on github.com/mdlayher/lldp's types), the IEEE 802.1 organizationally
// specific TLVs (DCBX ETS/PFC/APP, EVB, CDCP), the Edge Control Protocol
// (IEEE 802.1Qbg-2012 clause 43) and its VSI Discovery Protocol TLVs
// (clause 41), and tether's own organizationally specific TLVs (capability,
// inventory digest, profile, signature, channel binding).
//
// The package does no I/O and keeps no state. Every type has MarshalBinary and
// UnmarshalBinary; encoders also have an append form (AppendBinary) that
// writes into a caller's buffer without allocating. Every decoder checks
// lengths before fields and reports malformed input as a *Error that names
// the TLV and the byte offset; none panics on any input.
package wire
