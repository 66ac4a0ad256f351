package switchd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
)

// PlacementVMManager is a verify.VMManager that answers from a file of VM
// placement records (switchconfig.Placements, config key placements:) for
// the hosts the file lists, and passes every other question to Inner (the
// libvirt VM manager). It is stack mode's record of where VMs run, and the
// lab's way to show what libvirt's test driver cannot: a VM migrating into
// one host and out of another. The file is read again whenever its size,
// modification time or content hash changes, checked on each question (a
// stat; no polling); a file that does not parse keeps the records in force
// and logs why.
type PlacementVMManager struct {
	path  string
	inner verify.VMManager
	log   *slog.Logger

	mu      sync.Mutex
	size    int64
	mtime   time.Time
	sum     [sha256.Size]byte
	pl      switchconfig.Placements
	lastErr string
}

// NewPlacementVMManager returns the manager of the file at path over
// inner. The file is read at once; an error reading or parsing it is
// returned (switchd refuses to start on a broken file; later breakage only
// keeps the old records).
func NewPlacementVMManager(path string, inner verify.VMManager, log *slog.Logger) (*PlacementVMManager, error) {
	if log == nil {
		log = slog.Default()
	}
	m := &PlacementVMManager{path: path, inner: inner, log: log.With("component", "edge/switchd", "placements", path),
		pl: switchconfig.Placements{}}
	if err := m.check(true); err != nil {
		return nil, err
	}
	return m, nil
}

// check re-reads the file when it changed; mu is held. strict returns
// errors (first read); otherwise they are logged once and the records in
// force stay.
func (m *PlacementVMManager) check(strict bool) error {
	fi, err := os.Stat(m.path)
	if err == nil && !strict && fi.Size() == m.size && fi.ModTime().Equal(m.mtime) && m.lastErr == "" {
		return nil
	}
	var b []byte
	if err == nil {
		b, err = os.ReadFile(m.path)
	}
	if err == nil {
		sum := sha256.Sum256(b)
		if sum == m.sum && !strict && m.lastErr == "" {
			m.size, m.mtime = fi.Size(), fi.ModTime()
			return nil
		}
		var pl switchconfig.Placements
		if pl, err = switchconfig.ParsePlacements(bytes.NewReader(b)); err == nil {
			m.size, m.mtime, m.sum, m.pl, m.lastErr = fi.Size(), fi.ModTime(), sum, pl, ""
			n := 0
			for _, ps := range pl {
				n += len(ps)
			}
			m.log.Info("placement records read", "hosts", len(pl), "records", n)
			return nil
		}
	}
	err = fmt.Errorf("switchd: placements %s: %w", m.path, err)
	if strict {
		return err
	}
	if msg := err.Error(); msg != m.lastErr {
		m.lastErr = msg
		m.log.Error("placement records not reloaded (the records in force stay)", "err", err)
	}
	return nil
}

// Confirm implements verify.VMManager.
func (m *PlacementVMManager) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	m.mu.Lock()
	_ = m.check(false)
	ps, listed := m.pl[host]
	var rec *switchconfig.Placement
	if listed {
		id := vm.String()
		for i := range ps {
			if ps[i].UUID == id {
				rec = &ps[i]
				break
			}
		}
	}
	var macs []verify.MAC
	if rec != nil {
		for _, s := range rec.MACs {
			if x, err := verify.ParseMAC(s); err == nil {
				macs = append(macs, x)
			}
		}
	}
	m.mu.Unlock()
	if !listed {
		if m.inner == nil {
			return verify.Confirmation{State: verify.VMAbsent, Reason: fmt.Sprintf("host %q has no placement records and no VM manager", host)}, nil
		}
		return m.inner.Confirm(ctx, host, vm, mac)
	}
	if rec == nil {
		return verify.Confirmation{State: verify.VMAbsent, Reason: "no placement record of the VM on " + host}, nil
	}
	st := placementState(rec.State)
	switch {
	case !st.Present():
		return verify.Confirmation{State: st, Reason: "the placement record says " + rec.State}, nil
	case !slices.Contains(macs, mac):
		return verify.Confirmation{State: st, Reason: fmt.Sprintf("the placement record (%s) has no MAC %s", rec.State, mac)}, nil
	}
	return verify.Confirmation{Confirmed: true, State: st}, nil
}

// Forget implements verify.Forgetter for the inner manager (the records
// themselves are never stale: the file is checked on every question).
func (m *PlacementVMManager) Forget(host string, vm verify.UUID) {
	if f, ok := m.inner.(verify.Forgetter); ok {
		f.Forget(host, vm)
	}
}

// Refresh passes the inner manager's warm-up through (hosts the file lists
// need none).
func (m *PlacementVMManager) Refresh(ctx context.Context, host string) error {
	m.mu.Lock()
	_, listed := m.pl[host]
	m.mu.Unlock()
	if r, ok := m.inner.(refresher); ok && !listed {
		return r.Refresh(ctx, host)
	}
	return nil
}

// placementState maps a validated placement state to the verifier's.
func placementState(s string) verify.VMState {
	switch s {
	case "running":
		return verify.VMRunning
	case "paused":
		return verify.VMPaused
	case "migrating-in":
		return verify.VMMigratingIn
	case "migrated-in":
		return verify.VMMigratedIn
	case "migrating-out":
		return verify.VMMigratingOut
	case "inactive":
		return verify.VMInactive
	}
	return verify.VMAbsent
}
