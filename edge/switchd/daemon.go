package switchd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// Enforcer is the part of edge/enforce's *Enforcer that switchd drives;
// tests replace it at this boundary.
type Enforcer interface {
	ManagePort(ctx context.Context, port string) error
	Allow(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error
	Pending(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error
	Activate(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error
	Revoke(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error
	Sync(ctx context.Context, desired enforce.State) (enforce.SyncStats, error)
	Observed(ctx context.Context) (enforce.State, error)
	Counters(ctx context.Context) (map[string]enforce.PortCounters, error)
	Broute() bool
}

var _ Enforcer = (*enforce.Enforcer)(nil)

// PortConns are the open sockets of one port.
type PortConns struct {
	// Interface describes the port (its MAC is the source of what
	// switchd sends).
	Interface rawsock.Interface
	// LLDP carries EtherType 0x88cc, ECP EtherType 0x8940.
	LLDP rawsock.Conn
	ECP  ecp.Link
	// Close closes both.
	Close func() error
}

// Options configures a Daemon. Config (with Name set), Key, SignCounters,
// ReplayCounters, VMManager, Enforcer and OpenPort are required; ListPorts
// too when Config.Ports.All.
type Options struct {
	// Config is the validated configuration.
	Config switchconfig.Config
	// Version is reported by the API and in LLDP.
	Version string
	// Key is the switch's signing key.
	Key *identity.PrivateKey
	// SignCounters and ReplayCounters persist the signer's counters and
	// the verifier's replay marks; two different stores.
	SignCounters, ReplayCounters identity.CounterStore
	// HostKeys are the enrolled host keys, by host name.
	HostKeys map[string]ed25519.PublicKey
	// VMManager confirms VMs on hosts.
	VMManager verify.VMManager
	// Locations is the table of live MACs; nil means one in memory (this
	// switch only).
	Locations verify.Locations
	// Enforcer programs the ports.
	Enforcer Enforcer
	// OpenPort opens a port's LLDP and ECP sockets.
	OpenPort func(ctx context.Context, port string) (PortConns, error)
	// OpenSChannel opens the ECP link of an S-channel CDCP assigned
	// (schannel.go); nil serves VDP on the default S-channel only.
	OpenSChannel SChannelOpener
	// ListPorts lists the bridge's ports (Config.Ports.All).
	ListPorts func(ctx context.Context) ([]string, error)
	// Logger receives the logs (default slog.Default()), with
	// component=edge/switchd.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PortRetry is the wait before reopening a port's sockets (default 2s).
	PortRetry time.Duration
	// ScanInterval is how often the bridge's ports are listed again when
	// every port is managed (default 5s).
	ScanInterval time.Duration
	// ReconcileInterval is how often each port's associations are
	// compared with its VDP bridge and LLDP neighbour (default 2s).
	ReconcileInterval time.Duration
	// LLDPTxInterval is msgTxInterval (0: lldpagent's default, 30 s).
	LLDPTxInterval time.Duration
	// MaxGrace caps the restart grace period after a station's EVB TLV
	// asked for a longer keep-alive (default 10 minutes).
	MaxGrace time.Duration
	// Profiles gives the profile of every accepted request (default:
	// StaticProfiles of Config.Profiles); one that implements
	// ProfileNotifier has its changes re-applied to live associations.
	Profiles ProfileSource
	// NeighbourWait is how long a request on a port whose LLDP neighbour
	// is not known yet waits for it before being verified (default 3s).
	NeighbourWait time.Duration
}

// Daemon is tether-switchd's logic: one port per managed bridge port, the
// verifier, the enforcer, the association table and the local API's data.
// Create it with New, then call Run.
type Daemon struct {
	cfg     switchconfig.Config
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	cid     wire.OUI
	evbCfg  evb.Config
	cdcpCfg evb.CDCPBridgeConfig

	key        *identity.PrivateKey
	signer     *identity.Signer
	keys       *verify.StaticKeys
	verifier   *verify.Verifier
	vmm        *vmmRecorder
	neighbours verify.Neighbours

	enf   Enforcer
	enfMu sync.RWMutex // per-pair changes share it; Sync holds it alone

	tbl *table
	str *stripes
	rej *rejects
	lat *latencies

	started time.Time

	mu        sync.Mutex
	ports     map[string]*port
	graceEnd  time.Time
	graceDone bool
	inherited enforce.State
	removed   int
	synced    chan struct{}
}

// New checks opts and builds a Daemon; nothing runs until Run.
func New(opts Options) (*Daemon, error) {
	cfg := opts.Config
	switch {
	case cfg.Name == "":
		return nil, errors.New("switchd: Config.Name is required")
	case opts.Key == nil:
		return nil, errors.New("switchd: Options.Key is required")
	case opts.SignCounters == nil || opts.ReplayCounters == nil:
		return nil, errors.New("switchd: Options.SignCounters and ReplayCounters are required")
	case opts.VMManager == nil:
		return nil, errors.New("switchd: Options.VMManager is required")
	case opts.Enforcer == nil:
		return nil, errors.New("switchd: Options.Enforcer is required")
	case opts.OpenPort == nil:
		return nil, errors.New("switchd: Options.OpenPort is required")
	case cfg.Ports.All && opts.ListPorts == nil:
		return nil, errors.New("switchd: Options.ListPorts is required to manage every port")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("switchd: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PortRetry <= 0 {
		opts.PortRetry = 2 * time.Second
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = 5 * time.Second
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = 2 * time.Second
	}
	if opts.MaxGrace <= 0 {
		opts.MaxGrace = 10 * time.Minute
	}
	if opts.NeighbourWait <= 0 {
		opts.NeighbourWait = 3 * time.Second
	}
	d := &Daemon{
		cfg:  cfg,
		opts: opts,
		log:  opts.Logger.With("component", "edge/switchd", "switch", cfg.Name),
		now:  opts.Now,
		cid:  wire.OUI(cfg.CID),
		evbCfg: evb.Config{RR: cfg.EVB.ReflectiveRelay, GroupID: false,
			R: cfg.EVB.R, RTE: cfg.EVB.RTE, RWD: cfg.EVB.RWD, RKA: cfg.EVB.RKA},
		cdcpCfg: evb.CDCPBridgeConfig{ChnCap: cfg.CDCP.Channels, FirstSVID: cfg.CDCP.FirstSVID, LastSVID: cfg.CDCP.LastSVID},
		key:     opts.Key,
		enf:     opts.Enforcer,
		tbl:     newTable(),
		str:     newStripes(),
		rej:     newRejects(cfg.RejectsKept),
		lat:     newLatencies(4096),
		ports:   make(map[string]*port),
		synced:  make(chan struct{}),
	}
	signer, err := identity.NewSigner(opts.Key, opts.SignCounters, identity.SignerOptions{CID: d.cid})
	if err != nil {
		return nil, fmt.Errorf("switchd: signer: %w", err)
	}
	d.signer = signer
	var ens []verify.Enrolment
	for _, h := range sortedHosts(opts.HostKeys) {
		ens = append(ens, verify.Enrolment{Host: h, Public: opts.HostKeys[h]})
	}
	keys, err := verify.NewStaticKeys(ens...)
	if err != nil {
		return nil, fmt.Errorf("switchd: host keys: %w", err)
	}
	d.keys = keys
	d.vmm = &vmmRecorder{inner: opts.VMManager, last: make(map[vmmKey]verify.Confirmation)}
	d.neighbours = verify.NeighboursFromLLDP(func(name string) []lldpagent.Neighbor {
		d.mu.Lock()
		p := d.ports[name]
		d.mu.Unlock()
		if p == nil {
			return nil
		}
		return p.neighbors()
	})
	d.verifier, err = verify.New(verify.Config{
		Switch:     cfg.Name,
		Keys:       keys,
		Replay:     opts.ReplayCounters,
		CID:        d.cid,
		Neighbours: d.neighbours,
		VMManager:  d.vmm,
		Locations:  opts.Locations,
		VMTimeout:  time.Duration(cfg.VMManagerTimeout),
		Logger:     opts.Logger,
		Now:        opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("switchd: verifier: %w", err)
	}
	return d, nil
}

func sortedHosts(m map[string]ed25519.PublicKey) []string {
	hs := make([]string, 0, len(m))
	for h := range m {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	return hs
}

// SetHostKeys replaces the enrolled host keys (tether-switchd reloads them
// on SIGHUP). Associations verified under a key that is no longer enrolled
// for the same host end at once (their station is told with DE-ASSOCIATE);
// the ports' LLDP neighbours signed by it are removed at once, and its
// LLDPDUs are refused from the next one.
func (d *Daemon) SetHostKeys(ctx context.Context, hostKeys map[string]ed25519.PublicKey) error {
	want := make(map[identity.KeyID]verify.Enrolment, len(hostKeys))
	for _, h := range sortedHosts(hostKeys) {
		id := identity.KeyIDOf(hostKeys[h])
		if other, dup := want[id]; dup {
			return fmt.Errorf("switchd: hosts %q and %q have the same key %s", other.Host, h, id)
		}
		want[id] = verify.Enrolment{Host: h, Public: hostKeys[h]}
	}
	d.mu.Lock()
	old := d.opts.HostKeys
	d.opts.HostKeys = hostKeys
	d.mu.Unlock()
	gone := map[identity.KeyID]string{}
	for h, pub := range old {
		id := identity.KeyIDOf(pub)
		if e, ok := want[id]; !ok || e.Host != h {
			gone[id] = h
			d.keys.Revoke(id)
		}
	}
	for _, e := range want {
		if err := d.keys.Enrol(e); err != nil {
			return fmt.Errorf("switchd: enrol the key of %s: %w", e.Host, err)
		}
	}
	d.log.Info("host keys reloaded", "enrolled", len(want), "revoked", len(gone))
	for _, r := range d.tbl.all() {
		h, revoked := gone[r.signer]
		if !revoked || h != r.host {
			continue
		}
		d.mu.Lock()
		p := d.ports[r.port]
		d.mu.Unlock()
		if p == nil {
			continue
		}
		k := recKey{r.port, r.key}
		mu := d.str.of(k)
		mu.Lock()
		p.dropLocked(ctx, k, r.gen, fmt.Sprintf("key %s of host %q is no longer enrolled", r.signer, r.host), true)
		mu.Unlock()
	}
	// A port's last LLDPDU refused for an unknown key may be from a host
	// enrolled now: its neighbour need not wait for its next LLDPDU. And
	// a neighbour verified under a revoked key is lost at once, not when
	// its TTL ends (up to 120 s): its LLDP agent reports it removed, and
	// the port's worker tears down what is left of that host's
	// associations there, as for any lost neighbour.
	d.mu.Lock()
	ports := slices.Collect(maps.Values(d.ports))
	d.mu.Unlock()
	for _, p := range ports {
		p.forgetLLDP(gone)
		p.recheckLLDP()
	}
	return nil
}

// capability is the tether capability TLV switchd advertises.
func (d *Daemon) capability() *wire.TetherCapability {
	c := &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleSwitchAgent, KeyID: d.key.ID()}
	if d.cfg.RequireSigned {
		c.Flags |= wire.TetherFlagRequiresSignature
	}
	return c
}

// Synced is closed once the restart grace period is over and the first
// synchronization of the enforcer with the associations has run.
func (d *Daemon) Synced() <-chan struct{} { return d.synced }

// Run runs the daemon until ctx ends: it reads what an earlier instance
// left in the enforcer (kept, see the package documentation), puts every
// managed port under enforcement, runs the ports, and after the grace
// period synchronizes the enforcer with the re-learnt associations, then
// again every ResyncInterval. It returns nil when ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = d.now()
	obs, err := d.enf.Observed(ctx)
	if err != nil {
		return fmt.Errorf("switchd: read the enforcer's state: %w", err)
	}
	n := 0
	for _, pp := range obs {
		n += len(pp.Allowed) + len(pp.Pending)
	}
	grace := d.cfg.Grace()
	d.mu.Lock()
	d.inherited = obs
	d.graceEnd = d.started.Add(grace)
	d.mu.Unlock()
	d.log.Info("switchd starting", "bridge", d.cfg.Bridge, "key", d.key.ID().String(), "inherited_pairs", n,
		"grace", grace, "broute", d.enf.Broute())

	var wg sync.WaitGroup
	defer wg.Wait()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.scan(pctx, &wg); err != nil {
		d.log.Error("list the bridge's ports", "err", err)
	}
	d.warmVMManagers(pctx, &wg)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchProfiles(pctx)
	}()

	scan := time.NewTicker(d.opts.ScanInterval)
	defer scan.Stop()
	if !d.cfg.Ports.All {
		scan.Stop()
	}
	graceTimer := time.NewTimer(grace)
	defer graceTimer.Stop()
	var resync <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			cancel()
			return nil
		case <-scan.C:
			if err := d.scan(pctx, &wg); err != nil {
				d.log.Error("list the bridge's ports", "err", err)
			}
		case <-graceTimer.C:
			d.mu.Lock()
			wait := d.graceEnd.Sub(d.now())
			d.mu.Unlock()
			if wait > 0 {
				graceTimer.Reset(wait) // a station asked for a longer keep-alive
				continue
			}
			d.sync(ctx, true)
			t := time.NewTicker(time.Duration(d.cfg.ResyncInterval))
			defer t.Stop()
			resync = t.C
		case <-resync:
			d.sync(ctx, false)
		}
	}
}

// refresher is implemented by VM managers that can list a host's domains
// in advance (edge/vmmanager).
type refresher interface {
	Refresh(ctx context.Context, host string) error
}

// warmVMManagers connects to every configured host's VM manager in the
// background, so that the first request after a start (typically every
// station's keep-alive after a restart) does not wait for a connection.
func (d *Daemon) warmVMManagers(ctx context.Context, wg *sync.WaitGroup) {
	r, ok := d.opts.VMManager.(refresher)
	if !ok {
		return
	}
	for host := range d.cfg.VMManagers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := r.Refresh(rctx, host); err != nil && ctx.Err() == nil {
				d.log.Warn("VM manager not reachable yet", "host", host, "err", err)
			}
		}()
	}
}

