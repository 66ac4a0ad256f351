package sriov

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tether-net/tether/internal/atomicfile"
)

// recordVersion is the state file format's version.
const recordVersion = 1

// maxRecordSize bounds a state file; a real one is about 500 bytes.
const maxRecordSize = 64 << 10

// ErrBadRecord is wrapped by every error decoding a state file.
var ErrBadRecord = errors.New("sriov: state record")

// Phase says how far an Ensure got; it is informational (Ensure and
// Release converge from any phase).
type Phase string

// The phases of a record.
const (
	// PhaseConfiguring: the original settings are saved, the VF may be
	// partly configured (a crash here is repaired by the next Ensure,
	// Release or Reconcile).
	PhaseConfiguring Phase = "configuring"
	// PhaseConfigured: the VF read back as desired.
	PhaseConfigured Phase = "configured"
	// PhaseReleasing: Release started restoring the original settings.
	PhaseReleasing Phase = "releasing"
)

// Record is what tether keeps durably about one VF it configured: who has
// it, what it was before tether touched it, and what it should be.
type Record struct {
	VF   VF     // the VF, also the record's file name (PF.vfN.json)
	VNIC string // the vNIC holding the VF
	// Phase is how far the last Ensure or Release got.
	Phase Phase
	// Original is what the kernel showed before tether's first change.
	Original Settings
	// Desired is what the vNIC's last Ensure asked for.
	Desired Settings
}

// settingsJSON is Settings on disk; pointers find missing fields.
type settingsJSON struct {
	MAC        *string    `json:"mac"`
	VLAN       *uint16    `json:"vlan"`
	QoS        *uint8     `json:"qos"`
	VLANProto  *string    `json:"vlan_proto"`
	SpoofCheck *bool      `json:"spoofchk"`
	Trust      *bool      `json:"trust"`
	LinkState  *LinkState `json:"link_state"`
	MinTxRate  *uint32    `json:"min_tx_rate"`
	MaxTxRate  *uint32    `json:"max_tx_rate"`
}

type recordJSON struct {
	Version  *int          `json:"version"`
	PF       *string       `json:"pf"`
	VF       *int          `json:"vf"`
	VNIC     *string       `json:"vnic"`
	Phase    *Phase        `json:"phase"`
	Original *settingsJSON `json:"original"`
	Desired  *settingsJSON `json:"desired"`
}

func protoName(p uint16) string {
	switch p {
	case ProtoDot1AD:
		return "802.1ad"
	case ProtoDot1Q:
		return "802.1Q"
	}
	return fmt.Sprintf("%#04x", p)
}

func toJSON(s Settings) *settingsJSON {
	s = s.normalize()
	mac, proto := s.MAC.String(), protoName(s.VLANProto)
	return &settingsJSON{
		MAC: &mac, VLAN: &s.VLAN, QoS: &s.QoS, VLANProto: &proto,
		SpoofCheck: &s.SpoofCheck, Trust: &s.Trust, LinkState: &s.LinkState,
		MinTxRate: &s.MinTxRate, MaxTxRate: &s.MaxTxRate,
	}
}

func (j *settingsJSON) settings(name string) (Settings, error) {
	var s Settings
	if j == nil {
		return s, fmt.Errorf("%w: missing %q", ErrBadRecord, name)
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"mac", j.MAC != nil}, {"vlan", j.VLAN != nil}, {"qos", j.QoS != nil},
		{"vlan_proto", j.VLANProto != nil}, {"spoofchk", j.SpoofCheck != nil},
		{"trust", j.Trust != nil}, {"link_state", j.LinkState != nil},
		{"min_tx_rate", j.MinTxRate != nil}, {"max_tx_rate", j.MaxTxRate != nil},
	} {
		if !f.ok {
			return s, fmt.Errorf("%w: %s: missing %q", ErrBadRecord, name, f.name)
		}
	}
	mac, err := net.ParseMAC(*j.MAC)
	if err != nil || len(mac) != 6 {
		return s, fmt.Errorf("%w: %s: mac %q is not a 6-byte MAC address", ErrBadRecord, name, *j.MAC)
	}
	switch *j.VLANProto {
	case "802.1Q":
		s.VLANProto = ProtoDot1Q
	case "802.1ad":
		s.VLANProto = ProtoDot1AD
	default:
		return s, fmt.Errorf("%w: %s: vlan_proto %q is not 802.1Q or 802.1ad", ErrBadRecord, name, *j.VLANProto)
	}
	s.MAC, s.VLAN, s.QoS = mac, *j.VLAN, *j.QoS
	s.SpoofCheck, s.Trust, s.LinkState = *j.SpoofCheck, *j.Trust, *j.LinkState
	s.MinTxRate, s.MaxTxRate = *j.MinTxRate, *j.MaxTxRate
	if err := s.validateOriginal(); err != nil {
		return s, fmt.Errorf("%w: %s: %w", ErrBadRecord, name, err)
	}
	return s, nil
}

