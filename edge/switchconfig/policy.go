package switchconfig

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tether-net/tether/internal/yamlconf"
)

// DefaultPolicyPrefix is the etcd key prefix of tether's policy objects
// (policy/store.DefaultPrefix; repeated here so that the configuration does
// not import the etcd client).
const DefaultPolicyPrefix = "/tether/v1/"

// Policy is the policy: section: tether-switchd's DC-wide mode. When it is
// set, switchd keeps a local copy of tether-policyd's store (the etcd
// cluster at Endpoints, watched under Prefix) and takes from it the
// profile of each VM's port group, the VM placement records it checks
// claims against (ahead of placements: and vm_managers:) and the keys of
// the enrolled hosts (in addition to host_keys:; see edge/switchd's
// dckeys.go for the precedence). When it is
// absent (the default), switchd runs in stack mode: profiles: and
// placements: of this file.
type Policy struct {
	// Endpoints are the etcd client URLs (https://host:2379, or http://
	// and unix:// for a local or test cluster).
	Endpoints []string `yaml:"endpoints"`
	// CA is the PEM bundle the etcd server's certificate must chain to;
	// empty means the system's roots.
	CA string `yaml:"ca,omitempty"`
	// Cert and Key are switchd's client certificate and key (PEM), both or
	// neither; tether-policyd's embedded etcd requires them on https.
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
	// Prefix is the key prefix of the policy objects.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds one connection attempt to etcd.
	DialTimeout Duration `yaml:"dial_timeout"`
	// StartWait is how long switchd waits at start for the first listing
	// of the store before it serves from this file's profiles and
	// placements; it switches over once the listing arrives.
	StartWait Duration `yaml:"start_wait"`
}

// DefaultPolicy returns the values a policy: section starts from.
func DefaultPolicy() Policy {
	return Policy{
		Prefix:      DefaultPolicyPrefix,
		DialTimeout: Duration(5 * time.Second),
		StartWait:   Duration(5 * time.Second),
	}
}

// policyKeys are the keys of the policy: section.
var policyKeys = []string{"endpoints", "ca", "cert", "key", "prefix", "dial_timeout", "start_wait"}

// policyAlias decodes the section's values without UnmarshalYAML.
type policyAlias Policy

// UnmarshalYAML decodes the section on top of DefaultPolicy and validates
// it: an unknown key, a wrong type or a bad value is an error naming the
// key and its line.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return yamlconf.ValueError(fmt.Sprintf("line %d: policy: want a map (endpoints, ca, cert, key, prefix, dial_timeout, start_wait)", n.Line))
	}
	lines := map[string]int{"": n.Line}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		known := false
		for _, want := range policyKeys {
			known = known || k.Value == want
		}
		if !known {
			return yamlconf.ValueError(fmt.Sprintf("line %d: unknown key \"policy.%s\"", k.Line, k.Value))
		}
		lines[k.Value] = v.Line
		if k.Value == "endpoints" && v.Kind == yaml.SequenceNode {
			for j, e := range v.Content {
				lines[fmt.Sprintf("endpoints[%d]", j)] = e.Line
			}
		}
	}
	a := policyAlias(DefaultPolicy())
	if err := n.Decode(&a); err != nil {
		return err
	}
	*p = Policy(a)
	if errs := p.problems(); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			line, ok := lines[e.field]
			if !ok {
				line = lines[strings.SplitN(e.field, "[", 2)[0]]
			}
			if line == 0 {
				line = n.Line
			}
			msgs[i] = fmt.Sprintf("line %d: policy.%s: %s", line, e.field, e.msg)
		}
		return yamlconf.ValueError(strings.Join(msgs, "\n"))
	}
	return nil
}

// policyProblem is one bad value of the section.
type policyProblem struct{ field, msg string }

// problems lists what is wrong with p, each naming its key.
func (p *Policy) problems() []policyProblem {
	var out []policyProblem
	add := func(field, format string, args ...any) {
		out = append(out, policyProblem{field, fmt.Sprintf(format, args...)})
	}
	if len(p.Endpoints) == 0 {
		add("endpoints", "empty: list the etcd client URLs of tether-policyd's store")
	}
	schemes := map[string]bool{}
	for i, e := range p.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", i)
		u, err := url.Parse(e)
		switch {
		case err != nil:
			add(field, "%q is not a URL", e)
			continue
		case u.Scheme == "https" || u.Scheme == "http":
			if u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
				add(field, "%q: want %s://host:port", e, u.Scheme)
				continue
			}
		case u.Scheme == "unix":
			path := u.Path
			if path == "" {
				path = u.Host + u.Path
			}
			if !filepath.IsAbs(path) {
				add(field, "%q: want unix:///absolute/path", e)
				continue
			}
		default:
			add(field, "%q: want an https://, http:// or unix:// URL", e)
			continue
		}
		schemes[u.Scheme] = true
	}
	if len(schemes) > 1 {
		add("endpoints", "mixes URL schemes: use https:// for every endpoint, or one local scheme")
	}
	tls := p.CA != "" || p.Cert != "" || p.Key != ""
	if tls && (schemes["http"] || schemes["unix"]) {
		add("endpoints", "ca, cert and key are set but the endpoints are not https://")
	}
	for _, f := range []struct{ key, v string }{{"ca", p.CA}, {"cert", p.Cert}, {"key", p.Key}} {
		if f.v != "" && !filepath.IsAbs(f.v) {
			add(f.key, "%q must be an absolute path", f.v)
		}
	}
	if (p.Cert == "") != (p.Key == "") {
		field := "cert" // named at the one that is set
		if p.Cert == "" {
			field = "key"
		}
		add(field, "cert and key go together: set both or neither")
	}
	if !strings.HasPrefix(p.Prefix, "/") || !strings.HasSuffix(p.Prefix, "/") || strings.ContainsAny(p.Prefix, "\x00\n") {
		add("prefix", "%q must start and end with '/'", p.Prefix)
	}
	if p.DialTimeout <= 0 || time.Duration(p.DialTimeout) > time.Minute {
		add("dial_timeout", "%v is out of range (0s, 1m]", time.Duration(p.DialTimeout))
	}
	if p.StartWait < 0 || time.Duration(p.StartWait) > 10*time.Minute {
		add("start_wait", "%v is out of range 0s-10m", time.Duration(p.StartWait))
	}
	return out
}

// validate returns the section's problems as "policy.key: message".
func (p *Policy) validate() []error {
	var errs []error
	for _, e := range p.problems() {
		errs = append(errs, fmt.Errorf("policy.%s: %s", e.field, e.msg))
	}
	return errs
}
