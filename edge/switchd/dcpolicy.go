package switchd

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
)

// DC-wide mode.
//
// With the configuration's policy: section, switchd keeps a policy/cache
// of tether-policyd's store (listed once, then fed by the store's watch,
// resumed by revision) and takes from it
//
//   - the profile of each request: the VM's port group (policy.Resolve on
//     the VM's UUID and the name of its placement record) and that group's
//     profile (PolicyProfiles); every change the cache applies is
//     re-applied to the live associations (ProfileNotifier);
//   - the VM manager's answer: the VM's placement record (which host runs
//     it, with which MACs, in which state), ahead of the file's
//     placements: and vm_managers: (PolicyVMManager);
//   - the enrolled host keys: the store's host records in addition to the
//     file's host_keys: (dckeys.go).
//
// Lookups answer from memory; only a placement the cache does not hold
// yet waits, for at most missSyncWait, for the cache to catch up with the
// store (cache.Sync, read-your-writes for a record written just before the
// claim). Until the cache's first listing arrives (etcd unreachable at
// start) switchd serves from the file's profiles and placements, and it
// switches over, re-applying every live association, once the listing is
// in. While etcd is unreachable later, the cache serves what it last
// applied.

// missSyncWait bounds the wait for the cache on a placement it misses.
const missSyncWait = 250 * time.Millisecond

// DCPolicy is switchd's DC-wide policy: the etcd client, the cache and the
// ProfileSource and VMManager over it.
type DCPolicy struct {
	cli      *clientv3.Client
	cache    *cache.Cache
	profiles *dcProfiles
	vmm      *PolicyVMManager
	log      *slog.Logger
	// keysChanged is signalled when the host records change (dckeys.go).
	keysChanged chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartDCPolicy connects to the store cfg names (without waiting for it to
// answer), runs the cache under ctx and waits up to cfg.StartWait for its
// first listing. Until that listing arrives (also past StartWait: it then
// logs a warning and goes on) the profiles come from fallback and the VM
// manager's answers from inner (either may be nil). Close stops it.
func StartDCPolicy(ctx context.Context, cfg switchconfig.Policy, fallback ProfileSource, inner verify.VMManager, log *slog.Logger) (*DCPolicy, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "edge/switchd", "policy", cfg.Endpoints)
	cli, err := newPolicyClient(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := store.New(cli, store.Options{Prefix: cfg.Prefix, Log: log})
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("switchd: policy store: %w", err)
	}
	dc := &DCPolicy{cli: cli, log: log, keysChanged: make(chan struct{}, 1)}
	pp := NewPolicyProfiles(nil)
	dc.vmm = NewPolicyVMManager(nil, inner)
	c := cache.New(st, cache.Options{Log: log, OnChange: func(ch cache.Change) {
		// A placement's state, host or MACs give no VM another profile:
		// only those changes skip the re-application.
		if dc.vmm.Observe(ch) {
			pp.OnChange(ch)
		}
		if hostsChanged(ch) {
			select {
			case dc.keysChanged <- struct{}{}:
			default:
			}
		}
	}})
	pp.c, dc.vmm.c, dc.cache = c, c, c
	dc.profiles = newDCProfiles(c.Ready(), pp, fallback)

	rctx, cancel := context.WithCancel(ctx)
	dc.cancel = cancel
	dc.wg.Add(2)
	go func() {
		defer dc.wg.Done()
		_ = c.Run(rctx)
	}()
	go func() {
		defer dc.wg.Done()
		dc.profiles.run(rctx)
	}()
	t0 := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, time.Duration(cfg.StartWait))
	err = c.WaitReady(wctx)
	wcancel()
	if err == nil {
		log.Info("policy store listed: DC-wide profiles and placements in force", "revision", c.Revision(),
			"placements", c.Len(policy.KindPlacements), "groups", c.Len(policy.KindGroups), "wait", time.Since(t0).Round(time.Millisecond))
		return dc, nil
	}
	log.Warn("policy store not listed yet: serving the configuration file's profiles and placements until it is",
		"waited", time.Since(t0).Round(time.Millisecond))
	dc.wg.Add(1)
	go func() {
		defer dc.wg.Done()
		select {
		case <-c.Ready():
			log.Info("policy store listed: switched over to DC-wide profiles and placements", "revision", c.Revision(),
				"placements", c.Len(policy.KindPlacements), "after", time.Since(t0).Round(time.Millisecond))
		case <-rctx.Done():
		}
	}()
	return dc, nil
}

