package ecp

import "context"

// Link carries whole Ethernet frames of EtherType 0x8940 for one port and
// S-channel. It is the only I/O an Engine does. Its methods are those of
// l2/rawsock.Conn, so a rawsock Socket (AF_PACKET) is a Link as it is;
// tests use ecptest.Pipe (in memory, lossy on demand) or
// ecptest.PacketLink.
//
// ReadFrame and WriteFrame may be called concurrently with each other, and
// WriteFrame from two goroutines (the transmitter, and the receiver's
// ACKs). A frame starts with the destination MAC and has no FCS; the
// S-channel's tag, if any, is the Link's business: the Engine sends
// untagged frames and tolerates one 802.1Q tag on received ones.
type Link interface {
	// ReadFrame reads the next frame into b and returns its length; a
	// frame longer than b is cut to len(b). It returns ctx.Err() (or an
	// error wrapping it) once ctx is done.
	ReadFrame(ctx context.Context, b []byte) (int, error)
	// WriteFrame sends frame. It must not keep frame after it returns.
	WriteFrame(ctx context.Context, frame []byte) error
}
