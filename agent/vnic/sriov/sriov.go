// Package sriov gives a vNIC an SR-IOV virtual function: it configures the
// VF through its PF's netlink IFLA_VF_* attributes (MAC, port VLAN with
// protocol 802.1Q or 802.1ad, QoS, spoof checking, trust, link state,
// min/max tx rate) and gives it back exactly as it found it.
//
// Before the first change to a VF, its original settings are read back
// from the kernel and saved durably (one JSON record per PF and VF in the
// state directory, written atomically with fsync). Release restores them
// and removes the record. The record is also the VF's owner: a VF held by
// one vNIC is never given to another (InUseError).
//
// Every step is idempotent and converges from whatever the kernel shows:
// Ensure and Release compare the kernel's read-back with the goal and write
// only what differs, so a repeat writes nothing (Writes counts the netlink
// requests), and a crash at any point (after the save, during the
// configuration, during the restore) is repaired by the next Ensure,
// Release or Reconcile. Reconcile, run at start, reads every VF with a
// record back from the kernel and converges it; Watch then follows the
// kernel's link notifications (and resyncs periodically) to repair drift as
// it happens, or only report it.
//
// An untagged VF's VLAN protocol is not compared: a driver may report 0
// for a VF never given a VLAN (netdevsim does), and restoring "no VLAN"
// writes 802.1Q. Everything else reads back exactly as it was.
package sriov

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// InUseError is returned when a VF is held by another vNIC.
type InUseError struct {
	VF    VF     // the VF asked for
	Owner string // the vNIC holding VF
	Asker string // the vNIC that asked for it
}

// Error describes the conflict.
func (e *InUseError) Error() string {
	return fmt.Sprintf("sriov: %s is held by vNIC %q, not %q", e.VF, e.Owner, e.Asker)
}

// Is makes errors.Is(err, ErrInUse) true for an InUseError.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// ErrInUse matches every InUseError.
var ErrInUse = errors.New("sriov: VF held by another vNIC")

// ErrNoVF is wrapped when the PF does not exist or has no such VF.
var ErrNoVF = errors.New("sriov: no such VF")

// ErrReadBack is wrapped when the kernel does not read back what was set.
var ErrReadBack = errors.New("sriov: VF does not read back as set")

// ErrLocked is returned by New when another Manager (in this or another
// process) has the state directory.
var ErrLocked = errors.New("sriov: state directory in use by another manager")

// Options configure a Manager.
type Options struct {
	// StateDir holds one record per configured VF; it is created (0700)
	// when missing. Required.
	StateDir string
	// NetNS is the network namespace of the PFs; nil means the caller's.
	// The Manager's netlink handle and Watch's link subscription are
	// opened there; the Manager keeps a duplicate of the handle until
	// Close, so the caller may close its own. (The same setting as
	// agent/vnic/partition's Config.NetNS.)
	NetNS *netns.NsHandle
	// Logger receives what the manager does; nil discards.
	Logger *slog.Logger
}

// Manager configures and restores VFs. It is safe for concurrent use;
// operations are serialised.
type Manager struct {
	st     store
	lock   *os.File // flock(LOCK_EX) on StateDir/.lock while open
	h      *netlink.Handle
	ns     *netns.NsHandle // the PFs' namespace (a duplicate), nil: the caller's
	log    *slog.Logger
	mu     sync.Mutex
	writes atomic.Uint64
	// status is what Statuses reports (status.go).
	status statusTable
	// afterSave, when set, runs after a record is saved and before the
	// kernel is touched (tests: crash injection).
	afterSave func(VF) error
}

