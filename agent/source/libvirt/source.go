package libvirt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	virt "libvirt.org/go/libvirt"
)

// Defaults for the zero fields of Source.
const (
	// DefaultURI is the libvirt connection of the system QEMU/KVM driver.
	DefaultURI = "qemu:///system"
	// DefaultReconnectMin is the first wait before a reconnect.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax bounds the wait between reconnect attempts.
	DefaultReconnectMax = 30 * time.Second
)

// Keepalive parameters for remote connections: libvirtd is declared dead,
// and the close callback fires, after about interval*(count+1) seconds
// without an answer. Local (in-process) drivers do not support keepalive.
const (
	keepaliveInterval = 5
	keepaliveCount    = 3
)

// Store is what a Source needs of the inventory; *inventory.Store has these
// methods. Tests may substitute their own.
type Store interface {
	// Apply commits a Change atomically.
	Apply(ctx context.Context, c inventory.Change) (inventory.Result, error)
	// Snapshot reads the whole inventory consistently.
	Snapshot(ctx context.Context) (*inventory.Snapshot, error)
	// VM returns one VM; the error wraps inventory.ErrNotFound if absent.
	VM(id inventory.UUID) (inventory.VM, error)
	// VIF returns one VIF; the error wraps inventory.ErrNotFound if absent.
	VIF(mac inventory.MAC) (inventory.VIF, error)
	// List returns the VIFs that match a filter.
	List(ctx context.Context, f inventory.Filter) ([]inventory.VIF, error)
}

var _ Store = (*inventory.Store)(nil)

// DialFunc opens a libvirt connection to uri. It must give up when ctx is
// done.
type DialFunc func(ctx context.Context, uri string) (*virt.Connect, error)

// Source keeps the inventory's VMs of source "libvirt" equal to the domains
// of one libvirt connection. Set the exported fields, then call Run once;
// Status and Stats may be called at any time, from any goroutine.
//
// After every (re)connect Source does a full reconcile (list every domain,
// read its live XML and state, diff against the inventory, apply); between
// reconciles, libvirt events (lifecycle, device added/removed/removal
// failed, metadata changed) only mark their domain dirty, and one worker
// re-reads each dirty domain and applies the diff for that domain alone.
// What an event says is never trusted: the worker always records what
// libvirt shows when it looks (level-triggered), so a burst of events for
// one domain costs one read and one commit.
//
// The mapping: a defined domain is a VM with libvirt's run state; an
// active domain (one with an id) also has its vNICs as VIFs (interfaces of
// type network, bridge, direct, ethernet, hostdev); a shut-off domain has
// none, so its VIFs go to gone when it stops. An undefined domain's VIFs go
// to gone, and the VM record is removed once it has no VIF left (the
// uplink deletes gone VIFs after their DE-ASSOCIATE); inventory.Diff
// documents these rules.
type Source struct {
	// URI is the libvirt connection URI (default DefaultURI).
	URI string
	// Store is the inventory to keep in step; required.
	Store Store
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// connection attempts (defaults DefaultReconnectMin and
	// DefaultReconnectMax). The same backoff spaces retries of domains
	// whose update failed.
	ReconnectMin, ReconnectMax time.Duration
	// ResyncInterval, if positive, adds a full reconcile at that interval
	// on a live connection, to repair anything an event did not report.
	ResyncInterval time.Duration
	// Logger receives the logs (default slog.Default()); they carry
	// component=source/libvirt.
	Logger *slog.Logger
	// Dial opens connections (default: virConnectOpen through
	// libvirt.NewConnect, abandoned when ctx ends). Tests replace it.
	Dial DialFunc

	initOnce sync.Once
	log      *slog.Logger
	running  atomic.Bool
	wake     chan struct{} // capacity 1: "the dirty set is not empty"

	mu      sync.Mutex
	dirty   map[inventory.UUID]time.Time // domain -> when first marked
	resync  bool                         // a full reconcile is wanted
	lastErr string

	sess atomic.Pointer[session] // the live session, for tests

	connected                                     atomic.Bool
	events, connects, reconciles, syncs, failures atomic.Uint64
	lastReconcile                                 atomic.Int64 // ns
	lastReconcileOps                              atomic.Int64
}

