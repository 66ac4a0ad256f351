// Package cache is tether-switchd's local copy of the policy store: it
// lists every object, then follows the store's watch from the listing's
// revision (resumed by revision after a disconnect, re-listed when that
// revision was compacted), and answers lookups (a VM's port group and
// profile, a VM's placement, the VM behind a MAC, a host's key) from
// memory, so an association never waits on a DB round trip. While the DB
// is unreachable the cache keeps serving what it last applied.
//
// Every applied change is reported to Options.OnChange with the revision
// the cache is at, so switchd can re-apply the profiles it enforces as
// soon as one changes.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/store"
)

// Change is one applied batch of changes.
type Change struct {
	// Revision is the store revision the cache is at after the change.
	Revision int64
	// Events are the changes applied, in order; nil when Relisted.
	Events []store.Event
	// Relisted is set when the cache replaced its whole content from a
	// listing (at start and after a compaction): everything may have
	// changed.
	Relisted bool
}

// Options configure a Cache.
type Options struct {
	// OnChange is called after each applied change, from the goroutine
	// running Run, without the cache's lock held (it may call the
	// cache's lookups). It must not block for long: the watch waits.
	OnChange func(Change)
	// Log receives reconnect and re-list notices; nil discards.
	Log *slog.Logger
}

// Cache is the watch-fed policy cache. Lookups are safe for concurrent
// use with Run and with each other.
type Cache struct {
	st       *store.Store
	onChange func(Change)
	log      *slog.Logger
	ready    chan struct{}
	once     sync.Once
	running  atomic.Bool

	mu         sync.RWMutex
	rev        int64
	profiles   map[string]*policy.Profile
	groups     map[string]*policy.PortGroup
	groupList  []policy.PortGroup // sorted by name, for Resolve
	hosts      map[string]*policy.Host
	placements map[string]*policy.Placement
	byMAC      map[string]string // MAC -> VM UUID
	relists    int
	advanced   chan struct{} // closed and replaced when rev moves
}

// New returns a cache of st; Run fills it.
func New(st *store.Store, opts Options) *Cache {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{st: st, onChange: opts.OnChange, log: log.With("component", "policy-cache"), ready: make(chan struct{}), advanced: make(chan struct{})}
	c.reset()
	return c
}

// reset empties the maps (c.mu held or not yet shared).
func (c *Cache) reset() {
	c.profiles = make(map[string]*policy.Profile)
	c.groups = make(map[string]*policy.PortGroup)
	c.hosts = make(map[string]*policy.Host)
	c.placements = make(map[string]*policy.Placement)
	c.byMAC = make(map[string]string)
	c.groupList = nil
}

// Backoff bounds between failed listings.
const (
	listBackoffMin = 100 * time.Millisecond
	listBackoffMax = 5 * time.Second
)

