package sriov

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// The states of a VF in Status (the values agent/vnic/partition uses).
const (
	// StateOK: the VF reads back as desired.
	StateOK = "ok"
	// StateDrifted: the VF differs from its desired settings and the
	// drift policy is report-only (Drift says how).
	StateDrifted = "drifted"
	// StateError: the last Ensure or read-back failed (LastError says
	// why).
	StateError = "error"
)

// Status is one VF's state as the local API shows it: the outcome of the
// last Ensure, or of the last read-back of Watch, whichever came later.
type Status struct {
	// VF is the VF; VNIC the vNIC holding (or asking for) it.
	VF   VF     `json:"vf"`
	VNIC string `json:"vnic"`
	// State is StateOK, StateDrifted or StateError.
	State string `json:"state"`
	// Drift lists how the VF differs from its desired settings, one
	// "FIELD: want W, got G" per field; empty when they agree.
	Drift []string `json:"drift,omitempty"`
	// LastError is the last failure, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Checked is when the VF was last read back.
	Checked time.Time `json:"checked"`
}

// statusTable holds the Statuses, behind its own lock so that reading
// them never waits for a netlink operation of the manager.
type statusTable struct {
	mu sync.Mutex
	m  map[VF]Status
}

func (t *statusTable) set(s Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[VF]Status{}
	}
	s.Checked = time.Now()
	t.m[s.VF] = s
}

// forget drops vf's status when vnic (or nobody, for "") holds it.
func (t *statusTable) forget(vf VF, vnic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.m[vf]; ok && (vnic == "" || s.VNIC == vnic) {
		delete(t.m, vf)
	}
}

// Statuses returns the status of every VF the manager configured or
// failed to configure since New, sorted by PF and VF index. A VF leaves
// the list when it is released.
func (m *Manager) Statuses() []Status {
	t := &m.status
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Collect(maps.Values(t.m))
	for i := range out {
		out[i].Drift = slices.Clone(out[i].Drift)
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.VF.PF, b.VF.PF), cmp.Compare(a.VF.Index, b.VF.Index))
	})
	return out
}

// Ensure gives vf to vnic configured as want (see ensure) and records the
// outcome in the VF's Status. A VF held by another vNIC keeps its owner's
// status.
func (m *Manager) Ensure(ctx context.Context, vnic string, vf VF, want Settings) error {
	err := m.ensure(ctx, vnic, vf, want)
	switch {
	case err == nil:
		m.status.set(Status{VF: vf, VNIC: vnic, State: StateOK})
	case errors.Is(err, ErrInUse), vf.validate() != nil, ctx.Err() != nil:
	default:
		m.status.set(Status{VF: vf, VNIC: vnic, State: StateError, LastError: err.Error()})
	}
	return err
}

// Release restores vf's original settings and forgets it (see release);
// its Status goes with it.
func (m *Manager) Release(ctx context.Context, vnic string, vf VF) error {
	err := m.releaseVF(ctx, vnic, vf)
	if err == nil {
		m.status.forget(vf, vnic)
	} else if !errors.Is(err, ErrInUse) && vf.validate() == nil && ctx.Err() == nil {
		m.status.set(Status{VF: vf, VNIC: vnic, State: StateError, LastError: err.Error()})
	}
	return err
}

// noteActions records what a pass of Reconcile or Watch found.
func (m *Manager) noteActions(acts []Action) {
	for _, a := range acts {
		switch {
		case a.Err != nil:
			m.status.set(Status{VF: a.VF, VNIC: a.VNIC, State: StateError, LastError: a.Err.Error()})
		case a.Did == "released":
			m.status.forget(a.VF, a.VNIC)
		case strings.HasPrefix(a.Did, "drifted "):
			m.status.set(Status{VF: a.VF, VNIC: a.VNIC, State: StateDrifted, Drift: slices.Clone(a.Drift)})
		default:
			m.status.set(Status{VF: a.VF, VNIC: a.VNIC, State: StateOK})
		}
	}
}

// describeDrift renders how have differs from want in the fields fs, one
// "FIELD: want W, got G" each.
func describeDrift(fs []field, have, want Settings) []string {
	h, w := have.normalize(), want.normalize()
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		var ws, hs string
		switch f {
		case fieldMAC:
			ws, hs = w.MAC.String(), h.MAC.String()
		case fieldVLAN:
			vlan := func(s Settings) string {
				if s.VLAN == 0 && s.QoS == 0 {
					return "none"
				}
				return fmt.Sprintf("%d qos %d proto %#04x", s.VLAN, s.QoS, s.VLANProto)
			}
			ws, hs = vlan(w), vlan(h)
		case fieldRate:
			ws, hs = fmt.Sprintf("min %d max %d Mbit/s", w.MinTxRate, w.MaxTxRate), fmt.Sprintf("min %d max %d Mbit/s", h.MinTxRate, h.MaxTxRate)
		case fieldSpoofCheck:
			ws, hs = onOff(w.SpoofCheck), onOff(h.SpoofCheck)
		case fieldTrust:
			ws, hs = onOff(w.Trust), onOff(h.Trust)
		case fieldLinkState:
			ws, hs = w.LinkState.String(), h.LinkState.String()
		}
		out = append(out, fmt.Sprintf("%s: want %s, got %s", f, ws, hs))
	}
	return out
}