// New returns a Manager keeping its records in o.StateDir, which it holds
// exclusively until Close (ErrLocked otherwise): the records are the VFs'
// owners, and one writer keeps them consistent. It does not touch the
// kernel; call Reconcile at start.
func New(o Options) (*Manager, error) {
	if o.StateDir == "" {
		return nil, errors.New("sriov: no state directory")
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("sriov: create state directory: %w", err)
	}
	lp := filepath.Join(o.StateDir, ".lock")
	lock, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sriov: open %s: %w", lp, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, o.StateDir)
		}
		return nil, fmt.Errorf("sriov: lock %s: %w", lp, err)
	}
	m := &Manager{st: store{dir: o.StateDir}, lock: lock, log: o.Logger}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "vnic/sriov")
	if o.NetNS != nil {
		fd, err := unix.FcntlInt(uintptr(*o.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("sriov: duplicate the network namespace handle: %w", err)
		}
		ns := netns.NsHandle(fd)
		m.ns = &ns
		m.h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			_ = ns.Close()
			_ = lock.Close()
			return nil, fmt.Errorf("sriov: open netlink in the PFs' namespace: %w", err)
		}
		return m, nil
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("sriov: open netlink: %w", err)
	}
	m.h = h
	return m, nil
}

// Close releases the state directory, the netlink handle and the
// namespace handle; call it after Watch has returned. A second Close does
// nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lock == nil {
		return nil
	}
	m.h.Close()
	if m.ns != nil {
		_ = m.ns.Close()
	}
	err := m.lock.Close()
	m.lock = nil
	if err != nil {
		return fmt.Errorf("sriov: unlock state directory: %w", err)
	}
	return nil
}

// Writes returns how many netlink set requests the manager has sent.
func (m *Manager) Writes() uint64 { return m.writes.Load() }

