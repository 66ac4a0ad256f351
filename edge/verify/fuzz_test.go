package verify_test

import (
	"context"
	"maps"
	"testing"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/wire"
)

// FuzzCheck feeds arbitrary frames to Check: it must never panic, never
// accept, and never change the tables. The seeds are valid signed frames
// that were accepted once during setup (so every mutation is forged,
// altered or replayed) and a few malformed ones. The claim's VSI is taken
// from the frame when it decodes, so mutations reach past the VSI check.
//
//	go test -tags libvirt_dlopen ./edge/verify -run '^$' -fuzz FuzzCheck -fuzztime 20s
func FuzzCheck(f *testing.F) {
	w := newWorld(f, worldOptions{quiet: true})
	ctx := context.Background()
	seeds := [][]byte{
		w.claim(w.a, "swp1", 10, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)).Frame,
		w.claim(w.a, "swp1", 11, assocVSI(wire.VSIPreAssociate, vmA3, 0, macA3)).Frame,
		w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vmB2, 100, macB2)).Frame,
		w.claim(w.a, "swp1", 10, assocVSI(wire.VSIDeAssociate, vmA1, 100, macA1)).Frame,
	}
	for _, s := range seeds {
		vsi, ok := firstVSI(s)
		if !ok {
			f.Fatal("seed does not decode")
		}
		port, ch, stag := portOf(s, vsi)
		if d, err := w.v.Check(ctx, verify.Claim{Port: port, Channel: ch, Frame: s, VSI: vsi, STag: stag}); !d.Accepted {
			f.Fatalf("seed refused: %+v %v", d, err)
		}
		f.Add(s)
	}
	// Re-associate a1 so that the tables hold something to protect.
	w.mustAccept(w.claim(w.a, "swp1", 10, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	f.Add([]byte{})
	f.Add(make([]byte, 60))
	f.Add(append(seeds[0][:12:12], 0x81, 0x00, 0x00, 0x0a, 0x89, 0x40)) // a tagged header, no PDU
	before := w.tables()
	f.Fuzz(func(t *testing.T, frame []byte) {
		vsi, _ := firstVSI(frame)
		port, ch, stag := portOf(frame, vsi)
		d, err := w.v.Check(ctx, verify.Claim{Port: port, Channel: ch, Frame: frame, VSI: vsi, STag: stag})
		if d.Accepted {
			t.Fatalf("accepted: %+v", d)
		}
		if d.Reason == verify.ReasonNone || d.Reason == verify.ReasonInternal || err != nil {
			t.Fatalf("refused without a reason or with an internal error: %+v %v", d, err)
		}
		after := w.tables()
		if !maps.Equal(before.locs, after.locs) || before.stags != after.stags {
			t.Fatalf("tables changed: %+v -> %+v", before, after)
		}
	})
}

// firstVSI decodes frame's first VSI TLV, if it has one.
func firstVSI(frame []byte) (wire.VSI, bool) {
	var h wire.EthernetHeader
	pdu, err := h.Parse(frame)
	if err != nil {
		return wire.VSI{}, false
	}
	var p wire.ECPDU
	if p.UnmarshalBinary(pdu) != nil || p.VDP == nil {
		return wire.VSI{}, false
	}
	vs := p.VDP.VSIs()
	if len(vs) == 0 {
		return wire.VSI{}, false
	}
	return *vs[0], true
}

// portOf picks the port and channel a fuzzed frame claims to come from:
// the world's port of the frame's source (host A or B), S-Tag 10 or none.
func portOf(frame []byte, vsi wire.VSI) (port, channel string, stag uint16) {
	port = "swp1"
	if len(frame) > 11 && frame[11] == 2 {
		port = "swp2"
	}
	if vsi.VSIID == vmA1 {
		return port, port + "/svid=10", 10
	}
	if vsi.VSIID == vmA3 {
		return port, port + "/svid=11", 11
	}
	return port, port, 0
}
