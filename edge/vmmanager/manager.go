package vmmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/edge/verify"
	virt "libvirt.org/go/libvirt"
)

// Defaults of the zero fields of Config.
const (
	// DefaultTimeout bounds one Confirm.
	DefaultTimeout = time.Second
	// DefaultCacheTTL is how long a domain seen present answers from the
	// cache.
	DefaultCacheTTL = 5 * time.Second
	// DefaultMaxInFlight bounds the libvirt calls outstanding per host.
	DefaultMaxInFlight = 4
	// DefaultDialTimeout bounds a connection attempt.
	DefaultDialTimeout = 10 * time.Second
	// DefaultReconnectMin is the first wait after a failed connection.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax bounds the wait between connection attempts.
	DefaultReconnectMax = 30 * time.Second
)

// Keepalive of remote connections: libvirtd is declared dead after about
// interval*(count+1) seconds without an answer, and the calls waiting on
// it fail. In-process drivers (test:///) do not support it.
const (
	keepaliveInterval = 5
	keepaliveCount    = 3
)

// Errors of Confirm; the verifier counts them all as
// vm-manager-unavailable.
var (
	// ErrBusy means the host's libvirt calls are all taken and none came
	// free within the timeout.
	ErrBusy = errors.New("vmmanager: too many libvirt calls outstanding")
	// ErrClosed means the Manager was closed.
	ErrClosed = errors.New("vmmanager: closed")
)

// DialFunc opens a libvirt connection to uri, giving up when ctx ends.
type DialFunc func(ctx context.Context, uri string) (*virt.Connect, error)

