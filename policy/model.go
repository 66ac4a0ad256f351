package policy

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// Errors of the policy store and model. Store errors wrap them; test with
// errors.Is.
var (
	// ErrNotFound: no object of that kind and key.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create of an object whose key is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the object's revision is not the one the caller
	// expected (someone else changed it first).
	ErrConflict = errors.New("revision conflict")
	// ErrInvalid: the object fails validation; the error is a
	// *FieldError naming the object and the field.
	ErrInvalid = errors.New("invalid")
)

// FieldError is a validation error naming the object and the field. It
// wraps ErrInvalid (and Err, when set).
type FieldError struct {
	// Kind is the object's kind in the singular: "profile", "group",
	// "host" or "placement".
	Kind string
	// Name is the object's key as given (may be empty or invalid).
	Name string
	// Field is the JSON name of the field, with an index or key when the
	// field is a list or map, e.g. "ether_types[2]" or "match.labels".
	Field string
	// Msg says what is wrong with the value.
	Msg string
	// Err is an underlying error, if any.
	Err error
}

// Error formats as: kind "name": field: message.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, e.Name, e.Field, e.Msg)
}

// Unwrap returns ErrInvalid and the underlying error.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// Kind is a kind of stored object; its value is the key segment under the
// store's prefix.
type Kind string

// The kinds of stored objects.
const (
	// KindProfiles holds Profile objects keyed by name.
	KindProfiles Kind = "profiles"
	// KindGroups holds PortGroup objects keyed by name.
	KindGroups Kind = "groups"
	// KindHosts holds Host objects keyed by name.
	KindHosts Kind = "hosts"
	// KindPlacements holds Placement objects keyed by VM UUID.
	KindPlacements Kind = "placements"
)

// Kinds lists every Kind, in the order a full listing walks them.
func Kinds() []Kind {
	return []Kind{KindProfiles, KindGroups, KindHosts, KindPlacements}
}

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindProfiles, KindGroups, KindHosts, KindPlacements:
		return true
	}
	return false
}

// Object is what the store holds: one of *Profile, *PortGroup, *Host and
// *Placement.
type Object interface {
	// Kind returns the object's kind.
	Kind() Kind
	// Key returns the object's key within its kind (name or VM UUID).
	Key() string
	// Validate checks the object; errors are *FieldError.
	Validate() error
}

// New returns a new empty object of kind k, or nil for an unknown kind.
func New(k Kind) Object {
	switch k {
	case KindProfiles:
		return new(Profile)
	case KindGroups:
		return new(PortGroup)
	case KindHosts:
		return new(Host)
	case KindPlacements:
		return new(Placement)
	}
	return nil
}

// MaxNameLen is the longest object name in bytes (the profile TLV's limit,
// wire.MaxTetherName).
const MaxNameLen = wire.MaxTetherName

// CheckName reports whether s is a valid object name: 1-64 bytes of
// [a-zA-Z0-9._-]. The error is the message only (no field).
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("%d bytes, at most %d allowed", len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q: only letters, digits, '.', '_' and '-' allowed", s)
		}
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%q is reserved", s)
	}
	return nil
}

// Profile modes (S-Tag handling, DESIGN.md "Datapath modes").
const (
	// ModeSwitch: the edge switch strips the S-Tag on ingress.
	ModeSwitch = "switch"
	// ModeIOExtender: the S-Tag is carried through to the network.
	ModeIOExtender = "io-extender"
)

// Profile is what a vNIC may do on the wire: the VLAN it is put on, the
// S-Tag handling, the EtherTypes it may send, its rate limit and priority,
// and the ACL the switch applies. It maps one to one onto wire.TetherProfile.
type Profile struct {
	// Name is the profile's name (see CheckName).
	Name string `json:"name"`
	// VID is the VLAN ID, 0-4094; 0 leaves the vNIC untagged.
	VID uint16 `json:"vid"`
	// Mode is ModeSwitch or ModeIOExtender.
	Mode string `json:"mode"`
	// EtherTypes lists the EtherTypes the vNIC may send, each >= 0x0600;
	// empty allows all.
	EtherTypes []uint16 `json:"ether_types,omitempty"`
	// RateKbps is the rate limit in kbit/s; 0 means unlimited.
	RateKbps uint32 `json:"rate_kbps,omitempty"`
	// Priority is the 802.1Q priority code point, 0-7.
	Priority uint8 `json:"priority,omitempty"`
	// ACL names the access list the switch applies, empty for none: 0-64
	// bytes of [a-zA-Z0-9._-].
	ACL string `json:"acl,omitempty"`
}

