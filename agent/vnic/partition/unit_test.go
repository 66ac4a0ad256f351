package partition

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/wire"
)

const (
	macA = "52:54:00:00:00:0a"
	macB = "52:54:00:00:00:0b"
)

func TestSpecValidate(t *testing.T) {
	ok := Spec{ID: "52:54:00:00:00:0A", Uplink: "eth0", STag: 100, CVID: 10}
	got, err := ok.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != macA || got.Mode != wire.TetherSTagSwitch {
		t.Errorf("Validate = %+v, want ID %s canonical and switch mode", got, macA)
	}
	for _, c := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"bad ID", func(s *Spec) { s.ID = "nope" }, `vNIC ID "nope" is not a 6-byte MAC address`},
		{"8-byte ID", func(s *Spec) { s.ID = "00:00:00:00:fe:80:00:00" }, `vNIC ID "00:00:00:00:fe:80:00:00" is not a 6-byte MAC address`},
		{"no uplink", func(s *Spec) { s.Uplink = "" }, "uplink: empty interface name"},
		{"long uplink", func(s *Spec) { s.Uplink = "0123456789abcdef" }, `uplink: interface name "0123456789abcdef" longer than 15 bytes`},
		{"slash", func(s *Spec) { s.Uplink = "a/b" }, `uplink: interface name "a/b" has a forbidden byte 0x2f`},
		{"dotdot", func(s *Spec) { s.Uplink = ".." }, `uplink: interface name ".." not allowed`},
		{"S-Tag 0", func(s *Spec) { s.STag = 0 }, "S-Tag 0 out of range 2-4094"},
		{"S-Tag 1 (default S-channel)", func(s *Spec) { s.STag = 1 }, "S-Tag 1 out of range 2-4094"},
		{"S-Tag 4095", func(s *Spec) { s.STag = 4095 }, "S-Tag 4095 out of range 2-4094"},
		{"C-VID 4095", func(s *Spec) { s.CVID = 4095 }, "C-VID 4095 out of range 1-4094"},
		{"mode 3", func(s *Spec) { s.Mode = 3 }, "S-Tag mode 3, want switch (1) or io-extender (2)"},
		{"MTU 67", func(s *Spec) { s.MTU = 67 }, "MTU 67 out of range 68-65535"},
		{"MTU 65536", func(s *Spec) { s.MTU = 65536 }, "MTU 65536 out of range 68-65535"},
		{"master space", func(s *Spec) { s.Master = "br 0" }, `master: interface name "br 0" has a forbidden byte 0x20`},
	} {
		s := ok
		c.edit(&s)
		_, err := s.Validate()
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: Validate error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		ifindex    int
		stag       uint16
		sdev, cdev string
	}{
		{2, 100, "tp2.100", "tq2.100"},
		{10, 2, "tpa.2", "tqa.2"},
		{0x7fffffff, 4094, "tp7fffffff.4094", "tq7fffffff.4094"},
	} {
		s, cv := Names(c.ifindex, c.stag)
		if s != c.sdev || cv != c.cdev {
			t.Errorf("Names(%d, %d) = %q, %q; want %q, %q", c.ifindex, c.stag, s, cv, c.sdev, c.cdev)
		}
		if len(s) > 15 || len(cv) > 15 {
			t.Errorf("Names(%d, %d): %q/%q longer than 15 bytes", c.ifindex, c.stag, s, cv)
		}
		if err := validIfname("device", s); err != nil {
			t.Error(err)
		}
	}
}

func TestDesiredMTU(t *testing.T) {
	for _, c := range []struct {
		s      Spec
		uplink int
		want   int
		err    string
	}{
		{Spec{Mode: wire.TetherSTagSwitch}, 1500, 1500, ""},
		{Spec{Mode: wire.TetherSTagIOExtender}, 1500, 1496, ""},
		{Spec{Mode: wire.TetherSTagIOExtender, MTU: 1400}, 1500, 1400, ""},
		{Spec{MTU: 9000}, 1500, 0, "MTU 9000 above the uplink's 1500"},
		{Spec{Mode: wire.TetherSTagIOExtender}, 70, 0, "uplink MTU 70 leaves no room for an I/O-extender S-Tag"},
	} {
		got, err := desiredMTU(c.s, c.uplink)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("desiredMTU(%+v, %d) error %v, want %q", c.s, c.uplink, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("desiredMTU(%+v, %d) = %d, %v; want %d", c.s, c.uplink, got, err, c.want)
		}
	}
}

