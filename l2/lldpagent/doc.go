// Package lldpagent is an IEEE 802.1AB-2016 LLDP agent for one port and one
// destination address, shared by tetherd (station side) and tether-switchd
// (bridge side).
//
// # Transmit
//
// The transmit side follows the TX timer and TX state machines of
// 802.1AB-2016 9.2.8 and 9.2.9: a regular LLDPDU every msgTxInterval (30 s)
// with TTL = min(65535, msgTxInterval * msgTxHold + 1) (121 s); fast
// transmission, txFastInit (4) LLDPDUs msgFastTx (1 s) apart, when a new
// neighbour appears; and a credit of at most txCreditMax (5) LLDPDUs that
// refills by one per second, so no burst of changes can make the agent
// send more than that. One deviation, asked for by tether's issue 4: a
// local change (Agent.Update finds that the LLDPDU changed) starts fast
// transmission too, where the standard sends a single LLDPDU. When Run's
// context ends the agent sends a shutdown LLDPDU (TTL 0, mandatory TLVs
// only) so the neighbours drop it at once.
//
// The content comes from Config.Build. Config.Sign, when set, receives the
// complete Ethernet frame and returns it signed; SignWith adapts an
// identity.Signer, whose signature TLV is the last TLV before End. Frames
// are padded to the Ethernet minimum after signing.
//
// # Receive
//
// Frames come through a rawsock.Receiver: one goroutine per port, a token
// bucket and a bounded channel, so a flood on one port costs that port's
// budget and nothing else (see package rawsock). Each admitted frame is
// decoded with wire.LLDPDU (which stops at End and ignores padding);
// malformed frames are counted and dropped. Config.Check, when set, judges
// a well-formed frame before it touches the neighbour table (VerifyWith
// adapts an identity.Verifier). The table is keyed by the MSAP identifier
// (chassis ID, port ID), bounded by Config.MaxNeighbors (frames from new
// neighbours beyond it are counted and dropped, 802.1AB tooManyNeighbors),
// and every entry expires TTL seconds after its last LLDPDU. Additions,
// changes, expiries and shutdowns are reported to Config.OnEvent.
//
// Time comes from a Clock, so tests can run the state machines on a fake
// one.
package lldpagent
