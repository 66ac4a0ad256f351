package switchd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// ProfileRequest is what a ProfileSource is asked about: an accepted
// request of VM VM on host Host, at Port.
type ProfileRequest struct {
	// VM is the VM (the VSIID); Host the host whose key signed the
	// request; Port the switch port.
	VM   verify.UUID
	Host string
	Port string
	// Group is the port group the request names in a tether profile TLV
	// ("" when none).
	Group string
	// VSITypeID is the request's VSI Type ID.
	VSITypeID uint32
}

// Profile is a ProfileSource's answer.
type Profile struct {
	// Group is the port group (or the profile's key in the source) the
	// profile came from; it is reported by the API and re-resolved on a
	// profile change.
	Group string
	// TLV is the profile switchd answers with; its VID is given to null
	// VIDs, and a request naming a VID must name this one.
	TLV wire.TetherProfile
}

// ErrNoProfile is what a ProfileSource returns when no profile applies;
// the request is refused with no-profile.
var ErrNoProfile = errors.New("no profile")

// ProfileSource gives switchd the profile of an accepted request. It is
// asked while the request is being decided, so it must answer from memory
// (a local copy of the policy), never wait on a database. Two come with
// switchd: StackProfiles (the configuration file's profiles, reloaded on
// change) and StaticProfiles; a DC-wide one backed by tether-policyd's
// cache plugs in through Options.Profiles.
type ProfileSource interface {
	Profile(ctx context.Context, req ProfileRequest) (Profile, error)
}

// ProfileNotifier is implemented by a ProfileSource whose profiles change
// while switchd runs: every receive on Changed makes switchd re-resolve
// the profile of every live association and re-apply it (the rule's VID
// in the enforcer; the station hears the new profile in the answer to its
// next keep-alive).
type ProfileNotifier interface {
	Changed() <-chan struct{}
}

// StaticProfiles answers from a fixed map of switchconfig profiles (the
// configuration's profiles: without reload).
type StaticProfiles map[string]switchconfig.Profile

// Profile implements ProfileSource with switchconfig's lookup order: a
// profile selected by VSI type, the port group the request names, then
// "default".
func (s StaticProfiles) Profile(_ context.Context, req ProfileRequest) (Profile, error) {
	c := switchconfig.Config{Profiles: s}
	g, p, ok := c.ProfileFor(req.Group, req.VSITypeID)
	if !ok {
		return Profile{}, ErrNoProfile
	}
	return Profile{Group: g, TLV: *p.TetherProfile(g)}, nil
}

// DefaultProfileInterval is how often StackProfiles looks at its file.
const DefaultProfileInterval = time.Second

// StackProfiles is the stack-mode ProfileSource: the profiles: of
// switchd's configuration file, read again when the file changes. Run
// polls the file every interval (its size, modification time and SHA-256:
// no inotify); a file that does not parse or validate keeps the profiles
// in force and logs why, and so does a missing file.
type StackProfiles struct {
	path     string
	interval time.Duration
	log      *slog.Logger

	cur     atomic.Pointer[map[string]switchconfig.Profile]
	changed chan struct{}

	mu      sync.Mutex
	sum     [sha256.Size]byte
	lastErr string
	reloads atomic.Uint64
}

// NewStackProfiles returns the source of the file at path, starting with
// initial (the profiles of the configuration switchd started with, read
// from that file). interval 0 means DefaultProfileInterval.
func NewStackProfiles(path string, initial map[string]switchconfig.Profile, interval time.Duration, log *slog.Logger) *StackProfiles {
	if interval <= 0 {
		interval = DefaultProfileInterval
	}
	if log == nil {
		log = slog.Default()
	}
	s := &StackProfiles{path: path, interval: interval, log: log.With("component", "edge/switchd", "profiles", path),
		changed: make(chan struct{}, 1)}
	m := maps.Clone(initial)
	s.cur.Store(&m)
	if b, err := os.ReadFile(path); err == nil {
		s.sum = sha256.Sum256(b)
	}
	return s
}

// Profile implements ProfileSource.
func (s *StackProfiles) Profile(ctx context.Context, req ProfileRequest) (Profile, error) {
	return StaticProfiles(*s.cur.Load()).Profile(ctx, req)
}

// Profiles returns a copy of the profiles in force.
func (s *StackProfiles) Profiles() map[string]switchconfig.Profile { return maps.Clone(*s.cur.Load()) }

// Changed implements ProfileNotifier.
func (s *StackProfiles) Changed() <-chan struct{} { return s.changed }

// Reloads counts the changes of profiles taken from the file.
func (s *StackProfiles) Reloads() uint64 { return s.reloads.Load() }

// Run polls the file until ctx ends.
func (s *StackProfiles) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Check()
		}
	}
}

