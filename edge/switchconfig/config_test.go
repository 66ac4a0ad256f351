package switchconfig

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
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
	d := Default()
	if d.Grace() != 2*10*time.Microsecond*(1<<20) {
		t.Fatalf("default grace %v", d.Grace())
	}
}

// TestExampleIsDefault keeps the documented example file equal to the
// code's defaults.
func TestExampleIsDefault(t *testing.T) {
	b, err := os.ReadFile("testdata/switchd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("testdata/switchd.yaml differs from Default():\n%+v\n%+v", c, Default())
	}
}

func pemOf(t *testing.T) string {
	t.Helper()
	k, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.MarshalPublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseOverrides(t *testing.T) {
	pem := pemOf(t)
	in := `name: tor1
bridge: br1
ports: [swp1, swp2]
host_keys:
  hv1: |
` + indent(pem, "    ") + `
vm_managers:
  hv1: test:///default
require_signed: false
cid: "7a:00:01"
evb: {r: 2, rte: 12, rwd: 18, rka: 16, reflective_relay: false}
profiles:
  web: {vid: 100, rate_kbps: 1000, vsi_type_id: 7}
  default: {vid: 200, name: plain, mode: io-extender}
restart_grace: 3s
`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "tor1" || c.Bridge != "br1" || c.Ports.All || !reflect.DeepEqual(c.Ports.Names, []string{"swp1", "swp2"}) ||
		c.RequireSigned || wire.OUI(c.CID) != (wire.OUI{0x7a, 0, 1}) || c.EVB.RTE != 12 || c.EVB.RKA != 16 ||
		len(c.Profiles) != 2 || c.Grace() != 3*time.Second || c.VMManagers["hv1"] != "test:///default" {
		t.Fatalf("got %+v", c)
	}
	keys, err := c.LoadHostKeys()
	if err != nil || len(keys) != 1 || keys["hv1"] == nil {
		t.Fatalf("LoadHostKeys: %v %v", keys, err)
	}
	g, p, ok := c.ProfileFor("", 7)
	if !ok || g != "web" || p.VID != 100 || p.TetherProfile(g).Name != "web" {
		t.Fatalf("ProfileFor(type 7) = %q %+v %v", g, p, ok)
	}
	g, p, ok = c.ProfileFor("", 8)
	if tp := p.TetherProfile(g); !ok || g != "default" || tp.Name != "plain" || tp.VID != 200 || tp.Mode != wire.TetherSTagIOExtender {
		t.Fatalf("ProfileFor(type 8) = %q %+v %v", g, p, ok)
	}
	// Write then Parse gives the same configuration back.
	var buf bytes.Buffer
	if err := Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(&buf)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip:\n%+v\n%+v", c, c2)
	}
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

func TestParseMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"brige: br0\n", `line 1: unknown key "brige"`},
		{"ports: some\n", `line 1: ports: want "all" or a list of interface names, not "some"`},
		{"ports: []\n", "ports: the list is empty; write ports: all for every port of the bridge"},
		{"ports: [a, a, br0, \"bad name\"]\n", "ports: \"a\" is listed twice\nports: \"br0\" is the bridge itself, not one of its ports\nports: \"bad name\" is not an interface name"},
		{"bridge: averyveryverylongname\n", `bridge: "averyveryverylongname" is not an interface name (1-15 letters, digits, '_', '.', '-')`},
		{"key_file: rel\n", `key_file: "rel" must be an absolute path`},
		{"host_keys: {hv1: nonsense}\n", "host_keys.hv1: identity: public key: no PEM block"},
		{"vm_managers: {hv1: \"\"}\n", "vm_managers.hv1: the libvirt URI is empty"},
		{"cid: xyz\n", `line 1: cid: "xyz" is not a Company ID (three octets, like 7a-7e-71)`},
		{"evb: {rte: 8}\n", "evb.rte: 8 is out of range 12-31 (the ACK timer is 10us x 2^rte)"},
		{"evb: {r: 9, rka: 40}\n", "evb.r: 9 is out of range 0-7\nevb.rka: 40 is out of range 0-31"},
		{"profiles: {a: {vid: 5000, mode: odd, vsi_type_id: 1}, b: {vsi_type_id: 1}}\n",
			"profiles.a.vid: 5000 is out of range 0-4094\nprofiles.a.mode: \"odd\" is not one of switch, io-extender\nprofiles.b.vsi_type_id: 1 is also the VSI type of profiles.a"},
		{"restart_grace: soon\n", `line 1: "soon" is not a duration (examples: 500ms, 2s, 1m)`},
		{"rejects_kept: 0\n", "rejects_kept: 0 is out of range 1-1048576"},
		{"migration_overlap: 2h\n", "migration_overlap: 2h0m0s is out of range 0s-1h"},
		{"migration_overlap: -1s\n", "migration_overlap: -1s is out of range 0s-1h"},
		{"a: b\n---\nc: d\n", `line 1: unknown key "a"`},
		{"socket: /s\n---\nsocket: /t\n", "more than one YAML document"},
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
}

func TestLoadHostKeysDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hv1.pem"), []byte(pemOf(t)), 0o644)
	os.WriteFile(filepath.Join(dir, "hv2"), []byte(pemOf(t)), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o644)
	c := Default()
	c.HostKeys = HostKeys{Dir: dir}
	keys, err := c.LoadHostKeys()
	if err != nil || len(keys) != 2 || keys["hv1"] == nil || keys["hv2"] == nil {
		t.Fatalf("LoadHostKeys: %v %v", keys, err)
	}
	os.WriteFile(filepath.Join(dir, "hv3"), []byte("not a key"), 0o644)
	if _, err := c.LoadHostKeys(); err == nil || !strings.Contains(err.Error(), "hv3") {
		t.Fatalf("broken file: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.yaml")
	c, err := Load(missing, false)
	if err != nil || c.Name == "" {
		t.Fatalf("implicit missing file: %+v, %v", c, err)
	}
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("explicit missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("bridge: br0\nports: [a]\n")
	f.Add("profiles: {x: {vid: 3}}\n")
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