// Config configures a Manager.
type Config struct {
	// Hosts maps host names (as keys are enrolled) to libvirt URIs, for
	// example "qemu+ssh://root@hv12/system" (tests: "test:///default" or
	// "test:///ABSOLUTE/PATH/node.xml").
	Hosts map[string]string
	// URITemplate, if set, gives the URI of a host not in Hosts: every
	// "{host}" in it is replaced by the host name
	// ("qemu+ssh://{host}/system"). Without it such hosts are not managed
	// and every VM is denied there.
	URITemplate string
	// Timeout bounds one Confirm (DefaultTimeout); the caller's context
	// may end it sooner.
	Timeout time.Duration
	// CacheTTL is how long a domain seen present (with its state and
	// MACs) answers from the cache (DefaultCacheTTL). Absent and
	// inactive domains are never cached, so a VM that just started is
	// found at once; a VM that just stopped may be confirmed for up to
	// CacheTTL.
	CacheTTL time.Duration
	// MaxInFlight bounds the libvirt calls outstanding per host
	// (DefaultMaxInFlight), so a hung host ties up that many goroutines
	// at most.
	MaxInFlight int
	// DialTimeout bounds a connection attempt (DefaultDialTimeout).
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff after
	// failed connection attempts (DefaultReconnectMin,
	// DefaultReconnectMax); within the backoff Confirm fails at once.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives the logs (default slog.Default()); they carry
	// component=edge/vmmanager.
	Logger *slog.Logger
	// Dial opens connections (default: libvirt.NewConnect, abandoned
	// when ctx ends). Tests replace it.
	Dial DialFunc
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats are a Manager's counters.
type Stats struct {
	// Confirms counts Confirm calls; CacheHits those answered from the
	// cache.
	Confirms, CacheHits uint64
	// Lookups counts domain lookups by UUID, Refreshes full listings of
	// a host.
	Lookups, Refreshes uint64
	// Dials counts connection attempts, DialFailures the failed ones.
	Dials, DialFailures uint64
	// Errors counts Confirms that could not answer (timeouts, libvirt
	// errors, busy, unreachable).
	Errors uint64
}

// Manager is the libvirt-remote VM manager: it confirms that a VM runs on
// a host with a given MAC by asking that host's libvirt, and implements
// verify.VMManager and verify.Forgetter. It is safe for concurrent use.
//
// Each host has one cached connection, opened on first use and reopened
// (with backoff) when a call finds it dead. Answers come from a per-host
// cache of present domains (filled by lookups and by Refresh) while fresh;
// otherwise one lookup per VM runs in the background, shared by concurrent
// callers, and a caller waits for it at most Timeout. A lookup that
// outlives its caller still fills the cache for the next one.
type Manager struct {
	hostsCfg    map[string]string
	template    string
	timeout     time.Duration
	ttl         time.Duration
	maxInFlight int
	dialTimeout time.Duration
	rmin, rmax  time.Duration
	log         *slog.Logger
	dial        DialFunc
	now         func() time.Time

	mu     sync.Mutex
	hosts  map[string]*host
	closed bool

	confirms, hits, lookups, refreshes, dials, dialFailures, errs atomic.Uint64
}

var (
	_ verify.VMManager = (*Manager)(nil)
	_ verify.Forgetter = (*Manager)(nil)
)

// New returns a Manager. It connects to nothing until asked.
func New(cfg Config) (*Manager, error) {
	m := &Manager{
		hostsCfg:    make(map[string]string, len(cfg.Hosts)),
		template:    cfg.URITemplate,
		timeout:     cfg.Timeout,
		ttl:         cfg.CacheTTL,
		maxInFlight: cfg.MaxInFlight,
		dialTimeout: cfg.DialTimeout,
		rmin:        cfg.ReconnectMin,
		rmax:        cfg.ReconnectMax,
		log:         cfg.Logger,
		dial:        cfg.Dial,
		now:         cfg.Now,
		hosts:       make(map[string]*host),
	}
	for h, uri := range cfg.Hosts {
		if h == "" || uri == "" {
			return nil, fmt.Errorf("vmmanager: host %q has URI %q: both must be set", h, uri)
		}
		m.hostsCfg[h] = uri
	}
	if m.template != "" && !strings.Contains(m.template, "{host}") {
		return nil, fmt.Errorf("vmmanager: URITemplate %q has no {host}", m.template)
	}
	setDur(&m.timeout, DefaultTimeout)
	setDur(&m.ttl, DefaultCacheTTL)
	setDur(&m.dialTimeout, DefaultDialTimeout)
	setDur(&m.rmin, DefaultReconnectMin)
	setDur(&m.rmax, DefaultReconnectMax)
	if m.maxInFlight <= 0 {
		m.maxInFlight = DefaultMaxInFlight
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.log = m.log.With("component", "edge/vmmanager")
	if m.dial == nil {
		m.dial = dialContext
	}
	if m.now == nil {
		m.now = time.Now
	}
	return m, nil
}

func setDur(p *time.Duration, def time.Duration) {
	if *p <= 0 {
		*p = def
	}
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	return Stats{
		Confirms: m.confirms.Load(), CacheHits: m.hits.Load(),
		Lookups: m.lookups.Load(), Refreshes: m.refreshes.Load(),
		Dials: m.dials.Load(), DialFailures: m.dialFailures.Load(),
		Errors: m.errs.Load(),
	}
}

// host returns the state of host name, creating it; nil when the host is
// not managed. The error is ErrClosed.
func (m *Manager) host(name string) (*host, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if h := m.hosts[name]; h != nil {
		return h, nil
	}
	uri, ok := m.hostsCfg[name]
	if !ok && m.template != "" && validHostName(name) {
		uri, ok = strings.ReplaceAll(m.template, "{host}", name), true
	}
	if !ok {
		return nil, nil
	}
	h := &host{
		m: m, name: name, uri: uri,
		sem:     make(chan struct{}, m.maxInFlight),
		doms:    make(map[verify.UUID]*domain),
		flights: make(map[verify.UUID]*flight),
	}
	m.hosts[name] = h
	return h, nil
}

// validHostName reports whether name may be put in a URI: letters,
// digits, '-', '.' and '_' only.
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// Confirm implements verify.VMManager: it looks the domain with UUID vm
// up on host (or the domain with an interface whose 802.1Qbg instance ID
// is vm) and confirms it when it is present (running, paused, migrating
// in or out) and has an interface with MAC mac. An error means libvirt did
// not answer within Timeout (or ctx), or failed.
func (m *Manager) Confirm(ctx context.Context, hostName string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	m.confirms.Add(1)
	h, err := m.host(hostName)
	if err != nil {
		m.errs.Add(1)
		return verify.Confirmation{}, err
	}
	if h == nil {
		return verify.Confirmation{State: verify.VMAbsent, Reason: fmt.Sprintf("host %q is not managed by this VM manager", hostName)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if d := h.cached(vm, m.now()); d != nil {
		m.hits.Add(1)
		return d.confirm(mac), nil
	}
	d, err := h.wait(ctx, h.lookup(vm))
	if err == nil && d == nil {
		d, err = h.byInstance(ctx, vm)
	}
	if err != nil {
		m.errs.Add(1)
		return verify.Confirmation{}, fmt.Errorf("vmmanager: host %q: VM %s: %w", hostName, vm, err)
	}
	if d == nil {
		return verify.Confirmation{State: verify.VMAbsent, Reason: "no domain with this UUID (or interface instance ID) on the host"}, nil
	}
	return d.confirm(mac), nil
}

// Forget implements verify.Forgetter: the next Confirm for vm on host asks
// libvirt.
func (m *Manager) Forget(hostName string, vm verify.UUID) {
	m.mu.Lock()
	h := m.hosts[hostName]
	m.mu.Unlock()
	if h == nil {
		return
	}
	h.mu.Lock()
	delete(h.doms, vm)
	if id, ok := h.inst[vm]; ok {
		delete(h.doms, id)
		delete(h.inst, vm)
	}
	h.mu.Unlock()
}

// Refresh lists the active domains of host and replaces its cache with
// them (a snapshot: domains that stopped drop out). Call it at start and
// periodically to answer bursts from the cache; Confirm refreshes on its
// own only to resolve interface instance IDs.
func (m *Manager) Refresh(ctx context.Context, hostName string) error {
	h, err := m.host(hostName)
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("vmmanager: host %q is not managed", hostName)
	}
	if _, err := h.wait(ctx, h.refresh()); err != nil {
		return fmt.Errorf("vmmanager: refresh host %q: %w", hostName, err)
	}
	return nil
}

// Close closes every connection. Calls in progress finish with errors;
// later calls return ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	hosts := slices.Collect(func(yield func(*host) bool) {
		for _, h := range m.hosts {
			if !yield(h) {
				return
			}
		}
	})
	m.mu.Unlock()
	for _, h := range hosts {
		h.mu.Lock()
		h.closed = true
		if c := h.conn; c != nil {
			h.conn = nil
			h.retire(c)
		}
		h.mu.Unlock()
	}
	return nil
}

