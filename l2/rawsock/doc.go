// Package rawsock moves raw Ethernet frames of one EtherType on one network
// interface, for the link-local protocols tether speaks on its uplinks and
// switch ports (LLDP, EtherType 0x88cc; ECP, 0x8940).
//
// Conn is the boundary the protocol agents are written against. Socket
// implements it on a Linux AF_PACKET socket (github.com/mdlayher/packet,
// SOCK_RAW): it is bound to one interface and one EtherType, joins the
// IEEE 802.1 group addresses the protocols use (PACKET_ADD_MEMBERSHIP),
// ignores the frames the host sends itself (PACKET_IGNORE_OUTGOING), and
// turns context cancellation into socket deadlines. Pipe gives two
// connected in-memory Conns for tests.
//
// # Receive budget
//
// A hostile or broken neighbour can send far more frames than any
// link-local protocol needs. Receiver bounds what one port can cost the rest
// of the daemon, in four layers:
//
//   - The kernel queues at most the socket's receive buffer (SO_RCVBUF) per
//     port and drops the rest; Socket.KernelStats reports those drops.
//   - One goroutine per port reads its socket and nothing else, so a flood
//     on one port never delays reads on another.
//   - A token bucket (ReceiverOptions.Rate, Burst) admits a bounded number of
//     frames per second to the protocol; frames over the budget are dropped
//     and counted before any decoding.
//   - Admitted frames go through a bounded channel (ReceiverOptions.Queue);
//     when the protocol goroutine falls behind, new frames are dropped and
//     counted rather than queued without limit.
//
// Every frame read is accounted for exactly once in ReceiverStats:
// Received = Delivered + RateLimited + QueueFull + Oversize.
package rawsock