// Run lists the store, then follows its watch until ctx ends, re-listing
// after a compaction and retrying a failed listing with backoff. It
// returns ctx's error. A cache runs once at a time.
func (c *Cache) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("policy cache: already running")
	}
	defer c.running.Store(false)
	backoff := listBackoffMin
	for {
		snap, err := c.st.ListAll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Warn("policy listing failed, serving the cached copy", "revision", c.Revision(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff = min(2*backoff, listBackoffMax)
			continue
		}
		backoff = listBackoffMin
		c.load(snap)
		c.once.Do(func() { close(c.ready) })
		c.notify(Change{Revision: snap.Revision, Relisted: true})
		err = c.follow(ctx, snap.Revision+1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("policy watch ended, listing again", "revision", c.Revision(), "err", err)
	}
}

// follow applies the watch from rev until it ends.
func (c *Cache) follow(ctx context.Context, rev int64) error {
	for b := range c.st.Watch(ctx, rev) {
		if b.Err != nil {
			return b.Err
		}
		if evs, rev, advanced := c.apply(b); advanced {
			c.notify(Change{Revision: rev, Events: evs})
		}
	}
	return ctx.Err()
}

func (c *Cache) notify(ch Change) {
	if c.onChange != nil {
		c.onChange(ch)
	}
}

// load replaces the content with a snapshot.
func (c *Cache) load(snap store.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
	for _, items := range snap.Items {
		for _, it := range items {
			c.put(it.Object)
		}
	}
	c.rebuildGroups()
	c.rev = snap.Revision
	c.relists++
	c.wake()
}

// wake tells Sync's waiters that the revision moved (c.mu held).
func (c *Cache) wake() {
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// apply applies a batch, skipping events at or below the applied
// revision, and returns the events applied, the revision the cache is at
// and whether it moved.
func (c *Cache) apply(b store.Batch) ([]store.Event, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var applied []store.Event
	groups := false
	for _, e := range b.Events {
		if e.Revision <= c.rev {
			continue
		}
		switch e.Type {
		case store.EventPut:
			c.put(e.Object)
		case store.EventDelete:
			c.del(e.Kind, e.Key)
		}
		groups = groups || e.Kind == policy.KindGroups
		applied = append(applied, e)
	}
	if groups {
		c.rebuildGroups()
	}
	advanced := b.Revision > c.rev
	if advanced {
		c.rev = b.Revision
		c.wake()
	}
	return applied, c.rev, advanced
}

// put stores obj (c.mu held).
func (c *Cache) put(obj policy.Object) {
	switch o := obj.(type) {
	case *policy.Profile:
		c.profiles[o.Name] = o
	case *policy.PortGroup:
		c.groups[o.Name] = o
	case *policy.Host:
		c.hosts[o.Name] = o
	case *policy.Placement:
		c.dropMACs(o.VM)
		c.placements[o.VM] = o
		for _, m := range o.MACs {
			c.byMAC[m] = o.VM
		}
	}
}

// del removes an object (c.mu held).
func (c *Cache) del(kind policy.Kind, key string) {
	switch kind {
	case policy.KindProfiles:
		delete(c.profiles, key)
	case policy.KindGroups:
		delete(c.groups, key)
	case policy.KindHosts:
		delete(c.hosts, key)
	case policy.KindPlacements:
		c.dropMACs(key)
		delete(c.placements, key)
	}
}

// dropMACs removes the MAC index entries of vm's placement (c.mu held).
func (c *Cache) dropMACs(vm string) {
	if old := c.placements[vm]; old != nil {
		for _, m := range old.MACs {
			if c.byMAC[m] == vm {
				delete(c.byMAC, m)
			}
		}
	}
}

// rebuildGroups refreshes the sorted group list (c.mu held).
func (c *Cache) rebuildGroups() {
	c.groupList = c.groupList[:0]
	for _, g := range c.groups {
		c.groupList = append(c.groupList, *g)
	}
	slices.SortFunc(c.groupList, func(a, b policy.PortGroup) int { return strings.Compare(a.Name, b.Name) })
}

// Ready is closed once the first listing is applied.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// WaitReady blocks until the first listing is applied or ctx ends.
func (c *Cache) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("policy cache: waiting for the first listing: %w", ctx.Err())
	}
}

// Revision returns the store revision the cache has applied: that of
// the last change under the store's prefix, or of a later watch progress
// notification. Writes elsewhere in etcd advance it only through the
// latter (see Sync).
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// syncPoll is how often Sync asks for watch progress again.
const syncPoll = 50 * time.Millisecond

// Sync waits until the cache has applied every change the store had
// committed when Sync was called (one round trip for the store's
// revision, then watch progress notifications), or ctx ends. After it
// returns nil, a write acknowledged before the call is visible in the
// lookups. It is the fallback for a lookup that misses: the association
// path itself never waits on the DB.
func (c *Cache) Sync(ctx context.Context) error {
	rev, err := c.st.CurrentRevision(ctx)
	if err != nil {
		return fmt.Errorf("policy cache: sync: %w", err)
	}
	for {
		c.mu.RLock()
		at, advanced := c.rev, c.advanced
		c.mu.RUnlock()
		if at >= rev {
			return nil
		}
		// Changes under other prefixes advance the store's revision
		// without events here: a progress notification covers them.
		if err := c.st.RequestProgress(ctx); err != nil {
			c.log.Debug("watch progress request failed", "err", err)
		}
		select {
		case <-advanced:
		case <-time.After(syncPoll):
		case <-ctx.Done():
			return fmt.Errorf("policy cache: sync to revision %d (at %d): %w", rev, at, ctx.Err())
		}
	}
}

// Relists returns how many listings the cache has loaded (1 after the
// start, one more per compaction).
func (c *Cache) Relists() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.relists
}

// ErrNoGroup is returned by Lookup when no port group matches the VM.
var ErrNoGroup = errors.New("no port group matches")

// ErrNoProfile is returned by Lookup when the VM's group names a
// profile that does not exist.
var ErrNoProfile = errors.New("port group's profile does not exist")

