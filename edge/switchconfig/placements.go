package switchconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/tether-net/tether/internal/yamlconf"
)

// Placement is one VM placement record: VM UUID runs on the host whose
// list holds it, in State, with MACs.
type Placement struct {
	// UUID is the VM's UUID (the VSIID of its associations).
	UUID string `yaml:"uuid"`
	// Name is the VM's name, for people.
	Name string `yaml:"name"`
	// State is one of PlacementStates.
	State string `yaml:"state"`
	// MACs are the MACs of the VM's vNICs on that host.
	MACs []string `yaml:"macs"`
}

// Placements maps a host name to the VMs placed on it.
type Placements map[string][]Placement

// PlacementStates are the states a placement record may have, as
// edge/verify names them: the VM runs, is paused, is the destination of a
// live migration that has not finished (migrating-in) or has finished
// (migrated-in), is its source (migrating-out), or is defined but not
// running (inactive).
var PlacementStates = []string{"running", "paused", "migrating-in", "migrated-in", "migrating-out", "inactive"}

// MaxPlacements bounds the records of one file.
const MaxPlacements = 1 << 16

// ParsePlacements decodes and validates a placements file (YAML, a map
// from host name to a list of records). Unknown keys, a bad UUID, MAC or
// state, and a VM listed twice on one host are errors naming the host and
// the record's index.
func ParsePlacements(r io.Reader) (Placements, error) {
	b, err := yamlconf.ReadAll(r)
	if err != nil {
		return nil, err
	}
	pl := Placements{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := yamlconf.Decode(b, &pl); err != nil {
			return nil, err
		}
	}
	if pl == nil {
		pl = Placements{}
	}
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	n := 0
	for _, h := range sortedKeys(pl) {
		if err := checkHost(h); err != nil {
			add("placements: %v", err)
			continue
		}
		seen := map[string]int{}
		for i, p := range pl[h] {
			n++
			key := fmt.Sprintf("%s[%d]", h, i)
			u := strings.ToLower(p.UUID)
			if !validUUID(u) {
				add("%s.uuid: %q is not a UUID", key, p.UUID)
			} else if j, dup := seen[u]; dup {
				add("%s.uuid: %s is also %s[%d]", key, u, h, j)
			} else {
				seen[u] = i
			}
			if !slices.Contains(PlacementStates, p.State) {
				add("%s.state: %q is not one of %s", key, p.State, strings.Join(PlacementStates, ", "))
			}
			for j, m := range p.MACs {
				if hw, err := net.ParseMAC(m); err != nil || len(hw) != 6 {
					add("%s.macs[%d]: %q is not a MAC address", key, j, m)
				}
			}
			pl[h][i].UUID = u
		}
	}
	if n > MaxPlacements {
		add("placements: %d records, more than %d", n, MaxPlacements)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pl, nil
}

// validUUID reports whether s is a canonical UUID (8-4-4-4-12 hex digits).
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
	}
	return true
}
