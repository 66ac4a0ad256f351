// Package config loads and validates tetherd's configuration file
// (/etc/tether/tetherd.yaml by default). The file is decoded strictly:
// unknown keys, wrong types and out-of-range values are errors that name the
// key and line, so a typo never silently falls back to a default. Every key
// has a default; an absent or empty file is a valid configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tether-net/tether/internal/yamlconf"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where tetherd looks for its configuration.
const DefaultPath = "/etc/tether/tetherd.yaml"

// Config is tetherd's validated configuration.
type Config struct {
	// StateDir holds the inventory database and the signature counters.
	StateDir string `yaml:"state_dir"`
	// Socket is the local API's unix socket; SocketGroup may use it.
	Socket      string `yaml:"socket"`
	SocketGroup string `yaml:"socket_group"`
	// SpoolDir is where tether-hook leaves events while tetherd is down.
	SpoolDir string `yaml:"spool_dir"`
	// Libvirt configures the libvirt event source.
	Libvirt Libvirt `yaml:"libvirt"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Uplinks are the interfaces towards the edge switch on which tetherd
	// runs LLDP, EVB/CDCP and VDP over ECP (station role). Empty (the
	// default) runs no uplink.
	Uplinks []Uplink `yaml:"uplinks"`
	// Identity locates the host key, its signature counters and the
	// enrolled switch keys.
	Identity Identity `yaml:"identity"`
	// RequireSigned refuses plain (unsigned) VDP: a switch that does not
	// advertise tether's capability, or whose frames are not signed by an
	// enrolled switch key, gets no association.
	RequireSigned bool `yaml:"require_signed"`
	// CID is the Company ID of tether's organizationally specific TLVs.
	CID CID `yaml:"cid"`
	// EVB holds the station's proposed EVB TLV values.
	EVB EVB `yaml:"evb"`
	// DCBX holds the ETS and PFC settings advertised in LLDP (optional).
	DCBX DCBX `yaml:"dcbx"`
	// VDP holds the VSI manager and type sent with every VSI.
	VDP VDP `yaml:"vdp"`
	// Migration says how a VM arriving by live migration is associated:
	// MigrationPreAssociate (the default) or MigrationPostMove.
	Migration Migration `yaml:"migration"`
	// Datapath configures the vNIC datapath and the soft switch
	// (datapath.go); the default leaves both alone.
	Datapath Datapath `yaml:"datapath"`
}

// Migration configures the destination side of a live migration.
type Migration struct {
	// Mode is MigrationPreAssociate: the migrate hook records the incoming
	// vNICs and PRE-ASSOCIATEs them before the VM runs, and the started
	// hook returns only once the switch has answered the ASSOCIATE (or
	// StartedWait passed); or MigrationPostMove: the older behaviour, no
	// pre-association, the ASSOCIATE goes when the VM runs and the
	// started hook does not wait for it.
	Mode string `yaml:"mode"`
	// StartedWait bounds how long the started hook waits for the switch's
	// answer; it must stay below tether-hook's delivery budget (2 s).
	StartedWait Duration `yaml:"started_wait"`
}

// The values of migration.mode.
const (
	// MigrationPreAssociate pre-associates incoming vNICs (no loss window).
	MigrationPreAssociate = "pre-associate"
	// MigrationPostMove associates on first sight after the move.
	MigrationPostMove = "post-move"
)

// MaxStartedWait is the largest migration.started_wait: tether-hook gives
// a delivery 2 s in all, and the answer must still get back.
const MaxStartedWait = 1900 * time.Millisecond

// Uplink is one entry of uplinks.
type Uplink struct {
	// Interface is the network interface's name ("eth0").
	Interface string `yaml:"interface"`
}

// Identity configures tetherd's signing identity.
type Identity struct {
	// KeyFile is the host's Ed25519 private key (PKCS#8 PEM, mode 0600).
	// tetherd generates it on first start when it is missing.
	KeyFile string `yaml:"key_file"`
	// Counters is the directory of the signature counter files: what the
	// host key has used per channel, and the last counter accepted from
	// each switch key. It defaults to <state_dir>/counters.
	Counters string `yaml:"counters"`
	// SwitchKeys is a directory of PEM public keys ("PUBLIC KEY" blocks,
	// one per file) of the enrolled switches.
	SwitchKeys string `yaml:"switch_keys"`
}

// CID is a Company ID (or OUI) written "7a-7e-71" in YAML.
type CID [3]byte

// String formats the CID as "7a-7e-71".
func (c CID) String() string { return fmt.Sprintf("%02x-%02x-%02x", c[0], c[1], c[2]) }

// ParseCID parses "7a-7e-71" (three two-digit hex octets separated by
// dashes, any case).
func ParseCID(s string) (CID, error) {
	var c CID
	if len(s) != 8 || s[2] != '-' || s[5] != '-' {
		return c, fmt.Errorf("%q is not three hex octets like 7a-7e-71", s)
	}
	for i := range c {
		v, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
		if err != nil {
			return c, fmt.Errorf("%q is not three hex octets like 7a-7e-71", s)
		}
		c[i] = byte(v)
	}
	return c, nil
}

// UnmarshalYAML parses a CID string; the range check is in Validate.
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

// MarshalYAML writes the CID as a string.
func (c CID) MarshalYAML() (any, error) { return c.String(), nil }

// EVB holds the EVB TLV values the station proposes (IEEE 802.1Q-2018
// D.2.12); each side then uses the larger of its own and the bridge's.
type EVB struct {
	// R is ECP's number of retransmissions, 0-7.
	R int `yaml:"r"`
	// RTE is ECP's retransmission timer exponent (10 µs × 2^RTE), 12-31.
	RTE int `yaml:"rte"`
	// RWD is VDP's resource wait delay exponent, 0-31.
	RWD int `yaml:"rwd"`
	// RKA is VDP's keep-alive exponent, 0-31.
	RKA int `yaml:"rka"`
}

// DCBX holds the DCBX TLVs advertised on the uplinks; nil sends none.
type DCBX struct {
	// ETS is sent as the ETS Configuration TLV.
	ETS *ETS `yaml:"ets"`
	// PFC is sent as the PFC Configuration TLV.
	PFC *PFC `yaml:"pfc"`
}

// ETS is the ETS Configuration TLV's content (IEEE 802.1Q-2018 D.2.8).
type ETS struct {
	// Willing accepts the switch's recommendation.
	Willing bool `yaml:"willing"`
	// MaxTCs is the number of traffic classes supported, 1-8.
	MaxTCs int `yaml:"max_tcs"`
	// PriorityTC maps each priority 0-7 to a traffic class below max_tcs.
	PriorityTC []int `yaml:"priority_tc"`
	// Bandwidth is the percentage of each traffic class 0-7; the sum is
	// 100.
	Bandwidth []int `yaml:"bandwidth"`
	// TSA is each traffic class's algorithm: strict, cbs, ets or vendor.
	TSA []string `yaml:"tsa"`
}

// PFC is the PFC Configuration TLV's content (IEEE 802.1Q-2018 D.2.10).
type PFC struct {
	// Willing accepts the switch's configuration.
	Willing bool `yaml:"willing"`
	// Cap is how many traffic classes may have PFC enabled at once, 1-8.
	Cap int `yaml:"cap"`
	// Enable lists the priorities (0-7) with PFC enabled.
	Enable []int `yaml:"enable"`
}

// VDP is what tetherd sends in every VSI TLV (IEEE 802.1Qbg-2012 41.2).
type VDP struct {
	// ManagerID is the VSI Manager ID, 1-16 bytes of text.
	ManagerID string `yaml:"manager_id"`
	// TypeID is the VSI type ID (24 bits) of VIFs without an 802.1Qbg
	// <virtualport>; those with one send theirs.
	TypeID int `yaml:"type_id"`
	// TypeVersion is the VSI type version (0-255) that goes with TypeID.
	TypeVersion int `yaml:"type_version"`
}

// Libvirt configures the connection to libvirtd.
type Libvirt struct {
	// URI is the libvirt connection URI; empty disables the source.
	URI string `yaml:"uri"`
	// ReconnectMin and ReconnectMax bound the reconnect backoff.
	ReconnectMin Duration `yaml:"reconnect_min"`
	ReconnectMax Duration `yaml:"reconnect_max"`
}

// Log configures log/slog (level debug/info/warn/error, format text/json).
type Log = yamlconf.Log

// Duration is a time.Duration written as "1s", "500ms" in YAML.
type Duration = yamlconf.Duration

// Default returns the configuration used when the file sets nothing.
func Default() Config {
	return Config{
		StateDir:    "/var/lib/tether",
		Socket:      "/run/tether/tetherd.sock",
		SocketGroup: "tether",
		SpoolDir:    "/var/spool/tether/hooks",
		Libvirt: Libvirt{
			URI:          "qemu:///system",
			ReconnectMin: Duration(time.Second),
			ReconnectMax: Duration(30 * time.Second),
		},
		Log: Log{Level: "info", Format: "text"},
		Identity: Identity{
			KeyFile:    "/etc/tether/host.key",
			Counters:   "/var/lib/tether/counters",
			SwitchKeys: "/etc/tether/switch-keys",
		},
		RequireSigned: true,
		CID:           DefaultCID,
		EVB:           EVB{R: 3, RTE: 14, RWD: 20, RKA: 20},
		VDP:           VDP{ManagerID: "tether"},
		Migration:     Migration{Mode: MigrationPreAssociate, StartedWait: Duration(1500 * time.Millisecond)},
		Datapath:      defaultDatapath(),
	}
}

// DefaultCID is tether's Company ID (package wire's DefaultCID).
var DefaultCID = CID{0x7a, 0x7e, 0x71}

// countersDir is identity.counters when the file does not set it.
func countersDir(stateDir string) string { return filepath.Join(stateDir, "counters") }

// Load reads and validates the file at path. A missing file at the default
// path yields the defaults; a missing file named explicitly is an error.
func Load(path string, explicit bool) (Config, error) {
	return yamlconf.Load(path, explicit, Default, Parse)
}

// Parse decodes and validates a configuration from r, on top of Default().
func Parse(r io.Reader) (Config, error) {
	b, err := yamlconf.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	// identity.counters follows state_dir unless the file sets it.
	c.Identity.Counters = ""
	if len(bytes.TrimSpace(b)) > 0 {
		if err := yamlconf.Decode(b, &c); err != nil {
			return Config{}, err
		}
	}
	if c.Identity.Counters == "" {
		c.Identity.Counters = countersDir(c.StateDir)
	}
	if len(c.Uplinks) == 0 {
		c.Uplinks = nil
	}
	if len(c.Datapath.VNICs) == 0 {
		c.Datapath.VNICs = nil
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every value; the error names the key.
func (c *Config) Validate() error {
	var errs []error
	abs := func(key, v string) {
		if v == "" || !filepath.IsAbs(v) {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", key, v))
		}
	}
	abs("state_dir", c.StateDir)
	abs("socket", c.Socket)
	abs("spool_dir", c.SpoolDir)
	if c.Libvirt.ReconnectMin <= 0 {
		errs = append(errs, fmt.Errorf("libvirt.reconnect_min: must be positive"))
	}
	if c.Libvirt.ReconnectMax < c.Libvirt.ReconnectMin {
		errs = append(errs, fmt.Errorf("libvirt.reconnect_max: %v is below reconnect_min %v",
			time.Duration(c.Libvirt.ReconnectMax), time.Duration(c.Libvirt.ReconnectMin)))
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	errs = append(errs, c.validateUplinks()...)
	abs("identity.key_file", c.Identity.KeyFile)
	// A counters directory derived from a bad state_dir is reported once,
	// as state_dir.
	if filepath.IsAbs(c.StateDir) || c.Identity.Counters != countersDir(c.StateDir) {
		abs("identity.counters", c.Identity.Counters)
	}
	abs("identity.switch_keys", c.Identity.SwitchKeys)
	// A Company ID has the "xA" pattern in its first octet (IEEE's CID
	// assignments): local bit set, multicast bit clear, X bits 10.
	if c.CID[0]&0x0f != 0x0a {
		errs = append(errs, fmt.Errorf("cid: %s is not a Company ID (the first octet must end in hex digit a, like 7a)", c.CID))
	}
	errs = append(errs, c.EVB.validate()...)
	errs = append(errs, c.DCBX.validate()...)
	errs = append(errs, c.VDP.validate()...)
	switch c.Migration.Mode {
	case MigrationPreAssociate, MigrationPostMove:
	default:
		errs = append(errs, fmt.Errorf("migration.mode: %q is not one of %s, %s", c.Migration.Mode, MigrationPreAssociate, MigrationPostMove))
	}
	if w := time.Duration(c.Migration.StartedWait); w < 0 || w > MaxStartedWait {
		errs = append(errs, fmt.Errorf("migration.started_wait: %v is out of range 0-%v (tether-hook's delivery budget is 2s)", w, MaxStartedWait))
	}
	errs = append(errs, c.Datapath.validate(c.Uplinks)...)
	return errors.Join(errs...)
}

// validateUplinks checks uplinks: interface names as Linux accepts them,
// no duplicates, and (for now) at most one.
func (c *Config) validateUplinks() []error {
	var errs []error
	seen := map[string]int{}
	for i, u := range c.Uplinks {
		key := fmt.Sprintf("uplinks[%d].interface", i)
		if err := checkIfname(u.Interface); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		if j, dup := seen[u.Interface]; dup {
			errs = append(errs, fmt.Errorf("%s: %q is already uplinks[%d]", key, u.Interface, j))
		}
		seen[u.Interface] = i
	}
	if len(c.Uplinks) > 1 {
		errs = append(errs, fmt.Errorf("uplinks: %d uplinks configured, but tetherd supports one so far "+
			"(every VIF is associated on the single uplink; per-VIF uplink selection is not implemented)", len(c.Uplinks)))
	}
	return errs
}

// checkIfname applies the kernel's rules for interface names
// (dev_valid_name): 1-15 bytes, not "." or "..", no "/", ":" or white
// space.
func checkIfname(s string) error {
	switch {
	case s == "":
		return errors.New("missing: name the interface, for example eth0")
	case len(s) > 15:
		return fmt.Errorf("%q is longer than 15 bytes", s)
	case s == "." || s == "..":
		return fmt.Errorf("%q is not an interface name", s)
	case strings.ContainsAny(s, "/: \t\n\r\v\f"):
		return fmt.Errorf("%q contains '/', ':' or white space", s)
	}
	return nil
}

// validate checks the EVB exponents against their field widths and the
// ECP floor (an ACK timer of 41 ms, above the scheduling stalls of a busy
// host; ECP is not timer-paced, so the timer only matters on loss).
func (e EVB) validate() []error {
	var errs []error
	rng := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("evb.%s: %d is out of range %d-%d", key, v, lo, hi))
		}
	}
	rng("r", e.R, 0, 7)
	rng("rte", e.RTE, 12, 31)
	rng("rwd", e.RWD, 0, 31)
	rng("rka", e.RKA, 0, 31)
	return errs
}

// tsaNames are the ETS transmission selection algorithms by config name.
var tsaNames = []string{"strict", "cbs", "ets", "vendor"}

// validate checks the DCBX tables.
func (d DCBX) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if e := d.ETS; e != nil {
		if e.MaxTCs < 1 || e.MaxTCs > 8 {
			bad("dcbx.ets.max_tcs: %d is out of range 1-8", e.MaxTCs)
		}
		if len(e.PriorityTC) != 8 {
			bad("dcbx.ets.priority_tc: %d entries, want 8 (one traffic class per priority 0-7)", len(e.PriorityTC))
		}
		for p, tc := range e.PriorityTC {
			if tc < 0 || tc >= max(e.MaxTCs, 1) {
				bad("dcbx.ets.priority_tc[%d]: traffic class %d is out of range 0-%d (max_tcs %d)", p, tc, max(e.MaxTCs, 1)-1, e.MaxTCs)
			}
		}
		if len(e.Bandwidth) != 8 {
			bad("dcbx.ets.bandwidth: %d entries, want 8 (percent per traffic class 0-7)", len(e.Bandwidth))
		}
		sum := 0
		for tc, v := range e.Bandwidth {
			if v < 0 || v > 100 {
				bad("dcbx.ets.bandwidth[%d]: %d is out of range 0-100", tc, v)
			}
			sum += v
		}
		if len(e.Bandwidth) == 8 && sum != 100 {
			bad("dcbx.ets.bandwidth: the percentages add up to %d, want 100", sum)
		}
		if len(e.TSA) != 8 {
			bad("dcbx.ets.tsa: %d entries, want 8 (one algorithm per traffic class 0-7)", len(e.TSA))
		}
		for tc, a := range e.TSA {
			if !slices.Contains(tsaNames, a) {
				bad("dcbx.ets.tsa[%d]: %q is not one of %s", tc, a, strings.Join(tsaNames, ", "))
			}
		}
	}
	if p := d.PFC; p != nil {
		if p.Cap < 1 || p.Cap > 8 {
			bad("dcbx.pfc.cap: %d is out of range 1-8", p.Cap)
		}
		seen := map[int]bool{}
		for i, prio := range p.Enable {
			switch {
			case prio < 0 || prio > 7:
				bad("dcbx.pfc.enable[%d]: priority %d is out of range 0-7", i, prio)
			case seen[prio]:
				bad("dcbx.pfc.enable[%d]: priority %d is listed twice", i, prio)
			}
			seen[prio] = true
		}
		if len(p.Enable) > p.Cap && p.Cap >= 1 {
			bad("dcbx.pfc.enable: %d priorities enabled, more than cap %d", len(p.Enable), p.Cap)
		}
	}
	return errs
}

// validate checks the VSI manager and type.
func (v VDP) validate() []error {
	var errs []error
	switch {
	case v.ManagerID == "" || len(v.ManagerID) > 16:
		errs = append(errs, fmt.Errorf("vdp.manager_id: %q must be 1 to 16 bytes", v.ManagerID))
	case strings.IndexByte(v.ManagerID, 0) >= 0:
		errs = append(errs, fmt.Errorf("vdp.manager_id: %q contains a NUL byte", v.ManagerID))
	}
	if v.TypeID < 0 || v.TypeID > 1<<24-1 {
		errs = append(errs, fmt.Errorf("vdp.type_id: %d is out of range 0-16777215 (24 bits)", v.TypeID))
	}
	if v.TypeVersion < 0 || v.TypeVersion > 255 {
		errs = append(errs, fmt.Errorf("vdp.type_version: %d is out of range 0-255", v.TypeVersion))
	}
	return errs
}

// Write prints c as YAML, every key with its value (defaults included), so
// an operator sees what tetherd will use.
func Write(w io.Writer, c Config) error { return yamlconf.Write(w, c) }