// scan starts the ports that should be managed and are not, and stops
// those that should not (when every port of the bridge is managed and one
// left it).
func (d *Daemon) scan(ctx context.Context, wg *sync.WaitGroup) error {
	want := d.cfg.Ports.Names
	if d.cfg.Ports.All {
		names, err := d.opts.ListPorts(ctx)
		if err != nil {
			return err
		}
		want = names
	}
	d.mu.Lock()
	var start []*port
	var stop []*port
	for _, name := range want {
		if !switchconfig.ValidIfname(name) {
			continue
		}
		if _, ok := d.ports[name]; !ok {
			p := newPort(d, name)
			d.ports[name] = p
			start = append(start, p)
		}
	}
	for name, p := range d.ports {
		if !slices.Contains(want, name) {
			delete(d.ports, name)
			stop = append(stop, p)
		}
	}
	d.mu.Unlock()
	for _, p := range start {
		// Enforcement first: from here on the port passes only control
		// frames and the pairs it already held.
		d.enfMu.RLock()
		err := d.enf.ManagePort(ctx, p.name)
		d.enfMu.RUnlock()
		if err != nil {
			d.log.Error("put the port under enforcement", "port", p.name, "err", err)
		}
		pctx, cancel := context.WithCancel(ctx)
		p.cancel = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(pctx)
		}()
		d.log.Info("port managed", "port", p.name)
	}
	for _, p := range stop {
		d.log.Info("port left the bridge: no longer managed", "port", p.name)
		p.cancel()
		<-p.done
		p.dropAll(ctx, "the port left the bridge", false)
	}
	return nil
}

