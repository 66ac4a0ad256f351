package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestEthernetHeader(t *testing.T) {
	src := [6]byte{0x52, 0x54, 0x00, 0xbb, 0x00, 0x01}
	for _, c := range []struct {
		name    string
		in      []byte
		want    EthernetHeader
		payload []byte
	}{
		{
			name: "untagged LLDP",
			in: []byte{
				0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, // dst: nearest bridge
				0x52, 0x54, 0x00, 0xbb, 0x00, 0x01, // src
				0x88, 0xcc, // EtherType LLDP
				0x02, 0x07, // payload
			},
			want:    EthernetHeader{Dst: NearestBridge, Src: src, EtherType: EtherTypeLLDP},
			payload: []byte{0x02, 0x07},
		},
		{
			name: "one 802.1Q tag",
			in: []byte{
				0x01, 0x80, 0xc2, 0x00, 0x00, 0x00, // dst: nearest customer bridge
				0x52, 0x54, 0x00, 0xbb, 0x00, 0x01, // src
				0x81, 0x00, // TPID 802.1Q
				0xa0, 0x64, // PCP 5, DEI 0, VID 100
				0x88, 0xcc, // EtherType LLDP
			},
			want:    EthernetHeader{Dst: NearestCustomerBridge, Src: src, Tagged: true, TCI: 0xa064, EtherType: EtherTypeLLDP},
			payload: []byte{},
		},
		{
			name: "S-Tag is not skipped",
			in: []byte{
				0x01, 0x80, 0xc2, 0x00, 0x00, 0x03, // dst: nearest non-TPMR bridge
				0x52, 0x54, 0x00, 0xbb, 0x00, 0x01, // src
				0x88, 0xa8, // TPID 802.1ad
				0x00, 0x0a, // S-Tag VID 10
			},
			want:    EthernetHeader{Dst: NearestNonTPMRBridge, Src: src, EtherType: 0x88a8},
			payload: []byte{0x00, 0x0a},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h EthernetHeader
			p, err := h.Parse(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if h != c.want || !bytes.Equal(p, c.payload) {
				t.Errorf("Parse = %+v, payload % x; want %+v, % x", h, p, c.want, c.payload)
			}
			if got := h.Append(nil); !bytes.Equal(got, c.in[:h.Len()]) || h.Len() != len(c.in)-len(c.payload) {
				t.Errorf("Append = % x (Len %d), want % x", got, h.Len(), c.in[:len(c.in)-len(c.payload)])
			}
		})
	}
	h := EthernetHeader{Tagged: true, TCI: 0xa064}
	if h.VID() != 100 || h.PCP() != 5 {
		t.Errorf("VID %d PCP %d, want 100 5", h.VID(), h.PCP())
	}
}

func TestEthernetHeaderErrors(t *testing.T) {
	tagged := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x64, 0x88, 0xcc}
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, "Ethernet header at offset 0: truncated: need 14 bytes, have 0"},
		{tagged[:13], "Ethernet header at offset 0: truncated: need 14 bytes, have 13"},
		{tagged[:17], "Ethernet header at offset 12: truncated: need 6 bytes, have 5"},
	} {
		h := EthernetHeader{EtherType: 7}
		_, err := h.Parse(c.in)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrTruncated) {
			t.Errorf("%d bytes: %v, want %q", len(c.in), err, c.want)
		}
		if h != (EthernetHeader{EtherType: 7}) {
			t.Errorf("%d bytes: header changed on error: %+v", len(c.in), h)
		}
	}
}

func TestEthernetHeaderAppendAllocs(t *testing.T) {
	h := EthernetHeader{Dst: NearestCustomerBridge, Tagged: true, TCI: 100, EtherType: EtherTypeLLDP}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = h.Append(buf[:0]) }); n != 0 {
		t.Errorf("Append: %v allocations, want 0", n)
	}
}

func FuzzEthernetHeader(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0x00, 0x64, 0x88, 0xcc, 0x02})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xcc})
	f.Fuzz(func(t *testing.T, in []byte) {
		var h EthernetHeader
		p, err := h.Parse(in)
		if err != nil {
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("error %v is not ErrTruncated", err)
			}
			return
		}
		if got := h.Append(nil); !bytes.Equal(append(got, p...), in) {
			t.Fatalf("Append(Parse(% x)) = % x + % x", in, got, p)
		}
	})
}
