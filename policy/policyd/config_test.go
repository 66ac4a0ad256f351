package policyd

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "log:\n  level: info\n"} {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if c.Listen != DefaultListen || c.Etcd.Embedded == nil || c.Etcd.Embedded.DataDir != "/var/lib/tether/policy" ||
			c.TokensFile != "/etc/tether/policyd.tokens" || c.Etcd.Prefix != DefaultPrefix || time.Duration(c.Placement.ResyncInterval) != time.Minute {
			t.Errorf("Parse(%q) = %+v", in, c)
		}
	}
}

func TestParseFull(t *testing.T) {
	in := `
listen: "[::]:7480"
tls:
  cert: /etc/tether/policyd.crt
  key: /etc/tether/policyd.key
  client_ca: /etc/tether/clients-ca.pem
  client_roles:
    - {cn: admin, role: write}
    - {ou: switches, role: read}
tokens_file: /etc/tether/policyd.tokens
etcd:
  endpoints: [https://etcd1:2379, https://etcd2:2379]
  ca: /etc/tether/etcd-ca.pem
  cert: /etc/tether/etcd.crt
  key: /etc/tether/etcd.key
  dial_timeout: 2s
placement:
  hosts:
    hv1: qemu+ssh://hv1/system
  resync_interval: 30s
log: {level: debug, format: json}
`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Etcd.Embedded != nil || len(c.Etcd.Endpoints) != 2 || len(c.TLS.ClientRoles) != 2 || c.TLS.ClientRoles[1].OU != "switches" ||
		c.Placement.Hosts["hv1"] != "qemu+ssh://hv1/system" || time.Duration(c.Etcd.DialTimeout) != 2*time.Second {
		t.Errorf("Parse = %+v", c)
	}
	// What --check-config prints parses back to the same.
	var b bytes.Buffer
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	written := b.String()
	c2, err := Parse(strings.NewReader(written))
	if err != nil {
		t.Fatalf("re-parse of %s: %v", written, err)
	}
	var b2 bytes.Buffer
	_ = Write(&b2, c2)
	if written != b2.String() {
		t.Errorf("round trip changed the config:\n%s\n---\n%s", written, b2.String())
	}
}

