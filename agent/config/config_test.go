package config

import (
	"github.com/tether-net/tether/internal/yamlconf"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	for _, in := range []string{"", "\n# only a comment\n", "---\n"} {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("Parse(%q) = %+v, want defaults", in, c)
		}
	}
}

func TestParseOverrides(t *testing.T) {
	c, err := Parse(strings.NewReader("state_dir: /srv/tether\nlibvirt:\n  uri: test:///default\n  reconnect_max: 1m\nlog:\n  level: debug\n  format: json\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/srv/tether" || c.Libvirt.URI != "test:///default" ||
		time.Duration(c.Libvirt.ReconnectMax) != time.Minute || c.Log.Level != "debug" ||
		c.Socket != Default().Socket {
		t.Fatalf("got %+v", c)
	}
}

func TestParseMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"stat_dir: /x\n", `line 1: unknown key "stat_dir"`},
		{"state_dir: [1, 2]\n", "line 1: cannot unmarshal !!seq into string"},
		{"state_dir: relative/path\n", `state_dir: "relative/path" must be an absolute path`},
		{"libvirt:\n  reconnect_min: soon\n", `line 2: "soon" is not a duration (examples: 500ms, 2s, 1m)`},
		{"libvirt:\n  reconnect_min: 10s\n  reconnect_max: 1s\n", "libvirt.reconnect_max: 1s is below reconnect_min 10s"},
		{"log:\n  level: loud\n  format: xml\n", "log.level: \"loud\" is not one of debug, info, warn, error\nlog.format: \"xml\" is not one of text, json"},
		{"a: b\n---\nc: d\n", `line 1: unknown key "a"`},
		{"socket: /s\n---\nsocket: /t\n", "more than one YAML document"},
		{"\tbad", "syntax error: found character that cannot start any token"},
		{"migration: {mode: later}\n", `migration.mode: "later" is not one of pre-associate, post-move`},
		{"migration: {started_wait: 3s}\n", "migration.started_wait: 3s is out of range 0-1.9s (tether-hook's delivery budget is 2s)"},
		{"migration: {started_wait: -1s}\n", "migration.started_wait: -1s is out of range 0-1.9s (tether-hook's delivery budget is 2s)"},
		{"migration: post-move\n", "line 1: cannot unmarshal !!str `post-move` into config.Migration"},
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.yaml")
	if c, err := Load(missing, false); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("implicit missing file: %+v, %v", c, err)
	}
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("explicit missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("# "+strings.Repeat("x", yamlconf.MaxFile)+"\n"), 0o644)
	if _, err := Load(big, true); err == nil || !strings.HasSuffix(err.Error(), "file is over 1048576 bytes") {
		t.Fatalf("oversize: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("state_dir: /x\nlibvirt:\n  uri: test:///default\n")
	f.Add("log: {level: debug}\n")
	f.Add("&a [*a]")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config that does not validate: %v", verr)
			}
		}
	})
}

func TestWriteRoundTrip(t *testing.T) {
	c := Default()
	c.Libvirt.URI = "test:///default"
	c.Log.Format = "json"
	var b strings.Builder
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("Parse(Write(c)): %v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip changed the config:\n%+v\n%+v", got, c)
	}
	if !strings.Contains(b.String(), "reconnect_max: 30s") {
		t.Fatalf("durations not written as strings:\n%s", b.String())
	}
}

// TestShippedConfigIsTheDefault keeps packaging/tetherd.yaml, which documents
// every key, in step with Default().
func TestShippedConfigIsTheDefault(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "packaging", "tetherd.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("packaging/tetherd.yaml differs from Default():\n%+v\n%+v", c, Default())
	}
}

