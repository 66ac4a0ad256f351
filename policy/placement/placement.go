// Package placement is the VM-manager placement writer: for each host it
// asks that host's libvirt (a remote URI such as qemu+ssh://hv1/system)
// which domains run there with which MACs, and writes policy.Placement
// records into the policy store, so that the switch's closed-loop check
// rests on the VM manager's word rather than on the agent that made the
// claim.
//
// A Writer serves one host. It is level-triggered: libvirt lifecycle
// events only mark a domain dirty; the domain is then read back (state,
// live XML, with tether's metadata labels) and its record written if it
// changed; a metadata change event marks it dirty too. Every ResyncInterval,
// and after every (re)connection, the whole host is listed and compared
// with the store: changed records are written and the records of this
// host whose VM is gone (undefined, shut off, moved away) are deleted, in
// one batch. Only active domains (running, paused, migrating) have a
// record. A domain that cannot be read, or gives no valid record, is
// reported and skipped: its record stays, the others are written.
//
// During a live migration both hosts have the domain. A record is keyed
// by VM UUID, so the two writers would overwrite each other; a writer
// therefore never replaces another host's record of state running or
// migrating-in with a weaker state of its own (paused, migrating-out), and
// never deletes another host's record.
//
// The package uses libvirt.org/go/libvirt: build with -tags
// libvirt_dlopen. Events need libvirt's process-wide event loop, which
// this package registers (once) before its first connection.
package placement

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	virt "libvirt.org/go/libvirt"

	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/policy"
)

// Sink is where placements go (tether-policyd's store).
type Sink interface {
	// Placements returns every stored placement.
	Placements(ctx context.Context) ([]policy.Placement, error)
	// ApplyPlacements writes put and deletes the placements of the VMs
	// in del that still name host.
	ApplyPlacements(ctx context.Context, host string, put []policy.Placement, del []string) error
}

// Defaults of Config's zero fields.
const (
	DefaultResyncInterval = time.Minute
	DefaultReconnectMin   = 500 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
)

// DialFunc opens a libvirt connection.
type DialFunc func(ctx context.Context, uri string) (*virt.Connect, error)

