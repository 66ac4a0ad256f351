package wire

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateECPGolden = flag.Bool("update-ecp", false, "rewrite testdata/ecp_cap2012.golden")

// ecpCapture is the capture of two lldpad 1.1 instances (station
// 52:54:00:aa:00:01, bridge 52:54:00:bb:00:01) running 802.1Qbg-2012
// EVB/ECP/VDP over a veth pair.
const ecpCapture = "testdata/cap2012.pcap"

// ecpPcapFrame is one frame of a capture.
type ecpPcapFrame struct {
	num  int // 1-based frame number, as tshark counts
	data []byte
}

// ecpReadPcap reads a classic little-endian pcap file (magic 0xa1b2c3d4,
// 24-byte global header, 16-byte record headers) of Ethernet frames.
func ecpReadPcap(tb testing.TB, path string) []ecpPcapFrame {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		tb.Fatalf("%s: not a little-endian microsecond pcap file", path)
	}
	if lt := binary.LittleEndian.Uint32(b[20:]); lt != 1 {
		tb.Fatalf("%s: link type %d, want 1 (Ethernet)", path, lt)
	}
	var out []ecpPcapFrame
	for p, num := 24, 1; p < len(b); num++ {
		if len(b)-p < 16 {
			tb.Fatalf("%s: truncated record header at %d", path, p)
		}
		incl := int(binary.LittleEndian.Uint32(b[p+8:]))
		orig := int(binary.LittleEndian.Uint32(b[p+12:]))
		p += 16
		if incl > len(b)-p || incl != orig {
			tb.Fatalf("%s: frame %d: captured %d of %d bytes, %d left in file", path, num, incl, orig, len(b)-p)
		}
		out = append(out, ecpPcapFrame{num: num, data: b[p : p+incl]})
		p += incl
	}
	return out
}

// ecpGolden is one ECP frame of the capture, split at the EtherType.
type ecpGolden struct {
	num     int
	eth     EthernetHeader
	payload []byte // the ECPDU
}

func ecpGoldenFrames(tb testing.TB) []ecpGolden {
	tb.Helper()
	var out []ecpGolden
	for _, f := range ecpReadPcap(tb, ecpCapture) {
		var h EthernetHeader
		payload, err := h.Parse(f.data)
		if err != nil {
			tb.Fatalf("frame %d: %v", f.num, err)
		}
		if h.EtherType != EtherTypeECP {
			continue
		}
		out = append(out, ecpGolden{num: f.num, eth: h, payload: payload})
	}
	return out
}

// ecpGoldenFrame returns frame num of the capture, which must be ECP.
func ecpGoldenFrame(tb testing.TB, num int) ecpGolden {
	tb.Helper()
	for _, g := range ecpGoldenFrames(tb) {
		if g.num == num {
			return g
		}
	}
	tb.Fatalf("frame %d is not an ECP frame of %s", num, ecpCapture)
	return ecpGolden{}
}

var (
	ecpStation = [6]byte{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}
	ecpBridge  = [6]byte{0x52, 0x54, 0x00, 0xbb, 0x00, 0x01}
)

