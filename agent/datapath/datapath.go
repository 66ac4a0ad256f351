package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/vnic"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/wire"
)

// Answer is what the edge switch granted a VIF.
type Answer struct {
	// VID is the VLAN the switch granted the VIF's filter (the VIF's
	// C-VID, or the one the switch chose for a null VID).
	VID uint16
	// Profile is the switch's profile for the VIF when the answer was
	// signed and verified; nil otherwise (plain VDP, interop mode).
	Profile *wire.TetherProfile
}

// Equal reports whether a and o grant the same.
func (a Answer) Equal(o Answer) bool {
	if a.VID != o.VID || (a.Profile == nil) != (o.Profile == nil) {
		return false
	}
	if a.Profile == nil {
		return true
	}
	p, q := a.Profile, o.Profile
	return p.VID == q.VID && p.Mode == q.Mode && p.RateKbps == q.RateKbps && p.Priority == q.Priority &&
		p.ACL == q.ACL && p.Name == q.Name && slices.Equal(p.EtherTypes, q.EtherTypes)
}

// clone returns a deep copy (the station's profile aliases its frames).
func (a Answer) clone() Answer {
	if a.Profile != nil {
		p := *a.Profile
		p.EtherTypes = slices.Clone(p.EtherTypes)
		a.Profile = &p
	}
	return a
}

// String renders the answer for reasons and logs.
func (a Answer) String() string {
	if a.Profile == nil {
		return fmt.Sprintf("VID %d", a.VID)
	}
	return fmt.Sprintf("VID %d, profile %s", a.VID, a.Profile.Name)
}

// Profile returns the profile the soft switch and the vNIC apply: the
// switch's verified profile with the granted VID, or only the VID.
func (a Answer) profile() wire.TetherProfile {
	var p wire.TetherProfile
	if a.Profile != nil {
		p = *a.Profile
	}
	p.VID = a.VID
	return p
}

// VNICs configures the vNICs of one VIF kind (agent/vnic/sriov,
// agent/vnic/partition). Both methods are idempotent: a repeat with the
// same arguments changes nothing.
type VNICs interface {
	// Ensure makes v's vNIC as desired: before the switch answered (a is
	// nil) in the state that lets nothing through to the wire where the
	// kind allows it, then with the answer. It returns the device the soft
	// switch attaches for v, or "" when that is v.HostDev.
	Ensure(ctx context.Context, v inventory.VIF, a *Answer) (port string, err error)
	// Release gives v's vNIC back (original settings restored, devices
	// deleted). Releasing what is not held is not an error.
	Release(ctx context.Context, v inventory.VIF) error
}

// Holder is implemented by VNICs that can list the VIFs they hold
// durably, so the first pass after a restart releases those whose VIF
// left the inventory while tetherd was down.
type Holder interface {
	Held(ctx context.Context) ([]inventory.MAC, error)
}

// PortLister is implemented by SoftSwitch adapters that can list the
// ports marked as tether's (agent/softswitch/linuxbridge's and
// agent/softswitch/ovs's Ports), so the first pass after a restart removes
// the ports of VIFs that went while tetherd was down.
type PortLister interface {
	Ports(ctx context.Context) ([]string, error)
}

// Runner is implemented by VNICs and SoftSwitch adapters that watch the
// kernel (drift) on their own; the Reconciler runs them alongside its loop.
type Runner interface {
	Run(ctx context.Context) error
}

// SoftSwitch is the soft switch VM ports are on (agent/softswitch).
type SoftSwitch interface {
	// EnsurePort makes the port match p; a repeat changes nothing.
	EnsurePort(ctx context.Context, p softswitch.Port) error
	// RemovePort takes the port's configuration off the switch; a port
	// that is not there is not an error.
	RemovePort(ctx context.Context, name string) error
	// Check reads the port back and returns how it differs from p.
	Check(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error)
}

// DriftPolicy says what a resync does about a soft-switch port that
// differs from its desired state. It is vnic.DriftPolicy: one setting
// (config key datapath.drift) for the soft switch and both vNIC kinds.
type DriftPolicy = vnic.DriftPolicy

// The drift policies; the zero value repairs.
const (
	// DriftRepair puts the port back as desired.
	DriftRepair = vnic.DriftRepair
	// DriftReportOnly records the difference as the VIF's datapath error
	// and changes nothing.
	DriftReportOnly = vnic.DriftReportOnly
)

// Defaults of Config.
const (
	DefaultRetryMin = 500 * time.Millisecond
	DefaultRetryMax = time.Minute
	DefaultResync   = 30 * time.Second
)

// settle is how long the loop waits after a trigger for more of them.
const settle = 5 * time.Millisecond

// subscriptionBuffer is how many committed Changes may wait for the loop.
const subscriptionBuffer = 256

// ErrNotApplied is wrapped by Granted's error while the answer is not yet
// in place.
var ErrNotApplied = errors.New("not applied yet")

// Config configures a Reconciler.
type Config struct {
	// Store is the inventory; required.
	Store *inventory.Store
	// VNICs configures the vNICs of each kind; kinds without an entry need
	// nothing (their devices are libvirt's or CNI's).
	VNICs map[inventory.Kind]VNICs
	// Switch is the soft switch; nil means none.
	Switch SoftSwitch
	// SwitchKinds are the VIF kinds whose device is a soft-switch port;
	// nil means tap and veth.
	SwitchKinds []inventory.Kind
	// Drift is what a resync does about a drifted soft-switch port.
	Drift DriftPolicy
	// RetryMin and RetryMax bound the per-VIF backoff after a failure
	// (defaults DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// Resync is the period of a full pass that reads every port back
	// (default DefaultResync).
	Resync time.Duration
	// RecordStates makes the Reconciler write its failures into the VIFs'
	// states itself: a VIF whose datapath fails goes to rejected with the
	// failure as its reason, and back to pending once its datapath is in
	// place. Set it only when no uplink runs (agent/uplink owns the states
	// otherwise, and reports the failures through Granted).
	RecordStates bool
	// OnApplied is called (from the loop) after a pass that put a VIF's
	// answer in place or recorded a new failure, so agent/uplink can move
	// the VIF on (Uplink.Kick). It must not block.
	OnApplied func()
	// Logger receives the logs (component=agent/datapath); nil means
	// slog.Default().
	Logger *slog.Logger
}

