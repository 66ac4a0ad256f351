package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/wire"
)

// MigrationSource is the inventory source under which Migrations records
// an incoming VM: the libvirt source's ("libvirt"), so that the libvirt
// source owns the record as soon as libvirt reports the domain, with no
// handover gap.
const MigrationSource = "libvirt"

// DefaultStartedWait is MigrationsConfig.StartedWait when zero: under
// tether-hook's 2 s delivery budget, with room for the answer.
const DefaultStartedWait = 1500 * time.Millisecond

// MigrationsConfig configures Migrations.
type MigrationsConfig struct {
	// Store is the inventory; required.
	Store *inventory.Store
	// Uplinks are the uplinks whose switch must have answered the
	// ASSOCIATE before the destination's started hook returns.
	Uplinks []*Uplink
	// PostMove is config migration.mode post-move: incoming VMs are still
	// recorded from the migrate hook, but not pre-associated (the uplinks
	// run with Config.PostMove) and the started hook does not wait.
	PostMove bool
	// StartedWait bounds the started hook's wait (DefaultStartedWait).
	StartedWait time.Duration
	// Logger receives the logs (default slog.Default()), with
	// component=agent/uplink/migrate.
	Logger *slog.Logger
}

// Migrations is the destination side of a live migration, driven by
// libvirt's qemu hooks (DESIGN.md "Migration"). libvirt runs the hooks of
// a migration in this order, each synchronously, the migration waiting for
// the hook to exit (https://libvirt.org/hooks.html, "QEMU guest
// migration", and libvirt's qemu_migration.c):
//
//  1. destination: migrate begin, with the incoming domain XML on stdin,
//     before anything else of the migration (the domain does not exist in
//     the destination's libvirt yet);
//  2. destination: prepare begin and start begin, before QEMU is spawned
//     (with -incoming: the guest does not run);
//  3. destination: started begin, once that QEMU is up, still paused with
//     reason "migration" (qemuMigrationDstPrepareAny calls
//     qemuProcessFinishStartup without starting the CPUs): in the Prepare
//     phase, before the memory is transferred;
//  4. source: stopped end and release end, once the guest runs on the
//     destination (Confirm phase).
//
// On (1) Hook records the VM (paused) and its vNICs from the XML in the
// inventory at once, so the uplinks PRE-ASSOCIATE them without waiting for
// a libvirt event (the switch verifies, fetches the profile and installs
// the rule held back); on (3) Hook marks the VM running, which makes the
// uplinks ASSOCIATE it (the switch activates the held rule), and returns
// only when every uplink's switch has answered, or after StartedWait: no
// guest CPU runs on the destination before its rule is live. On (4) the
// libvirt source (the stopped hook marks the domain dirty) finds the
// domain gone or shut off with reason "migrated", its vNICs go, and the
// uplink DE-ASSOCIATEs them, which ends the source port's rule.
//
// With a real libvirtd, (3) runs before the memory transfer, while the
// guest still runs on the source: the destination's ASSOCIATE makes its
// rule live, but the switch, seeing a migration its VM manager confirms in
// progress, keeps the source port's rule too (edge/switchd's migration
// overlap) until the source's DE-ASSOCIATE in (4), its keep-alive timeout,
// the VM manager no longer reporting the VM on the source, or the
// switch's migration_overlap bound. No frame of the guest is dropped on
// either side; the lab (tests/lab/demo.sh, libvirt's test driver cannot
// migrate) plays that order and counts them.
//
// Between (1) and (3) the libvirt source must not re-read the domain (it
// is not in libvirt yet, and the re-read would drop the record): Hook
// reports those events as consumed, and the daemon does not forward them.
type Migrations struct {
	cfg MigrationsConfig
	log *slog.Logger

	mu       sync.Mutex
	incoming map[inventory.UUID]time.Time // migrate hook seen, started not yet
}

