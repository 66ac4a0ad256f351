package partition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tether-net/tether/internal/atomicfile"
)

// StateDir is the directory under the manager's state directory that holds
// the desired state: one file per vNIC, named after its MAC with dashes
// ("52-54-00-12-34-56.json"), each replaced atomically (internal/atomicfile;
// temporary files start with a dot and are skipped). One file per vNIC keeps
// an Ensure's durable write the same size however many vNICs there are.
const StateDir = "partitions"

// Limits of a state file.
const (
	stateVersion = 1
	// maxStateFile bounds one vNIC's file; a valid one is under 250 bytes.
	maxStateFile = 4096
)

// stateEntry is one vNIC's state file:
//
//	{"version": 1, "id": "52:54:00:00:00:01", "uplink": "eth0", "stag": 100,
//	 "cvid": 10, "mode": "switch", "mtu": 1400, "master": "br0"}
//
// cvid, mtu and master are omitted when zero.
type stateEntry struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Uplink  string `json:"uplink"`
	STag    uint16 `json:"stag"`
	CVID    uint16 `json:"cvid,omitempty"`
	Mode    string `json:"mode"`
	MTU     int    `json:"mtu,omitempty"`
	Master  string `json:"master,omitempty"`
}

// tagKey is one binding: an S-Tag on an uplink.
type tagKey struct {
	uplink string
	stag   uint16
}

// table is the desired state: the vNICs by ID and the S-Tag bindings.
type table struct {
	byID  map[string]Spec
	byTag map[tagKey]string
}

func newTable() *table {
	return &table{byID: map[string]Spec{}, byTag: map[tagKey]string{}}
}

// check returns an *STagBoundError when s's S-Tag is bound to another vNIC.
func (t *table) check(s Spec) error {
	if holder, ok := t.byTag[tagKey{s.Uplink, s.STag}]; ok && holder != s.ID {
		return &STagBoundError{Uplink: s.Uplink, STag: s.STag, Want: s.ID, Holder: holder}
	}
	return nil
}

// put records s (validated), replacing the vNIC's earlier spec and its
// binding.
func (t *table) put(s Spec) error {
	if err := t.check(s); err != nil {
		return err
	}
	if old, ok := t.byID[s.ID]; ok {
		delete(t.byTag, tagKey{old.Uplink, old.STag})
	}
	t.byID[s.ID] = s
	t.byTag[tagKey{s.Uplink, s.STag}] = s.ID
	return nil
}

// remove forgets the vNIC id and its binding.
func (t *table) remove(id string) {
	if old, ok := t.byID[id]; ok {
		delete(t.byTag, tagKey{old.Uplink, old.STag})
		delete(t.byID, id)
	}
}

// stateFileName is the file name of vNIC id's state.
func stateFileName(id string) string { return strings.ReplaceAll(id, ":", "-") + ".json" }

// encodeEntry returns the state file of s.
func encodeEntry(s Spec) ([]byte, error) {
	b, err := json.Marshal(stateEntry{Version: stateVersion, ID: s.ID, Uplink: s.Uplink, STag: s.STag, CVID: s.CVID,
		Mode: ModeName(s.Mode), MTU: s.MTU, Master: s.Master})
	if err != nil {
		return nil, fmt.Errorf("encode partition state of %s: %w", s.ID, err)
	}
	return append(b, '\n'), nil
}

// decodeEntry parses one vNIC's state file strictly: known fields only,
// version 1, a valid spec with its ID in canonical form.
func decodeEntry(b []byte) (Spec, error) {
	if len(b) > maxStateFile {
		return Spec{}, fmt.Errorf("larger than %d bytes", maxStateFile)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e stateEntry
	if err := dec.Decode(&e); err != nil {
		return Spec{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Spec{}, errors.New("data after the JSON object")
	}
	if e.Version != stateVersion {
		return Spec{}, fmt.Errorf("version %d, want %d", e.Version, stateVersion)
	}
	mode, err := parseModeName(e.Mode)
	if err != nil {
		return Spec{}, err
	}
	in := Spec{ID: e.ID, Uplink: e.Uplink, STag: e.STag, CVID: e.CVID, Mode: mode, MTU: e.MTU, Master: e.Master}
	sp, err := in.Validate()
	if err != nil {
		return Spec{}, err
	}
	if sp.ID != e.ID {
		return Spec{}, fmt.Errorf("ID %q not canonical (%q)", e.ID, sp.ID)
	}
	return sp, nil
}

// loadState reads the desired state from dir/StateDir (created if
// missing). Every file must decode, carry the ID its name says, and bind
// an S-Tag no other file binds.
func loadState(dir string) (*table, error) {
	sd := filepath.Join(dir, StateDir)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		return nil, fmt.Errorf("partition state directory: %w", err)
	}
	ents, err := os.ReadDir(sd)
	if err != nil {
		return nil, fmt.Errorf("partition state directory: %w", err)
	}
	t := newTable()
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue // a temporary file of an interrupted write
		}
		b, err := readLimited(filepath.Join(sd, name))
		if err != nil {
			return nil, err
		}
		s, err := decodeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
		if want := stateFileName(s.ID); name != want {
			return nil, fmt.Errorf("state file %s: holds vNIC %s, whose file is %s", name, s.ID, want)
		}
		if err := t.put(s); err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
	}
	return t, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open state file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// saveEntry replaces s's state file in dir/StateDir, atomically.
func saveEntry(dir string, s Spec) error {
	b, err := encodeEntry(s)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, StateDir, stateFileName(s.ID))
	if err := atomicfile.WriteTemp(p, b, 0o600, ".tmp-*"); err != nil {
		return fmt.Errorf("save partition state: %w", err)
	}
	return nil
}

// removeEntry deletes vNIC id's state file from dir/StateDir, durably.
func removeEntry(dir, id string) error {
	sd := filepath.Join(dir, StateDir)
	if err := os.Remove(filepath.Join(sd, stateFileName(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove partition state: %w", err)
	}
	if err := atomicfile.SyncDir(sd); err != nil {
		return fmt.Errorf("remove partition state: %w", err)
	}
	return nil
}