// Kind returns KindProfiles.
func (p *Profile) Kind() Kind { return KindProfiles }

// Key returns the profile's name.
func (p *Profile) Key() string { return p.Name }

// Validate checks every field; the error names the first bad one.
func (p *Profile) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Kind: "profile", Name: p.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if err := CheckName(p.Name); err != nil {
		return bad("name", "%v", err)
	}
	if p.VID > 4094 {
		return bad("vid", "%d is not 0-4094", p.VID)
	}
	if p.Mode != ModeSwitch && p.Mode != ModeIOExtender {
		return bad("mode", "%q is not %q or %q", p.Mode, ModeSwitch, ModeIOExtender)
	}
	if len(p.EtherTypes) > wire.MaxTetherEtherTypes {
		return bad("ether_types", "%d listed, at most %d allowed", len(p.EtherTypes), wire.MaxTetherEtherTypes)
	}
	seen := make(map[uint16]bool, len(p.EtherTypes))
	for i, et := range p.EtherTypes {
		if et < 0x0600 {
			return bad(fmt.Sprintf("ether_types[%d]", i), "%#04x is below 0x0600", et)
		}
		if seen[et] {
			return bad(fmt.Sprintf("ether_types[%d]", i), "%#04x is listed twice", et)
		}
		seen[et] = true
	}
	if p.Priority > 7 {
		return bad("priority", "%d is not 0-7", p.Priority)
	}
	if p.ACL != "" {
		if err := CheckName(p.ACL); err != nil {
			return bad("acl", "%v", err)
		}
	}
	return nil
}

// Wire returns the profile as the switch signs and sends it. For a valid
// profile the result encodes without error.
func (p Profile) Wire() wire.TetherProfile {
	mode := wire.TetherSTagSwitch
	if p.Mode == ModeIOExtender {
		mode = wire.TetherSTagIOExtender
	}
	var ets []uint16
	if len(p.EtherTypes) > 0 {
		ets = append([]uint16(nil), p.EtherTypes...)
	}
	return wire.TetherProfile{
		VID:        p.VID,
		Mode:       mode,
		RateKbps:   p.RateKbps,
		Priority:   p.Priority,
		EtherTypes: ets,
		ACL:        p.ACL,
		Name:       p.Name,
	}
}

// ProfileFromWire is the inverse of Profile.Wire.
func ProfileFromWire(t wire.TetherProfile) Profile {
	mode := ModeSwitch
	if t.Mode == wire.TetherSTagIOExtender {
		mode = ModeIOExtender
	} else if t.Mode != wire.TetherSTagSwitch {
		mode = fmt.Sprintf("unknown(%d)", t.Mode)
	}
	var ets []uint16
	if len(t.EtherTypes) > 0 {
		ets = append([]uint16(nil), t.EtherTypes...)
	}
	return Profile{Name: t.Name, VID: t.VID, Mode: mode, EtherTypes: ets, RateKbps: t.RateKbps, Priority: t.Priority, ACL: t.ACL}
}

// PortGroup gives its profile to the VMs its Match selects.
type PortGroup struct {
	// Name is the group's name (see CheckName).
	Name string `json:"name"`
	// Profile is the name of the group's profile.
	Profile string `json:"profile"`
	// Match selects the group's VMs.
	Match Match `json:"match"`
}

// Match selects VMs. A VM matches when any UUID equals its UUID
// (case-insensitive), any name pattern matches its name, or all Labels
// are present on it (see the package documentation). An empty Match
// selects nothing.
type Match struct {
	// UUIDs are VM UUIDs.
	UUIDs []string `json:"uuids,omitempty"`
	// NamePatterns are path.Match globs on the VM's name.
	NamePatterns []string `json:"name_patterns,omitempty"`
	// Labels must all be on the VM: key "k" with value "v" is the VM
	// label "k=v"; value "" is the plain label "k".
	Labels map[string]string `json:"labels,omitempty"`
	// Priority orders matching groups: higher wins.
	Priority int `json:"priority,omitempty"`
}

