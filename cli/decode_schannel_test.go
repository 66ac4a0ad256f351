package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/internal/testframes"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// schannelSVID is the S-VID of the S-channel the frames of
// TestDecodeSChannelTetherTLVs are signed for.
const schannelSVID = 100

// signedSChannelFrame builds a VDP frame of S-channel schannelSVID that
// carries every tether TLV type, signed the way the ECP engine of an
// S-channel signs (vdp.BindingSigner around vdp.IdentitySigner: the
// binding, then the signature with the channel's counter): the bridge's
// ASSOCIATE response with the profile, its capability and an inventory
// digest. It checks that the frame verifies on its S-channel and is
// refused on another, and returns it as on the wire, with the S-Tag.
func signedSChannelFrame(t *testing.T, cid wire.OUI) (frame []byte, keyID identity.KeyID) {
	t.Helper()
	ctx := context.Background()
	priv, _ := testframes.Key()
	key, err := identity.NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := identity.NewSigner(key, &identity.MemoryCounterStore{}, identity.SignerOptions{CID: cid})
	if err != nil {
		t.Fatal(err)
	}
	capability := testframes.Capability()
	capability.Roles = wire.TetherRoleSwitchAgent
	p := &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: 302, TetherCID: cid, VDP: &wire.VDPDU{TLVs: []wire.TLV{
		testframes.AssociateResponse().VDP.TLVs[0], // VSI Manager ID
		testframes.VSI(wire.VSIAssociate, wire.ResponseStatus(wire.VDPSuccess, false, false), 100),
		testframes.Profile(),
		capability,
		testframes.Inventory(),
	}}}
	pdu, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := testframes.Frame(wire.NearestCustomerBridge, testframes.BridgeMAC(), wire.EtherTypeECP, wire.AppendEnd(pdu))
	channel := fmt.Sprintf("eth0/svid=%d", schannelSVID)
	sign := vdp.BindingSigner(vdp.IdentitySigner(signer, channel), cid, schannelSVID)
	signed, err := sign(ctx, unsigned)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}

	keys, err := identity.NewStaticKeys(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{CID: cid})
	if err != nil {
		t.Fatal(err)
	}
	other := vdp.BindingVerifier(vdp.IdentityVerifier(ver, "sw1/svid=101"), cid, schannelSVID+1)
	if _, err := other(ctx, signed); !errors.Is(err, vdp.ErrChannelBinding) {
		t.Fatalf("the frame on S-channel %d: %v, want %v", schannelSVID+1, err, vdp.ErrChannelBinding)
	}
	own := vdp.BindingVerifier(vdp.IdentityVerifier(ver, "sw1/svid=100"), cid, schannelSVID)
	if v, err := own(ctx, signed); err != nil || v.Counter != 1 || v.Key != key.ID() {
		t.Fatalf("the frame on its own S-channel: %+v, %v", v, err)
	}
	return testframes.STag(signed, schannelSVID), key.ID()
}

