package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzECPDU feeds arbitrary ECPDUs to the decoder: it must not panic, every
// error must be a *Error of one of the package's kinds, and whatever
// decodes must encode, decode again to the same value and encode to the
// same bytes. Seeds: every ECP frame of the lldpad capture, padded
// variants, and the malformed cases of the unit tests.
func FuzzECPDU(f *testing.F) {
	for _, g := range ecpGoldenFrames(f) {
		f.Add(g.payload)
		f.Add(append(append([]byte(nil), g.payload...), make([]byte, 46)...))
	}
	p := ecpBenchPDU()
	if b, err := p.MarshalBinary(); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", "1001", "100100", "2001 0001", "1801 0001", "1003 0001",
		"1002 0007 01020304", "1401 0001 0000",
		"1001 0001 0a0f 65766d67723031 0000000000000000",
		"1001 0001 0a10 65766d67723031 000000000000000000 fe03 7a7e71",
		"1001 0001 0a10 65766d67723031 000000000000000000 1203 010203 02",
	} {
		f.Add(ecpHex(f, s))
	}
	kinds := []error{ErrTruncated, ErrOversize, ErrUnknownSubtype, ErrLength, ErrInvalid, ErrMissing}
	f.Fuzz(func(t *testing.T, in []byte) {
		var p ECPDU
		if err := p.UnmarshalBinary(in); err != nil {
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			known := false
			for _, k := range kinds {
				known = known || errors.Is(err, k)
			}
			if !known {
				t.Fatalf("error %v has no sentinel kind", err)
			}
			if we.Offset < 0 || we.Offset > len(in) {
				t.Fatalf("error offset %d outside the %d-byte input", we.Offset, len(in))
			}
			return
		}
		_ = p.String()
		b1, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %s but cannot encode it: %v", &p, err)
		}
		if len(b1) > len(in) || !bytes.Equal(b1, in[:len(b1)]) {
			t.Fatalf("re-encoding is not a prefix of the input:\n% x\n% x", b1, in)
		}
		var q ECPDU
		if err := q.UnmarshalBinary(b1); err != nil {
			t.Fatalf("re-encoding does not decode: %v\n% x", err, b1)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("decode(encode(decode(x))) differs:\n%#v\n%#v", p, q)
		}
		b2, err := q.MarshalBinary()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("second encoding differs (%v):\n% x\n% x", err, b1, b2)
		}
	})
}