// Check reads the file once and takes its profiles when its content
// changed and is a valid configuration. It returns the error that kept
// the old profiles, if any (logged once per distinct error).
func (s *StackProfiles) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.path)
	if err == nil {
		sum := sha256.Sum256(b)
		if sum == s.sum && s.lastErr == "" {
			return nil
		}
		var c switchconfig.Config
		if c, err = switchconfig.Parse(bytes.NewReader(b)); err == nil {
			s.sum, s.lastErr = sum, ""
			old := *s.cur.Load()
			if profilesEqual(old, c.Profiles) {
				return nil
			}
			m := c.Profiles
			s.cur.Store(&m)
			s.reloads.Add(1)
			s.log.Info("profiles reloaded", "count", len(m))
			select {
			case s.changed <- struct{}{}:
			default:
			}
			return nil
		}
	}
	err = fmt.Errorf("switchd: reload profiles from %s (the profiles in force stay): %w", s.path, err)
	if msg := err.Error(); msg != s.lastErr {
		s.lastErr = msg
		s.log.Error("profiles not reloaded", "err", err)
	}
	return err
}

// profilesEqual compares two profile maps.
func profilesEqual(a, b map[string]switchconfig.Profile) bool {
	return maps.EqualFunc(a, b, func(x, y switchconfig.Profile) bool {
		if (x.VSITypeID == nil) != (y.VSITypeID == nil) || (x.VSITypeID != nil && *x.VSITypeID != *y.VSITypeID) {
			return false
		}
		x.VSITypeID, y.VSITypeID = nil, nil
		return x == y
	})
}

// profiles returns the daemon's ProfileSource.
func (d *Daemon) profiles() ProfileSource {
	if d.opts.Profiles != nil {
		return d.opts.Profiles
	}
	return StaticProfiles(d.cfg.Profiles)
}

// watchProfiles re-applies profiles on every change the source announces,
// until ctx ends.
func (d *Daemon) watchProfiles(ctx context.Context) {
	n, ok := d.profiles().(ProfileNotifier)
	if !ok {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.Changed():
			d.ReapplyProfiles(ctx)
		}
	}
}

// ReapplyProfiles re-resolves the profile of every association and
// applies what changed. A profile that now gives another VID ends the
// association at once (its rule is revoked and the station is told with
// DE-ASSOCIATE): a VDP station checks that an answer grants the VIDs it
// asked for, so the only way to give it a new VID is a new association,
// which tether's station (agent/uplink) starts at once, with the null VID,
// and which Decide answers with the new VID, rule first. A change that
// keeps the VID (rate, priority, name, mode) replaces the profile of the
// VDP bridge's grant (vdp.Bridge.Regrant), which the answer to the
// station's next keep-alive carries. An association whose profile is gone
// keeps its rule until its next request that reaches Decide, which is
// refused with no-profile. It returns how many associations changed.
func (d *Daemon) ReapplyProfiles(ctx context.Context) int {
	src := d.profiles()
	changed := 0
	for _, r := range d.tbl.all() {
		k := recKey{r.port, r.key}
		mu := d.str.of(k)
		mu.Lock()
		if d.reapply(ctx, src, k, r.gen) {
			changed++
		}
		mu.Unlock()
	}
	return changed
}

// reapply re-resolves the profile of k's record (generation gen) and
// applies it; k's stripe is held.
func (d *Daemon) reapply(ctx context.Context, src ProfileSource, k recKey, gen uint64) bool {
	cur := d.tbl.get(k)
	if cur == nil || cur.gen != gen {
		return false
	}
	log := d.log.With("port", cur.port, "vm", cur.vm.String())
	prof, err := src.Profile(ctx, ProfileRequest{VM: cur.vm, Host: cur.host, Port: cur.port, Group: cur.group, VSITypeID: cur.typeID})
	if err != nil {
		log.Warn("profile change: no profile for a live association any more (refused at its next request)",
			"profile", cur.profile, "err", err)
		return false
	}
	d.mu.Lock()
	p := d.ports[cur.port]
	d.mu.Unlock()
	if p == nil {
		return false
	}
	for _, pr := range cur.pairs {
		if pr.VID != prof.TLV.VID {
			log.Info("profile change: new VID; the association ends and the station associates again",
				"profile", prof.Group, "vid", prof.TLV.VID, "was", pr.VID)
			p.dropLocked(ctx, k, gen, fmt.Sprintf("profile %s now gives VID %d", prof.Group, prof.TLV.VID), true)
			return true
		}
	}
	p.mu.Lock()
	br := p.bridge
	p.mu.Unlock()
	if br == nil {
		return false
	}
	granted, ok := br.Lookup(k.vsi)
	if !ok || granted.State == vdp.StateNone || (granted.Profile != nil && reflect.DeepEqual(*granted.Profile, prof.TLV)) {
		return false
	}
	if err := br.Regrant(k.vsi, granted.VSI.Filters, &prof.TLV); err != nil {
		log.Warn("profile change: the station hears of it at its next decided request", "err", err)
		return false
	}
	if prof.Group != cur.profile {
		nr := *cur
		nr.profile = prof.Group
		d.tbl.put(&nr)
	}
	log.Info("profile change applied to a live association", "profile", prof.Group, "vid", prof.TLV.VID)
	return true
}