// Config configures a Writer.
type Config struct {
	// Host is the host's name, as enrolled and as placements name it.
	Host string
	// URI is the host's libvirt URI.
	URI string
	// Sink receives the placements.
	Sink Sink
	// ResyncInterval is the period of full listings
	// (DefaultResyncInterval).
	ResyncInterval time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection
	// attempts.
	ReconnectMin, ReconnectMax time.Duration
	// Dial opens the connection (default: libvirt.NewConnect).
	Dial DialFunc
	// Logger gets the logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats are a Writer's counters.
type Stats struct {
	// Connects counts connections made; Resyncs full listings; Events
	// lifecycle events received.
	Connects, Resyncs, Events uint64
	// Written and Deleted count records written and deleted.
	Written, Deleted uint64
	// Errors counts failed syncs.
	Errors uint64
}

// Writer writes one host's placements.
type Writer struct {
	cfg    Config
	log    *slog.Logger
	source string

	mu     sync.Mutex
	stored map[string]policy.Placement // the store's records as last seen or written
	dirty  map[string]bool             // UUIDs to read back

	connects, resyncs, events, written, deleted, errs atomic.Uint64
}

// New returns a Writer; Run starts it.
func New(cfg Config) (*Writer, error) {
	if err := policy.CheckName(cfg.Host); err != nil {
		return nil, fmt.Errorf("placement: host %q: %w", cfg.Host, err)
	}
	if cfg.URI == "" || cfg.Sink == nil {
		return nil, fmt.Errorf("placement: host %q: URI and Sink must be set", cfg.Host)
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = DefaultReconnectMax
	}
	if cfg.Dial == nil {
		cfg.Dial = dial
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Writer{
		cfg:    cfg,
		log:    log.With("component", "policy/placement", "host", cfg.Host),
		source: "libvirt:" + cfg.URI,
		stored: map[string]policy.Placement{},
		dirty:  map[string]bool{},
	}, nil
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Connects: w.connects.Load(), Resyncs: w.resyncs.Load(), Events: w.events.Load(),
		Written: w.written.Load(), Deleted: w.deleted.Load(), Errors: w.errs.Load(),
	}
}

// dial opens uri, giving up waiting when ctx ends (the attempt itself
// goes on in the background and its connection is closed).
func dial(ctx context.Context, uri string) (*virt.Connect, error) {
	type res struct {
		c   *virt.Connect
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := virt.NewConnect(uri)
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				_, _ = r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Run connects, syncs and follows events until ctx ends, reconnecting
// with backoff. It returns ctx's error.
func (w *Writer) Run(ctx context.Context) error {
	if err := RegisterEventLoop(); err != nil {
		w.log.Warn("libvirt events unavailable: relying on periodic resync", "err", err)
	}
	wait := w.cfg.ReconnectMin
	for ctx.Err() == nil {
		conn, err := w.cfg.Dial(ctx, w.cfg.URI)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.errs.Add(1)
			w.log.Warn("connect to libvirt failed", "uri", w.cfg.URI, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, w.cfg.ReconnectMax)
			continue
		}
		w.connects.Add(1)
		healthy := w.session(ctx, conn)
		_, _ = conn.Close()
		if healthy {
			wait = w.cfg.ReconnectMin
		}
	}
	return ctx.Err()
}

// session follows one connection until it closes or ctx ends; it reports
// whether at least one full sync succeeded.
func (w *Writer) session(ctx context.Context, conn *virt.Connect) bool {
	kick := make(chan struct{}, 1)
	closed := make(chan struct{})
	var closeOnce sync.Once
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if err := conn.RegisterCloseCallback(func(_ *virt.Connect, reason virt.ConnectCloseReason) {
		closeOnce.Do(func() { close(closed) })
	}); err == nil {
		defer func() { _ = conn.UnregisterCloseCallback() }()
	}
	if id, err := conn.DomainEventLifecycleRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventLifecycle) {
		uuid, err := d.GetUUIDString()
		if err != nil {
			return
		}
		w.events.Add(1)
		w.mu.Lock()
		w.dirty[strings.ToLower(uuid)] = true
		w.mu.Unlock()
		signal()
	}); err != nil {
		w.log.Warn("cannot follow lifecycle events: relying on periodic resync", "err", err)
	} else {
		defer func() { _ = conn.DomainEventDeregister(id) }()
	}
	// Labels live in the domain's metadata: a metadata change (virsh
	// metadata, virDomainSetMetadata) is no lifecycle event.
	if id, err := conn.DomainEventMetadataChangeRegister(nil, func(_ *virt.Connect, d *virt.Domain, _ *virt.DomainEventMetadataChange) {
		uuid, err := d.GetUUIDString()
		if err != nil {
			return
		}
		w.events.Add(1)
		w.mu.Lock()
		w.dirty[strings.ToLower(uuid)] = true
		w.mu.Unlock()
		signal()
	}); err != nil {
		w.log.Warn("cannot follow metadata events: label changes wait for the periodic resync", "err", err)
	} else {
		defer func() { _ = conn.DomainEventDeregister(id) }()
	}
	ok := false
	if err := w.Resync(ctx, conn); err != nil {
		w.log.Warn("resync failed", "err", err)
		if !alive(conn) {
			return false
		}
	} else {
		ok = true
	}
	tick := time.NewTicker(w.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ok
		case <-closed:
			w.log.Warn("libvirt connection closed")
			return ok
		case <-tick.C:
			if err := w.Resync(ctx, conn); err != nil {
				w.log.Warn("resync failed", "err", err)
				if !alive(conn) {
					return ok
				}
				continue
			}
			ok = true
		case <-kick:
			if err := w.syncDirty(ctx, conn); err != nil {
				w.log.Warn("sync after events failed", "err", err)
				if !alive(conn) {
					return ok
				}
			}
		}
	}
}

func alive(conn *virt.Connect) bool {
	a, err := conn.IsAlive()
	return err == nil && a
}

// Resync lists every domain of the host and brings the store in line:
// changed records written, this host's records of VMs not active here
// deleted, in one batch.
func (w *Writer) Resync(ctx context.Context, conn *virt.Connect) error {
	w.resyncs.Add(1)
	stored, err := w.cfg.Sink.Placements(ctx)
	if err != nil {
		w.errs.Add(1)
		return fmt.Errorf("placement: host %s: read the store: %w", w.cfg.Host, err)
	}
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		w.errs.Add(1)
		return fmt.Errorf("placement: host %s: list domains: %w", w.cfg.Host, err)
	}
	desired := make(map[string]policy.Placement, len(doms))
	// A domain that cannot be read (or gives no valid placement, such as
	// a name with a control character) costs only its own record: the
	// others are still written, and its record is not deleted (it may
	// well run here). Without its UUID nothing is deleted.
	keep := map[string]bool{}
	blind := false
	var readErrs []error
	for i := range doms {
		p, active, err := w.read(&doms[i])
		if err != nil && !errors.Is(err, virt.ERR_NO_DOMAIN) {
			readErrs = append(readErrs, err)
			if uuid, uerr := doms[i].GetUUIDString(); uerr == nil {
				keep[strings.ToLower(uuid)] = true
			} else {
				blind = true
			}
		}
		_ = doms[i].Free()
		if err == nil && active {
			desired[p.VM] = p
		}
	}
	cur := make(map[string]policy.Placement, len(stored))
	for _, p := range stored {
		cur[p.VM] = p
	}
	w.mu.Lock()
	w.stored = cur
	// A full listing answers every pending event.
	clear(w.dirty)
	w.mu.Unlock()
	var put []policy.Placement
	var del []string
	for _, p := range desired {
		if w.wants(cur, p) {
			put = append(put, p)
		}
	}
	for vm, p := range cur {
		if _, ok := desired[vm]; !ok && p.Host == w.cfg.Host && !keep[vm] && !blind {
			del = append(del, vm)
		}
	}
	err = w.apply(ctx, put, del)
	if len(readErrs) > 0 {
		w.errs.Add(1)
		err = errors.Join(err, fmt.Errorf("placement: host %s: %d domains not read: %w", w.cfg.Host, len(readErrs), errors.Join(readErrs...)))
	}
	return err
}