// Kind returns KindGroups.
func (g *PortGroup) Kind() Kind { return KindGroups }

// Key returns the group's name.
func (g *PortGroup) Key() string { return g.Name }

// maxLabelLen is libvirthooks' limit on a label.
const maxLabelLen = 253

// Validate checks every field; the error names the first bad one.
func (g *PortGroup) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Kind: "group", Name: g.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if err := CheckName(g.Name); err != nil {
		return bad("name", "%v", err)
	}
	if err := CheckName(g.Profile); err != nil {
		return bad("profile", "%v", err)
	}
	for i, u := range g.Match.UUIDs {
		if err := CheckUUID(u); err != nil {
			return bad(fmt.Sprintf("match.uuids[%d]", i), "%v", err)
		}
	}
	for i, pat := range g.Match.NamePatterns {
		if pat == "" {
			return bad(fmt.Sprintf("match.name_patterns[%d]", i), "empty")
		}
		if _, err := path.Match(pat, ""); err != nil {
			return bad(fmt.Sprintf("match.name_patterns[%d]", i), "%q: %v", pat, err)
		}
	}
	for k, v := range g.Match.Labels {
		label := k
		if v != "" {
			label = k + "=" + v
		}
		switch {
		case k == "":
			return bad("match.labels", "empty key")
		case strings.Contains(k, "="):
			return bad("match.labels", "key %q contains '='", k)
		case len(label) > maxLabelLen:
			return bad("match.labels", "label %q is longer than %d bytes", k, maxLabelLen)
		case strings.TrimSpace(label) != label || strings.TrimSpace(k) != k:
			return bad("match.labels", "label %q has leading or trailing space", label)
		case strings.IndexFunc(label, unicode.IsControl) >= 0 || !utf8.ValidString(label):
			return bad("match.labels", "label %q contains a control character or invalid UTF-8", label)
		}
	}
	return nil
}

// VMRef is what Resolve knows of a VM.
type VMRef struct {
	// UUID is the libvirt domain UUID.
	UUID string
	// Name is the libvirt domain name.
	Name string
	// Labels are the domain's tether labels (libvirthooks Domain.Labels).
	Labels []string
}

// Match strengths for tie-breaking, strongest first.
const (
	matchNone = iota
	matchName
	matchLabel
	matchUUID
)

// strength returns how m selects vm (matchNone if it does not).
func (m *Match) strength(vm VMRef, labels map[string]string) int {
	for _, u := range m.UUIDs {
		if vm.UUID != "" && strings.EqualFold(u, vm.UUID) {
			return matchUUID
		}
	}
	if len(m.Labels) > 0 {
		all := true
		for k, v := range m.Labels {
			if got, ok := labels[k]; !ok || got != v {
				all = false
				break
			}
		}
		if all {
			return matchLabel
		}
	}
	for _, pat := range m.NamePatterns {
		if ok, _ := path.Match(pat, vm.Name); ok && vm.Name != "" {
			return matchName
		}
	}
	return matchNone
}

// LabelPairs splits VM labels into (key, value) pairs: "k=v" is (k, v),
// any other label is (label, "").
func LabelPairs(labels []string) map[string]string {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		} else {
			m[l] = ""
		}
	}
	return m
}

// Resolve returns the name of the port group of vm among groups, and false
// when none matches. See the package documentation for the order.
func Resolve(groups []PortGroup, vm VMRef) (group string, ok bool) {
	labels := LabelPairs(vm.Labels)
	best, bestPrio, bestStrength := "", 0, matchNone
	for i := range groups {
		g := &groups[i]
		s := g.Match.strength(vm, labels)
		if s == matchNone {
			continue
		}
		p := g.Match.Priority
		if !ok || p > bestPrio || p == bestPrio && (s > bestStrength || s == bestStrength && g.Name < best) {
			best, bestPrio, bestStrength, ok = g.Name, p, s, true
		}
	}
	return best, ok
}

// Host roles.
const (
	// RoleHost is a hypervisor running tetherd.
	RoleHost = "host"
	// RoleSwitch is an edge switch running tether-switchd.
	RoleSwitch = "switch"
)