// TestParseErrors: every malformed configuration with its exact error.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"listne: x\n", `line 1: unknown key "listne"`},
		{"etcd:\n  embedded:\n    datadir: /x\n", `line 3: unknown key "datadir"`},
		{"listen: [a]\n", "line 1: cannot unmarshal !!seq into string"},
		{"listen: nowhere\n", `listen: "nowhere" is not host:port`},
		{"listen: 0.0.0.0:7480\n", `listen: "0.0.0.0:7480" is not a loopback address: bearer tokens over plain HTTP are allowed only on loopback; set tls.cert and tls.key`},
		{"tls:\n  cert: /a.crt\n", "tls: cert and key go together: set both or neither"},
		{"tls:\n  cert: a.crt\n  key: /a.key\n", `tls.cert: "a.crt" must be an absolute path`},
		{"tls:\n  client_ca: /ca.pem\n  client_roles: [{cn: x, role: write}]\n", "tls.client_ca: mutual TLS needs tls.cert and tls.key"},
		{"tls:\n  cert: /c\n  key: /k\n  client_ca: /ca.pem\n  client_roles: [{cn: x, role: admin}]\n", `tls.client_roles[0].role: role "admin" is not one of read, write`},
		{"tls:\n  cert: /c\n  key: /k\n  client_ca: /ca.pem\n  client_roles: [{role: read}]\n", "tls.client_roles[0]: set cn or ou (an entry matching every certificate is not allowed)"},
		{"tls:\n  cert: /c\n  key: /k\n  client_ca: /ca.pem\n", "tls.client_roles: empty: no client certificate would get a role"},
		{"tokens_file: \"\"\n", "tokens_file: no way to authenticate: set tokens_file or tls.client_ca (or both)"},
		{"etcd:\n  embedded: {data_dir: /x}\n  endpoints: [http://e:2379]\n", "etcd: set embedded or endpoints, not both"},
		{"etcd:\n  embedded: {data_dir: rel}\n", `etcd.embedded.data_dir: "rel" must be an absolute path`},
		{"etcd:\n  embedded:\n    data_dir: /x\n    remote: {listen: 10.0.0.1}\n",
			"etcd.embedded.remote.listen: \"10.0.0.1\" is not host:port\netcd.embedded.remote.cert: required (https with client certificates only)\n" +
				"etcd.embedded.remote.key: required (https with client certificates only)\netcd.embedded.remote.client_ca: required (https with client certificates only)"},
		{"etcd:\n  embedded:\n    data_dir: /x\n    remote: {listen: \"0.0.0.0:2379\", cert: /c, key: /k, client_ca: /ca}\n",
			`etcd.embedded.remote.listen: "0.0.0.0:2379": name the address clients reach (etcd advertises it), not 0.0.0.0`},
		{"etcd:\n  embedded:\n    data_dir: /x\n    remote: {listen: \"10.0.0.1:2379\", cert: c, key: /k, client_ca: /ca}\n",
			`etcd.embedded.remote.cert: "c" must be an absolute path`},
		{"etcd:\n  embedded:\n    data_dir: /x\n    remote: {listen: \"10.0.0.1:2379\", cert: /c, key: /k, ca: /ca}\n",
			`line 4: unknown key "ca"`},
		{"etcd:\n  endpoints: [etcd1:2379]\n", `etcd.endpoints[0]: "etcd1:2379": want http://, https:// or unix:// URL`},
		{"etcd:\n  endpoints: [https://e:2379]\n  cert: /c\n", "etcd: cert and key go together: set both or neither"},
		{"etcd:\n  dial_timeout: soon\n", `line 2: "soon" is not a duration (examples: 500ms, 2s, 1m)`},
		{"etcd:\n  prefix: tether\n", `etcd.prefix: "tether" must start and end with '/'`},
		{"placement:\n  hosts:\n    bad/name: qemu:///system\n", `placement.hosts: host "bad/name": "bad/name": only letters, digits, '.', '_' and '-' allowed`},
		{"placement:\n  hosts:\n    hv1: \"\"\n", "placement.hosts.hv1: the libvirt URI is empty"},
		{"placement:\n  resync_interval: 10ms\n", "placement.resync_interval: 10ms is under 1s"},
		{"log:\n  level: loud\n", `log.level: "loud" is not one of debug, info, warn, error`},
		{"listen: a\n---\nlisten: b\n", "more than one YAML document"},
		{"listen: \"unterminated\n", "syntax error: line 2: found unexpected end of stream"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		if err == nil {
			t.Errorf("Parse(%q) accepted", tc.in)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %q\nwant %q", tc.in, err.Error(), tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("")
	f.Add("listen: 127.0.0.1:1\ntokens_file: /t\n")
	f.Add("etcd:\n  endpoints: [https://e:2379]\n  ca: /ca\n")
	f.Add("tls:\n  cert: /c\n  key: /k\n  client_ca: /ca\n  client_roles: [{cn: a, role: read}]\n")
	f.Add("placement:\n  hosts: {hv1: 'test:///default'}\n")
	f.Add("etcd: {embedded: {data_dir: /x}, endpoints: [http://a]}")
	f.Add("etcd: {embedded: {data_dir: /x, remote: {listen: '10.0.0.1:2379', cert: /c, key: /k, client_ca: /ca}}}")
	f.Add("etcd: {embedded: {data_dir: /x, remote: {listen: '[::]:2379'}}}")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse(strings.NewReader(in))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// A config that parses is valid, and what --check-config
		// prints of it parses again.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		var b bytes.Buffer
		if err := Write(&b, c); err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(&b); err != nil {
			t.Fatalf("written config does not parse: %v\n%s", err, b.String())
		}
	})
}

// TestPackagedConfig: the installed file parses and equals the defaults.
func TestPackagedConfig(t *testing.T) {
	c, err := Load("../../packaging/policyd.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	var got, want bytes.Buffer
	_ = Write(&got, c)
	_ = Write(&want, Default())
	if got.String() != want.String() {
		t.Errorf("packaging/policyd.yaml differs from the defaults:\n%s\n---\n%s", got.String(), want.String())
	}
}