// Result is what Lookup finds for a VM.
type Result struct {
	// Group is the VM's port group.
	Group string
	// Profile is the group's profile.
	Profile policy.Profile
	// Placement is the VM's placement record, if HasPlacement.
	Placement    policy.Placement
	HasPlacement bool
}

// Lookup resolves vm's port group and profile (policy.Resolve) and finds
// its placement. When vm.Name is empty the placement's name is used, and
// when vm.Labels is empty the placement's labels (tether's domain metadata
// labels, recorded by the placement writer).
// Errors wrap ErrNoGroup or ErrNoProfile.
func (c *Cache) Lookup(vm policy.VMRef) (Result, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var r Result
	if p := c.placements[strings.ToLower(vm.UUID)]; p != nil {
		r.Placement, r.HasPlacement = clonePlacement(p), true
		if vm.Name == "" {
			vm.Name = p.Name
		}
		if len(vm.Labels) == 0 {
			vm.Labels = p.Labels
		}
	}
	g, ok := policy.Resolve(c.groupList, vm)
	if !ok {
		return r, fmt.Errorf("policy cache: VM %s (%q): %w", vm.UUID, vm.Name, ErrNoGroup)
	}
	r.Group = g
	pname := c.groups[g].Profile
	p := c.profiles[pname]
	if p == nil {
		return r, fmt.Errorf("policy cache: VM %s: group %q: profile %q: %w", vm.UUID, g, pname, ErrNoProfile)
	}
	r.Profile = cloneProfile(p)
	return r, nil
}

// Profile returns a profile by name.
func (c *Cache) Profile(name string) (policy.Profile, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := c.profiles[name]
	if p == nil {
		return policy.Profile{}, false
	}
	return cloneProfile(p), true
}

// Group returns a port group by name.
func (c *Cache) Group(name string) (policy.PortGroup, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.groups[name]
	if g == nil {
		return policy.PortGroup{}, false
	}
	return *g, true
}

// GroupsUsing returns the names of the port groups whose profile is
// name, sorted (what to re-apply when a profile changes).
func (c *Cache) GroupsUsing(profile string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for _, g := range c.groupList {
		if g.Profile == profile {
			out = append(out, g.Name)
		}
	}
	return out
}

// Placement returns the placement of a VM by UUID.
func (c *Cache) Placement(vm string) (policy.Placement, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := c.placements[strings.ToLower(vm)]
	if p == nil {
		return policy.Placement{}, false
	}
	return clonePlacement(p), true
}

// PlacementByMAC returns the placement listing mac.
func (c *Cache) PlacementByMAC(mac string) (policy.Placement, bool) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return policy.Placement{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	p := c.placements[c.byMAC[hw.String()]]
	if p == nil {
		return policy.Placement{}, false
	}
	return clonePlacement(p), true
}

// Host returns an enrolled host or switch by name.
func (c *Cache) Host(name string) (policy.Host, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	h := c.hosts[name]
	if h == nil {
		return policy.Host{}, false
	}
	return *h, true
}

// Len returns how many objects of kind the cache holds.
func (c *Cache) Len(kind policy.Kind) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch kind {
	case policy.KindProfiles:
		return len(c.profiles)
	case policy.KindGroups:
		return len(c.groups)
	case policy.KindHosts:
		return len(c.hosts)
	case policy.KindPlacements:
		return len(c.placements)
	}
	return 0
}

// Objects returns copies of every object of kind, by key (for
// comparisons and debugging; not for the association path).
func (c *Cache) Objects(kind policy.Kind) map[string]policy.Object {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]policy.Object)
	switch kind {
	case policy.KindProfiles:
		for k, v := range c.profiles {
			p := cloneProfile(v)
			out[k] = &p
		}
	case policy.KindGroups:
		for k, v := range c.groups {
			g := *v
			out[k] = &g
		}
	case policy.KindHosts:
		for k, v := range c.hosts {
			h := *v
			out[k] = &h
		}
	case policy.KindPlacements:
		for k, v := range c.placements {
			p := clonePlacement(v)
			out[k] = &p
		}
	}
	return out
}

func cloneProfile(p *policy.Profile) policy.Profile {
	q := *p
	q.EtherTypes = slices.Clone(p.EtherTypes)
	return q
}

func clonePlacement(p *policy.Placement) policy.Placement {
	q := *p
	q.MACs = slices.Clone(p.MACs)
	q.Labels = slices.Clone(p.Labels)
	return q
}