// Host is an enrolled host or switch and its Ed25519 public key.
type Host struct {
	// Name is the host's name (see CheckName), as in LLDP and placements.
	Name string `json:"name"`
	// Role is RoleHost or RoleSwitch.
	Role string `json:"role"`
	// PublicKey is the PEM public key (identity.ParsePublicKeyPEM).
	PublicKey string `json:"public_key"`
	// KeyID is derived from PublicKey (16 hex digits): Normalize (and so
	// every store write) sets it from the key, and Validate rejects one
	// that does not match.
	KeyID string `json:"key_id,omitempty"`
}

// Kind returns KindHosts.
func (h *Host) Kind() Kind { return KindHosts }

// Key returns the host's name.
func (h *Host) Key() string { return h.Name }

// Validate checks every field; the error names the first bad one.
func (h *Host) Validate() error {
	bad := func(field string, err error, format string, args ...any) error {
		return &FieldError{Kind: "host", Name: h.Name, Field: field, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	if err := CheckName(h.Name); err != nil {
		return bad("name", nil, "%v", err)
	}
	if h.Role != RoleHost && h.Role != RoleSwitch {
		return bad("role", nil, "%q is not %q or %q", h.Role, RoleHost, RoleSwitch)
	}
	pub, err := identity.ParsePublicKeyPEM([]byte(h.PublicKey))
	if err != nil {
		return bad("public_key", err, "%s", strings.TrimPrefix(err.Error(), "identity: "))
	}
	if want := identity.KeyIDOf(pub).String(); h.KeyID != "" && h.KeyID != want {
		return bad("key_id", nil, "%q does not match the public key (%s)", h.KeyID, want)
	}
	return nil
}

// DeriveKeyID returns the KeyID of the host's public key.
func (h *Host) DeriveKeyID() (identity.KeyID, error) {
	pub, err := identity.ParsePublicKeyPEM([]byte(h.PublicKey))
	if err != nil {
		return identity.KeyID{}, fmt.Errorf("host %q: %w", h.Name, err)
	}
	return identity.KeyIDOf(pub), nil
}

// Placement states.
const (
	// StateRunning: the VM runs on Host.
	StateRunning = "running"
	// StatePaused: the VM is paused on Host.
	StatePaused = "paused"
	// StateMigratingIn: the VM is being migrated to Host.
	StateMigratingIn = "migrating-in"
	// StateMigratingOut: the VM is being migrated away from Host.
	StateMigratingOut = "migrating-out"
	// StateShutOff: the VM is defined on Host but not running.
	StateShutOff = "shut-off"
)

// Limits of Placement's free-text fields.
const (
	// MaxVMNameLen is the longest VM name in a placement.
	MaxVMNameLen = 255
	// MaxSourceLen is the longest Source.
	MaxSourceLen = 512
	// MaxMACs is the most MACs a placement lists.
	MaxMACs = 64
	// MaxLabels is the most labels a placement lists.
	MaxLabels = 64
)

// Placement records which host the VM manager runs a VM on, with its MACs.
// It is keyed by VM UUID.
type Placement struct {
	// VM is the domain UUID (canonical 8-4-4-4-12 hex).
	VM string `json:"vm"`
	// Name is the domain name (optional, informational).
	Name string `json:"name,omitempty"`
	// Host is the name of the host running the VM.
	Host string `json:"host"`
	// MACs are the VM's vNIC MACs (aa:bb:cc:dd:ee:ff).
	MACs []string `json:"macs,omitempty"`
	// State is one of the State* constants.
	State string `json:"state"`
	// Labels are the domain's tether metadata labels (libvirthooks
	// Domain.Labels: "k=v" or "k"), which port groups' Match.Labels
	// select on: each 1-253 bytes of UTF-8 without control characters or
	// leading or trailing space, at most MaxLabels, none listed twice.
	Labels []string `json:"labels,omitempty"`
	// Source says who wrote the record, e.g. "libvirt:qemu+ssh://hv1/system".
	Source string `json:"source,omitempty"`
	// Updated is when the writer observed the state.
	Updated time.Time `json:"updated"`
}

// Kind returns KindPlacements.
func (p *Placement) Kind() Kind { return KindPlacements }

// Key returns the VM UUID.
func (p *Placement) Key() string { return p.VM }

// Validate checks every field; the error names the first bad one.
func (p *Placement) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Kind: "placement", Name: p.VM, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if err := CheckUUID(p.VM); err != nil {
		return bad("vm", "%v", err)
	}
	if len(p.Name) > MaxVMNameLen {
		return bad("name", "%d bytes, at most %d allowed", len(p.Name), MaxVMNameLen)
	}
	if strings.IndexFunc(p.Name, unicode.IsControl) >= 0 || !utf8.ValidString(p.Name) {
		return bad("name", "contains a control character or invalid UTF-8")
	}
	if err := CheckName(p.Host); err != nil {
		return bad("host", "%v", err)
	}
	if len(p.MACs) > MaxMACs {
		return bad("macs", "%d listed, at most %d allowed", len(p.MACs), MaxMACs)
	}
	seen := make(map[string]bool, len(p.MACs))
	for i, m := range p.MACs {
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != 6 {
			return bad(fmt.Sprintf("macs[%d]", i), "%q is not a MAC address", m)
		}
		if seen[hw.String()] {
			return bad(fmt.Sprintf("macs[%d]", i), "%q is listed twice", m)
		}
		seen[hw.String()] = true
	}
	switch p.State {
	case StateRunning, StatePaused, StateMigratingIn, StateMigratingOut, StateShutOff:
	default:
		return bad("state", "%q is not one of %s", p.State, strings.Join([]string{StateRunning, StatePaused, StateMigratingIn, StateMigratingOut, StateShutOff}, ", "))
	}
	if len(p.Labels) > MaxLabels {
		return bad("labels", "%d listed, at most %d allowed", len(p.Labels), MaxLabels)
	}
	seenLabel := make(map[string]bool, len(p.Labels))
	for i, l := range p.Labels {
		if err := CheckLabel(l); err != nil {
			return bad(fmt.Sprintf("labels[%d]", i), "%v", err)
		}
		if seenLabel[l] {
			return bad(fmt.Sprintf("labels[%d]", i), "%q is listed twice", l)
		}
		seenLabel[l] = true
	}
	if len(p.Source) > MaxSourceLen {
		return bad("source", "%d bytes, at most %d allowed", len(p.Source), MaxSourceLen)
	}
	if strings.IndexFunc(p.Source, unicode.IsControl) >= 0 || !utf8.ValidString(p.Source) {
		return bad("source", "contains a control character or invalid UTF-8")
	}
	return nil
}

// CheckLabel reports whether s is a VM label as libvirthooks accepts it
// in tether's domain metadata (after trimming): 1-253 bytes of valid UTF-8
// without control characters, and without leading or trailing space. The
// error is the message only.
func CheckLabel(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxLabelLen:
		return fmt.Errorf("%d bytes, at most %d allowed", len(s), maxLabelLen)
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%q contains a control character or invalid UTF-8", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q has leading or trailing space", s)
	}
	return nil
}