// Stats are a Source's counters, for metrics and tetherctl.
type Stats struct {
	// Connected is true while a connection is up and reconciled.
	Connected bool `json:"connected"`
	// Connects counts successful connections (the first and every reconnect).
	Connects uint64 `json:"connects"`
	// Reconciles counts completed full reconciles.
	Reconciles uint64 `json:"reconciles"`
	// Events counts libvirt events received.
	Events uint64 `json:"events"`
	// DomainSyncs counts single-domain updates (one per dirty domain per round).
	DomainSyncs uint64 `json:"domain_syncs"`
	// Errors counts failures: connection attempts, reconciles, domain updates.
	Errors uint64 `json:"errors"`
	// LastReconcile is how long the last full reconcile took.
	LastReconcile time.Duration `json:"last_reconcile_ns"`
	// LastReconcileOps is how many operations the last full reconcile
	// applied (0 when the inventory was already in step).
	LastReconcileOps int `json:"last_reconcile_ops"`
	// LastError is the most recent error; a successful full reconcile clears it.
	LastError string `json:"last_error,omitempty"`
}

// Status reports the source's health in the local API's shape.
func (s *Source) Status() api.SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.SourceStatus{
		Name:      SourceName,
		Connected: s.connected.Load(),
		LastError: s.lastErr,
		Events:    s.events.Load(),
	}
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Connected:        s.connected.Load(),
		Connects:         s.connects.Load(),
		Reconciles:       s.reconciles.Load(),
		Events:           s.events.Load(),
		DomainSyncs:      s.syncs.Load(),
		Errors:           s.failures.Load(),
		LastReconcile:    time.Duration(s.lastReconcile.Load()),
		LastReconcileOps: int(s.lastReconcileOps.Load()),
		LastError:        s.lastErr,
	}
}

func (s *Source) init() {
	s.initOnce.Do(func() {
		log := s.Logger
		if log == nil {
			log = slog.Default()
		}
		s.log = log.With("component", "source/libvirt")
		s.wake = make(chan struct{}, 1)
		s.mu.Lock()
		s.dirty = make(map[inventory.UUID]time.Time)
		s.mu.Unlock()
	})
}

// config returns the effective URI and backoff bounds.
func (s *Source) config() (uri string, minWait, maxWait time.Duration, err error) {
	uri, minWait, maxWait = s.URI, s.ReconnectMin, s.ReconnectMax
	if uri == "" {
		uri = DefaultURI
	}
	if minWait <= 0 {
		minWait = DefaultReconnectMin
	}
	if maxWait <= 0 {
		maxWait = max(DefaultReconnectMax, minWait)
	}
	if maxWait < minWait {
		return "", 0, 0, fmt.Errorf("libvirt source: ReconnectMax %v is below ReconnectMin %v", maxWait, minWait)
	}
	if s.Store == nil {
		return "", 0, 0, errors.New("libvirt source: no Store")
	}
	return uri, minWait, maxWait, nil
}

// Run connects to libvirt and keeps the inventory in step with its domains
// until ctx ends, then returns nil. It reconnects with exponential backoff
// (with jitter, between ReconnectMin and ReconnectMax) whenever the
// connection fails or closes, and does a full reconcile after every
// connect. It returns an error only for a bad configuration, a second
// concurrent Run, or when libvirt's event loop cannot be installed (for
// example libvirt.so.0 is missing).
func (s *Source) Run(ctx context.Context) error {
	uri, minWait, maxWait, err := s.config()
	if err != nil {
		return err
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("libvirt source: Run called while already running")
	}
	defer s.running.Store(false)
	s.init()
	log := s.log.With("uri", uri)

	release, err := acquireEventLoop(s.log)
	if err != nil {
		s.fail(err)
		return fmt.Errorf("libvirt source: %w", err)
	}
	defer release()

	if sub, ok := s.Store.(subscriber); ok {
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.watchStore(wctx, sub)
		}()
		defer func() {
			stop()
			<-done
		}()
	}

	attempt := 0
	for {
		ss, err := s.open(ctx, uri)
		if err == nil {
			var healthy bool
			healthy, err = s.serve(ctx, ss)
			s.close(ss)
			if healthy {
				attempt = 0
			}
		}
		if ctx.Err() != nil {
			log.Info("stopped")
			return nil
		}
		s.fail(err)
		wait := backoff(attempt, minWait, maxWait, rand.Int64N)
		attempt++
		log.Warn("libvirt connection lost or failed; reconnecting", "err", err, "attempt", attempt, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Info("stopped")
			return nil
		case <-t.C:
		}
	}
}

// backoff returns the wait before retry n (0-based): minWait doubled n
// times, capped at maxWait, then drawn uniformly from its upper half
// ("equal jitter", so that many agents do not retry in step), and never
// below minWait. rnd(k) returns a value in [0, k).
func backoff(n int, minWait, maxWait time.Duration, rnd func(int64) int64) time.Duration {
	d := minWait
	for i := 0; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	if half := int64(d / 2); half > 0 {
		d = time.Duration(half + rnd(half+1))
	}
	return max(d, minWait)
}

