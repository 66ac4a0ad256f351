package lldpagent

import (
	"context"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// frameFor encodes du behind an Ethernet header to dst, padded to 60.
func frameFor(t testing.TB, dst, src [6]byte, du wire.LLDPDU) []byte {
	t.Helper()
	h := wire.EthernetHeader{Dst: dst, Src: src, EtherType: wire.EtherTypeLLDP}
	b, err := du.AppendBinary(h.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	for len(b) < minFrameLen {
		b = append(b, 0)
	}
	return b
}

// FuzzReceive feeds arbitrary frames to an agent's receive path (decode,
// neighbour table, ageing) and checks that it never panics and its
// bookkeeping stays consistent.
func FuzzReceive(f *testing.F) {
	valid := frameFor(f, wire.NearestBridge, macB, testPDU("chassis", "port", "name", 120))
	f.Add(valid)
	f.Add(frameFor(f, wire.NearestBridge, macB, testPDU("chassis", "port", "", 0)))
	f.Add(frameFor(f, wire.NearestCustomerBridge, macB, testPDU("c", "p", "n", 1)))
	f.Add(valid[:20])
	f.Add(valid[:14])
	f.Add([]byte{})
	tagged := append(append(append([]byte(nil), valid[:12]...), 0x81, 0x00, 0x00, 0x05), valid[12:]...)
	f.Add(tagged)
	evb := testPDU("c", "p", "n", 9)
	evb.TLVs = append(evb.TLVs, &wire.EVB{Mode: wire.EVBModeBridge, R: 3, RTE: 14, RWD: 20, RKA: 20},
		&wire.CDCP{Role: wire.CDCPRoleBridge, SComp: true, ChnCap: 4, Channels: []wire.SChannel{{SCID: 1, SVID: 1}}})
	f.Add(frameFor(f, wire.NearestBridge, macB, evb))

	f.Fuzz(func(t *testing.T, data []byte) {
		conn, _ := rawsock.Pipe(rawsock.Interface{Name: "p0", MAC: macA}, rawsock.Interface{Name: "p1", MAC: macB})
		a, err := New(conn, Config{Build: newInfo(macA, "p0", "x").build, Logger: quiet(), MaxNeighbors: 4,
			Accept: [][6]byte{wire.NearestBridge, wire.NearestCustomerBridge}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		now := t0
		a.m.start(now)
		// The same bytes several times, split at every offset, so that
		// refresh, change and shutdown paths all run.
		a.handleFrame(ctx, now, data)
		a.handleFrame(ctx, now.Add(time.Second), append([]byte(nil), data...))
		for i := 0; i < len(data) && i < 64; i += 7 {
			a.handleFrame(ctx, now, data[:i])
		}
		a.step(ctx, now.Add(70000*time.Second)) // everything ages out
		s := a.Stats()
		if s.Neighbors != 0 {
			t.Fatalf("%d neighbours left after every TTL ran out", s.Neighbors)
		}
		if s.Inserts != s.Deletes {
			t.Fatalf("inserts %d != deletes %d", s.Inserts, s.Deletes)
		}
		handled := s.FramesIn + s.Malformed + s.Rejected + s.OtherDestination
		if want := uint64(2 + (min(len(data), 64)+6)/7); handled != want {
			t.Fatalf("accounted for %d frames, handled %d", handled, want)
		}
	})
}
