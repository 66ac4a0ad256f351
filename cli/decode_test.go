package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/internal/pcapfile"
	"github.com/tether-net/tether/internal/testframes"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// captures is where the lldpad and lldpd captures live.
const captures = "../internal/pcapfile/testdata"

// result is what one in-process run of tetherctl produced.
type result struct {
	code   int
	stdout string
	stderr string
}

// tetherctl runs the command tree in-process with stdin as standard input.
func tetherctl(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &Streams{In: bytes.NewReader(stdin), Out: &out, Err: &errb})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test ./cli -update and review the diff):\n%s", path, firstDiff(got, string(want)))
	}
}

// firstDiff shows the first differing line.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return "(no line differs)"
}

// writePcap writes frames to a pcap file in a temporary directory.
func writePcap(t *testing.T, frames [][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "frames.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapfile.NewWriter(f, pcapfile.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if err := testframes.WritePcap(w, frames); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFrames returns the frames of a capture.
func readFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		rec, err := r.Next()
		if err != nil {
			return out
		}
		out = append(out, rec.Data)
	}
}

// tetherFramesPcap writes testframes.All to a capture.
func tetherFramesPcap(t *testing.T) string {
	t.Helper()
	all, err := testframes.All()
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, len(all))
	for i, n := range all {
		frames[i] = n.Data
	}
	return writePcap(t, frames)
}

// TestDecodeGolden decodes lldpad's 802.1Qbg-2012 capture (EVB over LLDP,
// ECP/VDP PRE-ASSOCIATE, ASSOCIATE and DE-ASSOCIATE, 60-byte padded LLDP),
// lldpd's capture (basic TLVs, 802.3 TLVs, large custom TLVs, shutdown
// LLDPDUs, non-zero bytes after End) and frames built with tether's own
// encoders (every IEEE 802.1 and tether TLV, signed frames), and compares
// the text output with the golden files. The golden values were checked by
// hand against tshark -V and tcpdump -v.
func TestDecodeGolden(t *testing.T) {
	tests := []struct {
		name, file, golden string
	}{
		{"lldpad", filepath.Join(captures, "cap2012.pcap"), "cap2012.golden"},
		{"lldpd", filepath.Join(captures, "caplldpd.pcap"), "caplldpd.golden"},
		{"tether", "", "tether.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				file = tetherFramesPcap(t)
			}
			r := tetherctl(t, nil, "decode", file)
			if r.code != ExitOK {
				t.Fatalf("exit status %d, stderr %q", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("unexpected stderr %q", r.stderr)
			}
			golden(t, tt.golden, r.stdout)
		})
	}
}

// TestDecodeJSONGolden pins the JSON field names for tether's frames.
func TestDecodeJSONGolden(t *testing.T) {
	r := tetherctl(t, nil, "decode", "-o", "json", tetherFramesPcap(t))
	if r.code != ExitOK {
		t.Fatalf("exit status %d, stderr %q", r.code, r.stderr)
	}
	golden(t, "tether.json.golden", r.stdout)
	if want := "8 frames: 2 LLDP, 6 ECP, 0 other (skipped), 0 with errors\n"; r.stderr != want {
		t.Errorf("stderr %q, want the summary %q", r.stderr, want)
	}
}

// jsonFrames parses -o json output.
func jsonFrames(t *testing.T, out string) []map[string]any {
	t.Helper()
	var frames []map[string]any
	if err := json.Unmarshal([]byte(out), &frames); err != nil {
		t.Fatalf("output is not a JSON array of objects: %v\n%s", err, out)
	}
	return frames
}

// tlv returns frame f's TLV number i as an object.
func tlv(t *testing.T, f map[string]any, i int) map[string]any {
	t.Helper()
	tlvs, ok := f["tlvs"].([]any)
	if !ok || i >= len(tlvs) {
		t.Fatalf("frame %v: no TLV %d in %v", f["number"], i, f["tlvs"])
	}
	m, ok := tlvs[i].(map[string]any)
	if !ok {
		t.Fatalf("frame %v: TLV %d is %T", f["number"], i, tlvs[i])
	}
	return m
}

