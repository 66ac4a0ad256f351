package config

import (
	"os"
	"path/filepath"
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
		if c != Default() {
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
	if c, err := Load(missing, false); err != nil || c != Default() {
		t.Fatalf("implicit missing file: %+v, %v", c, err)
	}
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("explicit missing file: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("# "+strings.Repeat("x", maxFile)+"\n"), 0o644)
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
	if got != c {
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
	if c != Default() {
		t.Fatalf("packaging/tetherd.yaml differs from Default():\n%+v\n%+v", c, Default())
	}
}
