package policyd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tether-net/tether/internal/yamlconf"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/server"
	"github.com/tether-net/tether/policy/store"
)

// DefaultPath is where tether-policyd looks for its configuration.
const DefaultPath = "/etc/tether/policyd.yaml"

// DefaultListen is the default listen address: loopback only, so that
// bearer tokens never cross the network in clear text.
const DefaultListen = "127.0.0.1:7480"

// Config is tether-policyd's validated configuration.
type Config struct {
	// Listen is the API's TCP address (host:port).
	Listen string `yaml:"listen"`
	// TLS serves the API over HTTPS and, with client_ca, authenticates
	// clients by certificate.
	TLS TLS `yaml:"tls"`
	// TokensFile holds the accepted bearer tokens' hashes (see
	// server.ParseTokens); empty disables bearer tokens.
	TokensFile string `yaml:"tokens_file"`
	// Etcd is the policy DB.
	Etcd Etcd `yaml:"etcd"`
	// Placement configures the libvirt placement writer.
	Placement Placement `yaml:"placement"`
	// Log configures logging.
	Log yamlconf.Log `yaml:"log"`
}

// TLS holds the server's certificate and the client CA.
type TLS struct {
	// Cert and Key are the server's PEM certificate (chain) and key;
	// both or neither.
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
	// ClientCA, when set, is a PEM bundle of CAs whose client
	// certificates are accepted (mutual TLS); ClientRoles map them to
	// roles.
	ClientCA    string            `yaml:"client_ca,omitempty"`
	ClientRoles []server.CertRole `yaml:"client_roles,omitempty"`
}

// Enabled reports whether the API is served over TLS.
func (t TLS) Enabled() bool { return t.Cert != "" }

// Etcd selects the policy DB: an embedded single-node etcd (the default)
// or an external cluster by endpoints. Exactly one of Embedded and
// Endpoints is set.
type Etcd struct {
	// Embedded runs etcd inside tether-policyd.
	Embedded *Embedded `yaml:"embedded,omitempty"`
	// Endpoints are an external cluster's client URLs.
	Endpoints []string `yaml:"endpoints,omitempty"`
	// CA, Cert and Key are the PEM files for an external cluster's TLS
	// (CA alone: server verification; Cert and Key: client auth).
	CA   string `yaml:"ca,omitempty"`
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
	// DialTimeout bounds connecting to etcd.
	DialTimeout yamlconf.Duration `yaml:"dial_timeout"`
	// Prefix is the key prefix of tether's objects.
	Prefix string `yaml:"prefix"`
}

// Embedded configures the embedded etcd.
type Embedded struct {
	// DataDir holds its data.
	DataDir string `yaml:"data_dir"`
	// Remote, when set, also serves the embedded etcd's client port on a
	// TCP address over https, to clients with a certificate signed by
	// ClientCA only: tether-switchd's caches in DC-wide mode watch it
	// there. Unset (the default), etcd serves only the unix socket in
	// DataDir, which only root reaches.
	Remote *Remote `yaml:"remote,omitempty"`
}

// Remote is the embedded etcd's https client listener for other machines
// (etcdembed.Remote).
type Remote struct {
	// Listen is host:port, a specific address (not 0.0.0.0 or ::): etcd
	// advertises it to its clients.
	Listen string `yaml:"listen"`
	// Cert and Key are etcd's server certificate (valid for Listen's
	// host) and key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is the PEM bundle client certificates must chain to; every
	// client it signed may read and write the whole store, so use a CA
	// that signs only tether's switches and servers.
	ClientCA string `yaml:"client_ca"`
}

// Placement configures the placement writer: which libvirt to ask for
// each host's VMs.
type Placement struct {
	// Hosts maps host names (as enrolled) to libvirt URIs
	// ("qemu+ssh://hv1/system").
	Hosts map[string]string `yaml:"hosts,omitempty"`
	// ResyncInterval is how often every host is listed in full (events
	// in between are hints).
	ResyncInterval yamlconf.Duration `yaml:"resync_interval"`
}

// DefaultPrefix is the etcd key prefix of tether's objects, the one
// tether-switchd's cache watches by default.
const DefaultPrefix = store.DefaultPrefix

// Default returns the configuration used when the file sets nothing.
func Default() Config {
	return Config{
		Listen:     DefaultListen,
		TokensFile: "/etc/tether/policyd.tokens",
		Etcd: Etcd{
			Embedded:    &Embedded{DataDir: etcdembed.DefaultDir},
			DialTimeout: yamlconf.Duration(5 * time.Second),
			Prefix:      DefaultPrefix,
		},
		Placement: Placement{ResyncInterval: yamlconf.Duration(time.Minute)},
		Log:       yamlconf.DefaultLog(),
	}
}