// want checks that m has each key with the given JSON value.
func want(t *testing.T, what string, m map[string]any, kv ...any) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		got, ok := m[k]
		if !ok {
			t.Errorf("%s: no field %q in %v", what, k, m)
			continue
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(kv[i+1])
		if string(gb) != string(wb) {
			t.Errorf("%s: %s = %s, want %s", what, k, gb, wb)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	r := tetherctl(t, nil, "decode", "-o", "json", filepath.Join(captures, "cap2012.pcap"))
	if r.code != ExitOK {
		t.Fatalf("exit status %d, stderr %q", r.code, r.stderr)
	}
	if want := "74 frames: 24 LLDP, 50 ECP, 0 other (skipped), 0 with errors\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	frames := jsonFrames(t, r.stdout)
	if len(frames) != 74 {
		t.Fatalf("%d frames, want 74", len(frames))
	}
	f1 := frames[0]
	want(t, "frame 1", f1, "number", 1, "time", "2026-11-24T03:22:39.574734Z", "length", 60,
		"src", "52:54:00:bb:00:01", "dst", "01:80:c2:00:00:00", "dst_name", "nearest-customer-bridge",
		"ethertype", "0x88cc", "protocol", "lldp")
	if _, ok := f1["error"]; ok {
		t.Errorf("frame 1 has an error member: %v", f1["error"])
	}
	want(t, "frame 1 chassis ID", tlv(t, f1, 0), "tlv", "chassis_id", "subtype", "mac_address", "id", "52:54:00:bb:00:01")
	want(t, "frame 1 TTL", tlv(t, f1, 2), "tlv", "ttl", "seconds", 120)
	want(t, "frame 1 EVB", tlv(t, f1, 3), "tlv", "evb", "tlv_name", "EVB", "bgid", false, "rrcap", true, "rrctr", false,
		"sgid", false, "rrreq", false, "rrstat", 0, "r", 3, "rte", 14, "mode", "bridge",
		"rol_rwd", false, "rwd", 20, "rol_rka", false, "rka", 20)

	f17 := frames[16]
	want(t, "frame 17", f17, "number", 17, "protocol", "ecp", "ethertype", "0x8940", "length", 71)
	want(t, "frame 17 ECP", tlv(t, f17, 0), "tlv", "ecp", "version", 1, "op", "request", "subtype", "vdp", "sequence", 1)
	want(t, "frame 17 manager", tlv(t, f17, 1), "tlv", "vdp_manager_id", "id", "evmgr01")
	vsi := tlv(t, f17, 2)
	want(t, "frame 17 ASSOCIATE", vsi, "tlv", "vdp_associate", "mode", "associate", "direction", "request",
		"m", false, "s", false, "error_code", 0, "type_id", 4711, "type_version", 1,
		"vsiid_format", "uuid", "vsiid", "6f1c2b3a-1111-4222-8333-944455556666", "filter_format", "mac_vid",
		"filters", []any{map[string]any{"mac": "52:54:00:12:34:56", "vid": 100, "pcp": 0, "ps": false}})
	want(t, "frame 18 ACK", tlv(t, frames[17], 0), "tlv", "ecp", "op", "ack", "sequence", 1)
	want(t, "frame 19 response", tlv(t, frames[18], 2), "direction", "response", "status", "0x40", "keep", false, "hard", false, "error", "success")
}

// malformedCapture builds a capture with good frames from cap2012.pcap
// around four bad or foreign ones: an LLDPDU whose EVB TLV says length 7
// instead of 9 (its information string cut to 3 of 5 bytes), an LLDPDU cut
// off in the middle of its EVB TLV, an ECP frame whose VDP payload is
// garbage, and an IPv4 frame that decode skips.
func malformedCapture(t *testing.T) string {
	t.Helper()
	real := readFrames(t, filepath.Join(captures, "cap2012.pcap"))
	lldpFrame, ecpRequest, ecpAck := real[0], real[16], real[17]
	i := bytes.Index(lldpFrame, []byte{0xfe, 0x09, 0x00, 0x80, 0xc2, 0x0d})
	if i < 0 {
		t.Fatal("no EVB TLV in frame 1 of cap2012.pcap")
	}

	shortEVB := bytes.Clone(lldpFrame)
	shortEVB[i+1] = 0x07 // TLV length 7: the information string has 3 of its 5 bytes

	cutEVB := bytes.Clone(lldpFrame[:i+2+4+3]) // header, OUI, subtype and 3 of 5 bytes

	garbageECP := bytes.Clone(ecpRequest[:14])
	garbageECP = append(garbageECP, 0x10, 0x01, 0x00, 0x63) // ECP v1 request VDP, sequence 99
	garbageECP = append(garbageECP, []byte("\x0a\x10garbage that is not VDP at all, no, not at all")...)

	ipv4 := bytes.Clone(lldpFrame[:12])
	ipv4 = append(ipv4, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14)
	ipv4 = append(ipv4, make([]byte, 40)...)

	return writePcap(t, [][]byte{lldpFrame, shortEVB, cutEVB, ecpRequest, garbageECP, ecpAck, ipv4, lldpFrame})
}

func TestDecodeMalformedText(t *testing.T) {
	r := tetherctl(t, nil, "decode", malformedCapture(t))
	if r.code != ExitFailure {
		t.Errorf("exit status %d, want %d", r.code, ExitFailure)
	}
	if want := "tetherctl: 3 of 7 LLDP/ECP frames failed to decode\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	golden(t, "malformed.golden", r.stdout)
	// Beyond the golden file: the error lines name the TLV and offset,
	// and every good frame after a bad one still decodes.
	for _, s := range []string{
		"frame 2 ",
		// The EVB TLV starts at LLDPDU offset 22 (frame offset 36); wire
		// reports the offset of its information string, 6 bytes in.
		"  error: EVB at offset 28: inconsistent length: information string is 3 bytes, want 5 (TLV length 9) (frame offset 42)\n",
		"frame 3 ",
		"  error: LLDP org TLV at offset 22: truncated: length 9 runs past the end, 7 bytes left (frame offset 36)\n",
		"frame 4 ",
		"  VDP ASSOCIATE: mode=associate direction=request",
		"frame 5 ",
		// The garbage after the ECP header starts with a plausible VSI
		// Manager ID TLV; the next "TLV" header is the text "no".
		"  error: VDP TLV type 55 at offset 22: truncated: need 113 bytes, have 30 (frame offset 36)\n",
		"frame 6 ",
		"  ECP: version=1 op=ack subtype=vdp sequence=1\n",
		"frame 8 ",
		"  EVB: bgid=false rrcap=true",
		"8 frames: 4 LLDP, 3 ECP, 1 other (skipped), 3 with errors\n",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "frame 7 ") {
		t.Errorf("the IPv4 frame was shown:\n%s", r.stdout)
	}
}

func TestDecodeMalformedJSON(t *testing.T) {
	r := tetherctl(t, nil, "decode", "-o", "json", malformedCapture(t))
	if r.code != ExitFailure {
		t.Errorf("exit status %d, want %d", r.code, ExitFailure)
	}
	frames := jsonFrames(t, r.stdout)
	var nums []float64
	for _, f := range frames {
		nums = append(nums, f["number"].(float64))
	}
	if len(nums) != 7 || nums[5] != 6 || nums[6] != 8 {
		t.Fatalf("frame numbers %v, want 1-6 and 8", nums)
	}
	for i, f := range frames {
		_, hasErr := f["error"]
		bad := i == 1 || i == 2 || i == 4
		if hasErr != bad {
			t.Errorf("frame %v: error member present %v, want %v", f["number"], hasErr, bad)
		}
		if tlvs, ok := f["tlvs"].([]any); !ok || (len(tlvs) == 0) != bad {
			t.Errorf("frame %v: tlvs %v", f["number"], f["tlvs"])
		}
	}
	if e, _ := frames[1]["error"].(string); !strings.HasPrefix(e, "EVB at offset 28: inconsistent length") {
		t.Errorf("frame 2 error %q", e)
	}
}

func TestDecodeStdinAndTruncatedFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(captures, "cap2012.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	r := tetherctl(t, b, "decode", "-")
	if r.code != ExitOK || !strings.HasSuffix(r.stdout, "74 frames: 24 LLDP, 50 ECP, 0 other (skipped), 0 with errors\n") {
		t.Errorf("stdin: exit %d, output tail %q", r.code, r.stdout[max(0, len(r.stdout)-100):])
	}

	// Cut the file in the middle of record 3: two frames decode, then the
	// read error fails the run.
	r = tetherctl(t, b[:24+2*(16+60)+30], "decode", "-")
	if r.code != ExitFailure {
		t.Errorf("truncated file: exit %d, want %d", r.code, ExitFailure)
	}
	if !strings.Contains(r.stdout, "frame 2 ") || !strings.Contains(r.stdout, "2 frames: 2 LLDP") {
		t.Errorf("truncated file: output %q", r.stdout)
	}
	want := "tetherctl: reading capture -: pcapfile: record 3 at offset 176: truncated: record data: need 60 bytes, have 14\n"
	if r.stderr != want {
		t.Errorf("truncated file: stderr %q, want %q", r.stderr, want)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	notPcap := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPcap, []byte("these are not packets, just words"), 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "raw.pcap")
	var buf bytes.Buffer
	if _, err := pcapfile.NewWriter(&buf, 101); err != nil { // LINKTYPE_RAW
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(captures, "cap2012.pcap")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"no command", nil, ExitUsage, "", "Usage:\n  tetherctl [flags]\n  tetherctl [command]"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "", "tetherctl: unknown command \"frobnicate\" for \"tetherctl\"\nRun 'tetherctl --help' for usage.\n"},
		{"root help", []string{"--help"}, ExitOK, "decode      Decode the LLDP and ECP/VDP frames of a pcap file", ""},
		{"decode help", []string{"decode", "--help"}, ExitOK, "tetherctl decode -o json /tmp/evb.pcap | jq", ""},
		{"missing file argument", []string{"decode"}, ExitUsage, "", "tetherctl: accepts 1 arg(s), received 0\nRun 'tetherctl decode --help' for usage.\n"},
		{"two files", []string{"decode", good, good}, ExitUsage, "", "accepts 1 arg(s), received 2"},
		{"missing file", []string{"decode", filepath.Join(dir, "nope.pcap")}, ExitUsage, "", "tetherctl: cannot open capture: open " + filepath.Join(dir, "nope.pcap") + ": no such file or directory\n"},
		{"directory", []string{"decode", dir}, ExitUsage, "", "tetherctl: cannot read capture " + dir + ": pcapfile: file header at offset 0: read " + dir + ": is a directory: reading file header\n"},
		{"not a pcap", []string{"decode", notPcap}, ExitUsage, "", "cannot read capture " + notPcap + ": pcapfile: file header at offset 0: bad magic: 0x74686573 is not a pcap magic number"},
		{"not Ethernet", []string{"decode", raw}, ExitUsage, "", "capture " + raw + " has link type 101; only Ethernet (1) is supported"},
		{"bad output format", []string{"decode", "-o", "yaml", good}, ExitUsage, "", "tetherctl: invalid output format \"yaml\": want \"text\" or \"json\"\nRun 'tetherctl decode --help' for usage.\n"},
		{"unknown flag", []string{"decode", "--colour", good}, ExitUsage, "", "tetherctl: unknown flag: --colour\nRun 'tetherctl decode --help' for usage.\n"},
		{"bad CID", []string{"decode", "--cid", "7a7e71", good}, ExitUsage, "", "invalid --cid \"7a7e71\": want three hex octets such as 7a-7e-71"},
		{"good CID", []string{"decode", "--cid", "7A:7E:71", good}, ExitOK, "74 frames", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tetherctl(t, nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit status %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout %q lacks %q", r.stdout, tt.stdout)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.stderr)
			}
			if tt.code == ExitUsage && r.stdout != "" {
				t.Errorf("usage error wrote to stdout: %q", r.stdout)
			}
		})
	}
}