// domain is what the manager knows of one domain.
type domain struct {
	uuid   verify.UUID
	state  verify.VMState
	detail string
	macs   []verify.MAC
	insts  []verify.UUID
	at     time.Time
}

// confirm answers for mac.
func (d *domain) confirm(mac verify.MAC) verify.Confirmation {
	if !d.state.Present() {
		return verify.Confirmation{State: d.state, Reason: "the domain is " + d.detail}
	}
	if !slices.Contains(d.macs, mac) {
		return verify.Confirmation{State: d.state, Reason: fmt.Sprintf("the domain (%s) has no interface with MAC %s", d.detail, mac)}
	}
	return verify.Confirmation{Confirmed: true, State: d.state}
}

// flight is one background libvirt job whose result callers share.
type flight struct {
	done chan struct{}
	dom  *domain
	err  error
}

// conn is a shared libvirt connection, closed when it is retired and its
// last user is done (a virConnectPtr must not be used after
// virConnectClose).
type conn struct {
	c       *virt.Connect
	users   int
	retired bool
}

// host is the manager's state of one host; mu guards the fields after
// sem.
type host struct {
	m    *Manager
	name string
	uri  string
	sem  chan struct{}

	mu         sync.Mutex
	closed     bool
	conn       *conn
	dialing    *dialCall
	backoff    time.Duration
	retryAt    time.Time
	lastErr    error
	doms       map[verify.UUID]*domain
	inst       map[verify.UUID]verify.UUID // instance ID -> domain UUID
	instAt     time.Time                   // when inst was filled
	flights    map[verify.UUID]*flight
	refreshing *flight
}

// dialCall is a connection attempt in progress.
type dialCall struct {
	done chan struct{}
	conn *conn
	err  error
}

// cached returns the fresh cache entry of vm (a domain UUID or an
// interface instance ID), or nil.
func (h *host) cached(vm verify.UUID, now time.Time) *domain {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.doms[vm]
	if d == nil {
		if id, ok := h.inst[vm]; ok {
			d = h.doms[id]
		}
	}
	if d == nil || now.Sub(d.at) >= h.m.ttl {
		return nil
	}
	return d
}

// store caches d if the domain is present, and drops it otherwise; h.mu
// is held.
func (h *host) storeLocked(d *domain) {
	if d.state.Present() {
		h.doms[d.uuid] = d
	} else {
		delete(h.doms, d.uuid)
	}
}

