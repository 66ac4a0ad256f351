package dissect_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/internal/pcapfile"
	"github.com/tether-net/tether/internal/testframes"
	"github.com/tether-net/tether/wire"
)

// Indexes of the frames testframes.All returns.
const (
	frameLLDP = iota
	frameSignedLLDP
	frameAssocRequest
	frameAck
	frameAssocResponse
	frameDeassocRefused
	frameSignedAssoc
	frameSChannelResponse
	frameCount
)

// capture writes testframes.All to a pcap file in a temporary directory and
// returns its path and the frames.
func capture(t *testing.T) (string, []testframes.Named) {
	t.Helper()
	frames, err := testframes.All()
	if err != nil {
		t.Fatalf("building frames: %v", err)
	}
	if len(frames) != frameCount {
		t.Fatalf("testframes.All returned %d frames, this test knows %d", len(frames), frameCount)
	}
	path := filepath.Join(t.TempDir(), "tether.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, pcapfile.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	data := make([][]byte, len(frames))
	for i, n := range frames {
		data[i] = n.Data
	}
	if err := testframes.WritePcap(w, data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, frames
}

// run runs a dissector and returns its standard output. Standard error is
// ignored unless the command fails (tshark warns on stderr when run as
// root).
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: .ci/run installs it (tests/install-deps.sh)", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// pdmlField is one <field> of tshark's PDML output, nested fields
// flattened in document order.
type pdmlField struct {
	Name   string      `xml:"name,attr"`
	Show   string      `xml:"show,attr"`
	Value  string      `xml:"value,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlProto struct {
	Name   string      `xml:"name,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlPacket struct {
	Protos []pdmlProto `xml:"proto"`
}

type pdml struct {
	Packets []pdmlPacket `xml:"packet"`
}

// packet is one dissected frame: every field's show value, by field name,
// in document order, and the set of protocols.
type packet struct {
	fields map[string][]string
	protos []string
}

// all returns every value of field name.
func (p packet) all(name string) []string { return p.fields[name] }

// one returns the single value of field name, failing the test when there
// is not exactly one.
func (p packet) one(t *testing.T, name string) string {
	t.Helper()
	v := p.fields[name]
	if len(v) != 1 {
		t.Errorf("tshark field %s: got %d values %q, want exactly one", name, len(v), v)
		return ""
	}
	return v[0]
}

func flatten(fs []pdmlField, into map[string][]string) {
	for _, f := range fs {
		into[f.Name] = append(into[f.Name], f.Show)
		flatten(f.Fields, into)
	}
}

// tshark dissects path and returns one packet per frame.
func tshark(t *testing.T, path string) []packet {
	t.Helper()
	out := run(t, "tshark", "-n", "-r", path, "-T", "pdml")
	var doc pdml
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing tshark PDML: %v", err)
	}
	pkts := make([]packet, len(doc.Packets))
	for i, p := range doc.Packets {
		pkts[i].fields = map[string][]string{}
		for _, pr := range p.Protos {
			pkts[i].protos = append(pkts[i].protos, pr.Name)
			flatten(pr.Fields, pkts[i].fields)
		}
	}
	return pkts
}

// tcpdump dissects path with -v and returns the text of each frame.
func tcpdump(t *testing.T, path string) []string {
	t.Helper()
	out := run(t, "tcpdump", "-n", "-v", "-r", path)
	var frames []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " "):
			if len(frames) > 0 {
				frames[len(frames)-1] += line + "\n"
			}
		default:
			frames = append(frames, line+"\n")
		}
	}
	return frames
}

// b01 formats a bool as tshark and tcpdump print flags.
func b01(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func itoa[T ~uint8 | ~uint16 | ~uint32 | ~int](v T) string { return strconv.Itoa(int(v)) }

// colonHex formats bytes as tshark shows byte strings: "01:02:03".
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// orgInfo returns the information string (after OUI and subtype) of a
// tether TLV as encoded by wire.
func orgInfo(t *testing.T, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("encoding %T: %v", m, err)
	}
	return b[2+4:]
}

func checkEq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: dissector read %q, tether encoded %q", what, got, want)
	}
}