// newPolicyClient builds the etcd client of cfg. It does not wait for a
// connection (clientv3 dials in the background), so an unreachable store
// does not hold switchd's start.
func newPolicyClient(cfg switchconfig.Policy, log *slog.Logger) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          time.Duration(cfg.DialTimeout),
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               etcdembed.NewZapLogger(log, slog.LevelError),
	}
	if cfg.CA != "" || cfg.Cert != "" || cfg.Key != "" {
		info := transport.TLSInfo{CertFile: cfg.Cert, KeyFile: cfg.Key, TrustedCAFile: cfg.CA}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("switchd: policy: TLS files: %w", err)
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("switchd: policy: etcd client for %v: %w", cfg.Endpoints, err)
	}
	return cli, nil
}

// Cache returns the policy cache.
func (dc *DCPolicy) Cache() *cache.Cache { return dc.cache }

// Profiles returns the ProfileSource (a ProfileNotifier) for Options.Profiles.
func (dc *DCPolicy) Profiles() ProfileSource { return dc.profiles }

// VMManager returns the VM manager for Options.VMManager.
func (dc *DCPolicy) VMManager() verify.VMManager { return dc.vmm }

// Close stops the cache and closes the etcd client.
func (dc *DCPolicy) Close() {
	dc.cancel()
	dc.wg.Wait()
	_ = dc.cli.Close()
}

// dcProfiles answers from the policy once the cache is ready and from the
// fallback (the file's profiles) before.
type dcProfiles struct {
	ready    <-chan struct{}
	policy   *PolicyProfiles
	fallback ProfileSource
	changed  chan struct{}
}

func newDCProfiles(ready <-chan struct{}, p *PolicyProfiles, fallback ProfileSource) *dcProfiles {
	return &dcProfiles{ready: ready, policy: p, fallback: fallback, changed: make(chan struct{}, 1)}
}

func (s *dcProfiles) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// Profile implements ProfileSource.
func (s *dcProfiles) Profile(ctx context.Context, req ProfileRequest) (Profile, error) {
	if s.isReady() || s.fallback == nil {
		return s.policy.Profile(ctx, req)
	}
	return s.fallback.Profile(ctx, req)
}

// Changed implements ProfileNotifier.
func (s *dcProfiles) Changed() <-chan struct{} { return s.changed }