// TestECPGoldenRoundTrip decodes every ECP frame lldpad sent, encodes it
// again and wants the same bytes; then does the same with the frame padded
// to the 60-byte Ethernet minimum (and one odd byte more), which must decode
// to the same PDU.
func TestECPGoldenRoundTrip(t *testing.T) {
	frames := ecpGoldenFrames(t)
	// tshark -r testdata/cap2012.pcap -Y 'eth.type==0x8940' | wc -l
	if len(frames) != 50 {
		t.Fatalf("%d ECP frames in %s, want 50", len(frames), ecpCapture)
	}
	var reqs, resps, acks, other int
	for _, g := range frames {
		t.Run(fmt.Sprintf("frame%d", g.num), func(t *testing.T) {
			if g.eth.Dst != [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00} {
				t.Errorf("destination %x, want the nearest customer bridge address", g.eth.Dst)
			}
			var p ECPDU
			if err := p.UnmarshalBinary(g.payload); err != nil {
				t.Fatalf("decode: %v\n% x", err, g.payload)
			}
			got, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(got, g.payload) {
				t.Fatalf("re-encoded\n% x\nwant\n% x", got, g.payload)
			}
			switch {
			case p.Op == ECPAck:
				acks++
				if len(g.payload) != ecpHeaderLen {
					t.Errorf("ACK of %d bytes", len(g.payload))
				}
			case p.VDP != nil && len(p.VDP.VSIs()) == 1 && p.VDP.VSIs()[0].IsResponse():
				resps++
			case p.VDP != nil && len(p.VDP.VSIs()) == 1:
				reqs++
			default:
				other++
			}

			// The same frame padded with zeros as a NIC pads a short
			// frame, and padded to an odd length.
			for _, pad := range []int{60 - ethernetHeaderLen - len(g.payload), 1} {
				if pad <= 0 {
					continue
				}
				padded := append(append([]byte(nil), g.payload...), make([]byte, pad)...)
				var q ECPDU
				if err := q.UnmarshalBinary(padded); err != nil {
					t.Fatalf("decode with %d bytes of padding: %v", pad, err)
				}
				again, err := q.MarshalBinary()
				if err != nil {
					t.Fatalf("encode after padding: %v", err)
				}
				if !bytes.Equal(again, g.payload) {
					t.Fatalf("padded frame re-encoded\n% x\nwant\n% x", again, g.payload)
				}
			}
		})
	}
	// 13 exchanges, each a request, its ACK, the bridge's reply and its
	// ACK, minus the bridge's unsolicited DE-ASSOCIATE (frame 61) which is
	// a request too.
	if reqs != 13 || resps != 12 || acks != 25 || other != 0 {
		t.Errorf("requests %d, responses %d, ACKs %d, other %d; want 13, 12, 25, 0", reqs, resps, acks, other)
	}
}