func checkList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: dissector read %q, tether encoded %q", what, got, want)
	}
}

// TestTsharkNoMalformed checks that tshark finds nothing malformed or
// suspicious in any of tether's frames.
func TestTsharkNoMalformed(t *testing.T) {
	path, frames := capture(t)
	pkts := tshark(t, path)
	if len(pkts) != len(frames) {
		t.Fatalf("tshark saw %d frames, wrote %d", len(pkts), len(frames))
	}
	for i, p := range pkts {
		for name, v := range p.fields {
			if strings.HasPrefix(name, "_ws.malformed") || strings.HasPrefix(name, "_ws.expert") {
				t.Errorf("frame %d (%s): tshark reports %s %q", i+1, frames[i].Name, name, v)
			}
		}
		if slices.Contains(p.protos, "_ws.malformed") {
			t.Errorf("frame %d (%s): tshark marks it malformed", i+1, frames[i].Name)
		}
	}
}

// TestTsharkLLDP checks the station's LLDPDU: basic TLVs, the presence and
// order of the IEEE 802.1 TLVs (tshark 4.0 names EVB and CDCP but does not
// decode their fields; tcpdump does, see TestTcpdumpLLDP), every DCBX ETS,
// PFC and APP field, and tether's TLVs as opaque org TLVs under its CID.
func TestTsharkLLDP(t *testing.T) {
	path, frames := capture(t)
	pkts := tshark(t, path)
	for _, idx := range []int{frameLLDP, frameSignedLLDP} {
		p := pkts[idx]
		t.Run(fmt.Sprintf("frame%d", idx+1), func(t *testing.T) {
			du := testframes.StationLLDPDU()
			mac := testframes.StationMAC()
			checkEq(t, "chassis ID subtype", p.one(t, "lldp.chassis.subtype"), "4")
			checkEq(t, "chassis ID", p.one(t, "lldp.chassis.id.mac"), colonHex(mac[:]))
			checkEq(t, "port ID subtype", p.one(t, "lldp.port.subtype"), "5")
			checkEq(t, "port ID", p.one(t, "lldp.port.id"), string(du.PortID.ID))
			checkEq(t, "TTL", p.one(t, "lldp.time_to_live"), itoa(du.TTL))
			checkEq(t, "system name", p.one(t, "lldp.tlv.system.name"), "hv1")

			checkList(t, "IEEE 802.1 subtypes in order", p.all("lldp.ieee.802_1.subtype"),
				[]string{"0x0d", "0x0e", "0x09", "0x0a", "0x0b", "0x0c"})
			// TLV lengths: chassis, port, TTL, name, EVB 9, CDCP 4+4+3*3,
			// ETS 25, ETS 25, PFC 6, APP 5+3*3, capability, inventory, (signature), End.
			wantLens := []string{"7", "5", "2", "3", "9", itoa(4 + 4 + 3*len(testframes.CDCP().Channels)), "25", "25", "6",
				itoa(5 + 3*len(testframes.APP().Entries)), itoa(4 + wire.TetherCapabilityLen), itoa(4 + wire.TetherInventoryLen)}
			if idx == frameSignedLLDP {
				wantLens = append(wantLens, itoa(4+wire.SignatureInfoLen))
			}
			wantLens = append(wantLens, "0")
			checkList(t, "LLDP TLV lengths", p.all("lldp.tlv.len"), wantLens)

			// ETS Configuration, then ETS Recommendation: tshark uses the same
			// field names for both tables, in that order.
			ets, rec := testframes.ETSConfiguration(), testframes.ETSRecommendation()
			pfc := testframes.PFC()
			checkList(t, "willing bits (ETS, PFC)", p.all("lldp.dcbx.ieee.willing"), []string{b01(ets.Willing), b01(pfc.Willing)})
			checkEq(t, "ETS CBS", p.one(t, "lldp.dcbx.ieee.ets.cbs"), b01(ets.CBS))
			checkEq(t, "ETS max TCs", p.one(t, "lldp.dcbx.ieee.ets.maxtcs"), itoa(ets.MaxTCs))
			for prio := 0; prio < 8; prio++ {
				checkList(t, fmt.Sprintf("priority %d traffic class", prio), p.all(fmt.Sprintf("lldp.dcbx.feature.pg.pgid_prio%d", prio)),
					[]string{itoa(ets.PriorityTC[prio]), itoa(rec.PriorityTC[prio])})
				checkList(t, fmt.Sprintf("TC %d bandwidth", prio), p.all(fmt.Sprintf("lldp.dcbx.feature.pg.per%d", prio)),
					[]string{itoa(ets.Bandwidth[prio]), itoa(rec.Bandwidth[prio])})
				checkList(t, fmt.Sprintf("TC %d TSA", prio), p.all(fmt.Sprintf("lldp.dcbx.ieee.ets.tsa%d", prio)),
					[]string{itoa(ets.TSA[prio]), itoa(rec.TSA[prio])})
				checkEq(t, fmt.Sprintf("PFC priority %d", prio), p.one(t, fmt.Sprintf("lldp.dcbx.feature.pfc.prio%d", prio)), b01(pfc.Enable&(1<<prio) != 0))
			}
			checkEq(t, "PFC MBC", p.one(t, "lldp.dcbx.ieee.pfc.mbc"), b01(pfc.MBC))
			checkEq(t, "PFC cap", p.one(t, "lldp.dcbx.ieee.pfc.numtcs"), itoa(pfc.Cap))

			app := testframes.APP()
			var prio, sel, proto []string
			for _, e := range app.Entries {
				prio = append(prio, itoa(e.Priority))
				sel = append(sel, itoa(e.Sel))
				proto = append(proto, fmt.Sprintf("0x%04x", e.Protocol))
			}
			checkList(t, "APP priorities", p.all("lldp.dcbx.ieee.app.prio"), prio)
			checkList(t, "APP selectors", p.all("lldp.dcbx.iee.app.sf"), sel) // sic: "iee" in tshark 4.0
			checkList(t, "APP protocol IDs", p.all("lldp.dcbx.feature.app.proto"), proto)

			// tether's own TLVs: tshark does not know the CID and shows the
			// information strings raw; they must be the encoder's bytes.
			cid := int(wire.DefaultCID[0])<<16 | int(wire.DefaultCID[1])<<8 | int(wire.DefaultCID[2])
			wantOUIs := []string{"32962", "32962", "32962", "32962", "32962", "32962", itoa(cid), itoa(cid)}
			wantSubs := []string{itoa(wire.TetherSubtypeCapability), itoa(wire.TetherSubtypeInventory)}
			wantInfo := []string{colonHex(orgInfo(t, testframes.Capability())), colonHex(orgInfo(t, testframes.Inventory()))}
			if idx == frameSignedLLDP {
				wantOUIs = append(wantOUIs, itoa(cid))
				wantSubs = append(wantSubs, itoa(wire.TetherSubtypeSignature))
				_, sig, err := wire.FindSignature(frames[idx].Data[wire.SignedHeaderLen:], wire.PDUKindLLDP, wire.OUI{})
				if err != nil {
					t.Fatalf("FindSignature: %v", err)
				}
				wantInfo = append(wantInfo, colonHex(orgInfo(t, &sig)))
			}
			checkList(t, "org TLV OUIs", p.all("lldp.orgtlv.oui"), wantOUIs)
			checkList(t, "tether TLV subtypes", p.all("lldp.unknown_subtype"), wantSubs)
			checkList(t, "tether TLV information strings", p.all("lldp.unknown_subtype.content"), wantInfo)
		})
	}
}

