package inspect

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/internal/pcapfile"
	"github.com/tether-net/tether/internal/testframes"
	"github.com/tether-net/tether/wire"
)

var ts = time.Date(2026, 11, 24, 3, 30, 0, 123456000, time.UTC)

func lldpPDU(t *testing.T, du *wire.LLDPDU) []byte {
	t.Helper()
	b, err := du.MarshalBinary()
	if err != nil {
		t.Fatalf("encoding LLDPDU: %v", err)
	}
	return b
}

func minimalLLDPDU() *wire.LLDPDU {
	mac := testframes.StationMAC()
	return &wire.LLDPDU{
		ChassisID: wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: mac[:]},
		PortID:    wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte("eth0")},
		TTL:       120,
	}
}

func TestDecodeSkipsOtherFrames(t *testing.T) {
	ipv4 := testframes.Frame([6]byte{1, 2, 3, 4, 5, 6}, testframes.StationMAC(), 0x0800, make([]byte, 20))
	tagged := append(append([]byte(nil), ipv4[:12]...), 0x81, 0x00, 0x00, 0x64, 0x08, 0x00)
	for name, b := range map[string][]byte{
		"empty":            nil,
		"short header":     ipv4[:13],
		"IPv4":             ipv4,
		"tagged IPv4":      tagged,
		"tag cut short":    append(append([]byte(nil), ipv4[:12]...), 0x88, 0xa8, 0x00),
		"three tags, LLDP": append(append([]byte(nil), ipv4[:12]...), 0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x88, 0xcc),
	} {
		if f := Decode(1, ts, b, Options{}); f != nil {
			t.Errorf("%s: got a frame %+v, want nil (skipped)", name, f)
		}
	}
}