// TestDecodeSChannelTetherTLVs writes a signed S-channel VDP frame that
// carries every tether TLV type (profile, capability, inventory digest,
// channel binding, signature) into a capture and decodes it with
// tetherctl decode, in JSON and text, under the built-in CID and under a
// configured one (--cid): every tether TLV is decoded by name with the
// values that were encoded, in wire order, the binding's S-VID matching
// the frame's S-Tag.
func TestDecodeSChannelTetherTLVs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cid  wire.OUI
		args []string
	}{
		{"default CID", wire.OUI{}, nil},
		{"configured CID", wire.OUI{0x0a, 0x12, 0x34}, []string{"--cid", "0a-12-34"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, keyID := signedSChannelFrame(t, tc.cid)
			path := writePcap(t, [][]byte{frame})
			r := tetherctl(t, nil, append([]string{"decode", "-o", "json", path}, tc.args...)...)
			if r.code != ExitOK || r.stderr != "1 frames: 0 LLDP, 1 ECP, 0 other (skipped), 0 with errors\n" {
				t.Fatalf("exit status %d, stderr %q", r.code, r.stderr)
			}
			frames := jsonFrames(t, r.stdout)
			if len(frames) != 1 {
				t.Fatalf("%d frames, want 1", len(frames))
			}
			f := frames[0]
			want(t, "frame", f, "protocol", "ecp", "ethertype", "0x8940", "src", "52:54:00:bb:00:01",
				"tags", []any{map[string]any{"tpid": "0x88a8", "kind": "s-tag", "vid": schannelSVID, "pcp": 0, "dei": false}})
			kinds := []string{"ecp", "vdp_manager_id", "vdp_associate", "tether_profile", "tether_capability",
				"tether_inventory", "tether_channel_binding", "tether_signature"}
			tlvs, _ := f["tlvs"].([]any)
			if len(tlvs) != len(kinds) {
				t.Fatalf("%d TLVs, want %d (%v): %v", len(tlvs), len(kinds), kinds, tlvs)
			}
			for i, k := range kinds {
				want(t, fmt.Sprintf("TLV %d", i), tlv(t, f, i), "tlv", k)
			}
			p, c, inv := testframes.Profile(), testframes.Capability(), testframes.Inventory()
			want(t, "profile", tlv(t, f, 3), "tlv_name", "tether Profile", "vid", p.VID, "mode", "switch",
				"rate_kbps", p.RateKbps, "priority", p.Priority, "ethertypes", []string{"0x0800", "0x86dd", "0x0806"},
				"acl", p.ACL, "name", p.Name)
			want(t, "capability", tlv(t, f, 4), "tlv_name", "tether Capability", "version", wire.TetherProtocolVersion,
				"roles", []string{"switch_agent"}, "key_id", hex.EncodeToString(c.KeyID[:]), "flags", []string{"requires_signature"})
			want(t, "inventory", tlv(t, f, 5), "tlv_name", "tether Inventory Digest", "alg", "sha256",
				"digest", hex.EncodeToString(inv.Digest[:]), "vifs", inv.VIFs, "generation", inv.Generation)
			want(t, "binding", tlv(t, f, 6), "tlv_name", "tether Channel Binding", "svid", schannelSVID)
			sig := tlv(t, f, 7)
			want(t, "signature", sig, "tlv_name", "tether Signature", "key_id", keyID.String(), "counter", 1)
			if s, _ := sig["signature"].(string); len(s) != 2*wire.SignatureSize {
				t.Errorf("signature %q is not %d hex digits", s, 2*wire.SignatureSize)
			}

			// The text output names every tether TLV, one line each, in
			// wire order.
			r = tetherctl(t, nil, append([]string{"decode", path}, tc.args...)...)
			if r.code != ExitOK || r.stderr != "" {
				t.Fatalf("text: exit status %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "  s-tag vid=100 pcp=0  ECP  ") {
				t.Errorf("text lacks the S-Tag:\n%s", r.stdout)
			}
			at := 0
			for _, line := range []string{
				"\n  tether Profile: vid=100 mode=switch rate_kbps=1000000 priority=5 ethertypes=[0x0800 0x86dd 0x0806] acl=web-in name=web\n",
				"\n  tether Capability: version=1 roles=[switch_agent] key_id=" + hex.EncodeToString(c.KeyID[:]) + " flags=[requires_signature]\n",
				"\n  tether Inventory Digest: alg=sha256 digest=" + hex.EncodeToString(inv.Digest[:]) + " vifs=3 generation=42\n",
				"\n  tether Channel Binding: svid=100\n",
				"\n  tether Signature: key_id=" + keyID.String() + " counter=1 signature=",
			} {
				i := strings.Index(r.stdout[at:], line)
				if i < 0 {
					t.Fatalf("text lacks %q after offset %d:\n%s", line, at, r.stdout)
				}
				at += i + 1
			}
		})
	}
}