// Parse decodes and validates a configuration from r on top of Default().
// Errors name the key (and, for decoding errors, the line).
func Parse(r io.Reader) (Config, error) {
	b, err := yamlconf.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	if len(bytes.TrimSpace(b)) > 0 {
		// etcd.embedded is the default only when the file names no
		// endpoints: decode without it and put it back after.
		c.Etcd.Embedded = nil
		if err := yamlconf.Decode(b, &c); err != nil {
			return Config{}, err
		}
		if c.Etcd.Embedded == nil && len(c.Etcd.Endpoints) == 0 {
			c.Etcd.Embedded = &Embedded{DataDir: etcdembed.DefaultDir}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads the file at path; a missing file at the default path (not
// named explicitly) yields the defaults.
func Load(path string, explicit bool) (Config, error) {
	return yamlconf.Load(path, explicit, Default, Parse)
}

// Write prints c as YAML.
func Write(w io.Writer, c Config) error { return yamlconf.Write(w, c) }

// Validate checks every value; the error has one line per problem, each
// naming its key.
func (c *Config) Validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	abs := func(key, v string) {
		if v != "" && !filepath.IsAbs(v) {
			add("%s: %q must be an absolute path", key, v)
		}
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil || port == "" {
		add("listen: %q is not host:port", c.Listen)
	}
	if c.TLS.Cert == "" != (c.TLS.Key == "") {
		add("tls: cert and key go together: set both or neither")
	}
	abs("tls.cert", c.TLS.Cert)
	abs("tls.key", c.TLS.Key)
	abs("tls.client_ca", c.TLS.ClientCA)
	if c.TLS.ClientCA != "" && c.TLS.Cert == "" {
		add("tls.client_ca: mutual TLS needs tls.cert and tls.key")
	}
	if len(c.TLS.ClientRoles) > 0 && c.TLS.ClientCA == "" {
		add("tls.client_roles: set tls.client_ca, the CA of the client certificates")
	}
	if c.TLS.ClientCA != "" && len(c.TLS.ClientRoles) == 0 {
		add("tls.client_roles: empty: no client certificate would get a role")
	}
	for i, m := range c.TLS.ClientRoles {
		if _, err := server.ParseRole(m.Role); err != nil {
			add("tls.client_roles[%d].role: %v", i, err)
		}
		if m.CN == "" && m.OU == "" {
			add("tls.client_roles[%d]: set cn or ou (an entry matching every certificate is not allowed)", i)
		}
	}
	abs("tokens_file", c.TokensFile)
	if c.TokensFile == "" && c.TLS.ClientCA == "" {
		add("tokens_file: no way to authenticate: set tokens_file or tls.client_ca (or both)")
	}
	if c.TokensFile != "" && !c.TLS.Enabled() && err == nil && !loopback(host) {
		add("listen: %q is not a loopback address: bearer tokens over plain HTTP are allowed only on loopback; set tls.cert and tls.key", c.Listen)
	}
	switch {
	case c.Etcd.Embedded != nil && len(c.Etcd.Endpoints) > 0:
		add("etcd: set embedded or endpoints, not both")
	case c.Etcd.Embedded != nil:
		if c.Etcd.Embedded.DataDir == "" || !filepath.IsAbs(c.Etcd.Embedded.DataDir) {
			add("etcd.embedded.data_dir: %q must be an absolute path", c.Etcd.Embedded.DataDir)
		}
		if c.Etcd.CA != "" || c.Etcd.Cert != "" || c.Etcd.Key != "" {
			add("etcd: ca, cert and key are for an external cluster (endpoints), not embedded")
		}
		if r := c.Etcd.Embedded.Remote; r != nil {
			h, p, err := net.SplitHostPort(r.Listen)
			switch ip := net.ParseIP(h); {
			case err != nil || p == "" || h == "":
				add("etcd.embedded.remote.listen: %q is not host:port", r.Listen)
			case ip != nil && ip.IsUnspecified():
				add("etcd.embedded.remote.listen: %q: name the address clients reach (etcd advertises it), not %s", r.Listen, h)
			}
			for _, f := range []struct{ key, v string }{{"cert", r.Cert}, {"key", r.Key}, {"client_ca", r.ClientCA}} {
				if f.v == "" {
					add("etcd.embedded.remote.%s: required (https with client certificates only)", f.key)
				} else {
					abs("etcd.embedded.remote."+f.key, f.v)
				}
			}
		}
	default:
		for i, e := range c.Etcd.Endpoints {
			if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") && !strings.HasPrefix(e, "unix://") {
				add("etcd.endpoints[%d]: %q: want http://, https:// or unix:// URL", i, e)
			}
		}
		if c.Etcd.Cert == "" != (c.Etcd.Key == "") {
			add("etcd: cert and key go together: set both or neither")
		}
		abs("etcd.ca", c.Etcd.CA)
		abs("etcd.cert", c.Etcd.Cert)
		abs("etcd.key", c.Etcd.Key)
	}
	if c.Etcd.DialTimeout <= 0 {
		add("etcd.dial_timeout: must be positive")
	}
	if !strings.HasPrefix(c.Etcd.Prefix, "/") || !strings.HasSuffix(c.Etcd.Prefix, "/") {
		add("etcd.prefix: %q must start and end with '/'", c.Etcd.Prefix)
	}
	hosts := make([]string, 0, len(c.Placement.Hosts))
	for h := range c.Placement.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		if err := policy.CheckName(h); err != nil {
			add("placement.hosts: host %q: %v", h, err)
		} else if strings.TrimSpace(c.Placement.Hosts[h]) == "" {
			add("placement.hosts.%s: the libvirt URI is empty", h)
		}
	}
	if c.Placement.ResyncInterval < yamlconf.Duration(time.Second) {
		add("placement.resync_interval: %s is under 1s", time.Duration(c.Placement.ResyncInterval))
	}
	for _, e := range c.Log.Validate() {
		add("%v", e)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// loopback reports whether host (of a listen address) is a loopback
// address or "localhost".
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