// TestTsharkECPVDP checks the ECP header of every ECP frame and the VDP
// TLVs tshark decodes correctly.
//
// tshark's vdp21 dissector (Wireshark 4.0) gets the VSI TLV right up to
// the filter format, and then follows a pre-standard layout: it does not
// skip the 2-byte number of filter entries that IEEE 802.1Qbg-2012 41.2.8
// puts before the entries, so it shows the count and the first four MAC
// octets as the "MAC ID" (00:01:52:54:00:12), and it reads PS, PCP and VID
// from the wrong bits of the wrong two octets. lldpad, the standard and
// tether's decoder agree on the 2012 layout (cap2012.pcap is lldpad's), so
// the filter fields (vdp21.assoc.mac_id, vdp21.vidstr.*) are not asserted
// here; tetherctl decode's golden test covers them. tshark also does not
// decode organizationally defined VDP TLVs beyond their OUI.
func TestTsharkECPVDP(t *testing.T) {
	path, _ := capture(t)
	pkts := tshark(t, path)
	type want struct {
		pdu  *wire.ECPDU
		idx  int
		orgs int // tether org TLVs after the VSI TLV
	}
	for _, w := range []want{
		{testframes.AssociateRequest(), frameAssocRequest, 0},
		{testframes.Ack(), frameAck, 0},
		{testframes.AssociateResponse(), frameAssocResponse, 1},
		{testframes.DeassociateRefused(), frameDeassocRefused, 0},
		{testframes.AssociateRequest(), frameSignedAssoc, 1},
		{testframes.SChannelAssociateResponse(), frameSChannelResponse, 3},
	} {
		p := pkts[w.idx]
		t.Run(fmt.Sprintf("frame%d", w.idx+1), func(t *testing.T) {
			checkEq(t, "ECP version", p.one(t, "ecp.ver"), itoa(wire.ECPVersion))
			checkEq(t, "ECP operation", p.one(t, "ecp.op"), fmt.Sprintf("0x%04x", uint8(w.pdu.Op)))
			checkEq(t, "ECP subtype", p.one(t, "ecp.subtype"), fmt.Sprintf("0x%04x", uint16(w.pdu.Subtype)))
			checkEq(t, "ECP sequence", p.one(t, "ecp.seqno"), itoa(w.pdu.Sequence))
			if w.pdu.VDP == nil {
				if n := len(p.all("vdp21.tlvtype")); n != 0 {
					t.Errorf("tshark found %d VDP TLVs in an ACK", n)
				}
				return
			}
			mgr := w.pdu.VDP.ManagerID()
			vsi := w.pdu.VDP.VSIs()[0]
			types := []string{"5", itoa(vsi.Mode)}
			for i := 0; i < w.orgs; i++ {
				types = append(types, "127")
			}
			checkList(t, "VDP TLV types", p.all("vdp21.tlvtype"), types)
			checkEq(t, "VSI Manager ID", p.one(t, "vdp21.manager_id"), netip.AddrFrom16(mgr.ID).String())
			checkEq(t, "response bit", p.one(t, "vdp21.assoc.flags.req_rsp"), b01(vsi.IsResponse()))
			if vsi.IsResponse() {
				checkEq(t, "error code", p.one(t, "vdp21.assoc.error"), fmt.Sprintf("0x%02x", uint8(vsi.Code())))
				checkEq(t, "KEEP bit", p.one(t, "vdp21.assoc.flags.keep"), b01(vsi.Status.Keep()))
				checkEq(t, "hard error bit", p.one(t, "vdp21.assoc.flags.hard_error"), b01(vsi.Status.Hard()))
			} else {
				checkEq(t, "reason", p.one(t, "vdp21.assoc.reason"), "0x00")
				checkEq(t, "M-bit", p.one(t, "vdp21.assoc.flags.mbit"), b01(vsi.Status.M()))
				checkEq(t, "S-bit", p.one(t, "vdp21.assoc.flags.sbit"), b01(vsi.Status.S()))
			}
			checkEq(t, "VSI type ID", p.one(t, "vdp21.vsitypeid"), fmt.Sprintf("0x%06x", vsi.VSITypeID))
			checkEq(t, "VSI type version", p.one(t, "vdp21.vsiversion"), fmt.Sprintf("0x%02x", vsi.VSITypeVersion))
			checkEq(t, "VSIID format", p.one(t, "vdp21.vsiidformat"), fmt.Sprintf("0x%02x", uint8(vsi.VSIIDFormat)))
			checkEq(t, "VSIID", p.one(t, "vdp21.VSIID"), colonHex(vsi.VSIID[:]))
			checkEq(t, "filter format", p.one(t, "vdp21.filterformat"), fmt.Sprintf("0x%02x", uint8(vsi.FilterFormat)))
			cid := int(wire.DefaultCID[0])<<16 | int(wire.DefaultCID[1])<<8 | int(wire.DefaultCID[2])
			var ouis []string
			for i := 0; i < w.orgs; i++ {
				ouis = append(ouis, itoa(cid))
			}
			checkList(t, "VDP org TLV OUIs", p.all("vdp21.org_oui"), ouis)
		})
	}
}

