// Package switchconfig loads and validates tether-switchd's configuration
// file (/etc/tether/switchd.yaml by default). Like tetherd's (package
// agent/config) it is decoded strictly: unknown keys, wrong types and
// out-of-range values are errors that name the key and line, so a typo never
// silently falls back to a default. Every key has a default; an absent or
// empty file is a valid configuration (every port of br0, keys under
// /etc/tether).
package switchconfig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/yamlconf"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// DefaultPath is where tether-switchd looks for its configuration.
const DefaultPath = "/etc/tether/switchd.yaml"

// MinRTE is the smallest ECP retransmission timer exponent accepted:
// 10 µs × 2^12, about 41 ms. Below it a daemon sharing a loaded core with
// others retransmits frames whose ACK is merely late, and lldpad's stations
// (RTE 14 by default) never propose less.
const MinRTE = 12

// Config is tether-switchd's validated configuration.
type Config struct {
	// Name is the switch's name: its LLDP System Name and its name in the
	// table of live MACs. Empty means the host name (Load fills it in).
	Name string `yaml:"name"`
	// Bridge is the Linux bridge whose ports switchd manages.
	Bridge string `yaml:"bridge"`
	// Ports are the managed ports: "all" (every port of Bridge, followed
	// as ports come and go) or a list of interface names.
	Ports Ports `yaml:"ports"`
	// KeyFile is the switch's Ed25519 private key (PEM, mode 0600); it is
	// generated on first start when absent.
	KeyFile string `yaml:"key_file"`
	// HostKeys are the enrolled host public keys: a directory whose
	// files are named after the host and hold its PEM public key
	// ("hv12" or "hv12.pem"), or a YAML map from host name to PEM.
	HostKeys HostKeys `yaml:"host_keys"`
	// VMManagers maps each host name to the libvirt URI switchd asks
	// whether a VM runs there (the closed loop's second witness).
	VMManagers map[string]string `yaml:"vm_managers"`
	// VMManagerURITemplate, when set, gives the URI of a host missing from
	// VMManagers: "{host}" is replaced by the host name
	// ("qemu+ssh://{host}/system").
	VMManagerURITemplate string `yaml:"vm_manager_uri_template"`
	// VMManagerTimeout bounds one question to a VM manager.
	VMManagerTimeout Duration `yaml:"vm_manager_timeout"`
	// RequireSigned refuses unsigned LLDP and VDP (no interop mode).
	RequireSigned bool `yaml:"require_signed"`
	// CID is the Company ID of tether's TLVs ("7a-7e-71").
	CID CID `yaml:"cid"`
	// EVB holds the bridge's EVB TLV parameters.
	EVB EVB `yaml:"evb"`
	// CDCP holds the bridge's S-channel parameters.
	CDCP CDCP `yaml:"cdcp"`
	// Profiles map a port group ("default" for requests that name none)
	// to the profile switchd answers an ASSOCIATE with (stack mode: until
	// tether-policyd serves them).
	Profiles map[string]Profile `yaml:"profiles"`
	// Socket is the local API's unix socket; SocketGroup may use it.
	Socket      string `yaml:"socket"`
	SocketGroup string `yaml:"socket_group"`
	// StateDir holds the signature counters (switch key's and the
	// verifier's replay marks).
	StateDir string `yaml:"state_dir"`
	// NFTTable is the bridge-family nftables table switchd owns.
	NFTTable string `yaml:"nft_table"`
	// RestartGrace is how long after start switchd keeps allow rules it
	// found in the kernel but has not re-learnt; 0 means twice the VDP
	// keep-alive period (10 µs × 2^RKA).
	RestartGrace Duration `yaml:"restart_grace"`
	// ResyncInterval is how often the nftables state is compared with the
	// associations and repaired, once the grace period is over.
	ResyncInterval Duration `yaml:"resync_interval"`
	// RejectsKept is how many refusals GET /v1/switch/rejects keeps.
	RejectsKept int `yaml:"rejects_kept"`
	// MigrationOverlap bounds how long, during a live migration the VM
	// manager confirms (the source reports the VM migrating out or the
	// destination migrating in), the source port keeps passing the VM's
	// pairs after the destination's ASSOCIATE: until the source
	// de-associates, its keep-alives stop, the VM manager no longer
	// reports the VM on the source, or this long. 0 revokes the source's
	// pairs at the destination's ASSOCIATE.
	MigrationOverlap Duration `yaml:"migration_overlap"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Placements, when set, is a file of VM placement records (stack
	// mode: which VMs run on which host, in which state, with which MACs;
	// see ParsePlacements). The VM manager answers for the hosts it lists
	// from it, ahead of vm_managers, and reads it again when it changes.
	Placements string `yaml:"placements"`
	// Policy, when set, is DC-wide mode: profiles and placement records
	// come from tether-policyd's store (see Policy); profiles: and
	// placements: then serve only until its first listing arrives.
	Policy *Policy `yaml:"policy,omitempty"`

	// Path is the file the configuration was loaded from ("" when none:
	// defaults or Parse); switchd reloads profiles from it on change.
	Path string `yaml:"-"`
}

// EVB is the bridge's proposal in the EVB TLV (IEEE 802.1Qbg-2012 D.2.12);
// for each value the larger of the bridge's and the station's is used.
type EVB struct {
	// R is ECP's number of retransmissions (0-7).
	R uint8 `yaml:"r"`
	// RTE is ECP's retransmission timer exponent (MinRTE-31).
	RTE uint8 `yaml:"rte"`
	// RWD is VDP's resource wait delay exponent (0-31).
	RWD uint8 `yaml:"rwd"`
	// RKA is VDP's reinit keep-alive exponent (0-31).
	RKA uint8 `yaml:"rka"`
	// ReflectiveRelay offers reflective relay (RRCAP).
	ReflectiveRelay bool `yaml:"reflective_relay"`
}

// CDCP is the bridge's S-channel configuration (IEEE 802.1Qbg-2012 D.2.13).
type CDCP struct {
	// Channels is the port's channel capacity, the default S-channel
	// included (1-4095). VDP runs on the default S-channel only.
	Channels uint16 `yaml:"channels"`
	// FirstSVID and LastSVID bound the S-VIDs assigned to other channels.
	FirstSVID uint16 `yaml:"first_svid"`
	LastSVID  uint16 `yaml:"last_svid"`
}

// Profile is what switchd answers an accepted request of a port group
// with (wire.TetherProfile).
type Profile struct {
	// Name is the profile's name in the profile TLV; empty means the port
	// group's name.
	Name string `yaml:"name"`
	// VID is the VLAN given to a request with the null VID; 0 means
	// untagged. A request that names a VID must name this one.
	VID uint16 `yaml:"vid"`
	// RateKbps is the rate limit in kbit/s, 0 for none (applied by the
	// host's soft switch).
	RateKbps uint32 `yaml:"rate_kbps"`
	// Priority is the 802.1Q priority (0-7).
	Priority uint8 `yaml:"priority"`
	// Mode is the S-Tag mode: "switch" or "io-extender".
	Mode string `yaml:"mode"`
	// VSITypeID, when set, selects this profile for requests with that
	// VSI Type ID (24 bits).
	VSITypeID *uint32 `yaml:"vsi_type_id,omitempty"`
}

// Log configures log/slog (level debug/info/warn/error, format text/json).
type Log = yamlconf.Log

// Ports is the set of managed ports: every port of the bridge, or a list.
type Ports struct {
	// All means every port of the bridge.
	All bool
	// Names lists the ports when All is false.
	Names []string
}

// UnmarshalYAML accepts "all" or a sequence of names.
func (p *Ports) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "all" {
			*p = Ports{All: true}
			return nil
		}
		return yamlconf.ValueError(fmt.Sprintf("line %d: ports: want \"all\" or a list of interface names, not %q", n.Line, n.Value))
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return yamlconf.ValueError(fmt.Sprintf("line %d: ports: want a list of interface names", n.Line))
		}
		*p = Ports{Names: names}
		return nil
	}
	return yamlconf.ValueError(fmt.Sprintf("line %d: ports: want \"all\" or a list of interface names", n.Line))
}

// MarshalYAML writes "all" or the list.
func (p Ports) MarshalYAML() (any, error) {
	if p.All {
		return "all", nil
	}
	return p.Names, nil
}

// HostKeys are the enrolled host keys: a directory or an inline map.
type HostKeys struct {
	// Dir is a directory of PEM files named after their host.
	Dir string
	// Inline maps host names to PEM public keys.
	Inline map[string]string
}

// UnmarshalYAML accepts a directory path or a map from host to PEM.
func (h *HostKeys) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*h = HostKeys{Dir: n.Value}
		return nil
	case yaml.MappingNode:
		m := make(map[string]string)
		if err := n.Decode(&m); err != nil {
			return yamlconf.ValueError(fmt.Sprintf("line %d: host_keys: want a map from host name to PEM public key", n.Line))
		}
		*h = HostKeys{Inline: m}
		return nil
	}
	return yamlconf.ValueError(fmt.Sprintf("line %d: host_keys: want a directory or a map from host name to PEM public key", n.Line))
}

// MarshalYAML writes the directory or the map.
func (h HostKeys) MarshalYAML() (any, error) {
	if h.Inline != nil {
		return h.Inline, nil
	}
	return h.Dir, nil
}

// CID is a Company ID written "7a-7e-71" (or with colons, or as 6 hex
// digits).
type CID wire.OUI

// UnmarshalYAML parses the CID.
func (c *CID) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return yamlconf.ValueError(fmt.Sprintf("line %d: cid: want a Company ID like \"7a-7e-71\"", n.Line))
	}
	v, err := ParseCID(s)
	if err != nil {
		return yamlconf.ValueError(fmt.Sprintf("line %d: cid: %v", n.Line, err))
	}
	*c = v
	return nil
}

// MarshalYAML writes the CID as "7a-7e-71".
func (c CID) MarshalYAML() (any, error) { return wire.OUI(c).String(), nil }

// ParseCID parses "7a-7e-71", "7a:7e:71" or "7a7e71".
func ParseCID(s string) (CID, error) {
	h := strings.NewReplacer("-", "", ":", "").Replace(s)
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 3 {
		return CID{}, fmt.Errorf("%q is not a Company ID (three octets, like 7a-7e-71)", s)
	}
	return CID{b[0], b[1], b[2]}, nil
}

// Duration is a time.Duration written as "1s", "500ms" in YAML.
type Duration = yamlconf.Duration

// Default returns the configuration used when the file sets nothing.
func Default() Config {
	return Config{
		Bridge:           "br0",
		Ports:            Ports{All: true},
		KeyFile:          "/etc/tether/switch.key",
		HostKeys:         HostKeys{Dir: "/etc/tether/host-keys"},
		VMManagers:       map[string]string{},
		VMManagerTimeout: Duration(time.Second),
		RequireSigned:    true,
		CID:              CID(wire.DefaultCID),
		EVB:              EVB{R: 3, RTE: 14, RWD: 20, RKA: 20, ReflectiveRelay: true},
		CDCP:             CDCP{Channels: 1, FirstSVID: 2, LastSVID: 4094},
		Profiles:         map[string]Profile{"default": {Name: "default", Mode: "switch"}},
		Socket:           "/run/tether/switchd.sock",
		SocketGroup:      "tether",
		StateDir:         "/var/lib/tether-switchd",
		NFTTable:         "tether",
		ResyncInterval:   Duration(30 * time.Second),
		RejectsKept:      1024,
		MigrationOverlap: Duration(time.Minute),
		Log:              Log{Level: "info", Format: "text"},
	}
}

// Load reads and validates the file at path and fills Name with the host
// name when it is empty. A missing file at the default path yields the
// defaults; a missing file named explicitly is an error.
func Load(path string, explicit bool) (Config, error) {
	c, err := load(path, explicit)
	if err != nil {
		return Config{}, err
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return Config{}, fmt.Errorf("config: name is empty and the host name is unknown (%v): set name", err)
		}
		c.Name = h
	}
	if _, err := os.Stat(path); err == nil {
		c.Path = path
	}
	return c, nil
}

func load(path string, explicit bool) (Config, error) {
	return yamlconf.Load(path, explicit, Default, Parse)
}

// Parse decodes and validates a configuration from r, on top of Default().
// Maps in the file (vm_managers, profiles) replace the defaults' maps.
func Parse(r io.Reader) (Config, error) {
	b, err := yamlconf.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	if len(bytes.TrimSpace(b)) > 0 {
		// Decode maps into fresh ones, so that a file's profiles replace
		// the default profile rather than merge with it.
		c.Profiles, c.VMManagers = nil, nil
		if err := yamlconf.Decode(b, &c); err != nil {
			return Config{}, err
		}
		if c.Profiles == nil {
			c.Profiles = Default().Profiles
		}
		for g, p := range c.Profiles {
			if p.Name == "" {
				p.Name = g
			}
			if p.Mode == "" {
				p.Mode = "switch"
			}
			c.Profiles[g] = p
		}
		if c.VMManagers == nil {
			c.VMManagers = map[string]string{}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// validIfname matches what the kernel and nftables accept as an interface
// name here: 1-15 bytes of letters, digits, '_', '.' and '-'.
var validIfname = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// ValidIfname reports whether s is an interface name switchd accepts.
func ValidIfname(s string) bool { return validIfname.MatchString(s) && s != "." && s != ".." }

// Validate checks every value; the error names the key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	abs := func(key, v string) {
		if v == "" || !filepath.IsAbs(v) {
			add("%s: %q must be an absolute path", key, v)
		}
	}
	if len(c.Name) > 255 || strings.ContainsAny(c.Name, "\x00\n") {
		add("name: %q is not a usable system name", c.Name)
	}
	if !ValidIfname(c.Bridge) {
		add("bridge: %q is not an interface name (1-15 letters, digits, '_', '.', '-')", c.Bridge)
	}
	if !c.Ports.All {
		if len(c.Ports.Names) == 0 {
			add("ports: the list is empty; write ports: all for every port of the bridge")
		}
		seen := map[string]bool{}
		for _, p := range c.Ports.Names {
			switch {
			case !ValidIfname(p):
				add("ports: %q is not an interface name", p)
			case p == c.Bridge:
				add("ports: %q is the bridge itself, not one of its ports", p)
			case seen[p]:
				add("ports: %q is listed twice", p)
			}
			seen[p] = true
		}
	}
	abs("key_file", c.KeyFile)
	switch {
	case c.HostKeys.Inline != nil:
		for _, h := range sortedKeys(c.HostKeys.Inline) {
			if err := checkHost(h); err != nil {
				add("host_keys: %v", err)
				continue
			}
			if _, err := identity.ParsePublicKeyPEM([]byte(c.HostKeys.Inline[h])); err != nil {
				add("host_keys.%s: %v", h, err)
			}
		}
	default:
		abs("host_keys", c.HostKeys.Dir)
	}
	for _, h := range sortedKeys(c.VMManagers) {
		if err := checkHost(h); err != nil {
			add("vm_managers: %v", err)
		} else if strings.TrimSpace(c.VMManagers[h]) == "" {
			add("vm_managers.%s: the libvirt URI is empty", h)
		}
	}
	if t := c.VMManagerURITemplate; t != "" && !strings.Contains(t, "{host}") {
		add("vm_manager_uri_template: %q does not contain {host}", t)
	}
	if c.VMManagerTimeout <= 0 {
		add("vm_manager_timeout: must be positive")
	}
	if wire.OUI(c.CID) == (wire.OUI{}) {
		add("cid: 00-00-00 is not a Company ID")
	}
	if c.EVB.R > 7 {
		add("evb.r: %d is out of range 0-7", c.EVB.R)
	}
	if c.EVB.RTE < MinRTE || c.EVB.RTE > 31 {
		add("evb.rte: %d is out of range %d-31 (the ACK timer is 10us x 2^rte)", c.EVB.RTE, MinRTE)
	}
	if c.EVB.RWD > 31 {
		add("evb.rwd: %d is out of range 0-31", c.EVB.RWD)
	}
	if c.EVB.RKA > 31 {
		add("evb.rka: %d is out of range 0-31", c.EVB.RKA)
	}
	if c.CDCP.Channels < 1 || c.CDCP.Channels > 4095 {
		add("cdcp.channels: %d is out of range 1-4095", c.CDCP.Channels)
	}
	if c.CDCP.FirstSVID < 2 || c.CDCP.LastSVID > 4094 || c.CDCP.FirstSVID > c.CDCP.LastSVID {
		add("cdcp: first_svid %d and last_svid %d must satisfy 2 <= first_svid <= last_svid <= 4094", c.CDCP.FirstSVID, c.CDCP.LastSVID)
	}
	typeIDs := map[uint32]string{}
	for _, g := range sortedKeys(c.Profiles) {
		p := c.Profiles[g]
		key := "profiles." + g
		if g == "" {
			add("profiles: a port group name is empty")
		}
		name := p.Name
		if name == "" {
			name = g
		}
		if len(name) > wire.MaxTetherName {
			add("%s.name: %q is over %d bytes", key, name, wire.MaxTetherName)
		}
		if p.VID > 4094 {
			add("%s.vid: %d is out of range 0-4094", key, p.VID)
		}
		if p.Priority > 7 {
			add("%s.priority: %d is out of range 0-7", key, p.Priority)
		}
		if p.Mode != "switch" && p.Mode != "io-extender" && p.Mode != "" {
			add("%s.mode: %q is not one of switch, io-extender", key, p.Mode)
		}
		if p.VSITypeID != nil {
			if *p.VSITypeID > 0xffffff {
				add("%s.vsi_type_id: %d does not fit in 24 bits", key, *p.VSITypeID)
			} else if other, dup := typeIDs[*p.VSITypeID]; dup {
				add("%s.vsi_type_id: %d is also the VSI type of profiles.%s", key, *p.VSITypeID, other)
			}
			typeIDs[*p.VSITypeID] = g
		}
	}
	abs("socket", c.Socket)
	abs("state_dir", c.StateDir)
	if c.Placements != "" {
		abs("placements", c.Placements)
	}
	if c.Policy != nil {
		errs = append(errs, c.Policy.validate()...)
	}
	if !validTable.MatchString(c.NFTTable) {
		add("nft_table: %q is not a table name (1-64 letters, digits, '_', '-')", c.NFTTable)
	}
	if c.RestartGrace < 0 {
		add("restart_grace: must not be negative")
	}
	if time.Duration(c.ResyncInterval) < time.Second {
		add("resync_interval: %v is below 1s", time.Duration(c.ResyncInterval))
	}
	if c.RejectsKept < 1 || c.RejectsKept > 1<<20 {
		add("rejects_kept: %d is out of range 1-1048576", c.RejectsKept)
	}
	if c.MigrationOverlap < 0 || time.Duration(c.MigrationOverlap) > time.Hour {
		add("migration_overlap: %v is out of range 0s-1h", time.Duration(c.MigrationOverlap))
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format: %q is not one of text, json", c.Log.Format)
	}
	return errors.Join(errs...)
}

var validTable = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkHost validates a host name used as a key.
func checkHost(h string) error {
	if h == "" || len(h) > 255 || strings.ContainsAny(h, "/\x00\n ") || h == "." || h == ".." {
		return fmt.Errorf("%q is not a host name", h)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ProfileFor returns the profile of a request: the one whose VSI Type ID
// is typeID, else the port group named group (when not empty), else
// "default". ok is false when none applies.
func (c *Config) ProfileFor(group string, typeID uint32) (name string, p Profile, ok bool) {
	for _, g := range sortedKeys(c.Profiles) {
		if q := c.Profiles[g]; q.VSITypeID != nil && *q.VSITypeID == typeID {
			return g, q, true
		}
	}
	if group != "" {
		if q, ok := c.Profiles[group]; ok {
			return group, q, true
		}
	}
	q, ok := c.Profiles["default"]
	return "default", q, ok
}

// TetherProfile returns the profile TLV of p, a profile of port group g.
func (p Profile) TetherProfile(g string) *wire.TetherProfile {
	name := p.Name
	if name == "" {
		name = g
	}
	mode := wire.TetherSTagSwitch
	if p.Mode == "io-extender" {
		mode = wire.TetherSTagIOExtender
	}
	return &wire.TetherProfile{VID: p.VID, Mode: mode, RateKbps: p.RateKbps, Priority: p.Priority, Name: name}
}

// KeepAlive returns the VDP keep-alive period the configuration proposes
// (10 µs × 2^RKA).
func (c *Config) KeepAlive() time.Duration { return 10 * time.Microsecond << c.EVB.RKA }

// Grace returns the restart grace period: RestartGrace, or twice the
// keep-alive period when it is 0.
func (c *Config) Grace() time.Duration {
	if c.RestartGrace > 0 {
		return time.Duration(c.RestartGrace)
	}
	return 2 * c.KeepAlive()
}

// LoadHostKeys returns the enrolled host keys: the inline map, or the PEM
// files of the directory (a file "hv12" or "hv12.pem" enrols host hv12;
// hidden files and subdirectories are skipped). A file that does not hold
// a public key is an error, so a broken enrolment is never silently lost.
func (c *Config) LoadHostKeys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey)
	if c.HostKeys.Inline != nil {
		for h, pemText := range c.HostKeys.Inline {
			k, err := identity.ParsePublicKeyPEM([]byte(pemText))
			if err != nil {
				return nil, fmt.Errorf("host_keys.%s: %w", h, err)
			}
			out[h] = k
		}
		return out, nil
	}
	ents, err := os.ReadDir(c.HostKeys.Dir)
	if err != nil {
		return nil, fmt.Errorf("host_keys: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		host := strings.TrimSuffix(name, ".pem")
		if err := checkHost(host); err != nil {
			return nil, fmt.Errorf("host_keys: %s: %w", name, err)
		}
		if _, dup := out[host]; dup {
			return nil, fmt.Errorf("host_keys: two files enrol host %q", host)
		}
		b, err := os.ReadFile(filepath.Join(c.HostKeys.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("host_keys: %w", err)
		}
		k, err := identity.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("host_keys: %s: %w", filepath.Join(c.HostKeys.Dir, name), err)
		}
		out[host] = k
	}
	return out, nil
}

// Write prints c as YAML, every key with its value (defaults included), so
// an operator sees what tether-switchd will use.
func Write(w io.Writer, c Config) error { return yamlconf.Write(w, c) }