func TestParseUplinkKeys(t *testing.T) {
	in := `state_dir: /srv/tether
uplinks:
  - interface: eth2
identity:
  key_file: /srv/keys/host.key
  switch_keys: /srv/keys/switches
require_signed: false
cid: 7A-00-01
evb: {r: 2, rte: 12, rwd: 18, rka: 24}
dcbx:
  ets:
    willing: true
    max_tcs: 2
    priority_tc: [0, 0, 0, 1, 0, 0, 0, 0]
    bandwidth: [60, 40, 0, 0, 0, 0, 0, 0]
    tsa: [ets, ets, strict, strict, strict, strict, strict, strict]
  pfc: {cap: 2, enable: [3]}
vdp: {manager_id: evmgr01, type_id: 16777215, type_version: 7}
`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.StateDir = "/srv/tether"
	want.Uplinks = []Uplink{{Interface: "eth2"}}
	want.Identity = Identity{KeyFile: "/srv/keys/host.key", Counters: "/srv/tether/counters", SwitchKeys: "/srv/keys/switches"}
	want.RequireSigned = false
	want.CID = CID{0x7a, 0x00, 0x01}
	want.EVB = EVB{R: 2, RTE: 12, RWD: 18, RKA: 24}
	want.DCBX = DCBX{
		ETS: &ETS{Willing: true, MaxTCs: 2, PriorityTC: []int{0, 0, 0, 1, 0, 0, 0, 0}, Bandwidth: []int{60, 40, 0, 0, 0, 0, 0, 0},
			TSA: []string{"ets", "ets", "strict", "strict", "strict", "strict", "strict", "strict"}},
		PFC: &PFC{Cap: 2, Enable: []int{3}},
	}
	want.VDP = VDP{ManagerID: "evmgr01", TypeID: 1<<24 - 1, TypeVersion: 7}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	// identity.counters set explicitly is kept; an empty uplinks list is
	// the default.
	c, err = Parse(strings.NewReader("identity: {counters: /c}\nuplinks: []\n"))
	if err != nil || c.Identity.Counters != "/c" || c.Uplinks != nil {
		t.Fatalf("got %+v, %v", c, err)
	}
	// Write prints every new key, and what it prints parses back.
	var b strings.Builder
	if err := Write(&b, want); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"uplinks:", "key_file:", "counters: /srv/tether/counters", "switch_keys:", "require_signed: false",
		"cid: 7a-00-01", "rte: 12", "ets:", "pfc:", "manager_id: evmgr01"} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("Write does not print %q:\n%s", key, b.String())
		}
	}
	if got, err := Parse(strings.NewReader(b.String())); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %v\n%+v", err, got)
	}
}

func TestParseUplinkKeysMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"uplinks:\n  - {}\n", `uplinks[0].interface: missing: name the interface, for example eth0`},
		{"uplinks:\n  - interface: averyveryverylongname\n", `uplinks[0].interface: "averyveryverylongname" is longer than 15 bytes`},
		{"uplinks:\n  - interface: eth0\n  - interface: eth0\n", "uplinks[1].interface: \"eth0\" is already uplinks[0]\n" +
			"uplinks: 2 uplinks configured, but tetherd supports one so far (every VIF is associated on the single uplink; per-VIF uplink selection is not implemented)"},
		{"uplinks:\n  - iface: eth0\n", `line 2: unknown key "iface"`},
		{"identity: {key_file: host.key}\n", `identity.key_file: "host.key" must be an absolute path`},
		{"identity: {switch_keys: \"\"}\n", `identity.switch_keys: "" must be an absolute path`},
		{"require_signed: maybe\n", "line 1: cannot unmarshal !!str `maybe` into bool"},
		{"cid: 7a:7e:71\n", `line 1: cid: "7a:7e:71" is not three hex octets like 7a-7e-71`},
		{"cid: 00-80-c2\n", "cid: 00-80-c2 is not a Company ID (the first octet must end in hex digit a, like 7a)"},
		{"evb: {rte: 11}\n", "evb.rte: 11 is out of range 12-31"},
		{"evb: {r: 8, rwd: 32, rka: -1}\n", "evb.r: 8 is out of range 0-7\nevb.rwd: 32 is out of range 0-31\nevb.rka: -1 is out of range 0-31"},
		{"dcbx: {ets: {max_tcs: 8, priority_tc: [0,0,0,0,0,0,0,8], bandwidth: [100,0,0,0,0,0,0,0], tsa: [ets,strict,strict,strict,strict,strict,strict,strict]}}\n",
			"dcbx.ets.priority_tc[7]: traffic class 8 is out of range 0-7 (max_tcs 8)"},
		{"dcbx: {ets: {max_tcs: 8, priority_tc: [0,0,0,0,0,0,0,0], bandwidth: [101,0,0,0,0,0,0,0], tsa: [ets,strict,strict,strict,strict,strict,strict,strict]}}\n",
			"dcbx.ets.bandwidth[0]: 101 is out of range 0-100\ndcbx.ets.bandwidth: the percentages add up to 101, want 100"},
		{"dcbx: {pfc: {cap: 1, enable: [1, 2]}}\n", "dcbx.pfc.enable: 2 priorities enabled, more than cap 1"},
		{"vdp: {manager_id: 01234567890123456}\n", `vdp.manager_id: "01234567890123456" must be 1 to 16 bytes`},
		{"vdp: {type_version: 256}\n", "vdp.type_version: 256 is out of range 0-255"},
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
}