// run forwards the policy's changes, and the fallback's until the policy
// is ready, to Changed, until ctx ends.
func (s *dcProfiles) run(ctx context.Context) {
	var fb <-chan struct{}
	if n, ok := s.fallback.(ProfileNotifier); ok {
		fb = n.Changed()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.policy.Changed():
		case <-fb:
			if s.isReady() {
				continue // the file's profiles are no longer in force
			}
		}
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

// PlacementLookup is what PolicyVMManager asks of the policy cache.
type PlacementLookup interface {
	Ready() <-chan struct{}
	Placement(vm string) (policy.Placement, bool)
	Sync(ctx context.Context) error
	Objects(kind policy.Kind) map[string]policy.Object
}

// PolicyVMManager is the VM manager of DC-wide mode: the VM's placement
// record in tether-policyd's store (written by the VM manager's placement
// writer, policy/placement: independent of the host that makes the claim)
// says which host runs the VM, with which MACs, in which state. A VM with
// no record is asked of Inner (the file's placements, libvirt); so is
// every VM until the cache's first listing.
//
// One record per VM names one host. For a live migration, the record
// moves from the source to the destination (state migrating-in there); the
// host the record named just before is then answered migrating-out with
// the MACs it had, until the record leaves migrating-in, so the source's
// association may overlap the destination's (see overlap.go).
type PolicyVMManager struct {
	c     PlacementLookup
	inner verify.VMManager

	mu   sync.Mutex
	last map[string]placed // VM -> where its record is
	prev map[string]placed // VM -> where its record was before it moved host
}

// placed is the host and MACs of a record.
type placed struct {
	host, name string
	macs       []string
}

// NewPolicyVMManager returns the manager over c, passing VMs it has no
// record of to inner (nil: absent).
func NewPolicyVMManager(c PlacementLookup, inner verify.VMManager) *PolicyVMManager {
	return &PolicyVMManager{c: c, inner: inner, last: map[string]placed{}, prev: map[string]placed{}}
}

// Observe is called with every change the cache applies (before
// PolicyProfiles' OnChange): it remembers the host a VM's record named
// before it moved to another host. It reports whether the change may give
// a VM another profile: a relisting, a change of a profile or port group,
// a placement record created or deleted, or one whose VM name changed
// (port groups match names); not a record's new state, host or MACs.
func (m *PolicyVMManager) Observe(ch cache.Change) (profiles bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch.Relisted {
		next := map[string]placed{}
		for vm, o := range m.c.Objects(policy.KindPlacements) {
			p := o.(*policy.Placement)
			next[vm] = placed{p.Host, p.Name, p.MACs}
			if old, ok := m.last[vm]; ok && old.host != p.Host {
				m.prev[vm] = old
			}
		}
		for vm := range m.prev {
			if _, ok := next[vm]; !ok {
				delete(m.prev, vm)
			}
		}
		m.last = next
		return true
	}
	for _, e := range ch.Events {
		if e.Kind != policy.KindPlacements {
			profiles = true
			continue
		}
		if e.Type == store.EventDelete {
			delete(m.last, e.Key)
			delete(m.prev, e.Key)
			profiles = true
			continue
		}
		p, ok := e.Object.(*policy.Placement)
		if !ok {
			continue
		}
		old, had := m.last[p.VM]
		if had && old.host != p.Host {
			m.prev[p.VM] = old
		}
		profiles = profiles || !had || old.name != p.Name
		m.last[p.VM] = placed{p.Host, p.Name, slices.Clone(p.MACs)}
	}
	return profiles
}

// ready reports whether the cache has its first listing.
func (m *PolicyVMManager) ready() bool {
	select {
	case <-m.c.Ready():
		return true
	default:
		return false
	}
}

// Confirm implements verify.VMManager.
func (m *PolicyVMManager) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	if !m.ready() {
		return m.askInner(ctx, host, vm, mac, "the policy store is not listed yet")
	}
	id := vm.String()
	p, ok := m.c.Placement(id)
	if !ok {
		// Written just before the claim? Catch up, briefly.
		sctx, cancel := context.WithTimeout(ctx, missSyncWait)
		if m.c.Sync(sctx) == nil {
			p, ok = m.c.Placement(id)
		}
		cancel()
	}
	if !ok {
		return m.askInner(ctx, host, vm, mac, "no placement record of the VM in the policy store")
	}
	macStr := mac.String()
	if p.Host != host {
		m.mu.Lock()
		was, moved := m.prev[id]
		m.mu.Unlock()
		if moved && was.host == host && p.State == policy.StateMigratingIn && slices.Contains(was.macs, macStr) {
			return verify.Confirmation{Confirmed: true, State: verify.VMMigratingOut}, nil
		}
		return verify.Confirmation{State: verify.VMAbsent,
			Reason: fmt.Sprintf("the policy store's placement record puts the VM on host %q (%s)", p.Host, p.State)}, nil
	}
	st := policyState(p.State)
	switch {
	case !st.Present():
		return verify.Confirmation{State: st, Reason: "the placement record says " + p.State}, nil
	case !slices.Contains(p.MACs, macStr):
		return verify.Confirmation{State: st, Reason: fmt.Sprintf("the placement record (%s) has no MAC %s", p.State, macStr)}, nil
	}
	return verify.Confirmation{Confirmed: true, State: st}, nil
}

// askInner passes a question to the inner manager.
func (m *PolicyVMManager) askInner(ctx context.Context, host string, vm verify.UUID, mac verify.MAC, why string) (verify.Confirmation, error) {
	if m.inner == nil {
		return verify.Confirmation{State: verify.VMAbsent, Reason: why}, nil
	}
	return m.inner.Confirm(ctx, host, vm, mac)
}

// Forget implements verify.Forgetter for the inner manager (the cache is
// never stale by more than the watch's delay).
func (m *PolicyVMManager) Forget(host string, vm verify.UUID) {
	if f, ok := m.inner.(verify.Forgetter); ok {
		f.Forget(host, vm)
	}
}

// Refresh passes the inner manager's warm-up through.
func (m *PolicyVMManager) Refresh(ctx context.Context, host string) error {
	if r, ok := m.inner.(refresher); ok {
		return r.Refresh(ctx, host)
	}
	return nil
}

// policyState maps a placement record's state to the verifier's.
func policyState(s string) verify.VMState {
	switch s {
	case policy.StateRunning:
		return verify.VMRunning
	case policy.StatePaused:
		return verify.VMPaused
	case policy.StateMigratingIn:
		return verify.VMMigratingIn
	case policy.StateMigratingOut:
		return verify.VMMigratingOut
	case policy.StateShutOff:
		return verify.VMInactive
	}
	return verify.VMAbsent
}