// fail records err as the last error.
func (s *Source) fail(err error) {
	if err == nil {
		return
	}
	s.failures.Add(1)
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// session is one libvirt connection with its event registrations.
type session struct {
	conn     *virt.Connect
	callback []int // domain event callback IDs

	closeOnce sync.Once
	closed    chan struct{} // closed when libvirt reports the connection closed
	reason    atomic.Int32  // virConnectCloseReason

	netMu    sync.Mutex
	netKinds map[string]inventory.Kind // per-network kind cache
}

// markClosed is the close callback's path; it never blocks.
func (ss *session) markClosed(reason virt.ConnectCloseReason) {
	ss.closeOnce.Do(func() {
		ss.reason.Store(int32(reason))
		close(ss.closed)
	})
}

// closeReason names the reason libvirt gave.
func closeReason(r virt.ConnectCloseReason) string {
	switch r {
	case virt.CONNECT_CLOSE_REASON_ERROR:
		return "I/O error"
	case virt.CONNECT_CLOSE_REASON_EOF:
		return "end of file"
	case virt.CONNECT_CLOSE_REASON_KEEPALIVE:
		return "keepalive timeout"
	case virt.CONNECT_CLOSE_REASON_CLIENT:
		return "closed by client"
	}
	return fmt.Sprintf("reason %d", int(r))
}

// dialContext is the default DialFunc: virConnectOpen cannot be
// interrupted, so when ctx ends first the open goes on in the background
// and its connection is closed when it arrives.
func dialContext(ctx context.Context, uri string) (*virt.Connect, error) {
	type result struct {
		conn *virt.Connect
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := virt.NewConnect(uri)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// open connects and registers the callbacks. Registering before the full
// reconcile lists the domains means no change falls between the two.
func (s *Source) open(ctx context.Context, uri string) (*session, error) {
	dial := s.Dial
	if dial == nil {
		dial = dialContext
	}
	conn, err := dial(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", uri, err)
	}
	ss := &session{conn: conn, closed: make(chan struct{})}
	if err := s.register(ss); err != nil {
		s.close(ss)
		return nil, fmt.Errorf("register events on %s: %w", uri, err)
	}
	if err := conn.SetKeepAlive(keepaliveInterval, keepaliveCount); err != nil {
		s.log.Debug("keepalive not enabled", "err", err)
	}
	s.connects.Add(1)
	s.sess.Store(ss)
	return ss, nil
}

// register installs the event callbacks. They run on libvirt's event loop
// thread and only mark domains dirty (mark never blocks).
func (s *Source) register(ss *session) error {
	c := ss.conn
	if err := c.RegisterCloseCallback(func(_ *virt.Connect, reason virt.ConnectCloseReason) {
		ss.markClosed(reason)
	}); err != nil {
		return fmt.Errorf("close callback: %w", err)
	}
	add := func(what string, id int, err error) error {
		if err != nil {
			return fmt.Errorf("%s event: %w", what, err)
		}
		ss.callback = append(ss.callback, id)
		return nil
	}
	id, err := c.DomainEventLifecycleRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventLifecycle) {
		s.markDomain(d)
	})
	if err := add("lifecycle", id, err); err != nil {
		return err
	}
	id, err = c.DomainEventDeviceAddedRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventDeviceAdded) {
		s.markDomain(d)
	})
	if err := add("device-added", id, err); err != nil {
		return err
	}
	id, err = c.DomainEventDeviceRemovedRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventDeviceRemoved) {
		s.markDomain(d)
	})
	if err := add("device-removed", id, err); err != nil {
		return err
	}
	// A failed removal leaves the device where it was: nothing to update.
	// It is registered only so that the event is counted.
	id, err = c.DomainEventDeviceRemovalFailedRegister(nil, func(*virt.Connect, *virt.Domain, *virt.DomainEventDeviceRemovalFailed) {
		s.events.Add(1)
	})
	if err := add("device-removal-failed", id, err); err != nil {
		return err
	}
	// tether's <metadata> carries S-Tags, port groups and kinds.
	id, err = c.DomainEventMetadataChangeRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventMetadataChange) {
		s.markDomain(d)
	})
	return add("metadata-change", id, err)
}

// close deregisters and closes a session's connection. Errors are only
// logged: the connection may be dead already.
func (s *Source) close(ss *session) {
	s.sess.CompareAndSwap(ss, nil)
	for _, id := range ss.callback {
		if err := ss.conn.DomainEventDeregister(id); err != nil {
			s.log.Debug("deregister event callback", "id", id, "err", err)
		}
	}
	ss.callback = nil
	if err := ss.conn.UnregisterCloseCallback(); err != nil {
		s.log.Debug("unregister close callback", "err", err)
	}
	if _, err := ss.conn.Close(); err != nil {
		s.log.Debug("close connection", "err", err)
	}
}