func TestNegotiated(t *testing.T) {
	req, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: 4, SCIDs: []uint16{2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	answer, err := evb.BridgeAssign(evb.CDCPBridgeConfig{ChnCap: 4, FirstSVID: 100, LastSVID: 100}, &req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := evb.StationResult(req, &answer)
	if err != nil {
		t.Fatal(err)
	}
	// One S-VID in the pool: SCID 2 gets 100, SCID 3 waits.
	stag, mode, err := Negotiated(res, 2, nil)
	if err != nil || stag != 100 || mode != wire.TetherSTagSwitch {
		t.Errorf("Negotiated(SCID 2, no profile) = %d, %v, %v; want 100, switch", stag, mode, err)
	}
	stag, mode, err = Negotiated(res, 2, &wire.TetherProfile{Mode: wire.TetherSTagIOExtender})
	if err != nil || stag != 100 || mode != wire.TetherSTagIOExtender {
		t.Errorf("Negotiated(SCID 2, io-extender profile) = %d, %v, %v; want 100, io-extender", stag, mode, err)
	}
	if _, _, err := Negotiated(res, 3, nil); !errors.Is(err, ErrSChannelPending) {
		t.Errorf("Negotiated(SCID 3) error %v, want ErrSChannelPending", err)
	}
	for _, c := range []struct {
		scid    uint16
		profile *wire.TetherProfile
		want    string
	}{
		{1, nil, "partition: SCID 1 is the default S-channel, not a partition"},
		{9, nil, "partition: SCID 9 was not requested in CDCP"},
		{3, nil, "partition: SCID 3: partition: S-channel not assigned by the bridge"},
		{2, &wire.TetherProfile{Mode: 7}, "partition: profile S-Tag mode 7, want switch (1) or io-extender (2)"},
	} {
		if _, _, err := Negotiated(res, c.scid, c.profile); err == nil || err.Error() != c.want {
			t.Errorf("Negotiated(SCID %d) error %v, want %q", c.scid, err, c.want)
		}
	}
}

func TestTableBindings(t *testing.T) {
	tb := newTable()
	a := Spec{ID: macA, Uplink: "eth0", STag: 100, Mode: wire.TetherSTagSwitch}
	if err := tb.put(a); err != nil {
		t.Fatal(err)
	}
	b := Spec{ID: macB, Uplink: "eth0", STag: 100, Mode: wire.TetherSTagSwitch}
	err := tb.put(b)
	var bound *STagBoundError
	if !errors.As(err, &bound) || !errors.Is(err, ErrSTagBound) {
		t.Fatalf("second vNIC on S-Tag 100: %v, want an *STagBoundError", err)
	}
	if *bound != (STagBoundError{Uplink: "eth0", STag: 100, Want: macB, Holder: macA}) {
		t.Errorf("STagBoundError = %+v", *bound)
	}
	const msg = "partition: S-Tag 100 on uplink eth0 is bound to vNIC 52:54:00:00:00:0a, not 52:54:00:00:00:0b"
	if err.Error() != msg {
		t.Errorf("error %q, want %q", err, msg)
	}
	// The same S-Tag on another uplink is another S-channel.
	b.Uplink = "eth1"
	if err := tb.put(b); err != nil {
		t.Errorf("S-Tag 100 on eth1: %v", err)
	}
	// A vNIC moving to another S-Tag frees its old one.
	a.STag = 101
	if err := tb.put(a); err != nil {
		t.Fatal(err)
	}
	c := Spec{ID: "52:54:00:00:00:0c", Uplink: "eth0", STag: 100, Mode: wire.TetherSTagSwitch}
	if err := tb.put(c); err != nil {
		t.Errorf("S-Tag 100 after its holder moved: %v", err)
	}
	tb.remove(c.ID)
	if _, ok := tb.byTag[tagKey{"eth0", 100}]; ok {
		t.Error("remove left the binding")
	}
}

// TestStateDurable checks that bindings survive a save and a load (a
// restart), that a release removes the vNIC's file, and the files' mode.
func TestStateDurable(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadState(dir); err != nil { // creates the directory
		t.Fatal(err)
	}
	a := Spec{ID: macA, Uplink: "eth0", STag: 100, CVID: 10, Mode: wire.TetherSTagSwitch}
	b := Spec{ID: macB, Uplink: "eth0", STag: 200, Mode: wire.TetherSTagIOExtender, MTU: 1400, Master: "br0"}
	for _, s := range []Spec{a, b} {
		if err := saveEntry(dir, s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.byID) != 2 || got.byID[macA] != a || got.byID[macB] != b {
		t.Errorf("loaded %+v, want %+v and %+v", got.byID, a, b)
	}
	err = got.put(Spec{ID: "52:54:00:00:00:0c", Uplink: "eth0", STag: 200, Mode: wire.TetherSTagSwitch})
	if !errors.Is(err, ErrSTagBound) {
		t.Errorf("S-Tag 200 after reload: %v, want ErrSTagBound", err)
	}
	if err := removeEntry(dir, macA); err != nil {
		t.Fatal(err)
	}
	if err := removeEntry(dir, macA); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	got, err = loadState(dir)
	if err != nil || len(got.byID) != 1 || got.byID[macB] != b {
		t.Errorf("after removing %s: %+v, %v", macA, got.byID, err)
	}
	p := filepath.Join(dir, StateDir, "52-54-00-00-00-0b.json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":1,"id":"52:54:00:00:00:0b","uplink":"eth0","stag":200,"mode":"io-extender","mtu":1400,"master":"br0"}` + "\n"
	if string(raw) != want {
		t.Errorf("state file:\n%s\nwant\n%s", raw, want)
	}
	// A temporary file of an interrupted write is skipped.
	if err := os.WriteFile(filepath.Join(dir, StateDir, ".tmp-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(dir); err != nil {
		t.Errorf("with a temporary file: %v", err)
	}
}

func TestLoadStateMalformed(t *testing.T) {
	const entryA = `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch"}`
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"wrong file name", map[string]string{"52-54-00-00-00-0b.json": entryA},
			"state file 52-54-00-00-00-0b.json: holds vNIC 52:54:00:00:00:0a, whose file is 52-54-00-00-00-0a.json"},
		{"S-Tag bound twice", map[string]string{"52-54-00-00-00-0a.json": entryA,
			"52-54-00-00-00-0b.json": `{"version":1,"id":"52:54:00:00:00:0b","uplink":"eth0","stag":100,"mode":"switch"}`},
			"state file 52-54-00-00-00-0b.json: partition: S-Tag 100 on uplink eth0 is bound to vNIC 52:54:00:00:00:0a, not 52:54:00:00:00:0b"},
		{"bad file", map[string]string{"junk": "x"}, "state file junk: invalid character 'x' looking for beginning of value"},
		{"too big", map[string]string{"52-54-00-00-00-0a.json": entryA + strings.Repeat(" ", maxStateFile)},
			"state file 52-54-00-00-00-0a.json: larger than 4096 bytes"},
	} {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, StateDir), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, content := range c.files {
			if err := os.WriteFile(filepath.Join(dir, StateDir, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := loadState(dir)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: loadState error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestDecodeEntryMalformed(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"empty", ``, "EOF"},
		{"not JSON", `{`, "unexpected EOF"},
		{"array", `[]`, "json: cannot unmarshal array into Go value of type partition.stateEntry"},
		{"trailing", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch"} {}`, "data after the JSON object"},
		{"unknown field", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch","vid":3}`, `json: unknown field "vid"`},
		{"no version", `{"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch"}`, "version 0, want 1"},
		{"version 2", `{"version":2,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch"}`, "version 2, want 1"},
		{"stag overflow", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":70000,"mode":"switch"}`,
			"json: cannot unmarshal number 70000 into Go struct field stateEntry.stag of type uint16"},
		{"bad mode", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"bridge"}`,
			`mode "bridge", want switch or io-extender`},
		{"no mode", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100}`, `mode "", want switch or io-extender`},
		{"bad stag", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":1,"mode":"switch"}`, "S-Tag 1 out of range 2-4094"},
		{"bad cvid", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"cvid":4095,"mode":"switch"}`, "C-VID 4095 out of range 1-4094"},
		{"bad id", `{"version":1,"id":"x","uplink":"eth0","stag":100,"mode":"switch"}`, `vNIC ID "x" is not a 6-byte MAC address`},
		{"id not canonical", `{"version":1,"id":"52:54:00:00:00:0A","uplink":"eth0","stag":100,"mode":"switch"}`,
			`ID "52:54:00:00:00:0A" not canonical ("52:54:00:00:00:0a")`},
		{"no uplink", `{"version":1,"id":"52:54:00:00:00:0a","stag":100,"mode":"switch"}`, "uplink: empty interface name"},
		{"bad master", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch","master":"a:b"}`,
			`master: interface name "a:b" has a forbidden byte 0x3a`},
		{"bad MTU", `{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"mode":"switch","mtu":-1}`, "MTU -1 out of range 68-65535"},
		{"too big", strings.Repeat(" ", maxStateFile+1), "larger than 4096 bytes"},
	} {
		_, err := decodeEntry([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: decodeEntry error %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"52:54:00:00:00:0a","uplink":"eth0","stag":100,"cvid":10,"mode":"switch"}`))
	f.Add([]byte(`{"version":1,"id":"52:54:00:00:00:0b","uplink":"eth0","stag":200,"mode":"io-extender","mtu":1400,"master":"br0"}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeEntry(b)
		if err != nil {
			return
		}
		enc, err := encodeEntry(s)
		if err != nil {
			t.Fatalf("encode what decoded: %v", err)
		}
		again, err := decodeEntry(enc)
		if err != nil {
			t.Fatalf("decode what encoded: %v\n%s", err, enc)
		}
		if again != s {
			t.Fatalf("round trip: %+v, want %+v", again, s)
		}
	})
}