// TestDecodeTimestampsNanosecond checks that a nanosecond capture prints
// nanoseconds.
func TestDecodeTimestampsNanosecond(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(captures, "cap2012.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	// Same file with the nanosecond magic and the first record's fraction
	// in nanoseconds.
	b = bytes.Clone(b[:24+16+60])
	copy(b[0:4], []byte{0x4d, 0x3c, 0xb2, 0xa1})
	frac := uint32(574734123)
	b[28], b[29], b[30], b[31] = byte(frac), byte(frac>>8), byte(frac>>16), byte(frac>>24)
	r := tetherctl(t, b, "decode", "-")
	ts := time.Unix(1795490559, 574734123).UTC().Format("2006-01-02T15:04:05.000000000Z")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "frame 1  "+ts+"  ") {
		t.Errorf("exit %d, output %q, want it to start with the nanosecond time %s", r.code, r.stdout, ts)
	}
}

// TestDecodeNothingToShow checks a capture without LLDP or ECP frames: an
// empty JSON array, a summary, success.
func TestDecodeNothingToShow(t *testing.T) {
	ipv4 := testframes.Frame([6]byte{2, 0, 0, 0, 0, 1}, testframes.StationMAC(), 0x0800, make([]byte, 20))
	path := writePcap(t, [][]byte{ipv4, ipv4})
	r := tetherctl(t, nil, "decode", "-o", "json", path)
	if r.code != ExitOK || r.stdout != "[]\n" || r.stderr != "2 frames: 0 LLDP, 0 ECP, 2 other (skipped), 0 with errors\n" {
		t.Errorf("json: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = tetherctl(t, nil, "decode", path)
	if r.code != ExitOK || r.stdout != "2 frames: 0 LLDP, 0 ECP, 2 other (skipped), 0 with errors\n" || r.stderr != "" {
		t.Errorf("text: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