// markDomain is every domain event's path. virDomainGetUUID reads the
// handle and makes no call to libvirtd.
func (s *Source) markDomain(d *virt.Domain) {
	s.events.Add(1)
	raw, err := d.GetUUID()
	var id inventory.UUID
	if err != nil || len(raw) != len(id) {
		s.requestResync()
		return
	}
	copy(id[:], raw)
	s.mark(id)
}

// mark adds id to the dirty set and wakes the worker; it never blocks
// (the lock guards a map update).
func (s *Source) mark(id inventory.UUID) {
	s.mu.Lock()
	if _, ok := s.dirty[id]; !ok {
		s.dirty[id] = time.Now()
	}
	s.mu.Unlock()
	s.poke()
}

// requestResync asks the worker for a full reconcile.
func (s *Source) requestResync() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
	s.poke()
}

// requeue puts back what a failed round took, without waking the worker:
// the retry timer (or the next event) brings it back.
func (s *Source) requeue(dirty map[inventory.UUID]time.Time, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range dirty {
		if old, ok := s.dirty[id]; !ok || t.Before(old) {
			s.dirty[id] = t
		}
	}
	s.resync = s.resync || full
}

func (s *Source) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeDirty empties the dirty set and returns what it held, and whether a
// full reconcile was requested.
func (s *Source) takeDirty() (map[inventory.UUID]time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, r := s.dirty, s.resync
	s.resync = false
	if len(d) == 0 {
		return nil, r
	}
	s.dirty = make(map[inventory.UUID]time.Time)
	return d, r
}

// serve reconciles, then handles events until the connection closes, a
// libvirt call fails on a dead connection, or ctx ends. healthy reports
// whether the first full reconcile succeeded (the backoff then starts
// over).
func (s *Source) serve(ctx context.Context, ss *session) (healthy bool, err error) {
	_, minWait, maxWait, _ := s.config()
	if err := s.reconcile(ctx, ss); err != nil {
		return false, err
	}
	s.connected.Store(true)
	defer s.connected.Store(false)

	var resync <-chan time.Time
	if s.ResyncInterval > 0 {
		t := time.NewTicker(s.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	failedRounds := 0
	for {
		full := false
		select {
		case <-ctx.Done():
			return true, nil
		case <-ss.closed:
			return true, fmt.Errorf("libvirt closed the connection: %s", closeReason(virt.ConnectCloseReason(ss.reason.Load())))
		case <-resync:
			full = true
		case <-s.wake:
		case <-retry.C:
		}
		if err = s.round(ctx, ss, full); err == nil {
			failedRounds = 0
			continue
		}
		if ctx.Err() != nil {
			return true, nil
		}
		s.fail(err)
		if alive, aerr := ss.conn.IsAlive(); aerr != nil || !alive {
			return true, fmt.Errorf("libvirt connection is dead: %w", err)
		}
		wait := backoff(failedRounds, minWait, maxWait, rand.Int64N)
		failedRounds++
		s.log.Warn("domain update failed; retrying", "err", err, "wait", wait)
		retry.Reset(wait)
	}
}

// subscriber is the optional part of a Store that Run uses to follow the
// inventory's own event feed (*inventory.Store has it).
type subscriber interface {
	Subscribe(buffer int) *inventory.Subscription
}

// watchStore closes a gap the libvirt events leave: an undefined domain's
// VM record stays while it has gone VIFs (their DE-ASSOCIATE is due), and
// libvirt says nothing more about it when the uplink later deletes them.
// So a deleted VIF of one of our VMs marks that VM dirty, and the worker's
// usual diff removes the VM once libvirt no longer has it and no VIF is
// left. A subscription the store dropped for falling behind is renewed,
// with a full reconcile for the events it lost.
func (s *Source) watchStore(ctx context.Context, st subscriber) {
	for {
		sub := st.Subscribe(1024)
		stop := context.AfterFunc(ctx, sub.Close)
		for ev := range sub.Events() {
			if ev.Type != inventory.EventVIFRemoved {
				continue
			}
			if vm, err := s.Store.VM(ev.VIF.VM); err == nil && vm.Source == SourceName {
				s.mark(vm.UUID)
			}
		}
		stop()
		if ctx.Err() != nil || !errors.Is(sub.Err(), inventory.ErrSlowSubscriber) {
			return
		}
		s.log.Warn("inventory feed dropped this subscriber; subscribing again with a full reconcile")
		s.requestResync()
	}
}