// managed returns the names of the managed ports, sorted.
func (d *Daemon) managed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.ports))
	for n := range d.ports {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// extendGrace pushes the end of the grace period to twice keepAlive after
// start, when it is still running: a station negotiated a longer keep-alive
// than the configuration's and may take that long to repeat its requests.
func (d *Daemon) extendGrace(keepAlive time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.graceDone {
		return
	}
	end := d.started.Add(min(2*keepAlive, d.opts.MaxGrace))
	if end.After(d.graceEnd) {
		d.log.Info("restart grace period extended for a longer keep-alive", "until", end)
		d.graceEnd = end
	}
}

// sync converges the enforcer with the associations: every managed port
// holds exactly the pairs of its records. Per-pair changes wait meanwhile,
// so no pair installed concurrently is taken for a leftover.
func (d *Daemon) sync(ctx context.Context, first bool) {
	d.enfMu.Lock()
	desired := d.tbl.desired(d.managed())
	st, err := d.enf.Sync(ctx, desired)
	d.enfMu.Unlock()
	if err != nil {
		d.log.Error("synchronize the enforcer", "err", err)
	}
	if !first {
		if st.Added+st.Removed+st.PortsRemoved > 0 {
			d.log.Warn("enforcer drift repaired", "added", st.Added, "removed", st.Removed, "ports_set_up", st.PortsSetUp,
				"ports_removed", st.PortsRemoved)
		}
		return
	}
	removed := 0
	d.mu.Lock()
	for port, pp := range d.inherited {
		want := desired[port]
		for _, pr := range pp.Allowed {
			if !slices.Contains(want.Allowed, pr) {
				removed++
			}
		}
		for _, pr := range pp.Pending {
			if !slices.Contains(want.Pending, pr) && !slices.Contains(want.Allowed, pr) {
				removed++
			}
		}
	}
	d.removed, d.graceDone = removed, true
	d.mu.Unlock()
	d.log.Info("restart grace period over: enforcer synchronized with the re-learnt associations",
		"stale_pairs_removed", removed, "added", st.Added, "removed", st.Removed, "err", err)
	close(d.synced)
}

// vmmKey names one VM manager answer.
type vmmKey struct {
	host string
	vm   verify.UUID
	mac  verify.MAC
}

// vmmRecorder passes the verifier's questions on and remembers the last
// answer to each, so that GET /v1/switch/vms can say what the VM manager
// confirmed.
type vmmRecorder struct {
	inner verify.VMManager
	mu    sync.Mutex
	last  map[vmmKey]verify.Confirmation
}

// Confirm implements verify.VMManager.
func (r *vmmRecorder) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	c, err := r.inner.Confirm(ctx, host, vm, mac)
	if err == nil {
		r.mu.Lock()
		if len(r.last) > 1<<16 {
			clear(r.last)
		}
		r.last[vmmKey{host, vm, mac}] = c
		r.mu.Unlock()
	}
	return c, err
}

// Forget implements verify.Forgetter when the VM manager does.
func (r *vmmRecorder) Forget(host string, vm verify.UUID) {
	if f, ok := r.inner.(verify.Forgetter); ok {
		f.Forget(host, vm)
	}
}

// describe says what the VM manager last confirmed about vm on host.
func (r *vmmRecorder) describe(host string, vm verify.UUID, mac verify.MAC) string {
	r.mu.Lock()
	c, ok := r.last[vmmKey{host, vm, mac}]
	r.mu.Unlock()
	if !ok {
		return "confirmed on " + host
	}
	return fmt.Sprintf("%s on %s with %s", c.State, host, mac)
}
