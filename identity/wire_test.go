package identity

import (
	"context"
	"testing"

	"github.com/mdlayher/lldp"
	"github.com/tether-net/tether/wire"
)

// TestSignEncodedPDUs signs frames produced by package wire's LLDPDU and
// ECPDU encoders (which always end in End) and checks that their decoders
// read the signature back as the last TLV.
func TestSignEncodedPDUs(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	hdr := func(et uint16) []byte {
		h := wire.EthernetHeader{Dst: wire.NearestCustomerBridge, Src: [6]byte(testSrc), EtherType: et}
		return h.Append(make([]byte, 0, 512))
	}

	du := wire.LLDPDU{
		ChassisID: wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: testSrc},
		PortID:    wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("ens1f0np0")},
		TTL:       120,
		TLVs: []wire.TLV{
			wire.SystemName("hv-r12-07"),
			&wire.TetherCapability{Version: 1, Roles: wire.TetherRoleHostAgent, KeyID: ts.key.ID()},
		},
	}
	frame, err := du.AppendBinary(hdr(wire.EtherTypeLLDP))
	if err != nil {
		t.Fatal(err)
	}
	frame, err = ts.signer.Sign(ctx, "eth0", frame)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7", frame); err != nil {
		t.Fatal(err)
	}
	var back wire.LLDPDU
	if err := back.UnmarshalBinary(frame[14:]); err != nil {
		t.Fatalf("LLDPDU decoder refuses the signed frame: %v", err)
	}
	if sig, ok := back.TLVs[len(back.TLVs)-1].(*wire.TetherSignature); !ok || sig.Counter != 1 || KeyID(sig.KeyID) != ts.key.ID() {
		t.Fatalf("last LLDP TLV is %#v, want the signature", back.TLVs[len(back.TLVs)-1])
	}

	// ECP: decode the raw VDP ASSOCIATE, re-encode it with package wire,
	// sign, decode again.
	var p wire.ECPDU
	if err := p.UnmarshalBinary(vdpFrame()[14:]); err != nil {
		t.Fatal(err)
	}
	frame, err = p.AppendBinary(hdr(wire.EtherTypeECP))
	if err != nil {
		t.Fatal(err)
	}
	frame, err = ts.signer.Sign(ctx, "eth0/svid=5", frame)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.verifier.Verify(ctx, "swp7/svid=5", frame); err != nil {
		t.Fatal(err)
	}
	var pb wire.ECPDU
	if err := pb.UnmarshalBinary(frame[14:]); err != nil {
		t.Fatalf("ECPDU decoder refuses the signed frame: %v", err)
	}
	tlvs := pb.VDP.TLVs
	if _, ok := tlvs[len(tlvs)-1].(*wire.TetherSignature); !ok {
		t.Fatalf("last VDP TLV is %#v, want the signature", tlvs[len(tlvs)-1])
	}
}