// CheckUUID reports whether s is a UUID in the 8-4-4-4-12 hex form
// (either case). The error is the message only.
func CheckUUID(s string) error {
	if len(s) != 36 {
		return fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
			}
		}
	}
	return nil
}

// Normalize puts obj into its stored form before validation: lower-case
// UUIDs and MACs in colon form, nil for empty lists and maps, and a
// Host's KeyID derived from its key. Invalid values are left as they are
// for Validate to report.
func Normalize(obj Object) {
	switch o := obj.(type) {
	case *Profile:
		if len(o.EtherTypes) == 0 {
			o.EtherTypes = nil
		}
	case *PortGroup:
		if len(o.Match.UUIDs) == 0 {
			o.Match.UUIDs = nil
		}
		if len(o.Match.NamePatterns) == 0 {
			o.Match.NamePatterns = nil
		}
		if len(o.Match.Labels) == 0 {
			o.Match.Labels = nil
		}
		for i, u := range o.Match.UUIDs {
			o.Match.UUIDs[i] = strings.ToLower(u)
		}
	case *Host:
		if id, err := o.DeriveKeyID(); err == nil {
			o.KeyID = id.String()
		}
	case *Placement:
		if len(o.MACs) == 0 {
			o.MACs = nil
		}
		if len(o.Labels) == 0 {
			o.Labels = nil
		}
		o.VM = strings.ToLower(o.VM)
		for i, m := range o.MACs {
			if hw, err := net.ParseMAC(m); err == nil && len(hw) == 6 {
				o.MACs[i] = hw.String()
			}
		}
	}
}