// MarshalBinary encodes r as the state file's JSON.
func (r *Record) MarshalBinary() ([]byte, error) {
	if err := r.VF.validate(); err != nil {
		return nil, err
	}
	v := recordVersion
	pf, vf := r.VF.PF, r.VF.Index
	j := recordJSON{
		Version: &v, PF: &pf, VF: &vf, VNIC: &r.VNIC, Phase: &r.Phase,
		Original: toJSON(r.Original), Desired: toJSON(r.Desired),
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state record for %s: %w", r.VF, err)
	}
	return append(b, '\n'), nil
}

// UnmarshalBinary decodes a state file strictly: one JSON object, no
// unknown or missing fields, every value in range. Errors wrap
// ErrBadRecord.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) > maxRecordSize {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadRecord, len(b), maxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j recordJSON
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the object", ErrBadRecord)
	}
	switch {
	case j.Version == nil:
		return fmt.Errorf("%w: missing %q", ErrBadRecord, "version")
	case *j.Version != recordVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrBadRecord, *j.Version, recordVersion)
	case j.PF == nil:
		return fmt.Errorf("%w: missing %q", ErrBadRecord, "pf")
	case j.VF == nil:
		return fmt.Errorf("%w: missing %q", ErrBadRecord, "vf")
	case j.VNIC == nil:
		return fmt.Errorf("%w: missing %q", ErrBadRecord, "vnic")
	case *j.VNIC == "":
		return fmt.Errorf("%w: empty %q", ErrBadRecord, "vnic")
	case j.Phase == nil:
		return fmt.Errorf("%w: missing %q", ErrBadRecord, "phase")
	}
	switch *j.Phase {
	case PhaseConfiguring, PhaseConfigured, PhaseReleasing:
	default:
		return fmt.Errorf("%w: phase %q is not configuring, configured or releasing", ErrBadRecord, *j.Phase)
	}
	vf := VF{PF: *j.PF, Index: *j.VF}
	if err := vf.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	orig, err := j.Original.settings("original")
	if err != nil {
		return err
	}
	want, err := j.Desired.settings("desired")
	if err != nil {
		return err
	}
	*r = Record{VF: vf, VNIC: *j.VNIC, Phase: *j.Phase, Original: orig, Desired: want}
	return nil
}

// VF names one virtual function: its PF's netdev and its index there.
type VF struct {
	PF    string // the PF's netdev name
	Index int    // the VF's index on the PF (ip link's vf N)
}

// String returns "PF vf N" as ip-link(8) would address it.
func (v VF) String() string { return v.PF + " vf " + strconv.Itoa(v.Index) }

// ErrBadVF is wrapped when a VF's PF name or index cannot be valid.
var ErrBadVF = errors.New("sriov: bad VF")

func (v VF) validate() error {
	// dev_valid_name in net/core/dev.c.
	if v.PF == "" || len(v.PF) > 15 || v.PF == "." || v.PF == ".." ||
		strings.ContainsAny(v.PF, "/: \t\n\v\f\r\x00") {
		return fmt.Errorf("%w: PF name %q is not a valid interface name", ErrBadVF, v.PF)
	}
	if v.Index < 0 || v.Index > 0xffff {
		return fmt.Errorf("%w: index %d out of range 0-65535", ErrBadVF, v.Index)
	}
	return nil
}

// store keeps one state file per VF in a directory.
type store struct{ dir string }

func (s store) path(vf VF) string {
	return filepath.Join(s.dir, vf.PF+".vf"+strconv.Itoa(vf.Index)+".json")
}

// load returns the record for vf, or nil when there is none.
func (s store) load(vf VF) (*Record, error) {
	p := s.path(vf)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	var r Record
	if err := r.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if r.VF != vf {
		return nil, fmt.Errorf("%s: %w: holds %s", p, ErrBadRecord, r.VF)
	}
	return &r, nil
}

// save writes r durably (atomic replace, fsync of file and directory).
func (s store) save(r *Record) error {
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path(r.VF), b, 0o600); err != nil {
		return fmt.Errorf("save original settings of %s: %w", r.VF, err)
	}
	return nil
}

// remove deletes vf's record durably; a missing one is fine.
func (s store) remove(vf VF) error {
	if err := os.Remove(s.path(vf)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state of %s: %w", vf, err)
	}
	return atomicfile.SyncDir(s.dir)
}

// all loads every record in the directory, sorted by VF; files that do not
// decode are returned as errors beside the good records.
func (s store) all() ([]*Record, []error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read state directory %s: %w", s.dir, err)}
	}
	var rs []*Record
	var errs []error
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") || !e.Type().IsRegular() {
			continue // atomicfile temporaries and strangers
		}
		p := filepath.Join(s.dir, n)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", p, err))
			continue
		}
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		if s.path(r.VF) != p {
			errs = append(errs, fmt.Errorf("%s: %w: holds %s", p, ErrBadRecord, r.VF))
			continue
		}
		rs = append(rs, &r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].VF.PF != rs[j].VF.PF {
			return rs[i].VF.PF < rs[j].VF.PF
		}
		return rs[i].VF.Index < rs[j].VF.Index
	})
	return rs, errs
}