// vifStatus is what Granted reads: the answer last put in place for a VIF,
// and the current failure.
type vifStatus struct {
	applied *Answer // nil: none applied
	err     error   // nil: no failure
}

// Reconciler converges the datapath of every VIF (see the package
// documentation). It implements daemon.Source.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	dirty  chan struct{}
	ready  atomic.Bool
	ops    atomic.Uint64
	fails  atomic.Uint64
	drifts atomic.Uint64

	mu      sync.Mutex
	answers map[inventory.MAC]Answer
	// answeredAt is when each answer was handed over.
	answeredAt map[inventory.MAC]time.Time
	status     map[inventory.MAC]vifStatus
	marked     map[inventory.MAC]bool // dirty VIFs for the next pass
	lastErr    string

	// Owned by the loop.
	ents map[inventory.MAC]*entry
	// portsSwept is set once the soft-switch ports no VIF wants have been
	// removed after the start (sweepPorts).
	portsSwept bool
}

// New checks cfg and returns a Reconciler; Run starts it.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Store == nil {
		return nil, errors.New("datapath: Config.Store is required")
	}
	if cfg.SwitchKinds == nil {
		cfg.SwitchKinds = []inventory.Kind{inventory.KindTap, inventory.KindVeth}
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Reconciler{
		cfg:        cfg,
		log:        log.With("component", "agent/datapath"),
		dirty:      make(chan struct{}, 1),
		answers:    map[inventory.MAC]Answer{},
		answeredAt: map[inventory.MAC]time.Time{},
		status:     map[inventory.MAC]vifStatus{},
		marked:     map[inventory.MAC]bool{},
		ents:       map[inventory.MAC]*entry{},
	}, nil
}

// Name is the datapath's name in the API's source list.
func (r *Reconciler) Name() string { return "datapath" }

// Ready implements daemon.Source: true after the first pass.
func (r *Reconciler) Ready() bool { return r.ready.Load() }

// Status implements daemon.Source: Events counts the datapath operations
// (ensures, port changes, releases) that succeeded, LastError is the last
// failure, VNICs the state of each vNIC (SR-IOV VF, partition) the vNIC
// managers hold, by kind and VIF.
func (r *Reconciler) Status() api.SourceStatus {
	var vnics []api.VNICStatus
	kinds := slices.Sorted(maps.Keys(r.cfg.VNICs))
	for _, k := range kinds {
		if sr, ok := r.cfg.VNICs[k].(StatusReporter); ok {
			vnics = append(vnics, sr.VNICStatuses()...)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return api.SourceStatus{Name: r.Name(), Connected: r.ready.Load(), Events: r.ops.Load(), LastError: r.lastErr, VNICs: vnics}
}

// Granted hands over the switch's accepted answer for VIF v: the granted
// VID and the verified profile (nil when there is none). agent/uplink calls
// it on every reconcile pass for every VIF the switch holds; it never
// blocks on the datapath. It returns nil when v's vNIC and soft-switch port
// are in place for exactly this answer, else why not: the datapath's
// failure, or an error wrapping ErrNotApplied while the loop is at it.
func (r *Reconciler) Granted(v inventory.VIF, vid uint16, profile *wire.TetherProfile) error {
	a := Answer{VID: vid, Profile: profile}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.answers[v.MAC]; !ok || !old.Equal(a) {
		r.answers[v.MAC] = a.clone()
		r.answeredAt[v.MAC] = time.Now()
		r.markLocked(v.MAC)
	}
	st := r.status[v.MAC]
	switch {
	case st.err != nil:
		return st.err
	case st.applied != nil && st.applied.Equal(a):
		return nil
	}
	return temporary{fmt.Errorf("switch's answer (%s) %w", a, ErrNotApplied)}
}

// Applied returns the answer last put in place for mac, and the VIF's
// current datapath failure.
func (r *Reconciler) Applied(mac inventory.MAC) (*Answer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status[mac]
	return st.applied, st.err
}

// Kick marks every VIF dirty and asks for a pass.
func (r *Reconciler) Kick() {
	r.mu.Lock()
	for mac := range r.ents {
		r.marked[mac] = true
	}
	r.mu.Unlock()
	r.wake()
}

// markLocked marks mac dirty; r.mu must be held.
func (r *Reconciler) markLocked(mac inventory.MAC) {
	r.marked[mac] = true
	r.wake()
}

func (r *Reconciler) wake() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// Run runs the loop (and the adapters' own watchers) until ctx ends; it
// returns nil then, or the store's closing.
func (r *Reconciler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	runners := map[Runner]bool{}
	for _, v := range r.cfg.VNICs {
		if rn, ok := v.(Runner); ok {
			runners[rn] = true
		}
	}
	if rn, ok := r.cfg.Switch.(Runner); ok {
		runners[rn] = true
	}
	for rn := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rn.Run(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("datapath watcher stopped", "err", err)
			}
		}()
	}
	return r.loop(ctx)
}
