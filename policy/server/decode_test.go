package server

import (
	"strings"
	"testing"

	"github.com/tether-net/tether/policy"
)

// decodeCase is one request body and its exact refusal.
type decodeCase struct {
	name        string
	kind        policy.Kind
	contentType string
	body        string
	status      int
	field, msg  string
}

// decodeCases are the malformed bodies every write path refuses; the
// end-to-end test (policyd) sends them over HTTP too and checks the store.
var decodeCases = []decodeCase{
	{"no content type", policy.KindProfiles, "", `{"name":"a","mode":"switch"}`, 415, "", "missing Content-Type: send application/json"},
	{"text content type", policy.KindProfiles, "text/plain", `{"name":"a","mode":"switch"}`, 415, "", `Content-Type "text/plain" is not application/json`},
	{"bad content type", policy.KindProfiles, "application/json; =", `{}`, 415, "", `Content-Type "application/json; =" is not application/json`},
	{"empty body", policy.KindProfiles, "application/json", ``, 400, "", "empty request body: send a JSON object"},
	{"truncated", policy.KindProfiles, "application/json", `{"name":"a",`, 400, "", "truncated JSON"},
	{"syntax", policy.KindProfiles, "application/json", `{"name" "a"}`, 400, "", "malformed JSON at byte 9: invalid character '\"' after object key"},
	{"unknown field", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vlan":5}`, 400, "vlan", "unknown field"},
	{"unknown nested field", policy.KindGroups, "application/json", `{"name":"g","profile":"p","match":{"uuid":["x"]}}`, 400, "uuid", "unknown field"},
	{"string for number", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vid":"100"}`, 400, "vid", "want a non-negative integer in range, got string"},
	{"negative vid", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vid":-1}`, 400, "vid", "want a non-negative integer in range, got number -1"},
	{"vid overflow", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vid":70000}`, 400, "vid", "want a non-negative integer in range, got number 70000"},
	{"float vid", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vid":1.5}`, 400, "vid", "want a non-negative integer in range, got number 1.5"},
	{"number for string", policy.KindProfiles, "application/json", `{"name":7,"mode":"switch"}`, 400, "name", "want a string, got number"},
	{"object for list", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","ether_types":{"a":1}}`, 400, "ether_types", "want an array, got object"},
	{"nested wrong type", policy.KindGroups, "application/json", `{"name":"g","profile":"p","match":{"uuids":[1]}}`, 400, "match.uuids", "want a string, got number"},
	{"array body", policy.KindProfiles, "application/json", `[{"name":"a"}]`, 400, "", "want an object, got array"},
	{"trailing object", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch"}{"name":"b","mode":"switch"}`, 400, "", "trailing data after the JSON object"},
	{"trailing garbage", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch"} x`, 400, "", "trailing data after the JSON object"},
	{"trailing bracket", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch"}]`, 400, "", "trailing data after the JSON object"},
	{"oversize", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","acl":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "", "request body over 1048576 bytes"},
	{"oversize whitespace tail", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch"}` + strings.Repeat(" ", MaxBody), 413, "", "request body over 1048576 bytes"},
	{"invalid vid", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","vid":4095}`, 422, "vid", `profile "a": vid: 4095 is not 0-4094`},
	{"invalid mode", policy.KindProfiles, "application/json", `{"name":"a","mode":"bridge"}`, 422, "mode", `profile "a": mode: "bridge" is not "switch" or "io-extender"`},
	{"invalid name", policy.KindProfiles, "application/json", `{"name":"a b","mode":"switch"}`, 422, "name", `profile "a b": name: "a b": only letters, digits, '.', '_' and '-' allowed`},
	{"invalid ethertype", policy.KindProfiles, "application/json", `{"name":"a","mode":"switch","ether_types":[2048,5]}`, 422, "ether_types[1]", `profile "a": ether_types[1]: 0x0005 is below 0x0600`},
	{"invalid group uuid", policy.KindGroups, "application/json", `{"name":"g","profile":"p","match":{"uuids":["nope"]}}`, 422, "match.uuids[0]", `group "g": match.uuids[0]: "nope" is not a UUID (8-4-4-4-12 hex digits)`},
	{"invalid host key", policy.KindHosts, "application/json", `{"name":"hv1","role":"host","public_key":"x"}`, 422, "public_key", `host "hv1": public_key: public key: no PEM block`},
	{"invalid placement mac", policy.KindPlacements, "application/json", `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","macs":["52:54:00:00:00:01","zz"]}`, 422, "macs[1]", `placement "11111111-2222-3333-4444-555555555555": macs[1]: "zz" is not a MAC address`},
	{"invalid placement label", policy.KindPlacements, "application/json", `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","labels":["tenant=a","x\u0007y"]}`, 422, "labels[1]", `placement "11111111-2222-3333-4444-555555555555": labels[1]: "x\ay" contains a control character or invalid UTF-8`},
	{"placement labels not a list", policy.KindPlacements, "application/json", `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","labels":"tenant=a"}`, 400, "labels", `want an array, got string`},
	{"invalid placement time", policy.KindPlacements, "application/json", `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","updated":"yesterday"}`, 400, "updated", `want a time in RFC 3339 form such as "2026-01-02T15:04:05Z", got yesterday`},
}

func TestDecodeObjectErrors(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			_, e := DecodeObject(tc.contentType, strings.NewReader(tc.body), tc.kind)
			if e == nil {
				t.Fatal("accepted")
			}
			if e.Status != tc.status || e.Field != tc.field || e.Msg != tc.msg {
				t.Errorf("got %d field %q %q\nwant %d field %q %q", e.Status, e.Field, e.Msg, tc.status, tc.field, tc.msg)
			}
		})
	}
}

func TestDecodeObjectAccepts(t *testing.T) {
	o, e := DecodeObject("application/json; charset=utf-8", strings.NewReader(`{"name":"web","vid":100,"mode":"switch","ether_types":[2048,34525]} `+"\n"), policy.KindProfiles)
	if e != nil {
		t.Fatal(e)
	}
	p := o.(*policy.Profile)
	if p.Name != "web" || p.VID != 100 || len(p.EtherTypes) != 2 {
		t.Errorf("decoded %+v", p)
	}
	// Normalized before validation: upper-case UUID and dashed MAC.
	o, e = DecodeObject("application/json", strings.NewReader(`{"vm":"AAAAAAAA-2222-3333-4444-555555555555","host":"hv1","state":"running","macs":["52-54-00-AB-00-01"]}`), policy.KindPlacements)
	if e != nil {
		t.Fatal(e)
	}
	if pl := o.(*policy.Placement); pl.VM != "aaaaaaaa-2222-3333-4444-555555555555" || pl.MACs[0] != "52:54:00:ab:00:01" {
		t.Errorf("not normalized: %+v", pl)
	}
	// Labels pass through; an empty list is stored as none.
	o, e = DecodeObject("application/json", strings.NewReader(`{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","labels":["tenant=a","pci"]}`), policy.KindPlacements)
	if e != nil {
		t.Fatal(e)
	}
	if pl := o.(*policy.Placement); len(pl.Labels) != 2 || pl.Labels[0] != "tenant=a" || pl.Labels[1] != "pci" {
		t.Errorf("labels: %+v", pl)
	}
	o, e = DecodeObject("application/json", strings.NewReader(`{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"running","labels":[]}`), policy.KindPlacements)
	if e != nil {
		t.Fatal(e)
	}
	if pl := o.(*policy.Placement); pl.Labels != nil {
		t.Errorf("empty labels not normalized to nil: %#v", pl.Labels)
	}
	// Exactly at the limit is accepted.
	body := `{"name":"a","mode":"switch"}`
	body += strings.Repeat(" ", MaxBody-len(body))
	if _, e := DecodeObject("application/json", strings.NewReader(body), policy.KindProfiles); e != nil {
		t.Errorf("a body of exactly MaxBody bytes: %v", e)
	}
}

// FuzzDecodeObject: any body either decodes to a valid object or is
// refused with a 4xx status and a message.
func FuzzDecodeObject(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.body) < 4096 {
			f.Add(string(tc.kind), tc.body)
		}
	}
	f.Add("profiles", `{"name":"web","vid":100,"mode":"io-extender","ether_types":[2048],"rate_kbps":5,"priority":3,"acl":"x"}`)
	f.Add("groups", `{"name":"g","profile":"p","match":{"uuids":["11111111-2222-3333-4444-555555555555"],"name_patterns":["web-*"],"labels":{"a":"b"},"priority":2}}`)
	f.Add("placements", `{"vm":"11111111-2222-3333-4444-555555555555","host":"hv1","state":"paused","macs":["52:54:00:00:00:01"],"labels":["tenant=a","pci"],"updated":"2026-01-02T03:04:05Z"}`)
	f.Fuzz(func(t *testing.T, kind, body string) {
		k := policy.Kind(kind)
		if !k.Valid() {
			return
		}
		o, e := DecodeObject("application/json", strings.NewReader(body), k)
		if e != nil {
			if e.Status < 400 || e.Status > 499 || e.Msg == "" {
				t.Fatalf("refusal %+v", e)
			}
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("accepted an invalid object: %v", err)
		}
		if o.Kind() != k {
			t.Fatalf("kind %s, want %s", o.Kind(), k)
		}
	})
}
