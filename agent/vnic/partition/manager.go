package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/vnic"
)

// AliasPrefix starts the ifalias that marks a device as tether's partition
// device: "tether:<vNIC MAC>".
const AliasPrefix = "tether:"

// DefaultResync is how often Run re-reads every vNIC when no event asks.
const DefaultResync = 5 * time.Minute

// Config configures a Manager.
type Config struct {
	// StateDir is the state directory; it must exist. The desired state
	// lives in its subdirectory StateDir ("partitions", made if missing).
	StateDir string
	// NetNS is the network namespace of the uplinks and devices; nil means
	// the caller's namespace at Open. The Manager does not close it.
	NetNS *netns.NsHandle
	// Drift is what Run does about drift: repair (default) or report only.
	Drift vnic.DriftPolicy
	// Resync is the period of Run's full re-read; 0 means DefaultResync.
	Resync time.Duration
	// Log receives the manager's records (component=agent/vnic/partition);
	// nil means slog.Default().
	Log *slog.Logger
}

// Devices names a vNIC's devices.
type Devices struct {
	// STag is the 802.1ad S-Tag device on the uplink.
	STag string `json:"stag"`
	// CVLAN is the 802.1Q device on top of it; empty without a C-VID.
	CVLAN string `json:"cvlan,omitempty"`
}

// Top returns the device the soft switch attaches: the C-VLAN device if
// any, else the S-Tag device.
func (d Devices) Top() string {
	if d.CVLAN != "" {
		return d.CVLAN
	}
	return d.STag
}

// The states of a vNIC in Status.
const (
	// StateOK: the devices are as desired.
	StateOK = "ok"
	// StatePending: desired, not yet read back (after Open or an event).
	StatePending = "pending"
	// StateDrifted: the devices differ from the desired state and the
	// policy is report-only.
	StateDrifted = "drifted"
	// StateError: the last attempt to converge failed (LastError says why).
	StateError = "error"
)

// Status is one vNIC's state as the local API shows it.
type Status struct {
	// Spec is the desired state.
	Spec Spec `json:"spec"`
	// Devices are the device names (empty until the uplink was seen).
	Devices Devices `json:"devices"`
	// State is StateOK, StatePending, StateDrifted or StateError.
	State string `json:"state"`
	// Drift lists how the devices differ from the desired state, as last
	// read back; empty when they agree.
	Drift []string `json:"drift,omitempty"`
	// LastError is the last failure to converge, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Drifts counts the read-backs that found drift; Repairs the ones that
	// repaired it.
	Drifts  uint64 `json:"drifts"`
	Repairs uint64 `json:"repairs"`
	// Checked is when the devices were last read back.
	Checked time.Time `json:"checked"`
}

// Stats are the manager's counters since Open.
type Stats struct {
	// Ensures and Releases count the calls that succeeded.
	Ensures, Releases uint64
	// Writes counts netlink requests that change the kernel's state.
	Writes uint64
	// Drifts counts read-backs that found a vNIC's devices drifted;
	// Repairs the ones repaired; RepairFailures the failed attempts.
	Drifts, Repairs, RepairFailures uint64
	// Swept counts devices deleted because no vNIC wants them.
	Swept uint64
	// Events counts link notifications received.
	Events uint64
}

// Manager ensures and releases partition vNICs in one network namespace
// and keeps their devices as desired.
type Manager struct {
	cfg Config
	log *slog.Logger
	h   *netlink.Handle

	// mu serialises everything that reads or changes desired, status or
	// the kernel through h.
	mu      sync.Mutex
	desired *table
	status  map[string]*Status

	// imu guards the indexes the event reader uses to map a link to vNICs.
	imu     sync.Mutex
	names   map[string]string      // device name -> vNIC ID
	uplinks map[string]*uplinkSeen // uplink name -> its vNICs

	// dmu guards the dirty set; kick wakes Run.
	dmu      sync.Mutex
	dirty    map[string]bool
	dirtyAll bool
	kick     chan struct{}

	ensures, releases, writes              atomic.Uint64
	drifts, repairs, repairFailures, swept atomic.Uint64
	events                                 atomic.Uint64
	saveTime                               atomic.Int64 // ns spent saving state
}