// syncDirty reads back the domains events marked dirty.
func (w *Writer) syncDirty(ctx context.Context, conn *virt.Connect) error {
	w.mu.Lock()
	vms := make([]string, 0, len(w.dirty))
	for vm := range w.dirty {
		vms = append(vms, vm)
	}
	clear(w.dirty)
	cur := w.stored
	w.mu.Unlock()
	var put []policy.Placement
	var del []string
	var readErrs []error
	for _, vm := range vms {
		dom, err := conn.LookupDomainByUUIDString(vm)
		active := false
		var p policy.Placement
		if err == nil {
			p, active, err = w.read(dom)
			_ = dom.Free()
		}
		if err != nil && !errors.Is(err, virt.ERR_NO_DOMAIN) {
			// Try again with the next event or resync; the others go on.
			w.mu.Lock()
			w.dirty[vm] = true
			w.mu.Unlock()
			readErrs = append(readErrs, fmt.Errorf("placement: host %s: read domain %s: %w", w.cfg.Host, vm, err))
			continue
		}
		switch {
		case active && w.wants(cur, p):
			put = append(put, p)
		case !active:
			if old, ok := cur[vm]; ok && old.Host == w.cfg.Host {
				del = append(del, vm)
			}
		}
	}
	err := w.apply(ctx, put, del)
	if len(readErrs) > 0 {
		w.errs.Add(1)
		err = errors.Join(err, errors.Join(readErrs...))
	}
	return err
}

// wants reports whether p should be written over the stored record.
func (w *Writer) wants(cur map[string]policy.Placement, p policy.Placement) bool {
	old, ok := cur[p.VM]
	if !ok {
		return true
	}
	if old.Host != p.Host && strength(old.State) > strength(p.State) {
		return false // the other host has the VM live; our copy is leaving or not started
	}
	return !same(old, p)
}

// strength orders states for the migration rule.
func strength(state string) int {
	switch state {
	case policy.StateRunning:
		return 3
	case policy.StateMigratingIn:
		return 2
	case policy.StatePaused:
		return 1
	}
	return 0
}

// same compares two records, ignoring Updated.
func same(a, b policy.Placement) bool {
	return a.VM == b.VM && a.Name == b.Name && a.Host == b.Host && a.State == b.State &&
		a.Source == b.Source && slices.Equal(a.MACs, b.MACs) && slices.Equal(a.Labels, b.Labels)
}

func (w *Writer) apply(ctx context.Context, put []policy.Placement, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	slices.SortFunc(put, func(a, b policy.Placement) int { return strings.Compare(a.VM, b.VM) })
	slices.Sort(del)
	if err := w.cfg.Sink.ApplyPlacements(ctx, w.cfg.Host, put, del); err != nil {
		w.errs.Add(1)
		// Forget what we believed of the store: the next resync reads it.
		return fmt.Errorf("placement: host %s: write %d, delete %d: %w", w.cfg.Host, len(put), len(del), err)
	}
	w.written.Add(uint64(len(put)))
	w.deleted.Add(uint64(len(del)))
	w.mu.Lock()
	next := make(map[string]policy.Placement, len(w.stored)+len(put))
	for k, v := range w.stored {
		next[k] = v
	}
	for _, p := range put {
		next[p.VM] = p
	}
	for _, vm := range del {
		delete(next, vm)
	}
	w.stored = next
	w.mu.Unlock()
	w.log.Debug("placements written", "put", len(put), "deleted", len(del))
	return nil
}

