package switchconfig

import (
	"strings"
	"testing"
)

func TestParsePlacements(t *testing.T) {
	in := `hostB:
  - {uuid: 6F1D0000-0000-4000-8000-00000000A001, name: web-01, state: migrating-in, macs: ["52:54:00:0a:00:01", "52:54:00:0a:00:02"]}
  - {uuid: 6f1d0000-0000-4000-8000-00000000b001, state: running, macs: ["52:54:00:0b:00:01"]}
hostA: []
`
	pl, err := ParsePlacements(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pl) != 2 || len(pl["hostA"]) != 0 || len(pl["hostB"]) != 2 {
		t.Fatalf("got %+v", pl)
	}
	if p := pl["hostB"][0]; p.UUID != "6f1d0000-0000-4000-8000-00000000a001" || p.State != "migrating-in" || len(p.MACs) != 2 || p.Name != "web-01" {
		t.Errorf("record 0 = %+v (the UUID is lower-cased)", p)
	}
	for _, empty := range []string{"", "# nothing\n", "{}"} {
		pl, err := ParsePlacements(strings.NewReader(empty))
		if err != nil || pl == nil || len(pl) != 0 {
			t.Errorf("ParsePlacements(%q) = %v, %v; want an empty map", empty, pl, err)
		}
	}
}

func TestParsePlacementsMalformed(t *testing.T) {
	const u = "6f1d0000-0000-4000-8000-00000000a001"
	for _, tc := range []struct{ name, in, want string }{
		{"not a map", "- a\n", "line 1: cannot unmarshal !!seq into switchconfig.Placements"},
		{"unknown key", "h: [{uuid: " + u + ", state: running, color: red}]\n", `line 1: unknown key "color"`},
		{"bad uuid", "h: [{uuid: nope, state: running}]\n", `h[0].uuid: "nope" is not a UUID`},
		{"bad state", "h: [{uuid: " + u + ", state: flying}]\n",
			`h[0].state: "flying" is not one of running, paused, migrating-in, migrated-in, migrating-out, inactive`},
		{"bad mac", "h: [{uuid: " + u + ", state: running, macs: [\"52:54:00\"]}]\n", `h[0].macs[0]: "52:54:00" is not a MAC address`},
		{"duplicate vm", "h: [{uuid: " + u + ", state: running}, {uuid: " + strings.ToUpper(u) + ", state: paused}]\n",
			"h[1].uuid: " + u + " is also h[0]"},
		{"bad host", "\"a b\": []\n", `placements: "a b" is not a host name`},
		{"two documents", "h: []\n---\nh: []\n", "more than one YAML document"},
		{"oversize", "h: []\n#" + strings.Repeat("x", 1<<20), "file is over 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePlacements(strings.NewReader(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParsePlacements(f *testing.F) {
	f.Add("h: [{uuid: 6f1d0000-0000-4000-8000-00000000a001, state: running, macs: [\"52:54:00:0a:00:01\"]}]\n")
	f.Add("{}")
	f.Add("&a [*a]")
	f.Fuzz(func(t *testing.T, in string) {
		pl, err := ParsePlacements(strings.NewReader(in))
		if err != nil {
			return
		}
		for h, ps := range pl {
			if checkHost(h) != nil {
				t.Fatalf("accepted host %q", h)
			}
			for _, p := range ps {
				if !validUUID(p.UUID) {
					t.Fatalf("accepted UUID %q", p.UUID)
				}
			}
		}
	})
}