func TestDecodeTagsAndDestinations(t *testing.T) {
	pdu := lldpPDU(t, minimalLLDPDU())
	st := testframes.StationMAC()
	for _, tt := range []struct {
		dst  [6]byte
		name string
	}{
		{wire.NearestBridge, "nearest-bridge"},
		{wire.NearestNonTPMRBridge, "nearest-non-tpmr-bridge"},
		{wire.NearestCustomerBridge, "nearest-customer-bridge"},
		{testframes.BridgeMAC(), ""},
	} {
		f := Decode(3, ts, testframes.Frame(tt.dst, st, wire.EtherTypeLLDP, pdu), Options{})
		if f == nil || f.DstName != tt.name || f.Error != "" {
			t.Errorf("dst %x: frame %+v, want dst_name %q", tt.dst, f, tt.name)
		}
	}

	// An S-channel LLDPDU: S-Tag VID 10 PCP 7 DEI, then a C-Tag VID 100.
	b := testframes.Frame(wire.NearestCustomerBridge, st, 0x88a8, append([]byte{0xf0, 0x0a, 0x81, 0x00, 0x00, 0x64, 0x88, 0xcc}, pdu...))
	f := Decode(7, ts, b, Options{})
	if f == nil {
		t.Fatal("S-tagged LLDP frame skipped")
	}
	want := []Tag{
		{TPID: "0x88a8", Kind: "s-tag", VID: 10, PCP: 7, DEI: true},
		{TPID: "0x8100", Kind: "c-tag", VID: 100, PCP: 0, DEI: false},
	}
	if len(f.Tags) != 2 || f.Tags[0] != want[0] || f.Tags[1] != want[1] {
		t.Errorf("tags %+v, want %+v", f.Tags, want)
	}
	if f.Protocol != ProtocolLLDP || f.EtherType != "0x88cc" || f.Error != "" || len(f.TLVs) != 3 {
		t.Errorf("frame %+v", f)
	}
	var out bytes.Buffer
	if err := WriteText(&out, f, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	wantText := "frame 7  2026-11-24T03:30:00.123456Z  52:54:00:aa:00:01 → 01:80:c2:00:00:00 (nearest-customer-bridge)  s-tag vid=10 pcp=7 dei  c-tag vid=100 pcp=0  LLDP  " + itoa(len(b)) + " bytes\n" +
		"  Chassis ID: subtype=mac_address id=52:54:00:aa:00:01\n" +
		"  Port ID: subtype=interface_name id=eth0\n" +
		"  TTL: seconds=120\n"
	if out.String() != wantText {
		t.Errorf("text\n%s\nwant\n%s", out.String(), wantText)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestDecodeLLDPVariants covers the basic TLV forms the captures lack.
func TestDecodeLLDPVariants(t *testing.T) {
	du := &wire.LLDPDU{
		ChassisID: wire.ChassisID{Subtype: lldp.ChassisIDSubtypeNetworkAddress, ID: []byte{1, 192, 0, 2, 1}},
		PortID:    wire.PortID{Subtype: lldp.PortIDSubtypeLocallyAssigned, ID: []byte{0x00, 0xff, 0x10}},
		TTL:       0,
		TLVs: []wire.TLV{
			wire.PortDescription(""),
			&wire.SystemCapabilities{System: wire.SysCapBridge | wire.SysCapSVLAN | 1<<14, Enabled: 0},
			&wire.ManagementAddress{Subtype: wire.AddrFamilyIPv4, Address: []byte{192, 0, 2, 1}, IfSubtype: wire.IfSubtypeSystemPort, IfNumber: 7, OID: []byte{0x2b, 0x06}},
			wire.NewManagementAddress(netip.MustParseAddr("2001:db8::1"), 3),
			&wire.RawTLV{Type: 9, Value: []byte{0xab}},
			&wire.RawOrgTLV{OUI: wire.OUIIEEE8021, Subtype: wire.Subtype8021PortVLANID, Info: []byte{0, 100}},
			&wire.RawOrgTLV{OUI: wire.DefaultCID, Subtype: 99, Info: []byte{1}},
		},
	}
	f := Decode(1, ts, testframes.Frame(wire.NearestBridge, testframes.StationMAC(), wire.EtherTypeLLDP, lldpPDU(t, du)), Options{})
	if f == nil || f.Error != "" {
		t.Fatalf("frame %+v", f)
	}
	var out bytes.Buffer
	if err := WriteText(&out, f, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(out.String(), "\n")
	want := `  Chassis ID: subtype=network_address id=192.0.2.1
  Port ID: subtype=local id=00ff10
  TTL: seconds=0
  Port Description: description=""
  System Capabilities: system=[bridge s_vlan bit14] enabled=[]
  Management Address: family=ipv4 address=192.0.2.1 if_subtype=system_port if_number=7 oid=2b06
  Management Address: family=ipv6 address=2001:db8::1 if_subtype=ifindex if_number=3 oid=""
  TLV type 9: type=9 length=1 value=ab
  IEEE 802.1 Port VLAN ID: oui=00-80-c2 subtype=1 length=2 info=0064
  org 7a-7e-71 subtype 99: oui=7a-7e-71 subtype=99 length=1 info=01
`
	if body != want {
		t.Errorf("text\n%s\nwant\n%s", body, want)
	}
}

// TestDecodeCID checks that tether's TLVs are recognised under a configured
// Company ID and not under the default one.
func TestDecodeCID(t *testing.T) {
	cid := wire.OUI{0x0a, 0x12, 0x34}
	du := minimalLLDPDU()
	du.TLVs = []wire.TLV{testframes.Capability()}
	du.TetherCID = cid
	b := testframes.Frame(wire.NearestCustomerBridge, testframes.StationMAC(), wire.EtherTypeLLDP, lldpPDU(t, du))
	if f := Decode(1, ts, b, Options{TetherCID: cid}); f == nil || f.TLVs[3].Kind != "tether_capability" {
		t.Errorf("with the CID: %+v", f)
	}
	if f := Decode(1, ts, b, Options{}); f == nil || f.TLVs[3].Kind != "org" {
		t.Errorf("without the CID: %+v", f)
	}
}

// TestDecodeChannelBinding decodes the bridge's signed S-channel response:
// the S-Tag, then the profile, the channel binding by name with its S-VID,
// and the signature, in text and JSON; under a configured CID the binding
// is typed only with that CID; a malformed binding fails the frame with
// the binding's error and frame offset.
func TestDecodeChannelBinding(t *testing.T) {
	all, err := testframes.All()
	if err != nil {
		t.Fatal(err)
	}
	last := all[len(all)-1]
	if last.Name != "signed S-channel ASSOCIATE response" {
		t.Fatalf("last test frame is %q", last.Name)
	}
	f := Decode(1, ts, last.Data, Options{})
	if f == nil || f.Error != "" {
		t.Fatalf("frame %+v", f)
	}
	if len(f.Tags) != 1 || f.Tags[0] != (Tag{TPID: "0x88a8", Kind: "s-tag", VID: 100}) {
		t.Errorf("tags %+v, want one S-Tag of VID 100", f.Tags)
	}
	var kinds []string
	for _, n := range f.TLVs {
		kinds = append(kinds, n.Kind)
	}
	if want := "ecp vdp_manager_id vdp_associate tether_profile tether_channel_binding tether_signature"; strings.Join(kinds, " ") != want {
		t.Errorf("TLV kinds %q, want %q", kinds, want)
	}
	var out bytes.Buffer
	if err := WriteText(&out, f, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\n  tether Channel Binding: svid=100\n  tether Signature: key_id=") {
		t.Errorf("text lacks the binding line before the signature:\n%s", out.String())
	}
	b, err := json.Marshal(f.TLVs[4])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tlv":"tether_channel_binding","tlv_name":"tether Channel Binding","svid":100}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}

	// Under a configured CID.
	cid := wire.OUI{0x0a, 0x12, 0x34}
	p := testframes.SChannelAssociateResponse()
	p.TetherCID = cid
	pdu, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	frame := testframes.STag(testframes.Frame(wire.NearestCustomerBridge, testframes.BridgeMAC(), wire.EtherTypeECP, pdu), 100)
	if f := Decode(1, ts, frame, Options{TetherCID: cid}); f == nil || f.Error != "" || f.TLVs[4].Kind != "tether_channel_binding" {
		t.Errorf("with the CID: %+v", f)
	}
	if f := Decode(1, ts, frame, Options{}); f == nil || f.Error != "" || f.TLVs[4].Kind != "org" || f.TLVs[4].Name != "org 0a-12-34 subtype 5" {
		t.Errorf("without the CID: %+v", f)
	}

	// A binding for S-VID 0: the ECP header is at frame offset 18 (after
	// the S-Tag), the binding's information string 6 bytes into its TLV.
	pdu, err = testframes.SChannelAssociateResponse().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(pdu, []byte{0xfe, 0x06, 0x7a, 0x7e, 0x71, 0x05, 0x00, 0x64})
	if i < 0 {
		t.Fatalf("no binding TLV in % x", pdu)
	}
	pdu[i+7] = 0
	f = Decode(1, ts, testframes.STag(testframes.Frame(wire.NearestCustomerBridge, testframes.BridgeMAC(), wire.EtherTypeECP, pdu), 100), Options{})
	want := "tether Channel Binding at offset " + itoa(i+6) + ": invalid value: S-VID 0 out of range 1-4094 (frame offset " + itoa(18+i+6) + ")"
	if f == nil || f.Error != want {
		t.Errorf("malformed binding: %+v, want error %q", f, want)
	}
}

func TestDecodeECPPayload(t *testing.T) {
	p := &wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypePECSP, Sequence: 9, Payload: []byte{1, 2, 3}}
	pdu, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := Decode(1, ts, testframes.Frame(wire.NearestCustomerBridge, testframes.BridgeMAC(), wire.EtherTypeECP, pdu), Options{})
	if f == nil || len(f.TLVs) != 2 || f.TLVs[1].Kind != "ecp_payload" {
		t.Fatalf("frame %+v", f)
	}
	// The frame is padded to 60 bytes and PE-CSP keeps the padding.
	if got := textValue(f.TLVs[0].Fields); got != "{version=1 op=request subtype=pe_csp sequence=9}" {
		t.Errorf("ECP header %s", got)
	}
}

func TestTextValue(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{"plain", "plain"},
		{"", `""`},
		{"two words", `"two words"`},
		{"a=b", `"a=b"`},
		{"tab\there", `"tab\there"`},
		{`quote"`, `"quote\""`},
		{true, "true"},
		{uint64(1) << 63, "9223372036854775808"},
		{[]string{"a b", "c"}, `["a b" c]`},
		{[]int{}, "[]"},
		{Fields{{"k", 1}, {"s", "x y"}}, `{k=1 s="x y"}`},
		{[]Fields{{{"k", 1}}, {{"k", 2}}}, "[{k=1} {k=2}]"},
	} {
		if got := textValue(tt.v); got != tt.want {
			t.Errorf("textValue(%#v) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	tlv := TLV{Kind: "x", Name: "X", Fields: Fields{{"b", 2}, {"a", []Fields{{{"z", true}}}}}}
	b, err := json.Marshal(tlv)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tlv":"x","tlv_name":"X","b":2,"a":[{"z":true}]}`; string(b) != want {
		t.Errorf("JSON %s, want %s (order kept)", b, want)
	}
	for _, bad := range []TLV{
		{Kind: "x", Fields: Fields{{"a", 1}, {"a", 2}}},
		{Kind: "x", Fields: Fields{{"tlv", 1}}},
		{Kind: "x", Fields: Fields{{"tlv_name", 1}}},
		{Kind: "x", Fields: Fields{{"f", func() {}}}},
	} {
		if _, err := json.Marshal(bad); err == nil {
			t.Errorf("json.Marshal(%+v) succeeded, want an error", bad)
		}
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkKeys checks that every field key is lower_snake_case, recursively.
func checkKeys(t *testing.T, where string, fs Fields) {
	t.Helper()
	for _, f := range fs {
		if !snake.MatchString(f.Key) {
			t.Errorf("%s: key %q is not lower_snake_case", where, f.Key)
		}
		switch v := f.Value.(type) {
		case Fields:
			checkKeys(t, where+"."+f.Key, v)
		case []Fields:
			for _, sub := range v {
				checkKeys(t, where+"."+f.Key, sub)
			}
		}
	}
}

// TestEveryNode decodes every test frame and both captures and checks each
// node: snake_case kind and keys, JSON that encodes, and text that renders.
func TestEveryNode(t *testing.T) {
	var frames [][]byte
	all, err := testframes.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		frames = append(frames, n.Data)
	}
	for _, name := range []string{"cap2012.pcap", "caplldpd.pcap"} {
		fh, err := os.Open("../internal/pcapfile/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapfile.NewReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			frames = append(frames, rec.Data)
		}
		fh.Close()
	}
	kinds := map[string]bool{}
	for i, b := range frames {
		f := Decode(i+1, ts, b, Options{})
		if f == nil {
			t.Errorf("frame %d skipped", i+1)
			continue
		}
		if f.Error != "" {
			t.Errorf("frame %d: %s", i+1, f.Error)
		}
		for _, n := range f.TLVs {
			kinds[n.Kind] = true
			if !snake.MatchString(n.Kind) {
				t.Errorf("frame %d: kind %q is not lower_snake_case", i+1, n.Kind)
			}
			checkKeys(t, n.Kind, n.Fields)
		}
		if _, err := json.Marshal(f); err != nil {
			t.Errorf("frame %d: JSON: %v", i+1, err)
		}
		if err := WriteText(&bytes.Buffer{}, f, TextOptions{}); err != nil {
			t.Errorf("frame %d: text: %v", i+1, err)
		}
	}
	for _, k := range []string{"chassis_id", "port_id", "ttl", "system_name", "system_description", "port_description",
		"system_capabilities", "management_address", "evb", "cdcp", "ets_configuration", "ets_recommendation", "pfc", "app",
		"tether_capability", "tether_inventory", "tether_profile", "tether_signature", "tether_channel_binding", "org", "ecp", "vdp_manager_id",
		"vdp_pre_associate", "vdp_associate", "vdp_de_associate"} {
		if !kinds[k] {
			t.Errorf("no test frame has a %s node", k)
		}
	}
}

// FuzzDecode checks that Decode and both renderings survive any input.
func FuzzDecode(f *testing.F) {
	all, err := testframes.All()
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range all {
		f.Add(n.Data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := Decode(1, ts, b, Options{})
		if fr == nil {
			return
		}
		if _, err := json.Marshal(fr); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		if err := WriteText(&bytes.Buffer{}, fr, TextOptions{}); err != nil {
			t.Fatalf("text: %v", err)
		}
		if fr.Error == "" && len(fr.TLVs) == 0 {
			t.Fatalf("frame without TLVs and without error: %+v", fr)
		}
	})
}