// read reads one domain: its placement, and whether it is active.
func (w *Writer) read(dom *virt.Domain) (policy.Placement, bool, error) {
	uuid, err := dom.GetUUIDString()
	if err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain UUID: %w", err)
	}
	st, reason, err := dom.GetState()
	if err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain %s state: %w", uuid, err)
	}
	state, active := classify(st, reason)
	if !active {
		return policy.Placement{}, false, nil
	}
	if st == virt.DOMAIN_PAUSED {
		if job, err := dom.GetJobStats(0); err == nil && job.OperationSet {
			switch job.Operation {
			case virt.DOMAIN_JOB_OPERATION_MIGRATION_IN:
				state = policy.StateMigratingIn
			case virt.DOMAIN_JOB_OPERATION_MIGRATION_OUT:
				state = policy.StateMigratingOut
			}
		}
	}
	doc, err := dom.GetXMLDesc(0)
	if err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain %s XML: %w", uuid, err)
	}
	name, macs, err := parseDomain(doc)
	if err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain %s XML: %w", uuid, err)
	}
	labels, err := domainLabels(doc)
	if err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain %s XML: %w", uuid, err)
	}
	p := policy.Placement{
		VM: strings.ToLower(uuid), Name: name, Host: w.cfg.Host, MACs: macs,
		State: state, Labels: labels, Source: w.source, Updated: w.cfg.Now().UTC(),
	}
	p.Name = truncateName(p.Name)
	if err := p.Validate(); err != nil {
		return policy.Placement{}, false, fmt.Errorf("domain %s: %w", uuid, err)
	}
	return p, true, nil
}

// truncateName cuts a VM name to policy.MaxVMNameLen bytes at a rune
// boundary, so that a long multi-byte name stays valid UTF-8.
func truncateName(name string) string {
	if len(name) <= policy.MaxVMNameLen {
		return name
	}
	cut := policy.MaxVMNameLen
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut]
}

// classify maps libvirt's state to a placement state; active is false for
// domains that do not run (shut off, crashed, no state).
func classify(st virt.DomainState, reason int) (state string, active bool) {
	switch st {
	case virt.DOMAIN_RUNNING, virt.DOMAIN_BLOCKED, virt.DOMAIN_SHUTDOWN, virt.DOMAIN_PMSUSPENDED:
		return policy.StateRunning, true
	case virt.DOMAIN_PAUSED:
		switch virt.DomainPausedReason(reason) {
		case virt.DOMAIN_PAUSED_MIGRATION:
			return policy.StateMigratingIn, true
		case virt.DOMAIN_PAUSED_POSTCOPY, virt.DOMAIN_PAUSED_POSTCOPY_FAILED:
			return policy.StateMigratingOut, true
		}
		return policy.StatePaused, true
	}
	return policy.StateShutOff, false
}

// domainXML is the part of a domain's XML the writer reads.
type domainXML struct {
	Name       string `xml:"name"`
	Interfaces []struct {
		MAC struct {
			Address string `xml:"address,attr"`
		} `xml:"mac"`
	} `xml:"devices>interface"`
}

// parseDomain returns the domain's name and its interfaces' MACs (lower
// case, sorted, without duplicates).
func parseDomain(doc string) (string, []string, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(doc), &d); err != nil {
		return "", nil, fmt.Errorf("parse: %w", err)
	}
	var macs []string
	for _, i := range d.Interfaces {
		if i.MAC.Address == "" {
			continue
		}
		hw, err := net.ParseMAC(i.MAC.Address)
		if err != nil || len(hw) != 6 {
			return "", nil, fmt.Errorf("interface MAC %q is not a MAC address", i.MAC.Address)
		}
		macs = append(macs, hw.String())
	}
	slices.Sort(macs)
	macs = slices.Compact(macs)
	if len(macs) > policy.MaxMACs {
		macs = macs[:policy.MaxMACs]
	}
	return d.Name, macs, nil
}

// domainLabels returns the domain's tether metadata labels as tetherd
// sees them (libvirthooks.ParseDomain, the parser the agent uses), sorted
// and without duplicates; nil when there are none. Invalid tether
// metadata fails the domain, as it does in the agent.
func domainLabels(doc string) ([]string, error) {
	d, err := libvirthooks.ParseDomain([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("tether metadata: %w", err)
	}
	if len(d.Labels) == 0 {
		return nil, nil
	}
	labels := slices.Clone(d.Labels)
	slices.Sort(labels)
	return slices.Compact(labels), nil
}

// The libvirt event loop is process-wide: virEventRegisterDefaultImpl may
// be called once, before the first connection, and one goroutine must run
// virEventRunDefaultImpl for events to be delivered. This package owns it
// in tether-policyd (nothing else there uses libvirt); eventLoop is the
// package's only global because libvirt's loop is one.
var eventLoop struct {
	once sync.Once
	err  error
}

// RegisterEventLoop installs and runs libvirt's default event loop, once per
// process; later calls return the first call's result. Run calls it; a
// program (or test) that opens libvirt connections itself before Run must
// call it first, or those connections never deliver events.
func RegisterEventLoop() error {
	eventLoop.once.Do(func() {
		if err := virt.EventRegisterDefaultImpl(); err != nil {
			eventLoop.err = fmt.Errorf("libvirt: register the default event loop: %w", err)
			return
		}
		go func() {
			for {
				if err := virt.EventRunDefaultImpl(); err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	})
	return eventLoop.err
}