// TestSignatures checks the signed frames as the dissectors see them: the
// signature TLV is the last TLV (tshark shows its key ID, counter and
// signature bytes where tether put them, and tcpdump sees End after it),
// and the signature verifies over every byte before it, both with
// crypto/ed25519 directly and with tether's own identity.Verifier.
func TestSignatures(t *testing.T) {
	path, frames := capture(t)
	pkts := tshark(t, path)
	dumps := tcpdump(t, path)
	priv, keyID := testframes.Key()
	pub := priv.Public().(ed25519.PublicKey)
	keys, err := identity.NewStaticKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		idx     int
		kind    wire.PDUKind
		counter uint64
	}{
		{frameSignedLLDP, wire.PDUKindLLDP, 1001},
		{frameSignedAssoc, wire.PDUKindECP, 1002},
		{frameSChannelResponse, wire.PDUKindECP, 1003},
	} {
		frame := untag(frames[c.idx].Data)
		pdu := frame[wire.SignedHeaderLen:]
		sigOff, sig, err := wire.FindSignature(pdu, c.kind, wire.OUI{})
		if err != nil {
			t.Fatalf("frame %d: FindSignature: %v", c.idx+1, err)
		}
		if sig.KeyID != keyID || sig.Counter != c.counter {
			t.Errorf("frame %d: key ID %x counter %d, want %x %d", c.idx+1, sig.KeyID, sig.Counter, keyID, c.counter)
		}
		if c.idx == frameSChannelResponse {
			// The channel binding ends where the signature TLV starts:
			// inside the signed region.
			off, b, err := wire.FindChannelBinding(pdu, wire.OUI{})
			if err != nil || off+wire.ChannelBindingTLVLen != sigOff || b.SVID != testframes.SChannel().SVID {
				t.Errorf("frame %d: binding at %d (%+v, %v), signature at %d", c.idx+1, off, b, err, sigOff)
			}
		}
		msg := frame[:wire.SignedMessageLen(sigOff)]
		if !ed25519.Verify(pub, msg, sig.Sig[:]) {
			t.Errorf("frame %d: signature does not verify", c.idx+1)
		}
		v, err := verifier.Verify(context.Background(), "test/"+c.kind.String(), bytes.Clone(frame))
		if err != nil {
			t.Errorf("frame %d: identity.Verifier: %v", c.idx+1, err)
		} else if v.Counter != c.counter || [8]byte(v.Key) != keyID || v.SigOffset != sigOff || v.Kind != c.kind {
			t.Errorf("frame %d: identity.Verifier says %+v, want counter %d key %x offset %d kind %v", c.idx+1, v, c.counter, keyID, sigOff, c.kind)
		}
		info := make([]byte, 0, wire.SignatureInfoLen)
		info = append(info, keyID[:]...)
		info = binary.BigEndian.AppendUint64(info, c.counter)
		info = append(info, sig.Sig[:]...)
		p := pkts[c.idx]
		switch c.kind {
		case wire.PDUKindLLDP:
			contents := p.all("lldp.unknown_subtype.content")
			if len(contents) == 0 || contents[len(contents)-1] != colonHex(info) {
				t.Errorf("frame %d: tshark's last org TLV content %q, want the signature TLV %s", c.idx+1, contents, colonHex(info))
			}
			dump := dumps[c.idx]
			sigTLV := fmt.Sprintf("Organization specific TLV (127), length %d: OUI Unknown (0x%s)", 4+wire.SignatureInfoLen, hex.EncodeToString(wire.DefaultCID[:]))
			i, j := strings.Index(dump, sigTLV), strings.Index(dump, "End TLV (0), length 0")
			if i < 0 || j < i {
				t.Errorf("frame %d: tcpdump does not show the signature TLV followed by End:\n%s", c.idx+1, dump)
			}
			if hexdump := hexLines(dump[i:]); !strings.HasPrefix(hexdump, hex.EncodeToString(append(wire.DefaultCID[:], wire.TetherSubtypeSignature))+hex.EncodeToString(info)) {
				t.Errorf("frame %d: tcpdump's signature TLV bytes %s, want %x%02x%x", c.idx+1, hexdump, wire.DefaultCID, wire.TetherSubtypeSignature, info)
			}
		case wire.PDUKindECP:
			lens := p.all("vdp21.tlvlen")
			if len(lens) == 0 || lens[len(lens)-1] != itoa(4+wire.SignatureInfoLen) {
				t.Errorf("frame %d: tshark's VDP TLV lengths %q, want the last to be the signature TLV's %d", c.idx+1, lens, 4+wire.SignatureInfoLen)
			}
		}
	}
}

