package switchconfig

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestPolicyOffByDefault: without a policy: section switchd runs in stack
// mode, and the written configuration has no such section.
func TestPolicyOffByDefault(t *testing.T) {
	c, err := Parse(strings.NewReader("bridge: br0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy != nil {
		t.Fatalf("policy: %+v, want nil (stack mode)", c.Policy)
	}
	var buf bytes.Buffer
	if err := Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "policy:") {
		t.Fatalf("defaults written with a policy section:\n%s", buf.String())
	}
}

func TestPolicyParse(t *testing.T) {
	in := `policy:
  endpoints: [https://10.0.0.5:2379, "https://[2001:db8::5]:2379"]
  ca: /etc/tether/policy-ca.pem
  cert: /etc/tether/switch-etcd.pem
  key: /etc/tether/switch-etcd-key.pem
  start_wait: 2s
`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		Endpoints: []string{"https://10.0.0.5:2379", "https://[2001:db8::5]:2379"},
		CA:        "/etc/tether/policy-ca.pem", Cert: "/etc/tether/switch-etcd.pem", Key: "/etc/tether/switch-etcd-key.pem",
		Prefix: DefaultPolicyPrefix, DialTimeout: Duration(5 * time.Second), StartWait: Duration(2 * time.Second),
	}
	if !reflect.DeepEqual(c.Policy, want) {
		t.Fatalf("policy:\n got  %+v\n want %+v", c.Policy, want)
	}
	var buf bytes.Buffer
	if err := Write(&buf, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(&buf)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip:\n%+v\n%+v", c.Policy, c2.Policy)
	}
	// A local cluster without TLS, another prefix.
	c, err = Parse(strings.NewReader("policy: {endpoints: [unix:///run/tether/etcd.sock], prefix: /dc2/}\n"))
	if err != nil || c.Policy.Prefix != "/dc2/" || c.Policy.Endpoints[0] != "unix:///run/tether/etcd.sock" {
		t.Fatalf("local: %+v %v", c.Policy, err)
	}
}

func TestPolicyMalformed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"policy: [a]\n", "line 1: policy: want a map (endpoints, ca, cert, key, prefix, dial_timeout, start_wait)"},
		{"policy:\n  endpoint: [https://a:1]\n", `line 2: unknown key "policy.endpoint"`},
		{"policy:\n  prefix: /x/\n", "line 2: policy.endpoints: empty: list the etcd client URLs of tether-policyd's store"},
		{"policy:\n  endpoints:\n    - https://a:1\n    - ftp://b:2\n", `line 4: policy.endpoints[1]: "ftp://b:2": want an https://, http:// or unix:// URL`},
		{"policy:\n  endpoints: [https://a]\n", `line 2: policy.endpoints[0]: "https://a": want https://host:port`},
		{"policy:\n  endpoints: [\"https://a:1/v3?x\"]\n", `line 2: policy.endpoints[0]: "https://a:1/v3?x": want https://host:port`},
		{"policy:\n  endpoints: [unix://rel.sock]\n", `line 2: policy.endpoints[0]: "unix://rel.sock": want unix:///absolute/path`},
		{"policy:\n  endpoints: [https://a:1, http://b:2]\n", "line 2: policy.endpoints: mixes URL schemes: use https:// for every endpoint, or one local scheme"},
		{"policy:\n  endpoints: [http://a:1]\n  ca: /ca.pem\n", "line 2: policy.endpoints: ca, cert and key are set but the endpoints are not https://"},
		{"policy:\n  endpoints: [https://a:1]\n  cert: c.pem\n", "line 3: policy.cert: \"c.pem\" must be an absolute path\nline 3: policy.cert: cert and key go together: set both or neither"},
		{"policy:\n  endpoints: [https://a:1]\n  key: /k.pem\n", "line 3: policy.key: cert and key go together: set both or neither"},
		{"policy:\n  endpoints: [https://a:1]\n  prefix: tether\n", `line 3: policy.prefix: "tether" must start and end with '/'`},
		{"policy:\n  endpoints: [https://a:1]\n  dial_timeout: 0s\n", "line 3: policy.dial_timeout: 0s is out of range (0s, 1m]"},
		{"policy:\n  endpoints: [https://a:1]\n  start_wait: -1s\n", "line 3: policy.start_wait: -1s is out of range 0s-10m"},
		{"policy:\n  endpoints: [https://a:1]\n  start_wait: soon\n", `line 3: "soon" is not a duration (examples: 500ms, 2s, 1m)`},
		{"policy:\n  endpoints: https://a:1\n", "line 2: cannot unmarshal !!str `https:/...` into []string"},
		{"policy:\n  endpoints: [https://a:1]\n  ca: [x]\n", "line 3: cannot unmarshal !!seq into string"},
	}
	for _, tc := range cases {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q)\n got  %v\n want %s", tc.in, err, tc.want)
		}
	}
	// Validate (a Config built in code) names the key without a line.
	c := Default()
	c.Name = "tor1"
	c.Policy = &Policy{Endpoints: []string{"https://a:1"}, Prefix: "x", DialTimeout: Duration(time.Second)}
	if err := c.Validate(); err == nil || err.Error() != `policy.prefix: "x" must start and end with '/'` {
		t.Fatalf("Validate: %v", err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("policy:\n  endpoints: [https://10.0.0.5:2379]\n  ca: /ca.pem\n  cert: /c.pem\n  key: /k.pem\n")
	f.Add("policy: {endpoints: [unix:///run/etcd.sock], prefix: /x/, start_wait: 0s}\n")
	f.Add("policy: {endpoints: [\"https://[::1]:1\", https://a:1], dial_timeout: 1m}\n")
	f.Add("policy:\n  endpoints:\n  - ::\n  prefix: ''\n")
	f.Add("policy: &a {endpoints: *a}\n")
	f.Add("policy: null\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", verr)
		}
		if c.Policy != nil && len(c.Policy.Endpoints) == 0 {
			t.Fatalf("policy without endpoints accepted: %+v", c.Policy)
		}
	})
}