// Open loads the durable desired state from cfg.StateDir, reads the
// devices back from the kernel and deletes those tether marked that no
// vNIC wants (the sweep). Every desired vNIC is then dirty: Run (or
// Reconcile) converges them.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("partition: no state directory")
	}
	if fi, err := os.Stat(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("partition: state directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("partition: state directory %s is not a directory", cfg.StateDir)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	desired, err := loadState(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	var h *netlink.Handle
	if cfg.NetNS != nil {
		h, err = netlink.NewHandleAt(*cfg.NetNS, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("partition: netlink handle: %w", err)
	}
	m := &Manager{
		cfg: cfg, log: log.With("component", "agent/vnic/partition"), h: h,
		desired: desired, status: map[string]*Status{},
		names: map[string]string{}, uplinks: map[string]*uplinkSeen{},
		dirty: map[string]bool{}, kick: make(chan struct{}, 1),
	}
	for id, s := range desired.byID {
		m.status[id] = &Status{Spec: s, State: StatePending}
	}
	m.refreshUplinksLocked()
	m.mu.Lock()
	err = m.sweepLocked(ctx)
	m.mu.Unlock()
	if err != nil {
		h.Close()
		return nil, err
	}
	m.markAll()
	return m, nil
}

// Close releases the netlink handle. Run must have returned.
func (m *Manager) Close() error {
	m.h.Close()
	return nil
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{
		Ensures: m.ensures.Load(), Releases: m.releases.Load(), Writes: m.writes.Load(),
		Drifts: m.drifts.Load(), Repairs: m.repairs.Load(), RepairFailures: m.repairFailures.Load(),
		Swept: m.swept.Load(), Events: m.events.Load(),
	}
}

// Status returns the status of vNIC id.
func (m *Manager) Status(id string) (Status, bool) {
	cid, err := CanonicalID(id)
	if err != nil {
		return Status{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.status[cid]
	if !ok {
		return Status{}, false
	}
	out := *st
	out.Drift = slices.Clone(st.Drift)
	return out, true
}

// Statuses returns every desired vNIC's status, by ID.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.status))
	for _, id := range slices.Sorted(maps.Keys(m.status)) {
		st := *m.status[id]
		st.Drift = slices.Clone(st.Drift)
		out = append(out, st)
	}
	return out
}

// Ensure makes the vNIC's devices as spec says and returns their names.
// The binding of the S-Tag is recorded durably first; an S-Tag bound to
// another vNIC of the uplink is an *STagBoundError and changes nothing. A
// vNIC whose devices already agree costs netlink reads only, no writes.
// A changed spec (another S-Tag or uplink) moves the vNIC: its old devices
// are deleted. When making the devices fails, the vNIC stays desired (the
// reconcile loop retries) until Release.
func (m *Manager) Ensure(ctx context.Context, spec Spec) (Devices, error) {
	s, err := spec.Validate()
	if err != nil {
		return Devices{}, fmt.Errorf("partition: ensure: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.desired.check(s); err != nil {
		return Devices{}, err
	}
	old, had := m.desired.byID[s.ID]
	if !had || old != s {
		if err := m.save(func() error { return saveEntry(m.cfg.StateDir, s) }); err != nil {
			return Devices{}, fmt.Errorf("partition: ensure %s: %w", s.ID, err)
		}
		if err := m.desired.put(s); err != nil { // checked above: cannot fail
			return Devices{}, err
		}
		st := m.status[s.ID]
		if st == nil {
			st = &Status{State: StatePending}
			m.status[s.ID] = st
		}
		st.Spec = s
		m.imu.Lock()
		if had {
			m.uplinkDropLocked(old.Uplink, s.ID)
		}
		u := m.uplinks[s.Uplink]
		if u == nil {
			u = &uplinkSeen{ids: map[string]bool{}}
			m.uplinks[s.Uplink] = u
		}
		u.ids[s.ID] = true
		m.imu.Unlock()
	}
	if had && (old.Uplink != s.Uplink || old.STag != s.STag) {
		if err := m.deleteMarkedLocked(ctx, old.ID, old.Uplink, old.STag); err != nil {
			return Devices{}, fmt.Errorf("partition: ensure %s: move from S-Tag %d on %s: %w", s.ID, old.STag, old.Uplink, err)
		}
	}
	devs, _, err := m.convergeLocked(ctx, s, true, m.h.LinkByName)
	m.recordLocked(s.ID, devs, nil, err, false)
	if err != nil {
		return devs, fmt.Errorf("partition: ensure %s: %w", s.ID, err)
	}
	m.ensures.Add(1)
	return devs, nil
}

// Release deletes vNIC id's devices and forgets its binding: the desired
// state is saved without it first, then the devices go. Releasing a vNIC
// that is not desired deletes any device still marked with its ID (what a
// failed Release leaves; after a restart the sweep in Open does it) and is
// otherwise a no-op without netlink writes.
func (m *Manager) Release(ctx context.Context, id string) error {
	cid, err := CanonicalID(id)
	if err != nil {
		return fmt.Errorf("partition: release: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, had := m.desired.byID[cid]; had {
		if err := m.save(func() error { return removeEntry(m.cfg.StateDir, cid) }); err != nil {
			return fmt.Errorf("partition: release %s: %w", cid, err)
		}
		m.desired.remove(cid)
		delete(m.status, cid)
		m.imu.Lock()
		m.uplinkDropLocked(old.Uplink, cid)
		m.imu.Unlock()
		if err := m.deleteMarkedLocked(ctx, cid, old.Uplink, old.STag); err != nil {
			return fmt.Errorf("partition: release %s: %w", cid, err)
		}
	} else {
		// Not desired: delete what an earlier failed Release left marked.
		links, err := m.linkList(ctx)
		if err != nil {
			return fmt.Errorf("partition: release %s: %w", cid, err)
		}
		// Upper (C-VLAN) devices first: deleting an S-Tag device takes its
		// upper devices with it.
		for _, l := range orderUppersFirst(links) {
			if l.Attrs().Alias == AliasPrefix+cid && isVLAN(l) {
				if err := m.delLink(l); err != nil {
					return fmt.Errorf("partition: release %s: %w", cid, err)
				}
			}
		}
	}
	m.imu.Lock()
	for name, owner := range m.names {
		if owner == cid {
			delete(m.names, name)
		}
	}
	m.imu.Unlock()
	m.releases.Add(1)
	return nil
}

// Reconcile reads every desired vNIC back from the kernel now and, under
// the repair policy, converges it. It returns the first error.
func (m *Manager) Reconcile(ctx context.Context) error {
	m.markAll()
	failed, err := m.reconcileDirty(ctx)
	for _, id := range failed {
		m.mark(id) // for Run
	}
	return err
}

// uplinkSeen is what the event reader knows of an uplink: its vNICs, and
// the ifindex and MTU the last notification showed (a change of either
// changes the vNICs' names or MTU; other changes, such as a vNIC device
// added on top, do not concern them).
type uplinkSeen struct {
	ids        map[string]bool
	index, mtu int
}

// uplinkDropLocked removes vNIC id from uplink's index entry; imu is held.
func (m *Manager) uplinkDropLocked(uplink, id string) {
	if u := m.uplinks[uplink]; u != nil {
		delete(u.ids, id)
		if len(u.ids) == 0 {
			delete(m.uplinks, uplink)
		}
	}
}

// refreshUplinksLocked rebuilds the uplink index from desired, keeping
// what was seen of each uplink.
func (m *Manager) refreshUplinksLocked() {
	m.imu.Lock()
	defer m.imu.Unlock()
	ups := map[string]*uplinkSeen{}
	for id, s := range m.desired.byID {
		u := ups[s.Uplink]
		if u == nil {
			u = &uplinkSeen{ids: map[string]bool{}}
			if old := m.uplinks[s.Uplink]; old != nil {
				u.index, u.mtu = old.index, old.mtu
			}
			ups[s.Uplink] = u
		}
		u.ids[id] = true
	}
	m.uplinks = ups
}

// recordLocked updates id's status after a read-back.
func (m *Manager) recordLocked(id string, devs Devices, drift []string, err error, repaired bool) {
	st := m.status[id]
	if st == nil {
		return
	}
	st.Checked = time.Now()
	if devs.STag != "" {
		st.Devices = devs
		m.imu.Lock()
		m.names[devs.STag] = id
		_, cdev := namesFromS(devs.STag)
		m.names[cdev] = id
		m.imu.Unlock()
	}
	if len(drift) > 0 {
		st.Drifts++
	}
	if repaired {
		st.Repairs++
	}
	switch {
	case err != nil:
		st.State, st.LastError = StateError, err.Error()
	case len(drift) > 0 && !repaired:
		st.State, st.LastError = StateDrifted, ""
	default:
		st.State, st.LastError = StateOK, ""
	}
	if repaired {
		st.Drift = nil
	} else {
		st.Drift = drift
	}
}

// namesFromS returns the C-VLAN name that goes with an S-Tag device name.
func namesFromS(sdev string) (string, string) {
	return sdev, "tq" + strings.TrimPrefix(sdev, "tp")
}

// save runs a durable write of the desired state and accounts its time.
func (m *Manager) save(f func() error) error {
	start := time.Now()
	err := f()
	m.saveTime.Add(int64(time.Since(start)))
	return err
}