// TestECPGoldenFields checks decoded values of typical frames against what
// tshark -V shows (and, for filters, against the raw bytes: tshark's vdp21
// dissector forgets the 2-byte number of entries and masks PS/PCP wrongly).
func TestECPGoldenFields(t *testing.T) {
	uuid1 := [16]byte{0x6f, 0x1c, 0x2b, 0x3a, 0x11, 0x11, 0x42, 0x22, 0x83, 0x33, 0x94, 0x44, 0x55, 0x55, 0x66, 0x66}
	uuid2 := [16]byte{0x7a, 0x2b, 0x3c, 0x4d, 0x22, 0x22, 0x43, 0x33, 0x84, 0x44, 0x95, 0x55, 0x66, 0x66, 0x77, 0x77}
	mgr := VSIManagerID{ID: [16]byte{'e', 'v', 'm', 'g', 'r', '0', '1'}}
	vm := [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

	tests := []struct {
		frame int
		src   [6]byte
		want  ECPDU
		str   string
	}{
		{
			// Station's ASSOCIATE request, MAC/VID filter.
			frame: 17, src: ecpStation,
			want: ECPDU{Version: 1, Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 1, VDP: &VDPDU{TLVs: []TLV{
				&mgr,
				&VSI{Mode: VSIAssociate, Status: 0, VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: VSIIDUUID, VSIID: uuid1,
					FilterFormat: FilterMACVID, Filters: []Filter{{MAC: vm, VID: 100}}},
			}}},
			str: "ECP v1 REQUEST VDP seq 1 [VSI Manager ID evmgr01, ASSOCIATE request typeid 0x001267 v1 UUID 6f1c2b3a-1111-4222-8333-944455556666 MAC/VID [52:54:00:12:34:56 vid 100]]",
		},
		{
			// Its ACK: header only.
			frame: 18, src: ecpBridge,
			want: ECPDU{Version: 1, Op: ECPAck, Subtype: ECPSubtypeVDP, Sequence: 1},
			str:  "ECP v1 ACK VDP seq 1",
		},
		{
			// The bridge's reply: same TLV with the Req/Rsp bit, success.
			frame: 19, src: ecpBridge,
			want: ECPDU{Version: 1, Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 1, VDP: &VDPDU{TLVs: []TLV{
				&mgr,
				&VSI{Mode: VSIAssociate, Status: VSIStatusResponse, VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: VSIIDUUID, VSIID: uuid1,
					FilterFormat: FilterMACVID, Filters: []Filter{{MAC: vm, VID: 100}}},
			}}},
			str: "ECP v1 REQUEST VDP seq 1 [VSI Manager ID evmgr01, ASSOCIATE response: success typeid 0x001267 v1 UUID 6f1c2b3a-1111-4222-8333-944455556666 MAC/VID [52:54:00:12:34:56 vid 100]]",
		},
		{
			// PRE-ASSOCIATE with the M-bit (migrate-to), VID filter 200.
			frame: 41, src: ecpStation,
			want: ECPDU{Version: 1, Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 6, VDP: &VDPDU{TLVs: []TLV{
				&mgr,
				&VSI{Mode: VSIPreAssociate, Status: VSIStatusM, VSITypeID: 0x1268, VSITypeVersion: 2, VSIIDFormat: VSIIDUUID, VSIID: uuid2,
					FilterFormat: FilterVID, Filters: []Filter{{VID: 200}}},
			}}},
			str: "ECP v1 REQUEST VDP seq 6 [VSI Manager ID evmgr01, PRE-ASSOCIATE request M typeid 0x001268 v2 UUID 7a2b3c4d-2222-4333-8444-955566667777 VID [vid 200]]",
		},
		{
			// The bridge tears the first association down unsolicited: a
			// DE-ASSOCIATE request (Req/Rsp bit clear) from the bridge.
			frame: 61, src: ecpBridge,
			want: ECPDU{Version: 1, Op: ECPRequest, Subtype: ECPSubtypeVDP, Sequence: 11, VDP: &VDPDU{TLVs: []TLV{
				&mgr,
				&VSI{Mode: VSIDeAssociate, Status: 0, VSITypeID: 0x1267, VSITypeVersion: 1, VSIIDFormat: VSIIDUUID, VSIID: uuid1,
					FilterFormat: FilterMACVID, Filters: []Filter{{MAC: vm, VID: 100}}},
			}}},
			str: "ECP v1 REQUEST VDP seq 11 [VSI Manager ID evmgr01, DE-ASSOCIATE request typeid 0x001267 v1 UUID 6f1c2b3a-1111-4222-8333-944455556666 MAC/VID [52:54:00:12:34:56 vid 100]]",
		},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("frame%d", tt.frame), func(t *testing.T) {
			g := ecpGoldenFrame(t, tt.frame)
			if g.eth.Src != tt.src {
				t.Errorf("source %x, want %x", g.eth.Src, tt.src)
			}
			var p ECPDU
			if err := p.UnmarshalBinary(g.payload); err != nil {
				t.Fatal(err)
			}
			ecpDiff(t, &p, &tt.want)
			if s := p.String(); s != tt.str {
				t.Errorf("String()\n got %s\nwant %s", s, tt.str)
			}
		})
	}

	// Helpers on the request and the response.
	var req, resp ECPDU
	if err := req.UnmarshalBinary(ecpGoldenFrame(t, 17).payload); err != nil {
		t.Fatal(err)
	}
	if err := resp.UnmarshalBinary(ecpGoldenFrame(t, 19).payload); err != nil {
		t.Fatal(err)
	}
	rq, rs := req.VDP.VSIs()[0], resp.VDP.VSIs()[0]
	if rq.IsResponse() || !rs.IsResponse() {
		t.Errorf("IsResponse: request %v, response %v", rq.IsResponse(), rs.IsResponse())
	}
	if rs.Code() != VDPSuccess || rs.Status.Keep() || rs.Status.Hard() {
		t.Errorf("response code %v keep %v hard %v", rs.Code(), rs.Status.Keep(), rs.Status.Hard())
	}
	if m := resp.VDP.ManagerID(); m == nil || m.String() != "evmgr01" {
		t.Errorf("ManagerID() = %v", m)
	}
}

// TestECPGoldenText compares the String() of every ECP frame of the
// capture with testdata/ecp_cap2012.golden (go test -run ECPGoldenText
// -update-ecp rewrites it).
func TestECPGoldenText(t *testing.T) {
	var sb strings.Builder
	for _, g := range ecpGoldenFrames(t) {
		var p ECPDU
		if err := p.UnmarshalBinary(g.payload); err != nil {
			t.Fatalf("frame %d: %v", g.num, err)
		}
		who := "station"
		if g.eth.Src == ecpBridge {
			who = "bridge "
		}
		fmt.Fprintf(&sb, "%3d %s %s\n", g.num, who, p.String())
	}
	path := filepath.Join("testdata", "ecp_cap2012.golden")
	if *updateECPGolden {
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.String(); got != string(want) {
		t.Errorf("decoded capture differs from %s (run with -update-ecp and review the diff):\n%s", path, got)
	}
}
