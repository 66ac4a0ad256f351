//go:build linux

package rawsock

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// EtherTypeSTag is the TPID of the IEEE 802.1ad S-Tag that carries the
// S-VID of an S-channel.
const EtherTypeSTag = 0x88a8

// channelFilter is a classic BPF program that keeps frames of EtherType et
// (the field at byte 12, the tag being in the packet's metadata): all of
// them, only untagged ones (untagged), or only those whose tag is an S-Tag
// with S-VID svid (svid != 0).
func channelFilter(et uint16, untagged bool, svid uint16) ([]bpf.RawInstruction, error) {
	if svid > 4094 || (svid != 0 && untagged) {
		return nil, fmt.Errorf("rawsock: S-channel filter: S-VID %d (untagged %v): want 1-4094, or untagged alone", svid, untagged)
	}
	drop := bpf.RetConstant{Val: 0}
	var prog []bpf.Instruction
	switch {
	case untagged:
		prog = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1},
			drop,
		}
	case svid != 0:
		prog = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 1},
			drop,
			bpf.LoadExtension{Num: bpf.ExtVLANProto},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: EtherTypeSTag, SkipTrue: 1},
			drop,
			bpf.LoadExtension{Num: bpf.ExtVLANTag},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0fff},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(svid), SkipTrue: 1},
			drop,
		}
	}
	prog = append(prog,
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(et), SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		drop,
	)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("rawsock: assemble the EtherType filter: %w", err)
	}
	return raw, nil
}

// STagLink is a Conn of one S-channel: frames are written with an 802.1ad
// S-Tag carrying SVID inserted after the source MAC, and read as the
// socket delivers them (the kernel has moved the tag to the packet's
// metadata; open the socket with Options.SChannel so it reads only this
// channel's frames).
type STagLink struct {
	Conn
	// SVID is the S-channel's S-VID (1-4094).
	SVID uint16
}

// WriteFrame implements Conn: it sends frame inside the S-Tag.
func (l STagLink) WriteFrame(ctx context.Context, frame []byte) error {
	if len(frame) < 12 {
		return fmt.Errorf("rawsock: write on S-channel %d: %d-byte frame has no header", l.SVID, len(frame))
	}
	b := make([]byte, 0, len(frame)+4)
	b = append(b, frame[:12]...)
	b = binary.BigEndian.AppendUint16(b, EtherTypeSTag)
	b = binary.BigEndian.AppendUint16(b, l.SVID&0x0fff)
	b = append(b, frame[12:]...)
	return l.Conn.WriteFrame(ctx, b)
}