// NewMigrations checks cfg and returns the migration handler.
func NewMigrations(cfg MigrationsConfig) (*Migrations, error) {
	if cfg.Store == nil {
		return nil, errors.New("uplink: MigrationsConfig.Store is required")
	}
	if cfg.StartedWait <= 0 {
		cfg.StartedWait = DefaultStartedWait
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Migrations{cfg: cfg, log: log.With("component", "agent/uplink/migrate"), incoming: map[inventory.UUID]time.Time{}}, nil
}

// MigrationHookError is a hook event Migrations cannot use (bad arguments
// or XML): the event's fault, HTTP 400.
type MigrationHookError struct{ Err error }

// Error describes the problem.
func (e *MigrationHookError) Error() string { return "migration: bad hook event: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *MigrationHookError) Unwrap() error { return e.Err }

// HTTPStatus is 400 Bad Request.
func (e *MigrationHookError) HTTPStatus() int { return http.StatusBadRequest }

// incomingStale is how long an incoming migration without its started
// hook stays tracked (a migration that failed on the way).
const incomingStale = 10 * time.Minute

// Hook takes one qemu hook event. consumed reports that the event belongs
// to an incoming migration in progress and must not reach the libvirt
// source; other events are for the libvirt source as usual. Network hooks
// and events without XML are not Migrations' business.
func (m *Migrations) Hook(ctx context.Context, ev api.HookEvent) (consumed bool, err error) {
	if ev.Driver != string(libvirthooks.DriverQEMU) || ev.XML == "" {
		return false, nil
	}
	switch libvirthooks.Operation(ev.Operation) {
	case libvirthooks.OpMigrate, libvirthooks.OpPrepare, libvirthooks.OpStart, libvirthooks.OpStarted, libvirthooks.OpStopped:
	default:
		return false, nil
	}
	d, err := libvirthooks.ParseDomain([]byte(ev.XML))
	if err != nil {
		return false, &MigrationHookError{Err: fmt.Errorf("qemu %s %s: %w", ev.Object, ev.Operation, err)}
	}
	id, err := inventory.ParseUUID(d.UUID)
	if err != nil {
		return false, &MigrationHookError{Err: fmt.Errorf("qemu %s %s: domain uuid: %w", ev.Object, ev.Operation, err)}
	}
	m.mu.Lock()
	for vm, at := range m.incoming {
		if time.Since(at) > incomingStale {
			delete(m.incoming, vm)
		}
	}
	_, tracked := m.incoming[id]
	m.mu.Unlock()

	switch libvirthooks.Operation(ev.Operation) {
	case libvirthooks.OpMigrate:
		if err := m.recordIncoming(ctx, id, d); err != nil {
			return false, err
		}
		m.mu.Lock()
		m.incoming[id] = time.Now()
		m.mu.Unlock()
		return true, nil
	case libvirthooks.OpPrepare, libvirthooks.OpStart:
		return tracked, nil
	case libvirthooks.OpStarted:
		if !tracked {
			return false, nil
		}
		m.mu.Lock()
		delete(m.incoming, id)
		m.mu.Unlock()
		return true, m.started(ctx, id, d.Name, ev.Spooled)
	case libvirthooks.OpStopped:
		// A migration that failed on the destination: the libvirt
		// source takes the VM from here.
		m.mu.Lock()
		delete(m.incoming, id)
		m.mu.Unlock()
	}
	return false, nil
}

// recordIncoming writes the incoming VM (paused) and its vNICs, unless
// the inventory already has the VM from another source.
func (m *Migrations) recordIncoming(ctx context.Context, id inventory.UUID, d libvirthooks.Domain) error {
	st := m.cfg.Store
	if cur, err := st.VM(id); err == nil && cur.Source != MigrationSource {
		return &MigrationHookError{Err: fmt.Errorf("incoming VM %s belongs to source %q", id, cur.Source)}
	}
	dom, skipped, err := IncomingDomain(d)
	if err != nil {
		return &MigrationHookError{Err: err}
	}
	for _, e := range skipped {
		m.log.Warn("incoming vNIC not recorded", "vm", id.String(), "err", e)
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	// Diff against this VM only: the other VMs of the source stay as they
	// are.
	var cur inventory.Snapshot
	for _, vm := range snap.VMs {
		if vm.UUID == id {
			cur.VMs = append(cur.VMs, vm)
		}
	}
	for _, v := range snap.VIFs {
		if v.VM == id || containsMAC(dom.VIFs, v.MAC) {
			cur.VIFs = append(cur.VIFs, v)
		}
	}
	ch, err := inventory.Diff(MigrationSource, []inventory.Domain{dom}, &cur)
	if err != nil {
		return &MigrationHookError{Err: fmt.Errorf("incoming VM %s: %w", id, err)}
	}
	if len(ch.Ops) > 0 {
		if _, err := st.Apply(ctx, ch); err != nil {
			return fmt.Errorf("migration: record incoming VM %s: %w", id, err)
		}
	}
	m.log.Info("incoming migration: vNICs recorded", "vm", id.String(), "name", d.Name, "vnics", len(dom.VIFs),
		"pre_associate", !m.cfg.PostMove)
	return nil
}

// containsMAC reports whether vifs has mac.
func containsMAC(vifs []inventory.VIF, mac inventory.MAC) bool {
	for i := range vifs {
		if vifs[i].MAC == mac {
			return true
		}
	}
	return false
}

// started marks the incoming VM running and, pre-associating, waits until
// every uplink's switch has answered its ASSOCIATE (at most StartedWait;
// not for a spooled event, whose moment has passed).
func (m *Migrations) started(ctx context.Context, id inventory.UUID, name string, spooled bool) error {
	st := m.cfg.Store
	vm, err := st.VM(id)
	if err != nil {
		return fmt.Errorf("migration: started: %w", err)
	}
	t0 := time.Now()
	if vm.State != inventory.VMStateRunning {
		vm.State = inventory.VMStateRunning
		if _, err := st.Apply(ctx, inventory.Change{}.Add(inventory.UpsertVM(vm))); err != nil {
			return fmt.Errorf("migration: started: %w", err)
		}
	}
	if m.cfg.PostMove || spooled || len(m.cfg.Uplinks) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, m.cfg.StartedWait)
	defer cancel()
	for _, u := range m.cfg.Uplinks {
		if err := u.WaitAssociated(wctx, id); err != nil {
			m.log.Warn("started hook answered before the switch confirmed the association", "vm", id.String(), "name", name,
				"uplink", u.cfg.Interface, "waited", time.Since(t0).Round(time.Microsecond), "err", err)
			return nil
		}
	}
	m.log.Info("incoming migration: association live before the VM runs", "vm", id.String(), "name", name,
		"waited", time.Since(t0).Round(time.Microsecond))
	return nil
}

// IncomingDomain maps the domain XML of an incoming migration to the
// inventory: the VM paused (it does not run before the started hook) and
// one VIF per interface with a MAC. The XML of the migrate hook is not
// live XML (no id, no host devices yet), so every interface is listed; a
// type='network' interface counts as a tap (a bridge-backed network), the
// common case: the libvirt source corrects it once libvirt has the domain.
// Interfaces that cannot be mapped are in skipped.
func IncomingDomain(d libvirthooks.Domain) (dom inventory.Domain, skipped []error, err error) {
	id, err := inventory.ParseUUID(d.UUID)
	if err != nil {
		return dom, nil, fmt.Errorf("domain %q: uuid: %w", d.Name, err)
	}
	dom.VM = inventory.VM{UUID: id, Name: d.Name, State: inventory.VMStatePaused, Source: MigrationSource}
	for _, v := range d.VIFs {
		if v.MACMissing || v.MAC == "" {
			skipped = append(skipped, fmt.Errorf("interface %d: no MAC address", v.Position))
			continue
		}
		mac, err := inventory.ParseMAC(v.MAC)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("interface %d: mac %q: %w", v.Position, v.MAC, err))
			continue
		}
		kind, ok := incomingKinds[v.Kind]
		if !ok {
			skipped = append(skipped, fmt.Errorf("interface %d (%s): kind %q has no inventory kind", v.Position, mac, v.Kind))
			continue
		}
		iv := inventory.VIF{MAC: mac, VM: id, HostDev: v.HostDev, Kind: kind, STag: v.STag, CVID: v.CVID, PortGroup: v.PortGroup}
		if vp := v.VirtualPort; vp != nil && vp.Type == "802.1Qbg" {
			iv.VirtualPort.Type = inventory.VirtualPort8021Qbg
			if vp.TypeID != nil {
				iv.VirtualPort.TypeID = *vp.TypeID
			}
			if vp.TypeIDVersion != nil {
				iv.VirtualPort.TypeIDVersion = *vp.TypeIDVersion
			}
			if vp.ManagerID != nil {
				iv.VirtualPort.ManagerID = *vp.ManagerID
			}
		}
		if err := iv.Validate(); err != nil {
			skipped = append(skipped, fmt.Errorf("interface %d: %w", v.Position, err))
			continue
		}
		dom.VIFs = append(dom.VIFs, iv)
	}
	return dom, skipped, nil
}

