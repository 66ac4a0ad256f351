package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/mdlayher/lldp"
)

// lldpCheckError fails unless err is a *Error of one of the sentinel kinds.
func lldpCheckError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is %T, want *Error", err, err)
	}
	for _, k := range []error{ErrTruncated, ErrOversize, ErrUnknownSubtype, ErrLength, ErrInvalid, ErrMissing} {
		if errors.Is(err, k) {
			return
		}
	}
	t.Fatalf("error %v has no sentinel kind", err)
}

// FuzzLLDPDU: decoding never panics and fails only with a *Error; what
// decodes re-encodes (within MaxLLDPDU), decodes again to an equal value,
// re-encodes to the same bytes, and is accepted by mdlayher/lldp.
func FuzzLLDPDU(f *testing.F) {
	for _, path := range []string{lldpCap2012, lldpCapLLDPD} {
		for _, fr := range lldpReadPcap(f, path) {
			f.Add(fr.payload)
		}
	}
	du := lldpBenchLLDPDU()
	b, err := du.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(lldpCat(lldpMandatory, []byte{0x0a, 0x02, 'v', 'm'}))   // no End
	f.Add(lldpCat(lldpMandatory, []byte{0x00, 0x00, 0x14, 0x00})) // non-zero padding

	f.Fuzz(func(t *testing.T, in []byte) {
		var du LLDPDU
		if err := du.UnmarshalBinary(in); err != nil {
			lldpCheckError(t, err)
			return
		}
		b, err := du.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", du, err)
		}
		if len(b) > MaxLLDPDU {
			t.Fatalf("encoded %d bytes", len(b))
		}
		var du2 LLDPDU
		if err := du2.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-encoding % x does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(du, du2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", du, du2)
		}
		b2, err := du2.MarshalBinary()
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("second encoding differs (%v):\n% x\n% x", err, b, b2)
		}
		var mf lldp.Frame
		if err := mf.UnmarshalBinary(b); err != nil {
			t.Fatalf("mdlayher rejects our encoding % x: %v", b, err)
		}
	})
}

// FuzzIEEE8021TLV: every IEEE 802.1 org TLV information string either fails
// with a *Error or decodes to a value that encodes and decodes back to the
// same value; encoding is idempotent.
func FuzzIEEE8021TLV(f *testing.F) {
	for _, s := range []struct {
		sub  uint8
		info []byte
	}{
		{Subtype8021EVB, []byte{0x02, 0x00, 0x6e, 0x54, 0x14}},
		{Subtype8021CDCP, []byte{0x80, 0x00, 0x00, 0x04, 0x00, 0x10, 0x01, 0x00, 0x20, 0x64}},
		{Subtype8021ETSConfiguration, append([]byte{0x83, 0x00, 0x11, 0x22, 0x00}, make([]byte, 16)...)},
		{Subtype8021ETSRecommendation, make([]byte, 21)},
		{Subtype8021PFC, []byte{0x44, 0x08}},
		{Subtype8021APP, []byte{0x00, 0x61, 0x89, 0x06}},
		{Subtype8021PortVLANID, []byte{0x00, 0x01}},
	} {
		f.Add(s.sub, s.info)
	}
	f.Fuzz(func(t *testing.T, sub uint8, info []byte) {
		if len(info) > MaxOrgInfo {
			return // cannot occur: a TLV length has 9 bits
		}
		v, err := decodeOrgTLV(OUIIEEE8021, sub, info, 0, OUI{})
		if err != nil {
			lldpCheckError(t, err)
			return
		}
		b, err := appendOrgTLV(nil, v, OUI{})
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", v, err)
		}
		typ, n := parseTLVHeader(b)
		if typ != uint8(lldp.TLVTypeOrganizationSpecific) || n != len(b)-2 || !bytes.Equal(b[2:6], []byte{0x00, 0x80, 0xc2, sub}) {
			t.Fatalf("bad framing % x", b)
		}
		v2, err := decodeOrgTLV(OUIIEEE8021, sub, b[6:], 6, OUI{})
		if err != nil {
			t.Fatalf("re-encoding % x does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", v, v2)
		}
		b2, err := appendOrgTLV(nil, v2, OUI{})
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("second encoding differs (%v):\n% x\n% x", err, b, b2)
		}
	})
}
