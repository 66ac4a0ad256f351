package nftbridge

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// verdictAttrs encodes a verdict map value as the kernel sends it:
// NFTA_DATA_VERDICT holding NFTA_VERDICT_CODE (be32) and, for a jump,
// NFTA_VERDICT_CHAIN.
func verdictAttrs(t testing.TB, code int32, chain string) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Uint32(unix.NFTA_VERDICT_CODE, uint32(code))
	if chain != "" {
		ae.String(unix.NFTA_VERDICT_CHAIN, chain)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJumpTarget: the dispatch map's values read back from the kernel
// (outside input): a jump names its chain; any other verdict, or bytes
// that are not a verdict, give "" (the port then reads as not dispatched
// to its chain, and Ensure repairs it).
func TestJumpTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"jump", verdictAttrs(t, int32(expr.VerdictJump), "port-vnet0"), "port-vnet0"},
		{"goto", verdictAttrs(t, int32(expr.VerdictGoto), "port-vnet0"), ""},
		{"accept", verdictAttrs(t, int32(expr.VerdictAccept), ""), ""},
		{"drop", verdictAttrs(t, int32(expr.VerdictDrop), ""), ""},
		{"jump without chain", verdictAttrs(t, int32(expr.VerdictJump), ""), ""},
		{"empty", nil, ""},
		{"short header", []byte{8, 0}, ""},
		{"length past the end", []byte{12, 0, 1, 0, 0xff, 0xff, 0xff, 0xfd}, ""},
		{"length below header", []byte{2, 0, 1, 0}, ""},
		{"short code", []byte{6, 0, 1, 0, 0xff, 0xff, 0, 0}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := JumpTarget(tc.in); got != tc.want {
				t.Errorf("JumpTarget = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIfnameKey(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{IfnameKey("vnet0"), "vnet0"},
		{IfnameKey("abcdefghijklmno"), "abcdefghijklmno"},
		{[]byte("eth0"), "eth0"}, // no NUL: the whole key
		{nil, ""},
		{[]byte{0, 'x'}, ""},
	} {
		if got := PortFromIfnameKey(tc.in); got != tc.want {
			t.Errorf("PortFromIfnameKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if k := IfnameKey("vnet0"); len(k) != unix.IFNAMSIZ {
		t.Errorf("IfnameKey is %d bytes, want IFNAMSIZ %d", len(k), unix.IFNAMSIZ)
	}
}

// FuzzJumpTarget: the decoders of the kernel's set elements never panic,
// and a jump target read back is one the kernel could hold.
func FuzzJumpTarget(f *testing.F) {
	f.Add(verdictAttrs(f, int32(expr.VerdictJump), "port-vnet0"), IfnameKey("vnet0"))
	f.Add(verdictAttrs(f, int32(expr.VerdictAccept), ""), []byte("x"))
	f.Add([]byte{12, 0, 1, 0, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, val, key []byte) {
		if c := JumpTarget(val); len(c) > len(val) {
			t.Fatalf("chain %q longer than the value (%d bytes)", c, len(val))
		}
		if p := PortFromIfnameKey(key); len(p) > len(key) {
			t.Fatalf("port %q longer than the key", p)
		}
	})
}

func TestComment(t *testing.T) {
	r := &nftables.Rule{UserData: Comment("tether/softswitch/v1 allow vnet0")}
	if c, ok := CommentOf(r); !ok || c != "tether/softswitch/v1 allow vnet0" {
		t.Errorf("CommentOf = %q, %v", c, ok)
	}
	if c, ok := CommentOf(&nftables.Rule{}); ok || c != "" {
		t.Errorf("CommentOf a rule without user data = %q, %v", c, ok)
	}
}

func TestRuleShape(t *testing.T) {
	r := &nftables.Rule{Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Payload{Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6, DestRegister: 1},
		&expr.Lookup{SourceRegister: 1, SetName: "allow-vnet0"},
		&expr.Objref{Type: 1, Name: "acc-vnet0"},
		&expr.Verdict{Kind: expr.VerdictDrop},
		&expr.Counter{},
	}}
	want := "meta 6; payload 0 6 6; lookup allow-vnet0 map false invert false; objref 1 acc-vnet0; verdict 0 ; *expr.Counter"
	if got := RuleShape(r); got != want {
		t.Errorf("RuleShape = %q\nwant %q", got, want)
	}
	accept := &nftables.Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}}
	drop := &nftables.Rule{Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}}
	if s := RuleShapes([]*nftables.Rule{accept, drop}); s[0] == s[1] {
		t.Errorf("accept and drop have the same shape %q", s[0])
	}
}