// Records returns the saved records (sorted by PF and VF) and the errors
// of files that do not decode.
func (m *Manager) Records() ([]Record, []error) {
	rs, errs := m.st.all()
	out := make([]Record, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out, errs
}

// Observe reads vf's settings back from the kernel.
func (m *Manager) Observe(ctx context.Context, vf VF) (Settings, error) {
	if err := vf.validate(); err != nil {
		return Settings{}, err
	}
	if err := ctx.Err(); err != nil {
		return Settings{}, err
	}
	_, s, err := m.read(vf)
	return s, err
}

// ensure gives vf to vnic configured as want. The first time, the VF's
// settings are saved before anything changes; after that only the fields
// that differ from the kernel's read-back are written, so a repeat writes
// nothing. A VF held by another vNIC is refused with an *InUseError.
func (m *Manager) ensure(ctx context.Context, vnic string, vf VF, want Settings) error {
	if vnic == "" {
		return errors.New("sriov: ensure: empty vNIC name")
	}
	if err := vf.validate(); err != nil {
		return fmt.Errorf("ensure %s: %w", vf, err)
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("ensure %s: %w", vf, err)
	}
	want.MAC = append(net.HardwareAddr(nil), want.MAC...)
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, err := m.st.load(vf)
	if err != nil {
		return fmt.Errorf("ensure %s: %w", vf, err)
	}
	if rec != nil && rec.VNIC != vnic {
		return &InUseError{VF: vf, Owner: rec.VNIC, Asker: vnic}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	link, cur, err := m.read(vf)
	if err != nil {
		return fmt.Errorf("ensure %s: %w", vf, err)
	}
	switch {
	case rec == nil:
		rec = &Record{VF: vf, VNIC: vnic, Phase: PhaseConfiguring, Original: cur, Desired: want}
		if err := m.st.save(rec); err != nil {
			return err
		}
		m.log.Info("saved original VF settings", "vf", vf.String(), "vnic", vnic, "original", cur.String())
		if m.afterSave != nil {
			if err := m.afterSave(vf); err != nil {
				return err
			}
		}
	case !rec.Desired.Equal(want) || rec.Phase == PhaseReleasing:
		rec.Desired, rec.Phase = want, PhaseConfiguring
		if err := m.st.save(rec); err != nil {
			return err
		}
	}
	if err := m.converge(ctx, link, vf, cur, want); err != nil {
		return fmt.Errorf("ensure %s for %s: %w", vf, vnic, err)
	}
	if rec.Phase != PhaseConfigured {
		rec.Phase = PhaseConfigured
		if err := m.st.save(rec); err != nil {
			return err
		}
		m.log.Info("configured VF", "vf", vf.String(), "vnic", vnic, "settings", want.String())
	}
	return nil
}

// releaseVF restores vf's original settings and forgets it. A VF without
// a record is not tether's: releaseVF does nothing. A VF held by another
// vNIC is refused with an *InUseError.
func (m *Manager) releaseVF(ctx context.Context, vnic string, vf VF) error {
	if err := vf.validate(); err != nil {
		return fmt.Errorf("release %s: %w", vf, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, err := m.st.load(vf)
	if err != nil {
		return fmt.Errorf("release %s: %w", vf, err)
	}
	if rec == nil {
		return nil
	}
	if rec.VNIC != vnic {
		return &InUseError{VF: vf, Owner: rec.VNIC, Asker: vnic}
	}
	return m.release(ctx, rec)
}

func (m *Manager) release(ctx context.Context, rec *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	link, cur, err := m.read(rec.VF)
	if err != nil {
		return fmt.Errorf("release %s: %w", rec.VF, err)
	}
	if rec.Phase != PhaseReleasing {
		rec.Phase = PhaseReleasing
		if err := m.st.save(rec); err != nil {
			return err
		}
	}
	if err := m.converge(ctx, link, rec.VF, cur, rec.Original); err != nil {
		return fmt.Errorf("restore %s for %s: %w", rec.VF, rec.VNIC, err)
	}
	if err := m.st.remove(rec.VF); err != nil {
		return err
	}
	m.log.Info("restored VF", "vf", rec.VF.String(), "vnic", rec.VNIC, "settings", rec.Original.String())
	return nil
}

// Action is what Reconcile did to one VF.
type Action struct {
	VF   VF     // the VF looked at
	VNIC string // the vNIC holding it
	// Did is "in sync", "repaired FIELDS" ("drifted FIELDS" when only
	// reporting), "configured" (an Ensure had stopped before the VF read
	// back as desired) or "released" (a Release had stopped before the
	// record was removed). FIELDS are mac, vlan, rate, spoofchk, trust,
	// link state, comma-separated.
	Did string
	// Drift says how the VF differed from its desired settings, one
	// "FIELD: want W, got G" per field, when Did is "repaired FIELDS" or
	// "drifted FIELDS".
	Drift []string
	// Err is why the VF could not be read or converged (Did may be empty).
	Err error
}

// Reconcile reads back every VF with a record and converges it: records
// of an unfinished Release are released, the others are configured as
// desired (drift an operator caused is repaired). Records that do not
// decode are returned as errors and left alone.
func (m *Manager) Reconcile(ctx context.Context) ([]Action, []error) {
	acts, errs := m.reconcile(ctx, func(*Record) bool { return true }, false)
	m.noteActions(acts)
	return acts, errs
}

// reconcile converges the records keep selects; reportOnly reports drift
// without repairing it (and leaves unfinished Ensures and Releases alone).
func (m *Manager) reconcile(ctx context.Context, keep func(*Record) bool, reportOnly bool) ([]Action, []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, errs := m.st.all()
	var acts []Action
	for _, rec := range rs {
		if !keep(rec) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return acts, append(errs, err)
		}
		a := Action{VF: rec.VF, VNIC: rec.VNIC}
		if rec.Phase == PhaseReleasing {
			if !reportOnly {
				a.Did, a.Err = "released", m.release(ctx, rec)
				acts = append(acts, a)
			}
			continue
		}
		link, cur, err := m.read(rec.VF)
		if err != nil {
			a.Err = fmt.Errorf("reconcile %s: %w", rec.VF, err)
			acts = append(acts, a)
			continue
		}
		d := cur.diff(rec.Desired)
		switch {
		case rec.Phase == PhaseConfiguring:
			if reportOnly {
				continue
			}
			a.Did = "configured"
		case len(d) == 0:
			a.Did = "in sync"
		default:
			names := make([]string, len(d))
			for i, f := range d {
				names[i] = f.String()
			}
			verb := "repaired "
			if reportOnly {
				verb = "drifted "
			}
			a.Did = verb + strings.Join(names, ",")
			a.Drift = describeDrift(d, cur, rec.Desired)
			m.log.Warn("VF drifted", "vf", rec.VF.String(), "vnic", rec.VNIC, "fields", strings.Join(names, ","),
				"have", cur.String(), "want", rec.Desired.String(), "repair", !reportOnly)
		}
		if reportOnly {
			acts = append(acts, a)
			continue
		}
		if err := m.converge(ctx, link, rec.VF, cur, rec.Desired); err != nil {
			a.Err = fmt.Errorf("reconcile %s: %w", rec.VF, err)
		} else if rec.Phase != PhaseConfigured {
			rec.Phase = PhaseConfigured
			a.Err = m.st.save(rec)
		}
		acts = append(acts, a)
	}
	return acts, errs
}

// converge writes the groups of settings in which cur differs from want,
// then checks the read-back.
func (m *Manager) converge(ctx context.Context, link netlink.Link, vf VF, cur, want Settings) error {
	d := cur.diff(want)
	if len(d) == 0 {
		return nil
	}
	for _, f := range d {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.set(link, vf.Index, f, want); err != nil {
			return err
		}
	}
	_, got, err := m.read(vf)
	if err != nil {
		return err
	}
	if bad := got.diff(want); len(bad) != 0 {
		return fmt.Errorf("%w: %v: have %s, want %s", ErrReadBack, bad, got, want)
	}
	return nil
}

// set sends the one netlink request that sets group f of s on the VF.
func (m *Manager) set(link netlink.Link, idx int, f field, s Settings) error {
	s = s.normalize()
	m.writes.Add(1)
	var err error
	switch f {
	case fieldMAC:
		err = m.h.LinkSetVfHardwareAddr(link, idx, s.MAC)
	case fieldVLAN:
		err = m.h.LinkSetVfVlanQosProto(link, idx, int(s.VLAN), int(s.QoS), int(s.VLANProto))
	case fieldRate:
		err = m.h.LinkSetVfRate(link, idx, int(s.MinTxRate), int(s.MaxTxRate))
	case fieldSpoofCheck:
		err = m.h.LinkSetVfSpoofchk(link, idx, s.SpoofCheck)
	case fieldTrust:
		err = m.h.LinkSetVfTrust(link, idx, s.Trust)
	case fieldLinkState:
		err = m.h.LinkSetVfState(link, idx, uint32(s.LinkState))
	}
	if err != nil {
		return fmt.Errorf("set %s of %s vf %d: %w", f, link.Attrs().Name, idx, err)
	}
	return nil
}

// read returns the PF's link and the VF's settings as the kernel reports
// them (RTM_GETLINK with IFLA_EXT_MASK RTEXT_FILTER_VF).
func (m *Manager) read(vf VF) (netlink.Link, Settings, error) {
	link, err := m.h.LinkByName(vf.PF)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, Settings{}, fmt.Errorf("%w: PF %s: %w", ErrNoVF, vf.PF, err)
		}
		return nil, Settings{}, fmt.Errorf("read PF %s: %w", vf.PF, err)
	}
	for _, v := range link.Attrs().Vfs {
		if v.ID == vf.Index {
			return link, fromKernel(v), nil
		}
	}
	return nil, Settings{}, fmt.Errorf("%w: %s has %d VFs", ErrNoVF, vf, len(link.Attrs().Vfs))
}

// fromKernel converts netlink's view of a VF. A driver that does not
// report trust sends -1: read as off.
func fromKernel(v netlink.VfInfo) Settings {
	s := Settings{
		MAC:        append(net.HardwareAddr(nil), v.Mac...),
		VLAN:       uint16(v.Vlan),
		QoS:        uint8(v.Qos),
		VLANProto:  uint16(v.VlanProto),
		SpoofCheck: v.Spoofchk,
		Trust:      v.Trust == 1,
		LinkState:  LinkState(v.LinkState),
		MinTxRate:  v.MinTxRate,
		MaxTxRate:  v.MaxTxRate,
	}
	if len(s.MAC) != 6 {
		s.MAC = make(net.HardwareAddr, 6)
	}
	return s.normalize()
}