// wait waits for f within ctx.
func (h *host) wait(ctx context.Context, f *flight) (*domain, error) {
	select {
	case <-f.done:
		return f.dom, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from %s: %w", h.uri, context.Cause(ctx))
	}
}

// lookup starts (or joins) the lookup of vm by domain UUID.
func (h *host) lookup(vm verify.UUID) *flight {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.flights[vm]; f != nil {
		return f
	}
	f := &flight{done: make(chan struct{})}
	h.flights[vm] = f
	h.m.lookups.Add(1)
	go func() {
		d, err := h.call(func(c *virt.Connect) (*domain, error) { return fetch(c, vm) })
		h.mu.Lock()
		if err == nil && d != nil {
			d.at = h.m.now()
			h.storeLocked(d)
		}
		delete(h.flights, vm)
		h.mu.Unlock()
		f.dom, f.err = d, err
		close(f.done)
	}()
	return f
}

// byInstance finds the domain that has an interface with instance ID id,
// refreshing the host's snapshot first when it is older than the cache TTL.
func (h *host) byInstance(ctx context.Context, id verify.UUID) (*domain, error) {
	h.mu.Lock()
	stale := h.m.now().Sub(h.instAt) >= h.m.ttl
	h.mu.Unlock()
	if stale {
		if _, err := h.wait(ctx, h.refresh()); err != nil {
			return nil, err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if uuid, ok := h.inst[id]; ok {
		return h.doms[uuid], nil
	}
	return nil, nil
}

// refresh starts (or joins) a listing of the host's active domains.
func (h *host) refresh() *flight {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.refreshing; f != nil {
		return f
	}
	f := &flight{done: make(chan struct{})}
	h.refreshing = f
	h.m.refreshes.Add(1)
	go func() {
		var doms []*domain
		_, err := h.call(func(c *virt.Connect) (*domain, error) {
			var err error
			doms, err = list(c)
			return nil, err
		})
		now := h.m.now()
		h.mu.Lock()
		if err == nil {
			h.doms = make(map[verify.UUID]*domain, len(doms))
			h.inst = make(map[verify.UUID]verify.UUID)
			for _, d := range doms {
				d.at = now
				h.storeLocked(d)
				for _, id := range d.insts {
					h.inst[id] = d.uuid
				}
			}
			h.instAt = now
		}
		h.refreshing = nil
		h.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// call runs fn on the host's connection, holding one of the host's call
// slots. It waits at most the manager's Timeout for a slot and a
// connection. A connection that fails a call and is no longer alive is
// retired, so the next call reconnects.
func (h *host) call(fn func(*virt.Connect) (*domain, error)) (*domain, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.m.timeout)
	defer cancel()
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ErrBusy
	}
	defer func() { <-h.sem }()
	c, err := h.acquire(ctx)
	if err != nil {
		return nil, err
	}
	d, err := fn(c.c)
	if err != nil {
		if alive, aerr := c.c.IsAlive(); aerr != nil || !alive {
			h.m.log.Warn("libvirt connection lost", "host", h.name, "uri", h.uri, "err", err)
			h.mu.Lock()
			if h.conn == c {
				h.conn = nil
			}
			h.retire(c)
			h.mu.Unlock()
		}
	}
	h.release(c)
	return d, err
}

// acquire returns the host's connection with a use counted, connecting
// when there is none.
func (h *host) acquire(ctx context.Context) (*conn, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if c := h.conn; c != nil {
		c.users++
		h.mu.Unlock()
		return c, nil
	}
	if now := h.m.now(); now.Before(h.retryAt) {
		err := h.lastErr
		h.mu.Unlock()
		return nil, fmt.Errorf("%s unreachable, next attempt in %s: %w", h.uri, h.retryAt.Sub(now).Round(time.Millisecond), err)
	}
	dc := h.dialing
	if dc == nil {
		dc = &dialCall{done: make(chan struct{})}
		h.dialing = dc
		go h.connect(dc)
	}
	h.mu.Unlock()
	select {
	case <-dc.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s: %w", h.uri, ctx.Err())
	}
	if dc.err != nil {
		return nil, dc.err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || dc.conn.retired {
		return nil, fmt.Errorf("connection to %s closed", h.uri)
	}
	dc.conn.users++
	return dc.conn, nil
}

// connect opens the host's connection for dc.
func (h *host) connect(dc *dialCall) {
	h.m.dials.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), h.m.dialTimeout)
	c, err := h.m.dial(ctx, h.uri)
	cancel()
	if err == nil {
		if kerr := c.SetKeepAlive(keepaliveInterval, keepaliveCount); kerr != nil {
			h.m.log.Debug("keepalive not enabled", "host", h.name, "err", kerr)
		}
	}
	h.mu.Lock()
	h.dialing = nil
	switch {
	case err != nil:
		h.m.dialFailures.Add(1)
		h.backoff = min(max(2*h.backoff, h.m.rmin), h.m.rmax)
		// Full jitter on the upper half, so hosts that failed together
		// do not retry together.
		wait := h.backoff/2 + rand.N(h.backoff/2+1)
		h.retryAt = h.m.now().Add(wait)
		h.lastErr = err
		dc.err = fmt.Errorf("connect to %s: %w", h.uri, err)
		h.m.log.Warn("libvirt connection failed", "host", h.name, "uri", h.uri, "retry_in", wait, "err", err)
	case h.closed:
		dc.err = ErrClosed
		_, _ = c.Close()
	default:
		h.backoff, h.retryAt, h.lastErr = 0, time.Time{}, nil
		dc.conn = &conn{c: c}
		h.conn = dc.conn
		h.m.log.Debug("libvirt connected", "host", h.name, "uri", h.uri)
	}
	h.mu.Unlock()
	close(dc.done)
}

// release ends one use of c.
func (h *host) release(c *conn) {
	h.mu.Lock()
	c.users--
	closeNow := c.retired && c.users == 0
	h.mu.Unlock()
	if closeNow {
		_, _ = c.c.Close()
	}
}

// retire marks c for closing once its last user is done; h.mu is held.
func (h *host) retire(c *conn) {
	if c.retired {
		return
	}
	c.retired = true
	if c.users == 0 {
		go func() { _, _ = c.c.Close() }()
	}
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
				_, _ = r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// fetch reads the domain with UUID vm; nil when there is none.
func fetch(c *virt.Connect, vm verify.UUID) (*domain, error) {
	dom, err := c.LookupDomainByUUID(vm[:])
	if err != nil {
		if errors.Is(err, virt.ERR_NO_DOMAIN) {
			return nil, nil
		}
		return nil, fmt.Errorf("look domain up: %w", err)
	}
	defer func() { _ = dom.Free() }()
	d, err := read(dom)
	if err != nil {
		if errors.Is(err, virt.ERR_NO_DOMAIN) {
			return nil, nil // undefined in between
		}
		return nil, err
	}
	d.uuid = vm
	return d, nil
}

// list reads every active domain.
func list(c *virt.Connect) ([]*domain, error) {
	doms, err := c.ListAllDomains(virt.CONNECT_LIST_DOMAINS_ACTIVE)
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	out := make([]*domain, 0, len(doms))
	var firstErr error
	for i := range doms {
		dom := &doms[i]
		raw, err := dom.GetUUID()
		if err == nil && len(raw) == len(verify.UUID{}) {
			var d *domain
			if d, err = read(dom); err == nil {
				d.uuid = verify.UUID(raw)
				out = append(out, d)
			}
		}
		if err != nil && !errors.Is(err, virt.ERR_NO_DOMAIN) && firstErr == nil {
			firstErr = err
		}
		_ = dom.Free()
	}
	if firstErr != nil {
		return nil, fmt.Errorf("read domains: %w", firstErr)
	}
	return out, nil
}

// read reads a domain's state and, when it is active, its interfaces and
// (when paused) its job's operation.
func read(dom *virt.Domain) (*domain, error) {
	st, reason, err := dom.GetState()
	if err != nil {
		return nil, fmt.Errorf("domain state: %w", err)
	}
	d := &domain{}
	if !active(st) {
		d.state, d.detail = classify(st, reason, 0, false)
		return d, nil
	}
	doc, err := dom.GetXMLDesc(0)
	if err != nil {
		return nil, fmt.Errorf("domain XML: %w", err)
	}
	if d.macs, d.insts, err = parseInterfaces(doc); err != nil {
		return nil, err
	}
	var op virt.DomainJobOperationType
	opKnown := false
	if st == virt.DOMAIN_PAUSED {
		// Only a paused domain's direction of migration is in doubt; a
		// driver without job statistics (the test driver) leaves it so.
		if job, err := dom.GetJobStats(0); err == nil && job.OperationSet {
			op, opKnown = job.Operation, true
		}
	}
	d.state, d.detail = classify(st, reason, op, opKnown)
	return d, nil
}
