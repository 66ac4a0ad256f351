package ecp

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"

	"github.com/tether-net/tether/internal/testframes"
	"github.com/tether-net/tether/wire"
)

// captureLink records what the engine sends; ReadFrame is never used.
type captureLink struct{ sent [][]byte }

func (l *captureLink) WriteFrame(_ context.Context, f []byte) error {
	l.sent = append(l.sent, append([]byte(nil), f...))
	return nil
}

func (l *captureLink) ReadFrame(ctx context.Context, _ []byte) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// splitFrames cuts data into frames, each prefixed by a 2-byte big-endian
// length; a length running past the end takes the rest.
func splitFrames(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		if n > len(data) {
			n = len(data)
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// joinFrames is splitFrames' inverse.
func joinFrames(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// FuzzReceive feeds sequences of arbitrary frames to the receive path of
// an Engine (frame classification, the receive state machine, decoding and
// delivery). It must never panic; every request it counts is ACKed with a
// well-formed 60-byte ACK to the sender; and whatever reaches the Handler
// is a VDP request that decodes from the delivered frame and encodes again
// (never a malformed PDU), at most once per request received.
func FuzzReceive(f *testing.F) {
	local := testframes.BridgeMAC()
	station := testframes.StationMAC()
	frames, err := testframes.All()
	if err != nil {
		f.Fatal(err)
	}
	var ecpFrames [][]byte
	for _, nf := range frames {
		if len(nf.Data) > 13 && binary.BigEndian.Uint16(nf.Data[12:]) == wire.EtherTypeECP {
			fr := append([]byte(nil), nf.Data...)
			copy(fr[0:6], local[:]) // unicast to the engine
			ecpFrames = append(ecpFrames, fr)
			f.Add(joinFrames(fr))
			f.Add(joinFrames(fr, fr))
		}
	}
	f.Add(joinFrames(ecpFrames...))
	req, _ := testframes.ECPFrame(station, testframes.AssociateRequest())
	ack, _ := testframes.ECPFrame(station, testframes.Ack())
	f.Add(joinFrames(req, ack, req, []byte{1, 2, 3}))
	f.Add([]byte{0, 4, 1, 0x80, 0xc2, 0})
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	f.Fuzz(func(t *testing.T, data []byte) {
		link := &captureLink{}
		var got []*Received
		e, err := New(link, Config{
			LocalMAC: local,
			Logger:   discard,
			Handler:  HandlerFunc(func(_ context.Context, r *Received) { got = append(got, r) }),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, fr := range splitFrames(data) {
			e.handleFrame(ctx, fr)
			for len(e.deliver) > 0 {
				e.deliverOne(ctx, <-e.deliver)
			}
		}
		st := e.Stats()
		if uint64(len(link.sent)) != st.RxRequests || st.TxAcks != st.RxRequests {
			t.Fatalf("%d frames sent, %d requests received, %d ACKs counted", len(link.sent), st.RxRequests, st.TxAcks)
		}
		for _, a := range link.sent {
			if len(a) != minFrameLen || binary.BigEndian.Uint16(a[12:]) != wire.EtherTypeECP ||
				[6]byte(a[6:12]) != local || a[0]&1 != 0 {
				t.Fatalf("bad ACK % x", a)
			}
			var p wire.ECPDU
			if err := p.UnmarshalBinary(a[14:]); err != nil || p.Op != wire.ECPAck || p.Subtype != wire.ECPSubtypeVDP {
				t.Fatalf("ACK % x does not decode as a VDP ACK: %v", a, err)
			}
		}
		if uint64(len(got)) != st.RxDelivered || st.RxDelivered > st.RxRequests-st.RxDuplicates {
			t.Fatalf("%d delivered, stats %+v", len(got), st)
		}
		for _, r := range got {
			if r.PDU.Op != wire.ECPRequest || r.PDU.Subtype != wire.ECPSubtypeVDP || r.PDU.VDP == nil {
				t.Fatalf("delivered %v", &r.PDU)
			}
			if _, err := r.PDU.MarshalBinary(); err != nil {
				t.Fatalf("delivered PDU does not encode: %v", err)
			}
			var h wire.EthernetHeader
			p, err := h.Parse(r.Frame)
			if err != nil || h != r.Header || h.EtherType != wire.EtherTypeECP {
				t.Fatalf("delivered frame header %+v, %v", h, err)
			}
			var again wire.ECPDU
			if err := again.UnmarshalBinary(p); err != nil {
				t.Fatalf("delivered frame does not decode: %v", err)
			}
		}
	})
}