// untag returns frame without its 802.1ad S-Tag, if it has one, as the
// receiving kernel hands an S-channel's frames to a socket (and as the
// signature covers them).
func untag(frame []byte) []byte {
	if len(frame) < 18 || binary.BigEndian.Uint16(frame[12:14]) != 0x88a8 {
		return frame
	}
	return append(bytes.Clone(frame[:12]), frame[16:]...)
}

// payloadOffset is where the EtherType's payload starts in frame: after
// the Ethernet header and an S-Tag, if any.
func payloadOffset(frame []byte) int {
	if len(frame) >= 18 && binary.BigEndian.Uint16(frame[12:14]) == 0x88a8 {
		return 18
	}
	return 14
}

// TestDissectChannelBinding checks the bridge's signed S-channel response
// as the dissectors see it: tshark and tcpdump read the S-Tag (S-VID 100)
// and, around the channel binding (an org TLV they do not know), every
// VDP TLV boundary where tether put it: manager ID, VSI, profile, binding,
// signature; tcpdump's payload bytes are the encoder's, with the binding
// TLV right before the signature TLV.
func TestDissectChannelBinding(t *testing.T) {
	path, frames := capture(t)
	frame := frames[frameSChannelResponse].Data
	svid := testframes.SChannel().SVID
	if b := testframes.Binding(); b.SVID != svid || svid != 100 {
		t.Fatalf("binding %+v, S-channel %d", b, svid)
	}
	p := tshark(t, path)[frameSChannelResponse]
	checkEq(t, "S-Tag VID", p.one(t, "ieee8021ad.id"), itoa(svid))
	checkEq(t, "S-Tag PCP", p.one(t, "ieee8021ad.priority"), "0")
	checkList(t, "VDP TLV types", p.all("vdp21.tlvtype"), []string{"5", itoa(wire.VSIAssociate), "127", "127", "127"})
	checkList(t, "VDP TLV lengths", p.all("vdp21.tlvlen"), []string{"16", "33",
		itoa(4 + len(orgInfo(t, testframes.Profile()))), itoa(4 + wire.TetherChannelBindingLen), itoa(4 + wire.SignatureInfoLen)})
	cid := int(wire.DefaultCID[0])<<16 | int(wire.DefaultCID[1])<<8 | int(wire.DefaultCID[2])
	checkList(t, "VDP org TLV OUIs", p.all("vdp21.org_oui"), []string{itoa(cid), itoa(cid), itoa(cid)})
	if !slices.Contains(p.protos, "ieee8021ad") || !slices.Contains(p.protos, "ecp21") {
		t.Errorf("tshark's protocols %q lack ieee8021ad or ecp21", p.protos)
	}

	out := run(t, "tcpdump", "-n", "-e", "-v", "-r", path)
	var dump string
	for _, f := range strings.SplitAfter(string(out), "\n") {
		if strings.HasPrefix(f, "03:30:00.007000 ") {
			dump = f
		} else if dump != "" && (strings.HasPrefix(f, "\t") || strings.HasPrefix(f, " ")) {
			dump += f
		} else if dump != "" {
			break
		}
	}
	want := fmt.Sprintf("ethertype 802.1Q-QinQ (0x88a8), length %d: vlan %d, p 0, ethertype Unknown (0x8940)", len(frame), svid)
	if !strings.Contains(dump, want) {
		t.Fatalf("tcpdump -e printed %q, want it to contain %q", dump, want)
	}
	hexdump := hexLines(dump)
	if pdu := hex.EncodeToString(frame[18:]); hexdump != pdu {
		t.Errorf("tcpdump's payload %s, want %s", hexdump, pdu)
	}
	bind, err := testframes.Binding().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sigHead := hex.EncodeToString(append([]byte{0xfe, 0x54}, append(wire.DefaultCID[:], wire.TetherSubtypeSignature)...))
	if !strings.Contains(hexdump, hex.EncodeToString(bind)+sigHead) {
		t.Errorf("tcpdump's payload %s lacks the binding %x right before the signature TLV %s", hexdump, bind, sigHead)
	}
}