// incomingKinds maps libvirthooks' kinds; an interface of unknown kind
// (type='network' without a bridge in the XML) counts as a tap.
var incomingKinds = map[libvirthooks.Kind]inventory.Kind{
	libvirthooks.KindUnknown:   inventory.KindTap,
	libvirthooks.KindTap:       inventory.KindTap,
	libvirthooks.KindMacvtap:   inventory.KindMacvtap,
	libvirthooks.KindSRIOVVF:   inventory.KindVF,
	libvirthooks.KindPartition: inventory.KindPartition,
	libvirthooks.KindVeth:      inventory.KindVeth,
}

// waitPoll is how often WaitAssociated looks at the station.
const waitPoll = 500 * time.Microsecond

// WaitAssociated waits until the switch has granted VM vm's ASSOCIATE on
// this uplink (the station holds the VSI associated, nothing pending), or
// ctx ends. It returns at once when no usable switch is on the link
// (nothing to wait for) and an error when ctx ends first.
func (u *Uplink) WaitAssociated(ctx context.Context, vm inventory.UUID) error {
	key := vdp.Key{Format: wire.VSIIDUUID, ID: vm}
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		s := u.cur.Load()
		if s != nil {
			if p := s.peer.Load(); p == nil || !p.usable {
				return nil
			}
			if info, ok := s.st.Lookup(key); ok && info.State == vdp.StateAssociated && info.Pending == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("uplink %s: VM %s not associated yet: %w", u.cfg.Interface, vm, ctx.Err())
		case <-t.C:
		}
	}
}
