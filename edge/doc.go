// Package edge is the switch side of tether (tether-switchd): the port table,
// the VDP bridge state machine, the closed-loop verifier, the nftables
// enforcer and the visibility views. Not built yet: see issue 4.
package edge