// hexLines collects the hex bytes of tcpdump's "0x0000:  7a7e 7104 ..."
// lines that follow the first line of s, stopping at the first line that
// is not a hex dump line.
func hexLines(s string) string {
	var b strings.Builder
	lines := strings.Split(s, "\n")
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "0x") {
			break
		}
		// "0x0010:  0000 0621 1000 1267  .......!...g": hex groups, then
		// two spaces and the ASCII column (absent in LLDP hex dumps).
		_, rest, _ := strings.Cut(l, ":")
		hexPart, _, _ := strings.Cut(strings.TrimSpace(rest), "  ")
		b.WriteString(strings.ReplaceAll(hexPart, " ", ""))
	}
	return b.String()
}

// TestTcpdumpLLDP checks the station's LLDPDU as tcpdump -v decodes it:
// the basic TLVs, every EVB and CDCP field (tcpdump decodes these,
// tshark 4.0 does not), and ETS, PFC and APP.
//
// tcpdump prints the ETS Configuration CBS bit as "(tval >> 6) & 0x02",
// which is the Willing bit shifted, not CBS (print-lldp.c); so CBS is
// judged by tshark only (TestTsharkLLDP) and tcpdump's ETS line is checked
// for Willing and Max TCs.
func TestTcpdumpLLDP(t *testing.T) {
	path, frames := capture(t)
	dumps := tcpdump(t, path)
	if len(dumps) != len(frames) {
		t.Fatalf("tcpdump printed %d frames, wrote %d", len(dumps), len(frames))
	}
	for _, idx := range []int{frameLLDP, frameSignedLLDP} {
		d := dumps[idx]
		t.Run(fmt.Sprintf("frame%d", idx+1), func(t *testing.T) {
			match := func(what, re string, want ...string) {
				t.Helper()
				m := regexp.MustCompile(re).FindStringSubmatch(d)
				if m == nil {
					t.Errorf("%s: tcpdump output has no match for %s:\n%s", what, re, d)
					return
				}
				checkList(t, what, m[1:], want)
			}
			mac := testframes.StationMAC()
			match("chassis ID", `Subtype MAC address \(4\): ([0-9a-f:]+)`, colonHex(mac[:]))
			match("port ID", `Subtype Interface Name \(5\): (\S+)`, "eth0")
			match("TTL", `TTL (\d+)s`, "120")
			match("system name", `System Name TLV \(5\), length \d+: (\S+)`, "hv1")

			evb := testframes.EVB()
			match("EVB bridge status", `RES: 0, BGID: (\d), RRCAP: (\d), RRCTR: (\d)`, b01(evb.BGID), b01(evb.RRCAP), b01(evb.RRCTR))
			match("EVB station status", `RES: 0, SGID: (\d), RRREQ: (\d),RRSTAT: (\d)`, b01(evb.SGID), b01(evb.RRREQ), itoa(evb.RRSTAT))
			match("EVB R, RTE, mode", `R: (\d+), RTE: (\d+), EVB Mode: [^\[]*\[(\d)\]`, itoa(evb.R), itoa(evb.RTE), itoa(evb.Mode))
			match("EVB ROL, RWD, ROL, RKA", `ROL: (\d), RWD: (\d+), RES: 0, ROL: (\d), RKA: (\d+)`, b01(evb.ROLRWD), itoa(evb.RWD), b01(evb.ROLRKA), itoa(evb.RKA))

			cdcp := testframes.CDCP()
			match("CDCP role, scomp, chncap", `Role: (\d), RES: \d+, Scomp: (\d) ChnCap: (\d+)`, itoa(cdcp.Role), b01(cdcp.SComp), itoa(cdcp.ChnCap))
			var gotCh, wantCh []string
			for _, m := range regexp.MustCompile(`SCID: (\d+), SVID: (\d+)`).FindAllStringSubmatch(d, -1) {
				gotCh = append(gotCh, m[1]+"/"+m[2])
			}
			for _, c := range cdcp.Channels {
				wantCh = append(wantCh, itoa(c.SCID)+"/"+itoa(c.SVID))
			}
			checkList(t, "CDCP SCID/SVID pairs", gotCh, wantCh)

			ets, rec, pfc := testframes.ETSConfiguration(), testframes.ETSRecommendation(), testframes.PFC()
			match("ETS willing, max TCs", `Willing:(\d), CBS:\d, RES:0, Max TCs:(\d)`, b01(ets.Willing), itoa(ets.MaxTCs))
			match("PFC willing, MBC, cap", `Willing: (\d), MBC: (\d), RES: 0, PFC cap:(\d+)`, b01(pfc.Willing), b01(pfc.MBC), itoa(pfc.Cap))
			// The "Value" rows, in order: ETS Configuration priority, bandwidth
			// and TSA tables, the same for ETS Recommendation, then the PFC
			// enable bits.
			var rows [][]string
			for _, m := range regexp.MustCompile(`(?m)^\s+Value\s*: (.*)$`).FindAllStringSubmatch(d, -1) {
				rows = append(rows, strings.Fields(m[1]))
			}
			var want [][]string
			for _, tab := range []*wire.ETSTables{&ets.ETSTables, &rec.ETSTables} {
				var p, b, s []string
				for i := 0; i < 8; i++ {
					p = append(p, itoa(tab.PriorityTC[i]))
					b = append(b, itoa(tab.Bandwidth[i]))
					s = append(s, itoa(tab.TSA[i]))
				}
				want = append(want, p, b, s)
			}
			var en []string
			for i := 0; i < 8; i++ {
				en = append(en, b01(pfc.Enable&(1<<i) != 0))
			}
			want = append(want, en)
			if len(rows) != len(want) {
				t.Fatalf("tcpdump printed %d table rows, want %d:\n%s", len(rows), len(want), d)
			}
			for i := range want {
				checkList(t, fmt.Sprintf("table row %d", i), rows[i], want[i])
			}

			var gotApp, wantApp []string
			for _, m := range regexp.MustCompile(`Priority: (\d), RES: \d, Sel: (\d), Protocol ID: (\d+)`).FindAllStringSubmatch(d, -1) {
				gotApp = append(gotApp, strings.Join(m[1:], "/"))
			}
			for _, e := range testframes.APP().Entries {
				wantApp = append(wantApp, itoa(e.Priority)+"/"+itoa(e.Sel)+"/"+itoa(e.Protocol))
			}
			checkList(t, "APP entries", gotApp, wantApp)
		})
	}
}

// TestTcpdumpECP checks that tcpdump sees every ECP frame with EtherType
// 0x8940 and its full length (it does not decode ECP or VDP).
func TestTcpdumpECP(t *testing.T) {
	path, frames := capture(t)
	dumps := tcpdump(t, path)
	for _, idx := range []int{frameAssocRequest, frameAck, frameAssocResponse, frameDeassocRefused, frameSignedAssoc, frameSChannelResponse} {
		want := fmt.Sprintf("ethertype Unknown (0x8940), length %d", len(frames[idx].Data))
		if !strings.Contains(dumps[idx], want) {
			t.Errorf("frame %d: tcpdump printed %q, want it to contain %q", idx+1, dumps[idx], want)
		}
		// The hex dump is the ECPDU: header then VDP TLVs.
		if got, pdu := hexLines(dumps[idx]), hex.EncodeToString(frames[idx].Data[payloadOffset(frames[idx].Data):]); got != pdu {
			t.Errorf("frame %d: tcpdump's payload %s, want %s", idx+1, got, pdu)
		}
	}
}
