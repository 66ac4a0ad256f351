package partition

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/agent/vnic"
)

// batchDump is the number of vNICs from which a full pass (after Open, a
// resync, a lost subscription) reads the links with one dump instead of
// one request per device. Passes over the vNICs notifications named read
// per device: a dump costs as much as the whole namespace.
const batchDump = 16

// Run watches the links of the manager's namespace and reconciles dirty
// vNICs until ctx ends: every desired vNIC right away, the ones a link
// notification names, and all of them every Resync and after the
// subscription failed (notifications may have been lost). It returns
// ctx's error.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.watch(ctx)
	t := time.NewTicker(m.cfg.Resync)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var backoff time.Duration
	var failed []string
	for {
		var err error
		if failed, err = m.reconcileDirty(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile", "err", err, "failed", len(failed))
		}
		if len(failed) > 0 {
			// Retry what failed later, not at once: a repair can fail for
			// as long as its cause lasts (the uplink gone, a foreign
			// device in the way).
			backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
			retry.Reset(backoff)
		} else {
			backoff = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.kick:
		case <-t.C:
			m.markAll()
		case <-retry.C:
			for _, id := range failed {
				m.mark(id)
			}
		}
	}
}

// watch keeps a link subscription open, marking what notifications name
// dirty; it re-subscribes (and marks everything dirty) after a failure.
func (m *Manager) watch(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch := make(chan netlink.LinkUpdate, 1024)
		done := make(chan struct{})
		opts := netlink.LinkSubscribeOptions{
			Namespace:         m.cfg.NetNS,
			ReceiveBufferSize: 4 << 20,
			ErrorCallback: func(err error) {
				if ctx.Err() == nil {
					m.log.Warn("link subscription", "err", err)
				}
			},
		}
		if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
			m.log.Warn("link subscription", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		// Anything may have changed while no subscription was open.
		m.markAll()
	read:
		for {
			select {
			case <-ctx.Done():
				close(done)
				for range ch { // the reader closes ch once its socket is closed
				}
				return
			case u, ok := <-ch:
				if !ok {
					close(done)
					break read
				}
				m.events.Add(1)
				m.noteLink(u)
			}
		}
	}
}

// noteLink marks dirty the vNICs a notification concerns: the vNIC named
// in the link's mark, the vNIC whose device name it has, and the vNICs of
// an uplink that was deleted or changed its ifindex or MTU.
func (m *Manager) noteLink(u netlink.LinkUpdate) {
	if u.Link == nil {
		return
	}
	a := u.Link.Attrs()
	if id, ok := strings.CutPrefix(a.Alias, AliasPrefix); ok {
		m.mark(id)
	}
	var ids []string
	m.imu.Lock()
	id, named := m.names[a.Name]
	if up := m.uplinks[a.Name]; up != nil {
		deleted := u.Header.Type == unix.RTM_DELLINK
		if deleted || up.index != a.Index || up.mtu != a.MTU {
			ids = slices.Collect(maps.Keys(up.ids))
		}
		if deleted {
			up.index, up.mtu = 0, 0
		} else {
			up.index, up.mtu = a.Index, a.MTU
		}
	}
	m.imu.Unlock()
	if named {
		m.mark(id)
	}
	for _, id := range ids {
		m.mark(id)
	}
}

func (m *Manager) mark(id string) {
	m.dmu.Lock()
	m.dirty[id] = true
	m.dmu.Unlock()
	m.wake()
}

func (m *Manager) markAll() {
	m.dmu.Lock()
	m.dirtyAll = true
	m.dmu.Unlock()
	m.wake()
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// takeDirty returns the dirty vNIC IDs, whether that is all of them, and
// clears the set.
func (m *Manager) takeDirty() ([]string, bool) {
	m.dmu.Lock()
	all := m.dirtyAll
	dirty := m.dirty
	m.dirty, m.dirtyAll = map[string]bool{}, false
	m.dmu.Unlock()
	if all {
		m.mu.Lock()
		ids := slices.Sorted(maps.Keys(m.desired.byID))
		m.mu.Unlock()
		return ids, true
	}
	return slices.Sorted(maps.Keys(dirty)), false
}

// reconcileDirty reads the dirty vNICs back and repairs or reports their
// drift. It returns the vNICs that failed (they are no longer dirty) and
// the first error.
func (m *Manager) reconcileDirty(ctx context.Context) ([]string, error) {
	ids, all := m.takeDirty()
	if len(ids) == 0 {
		return nil, nil
	}
	var lookup lookupFunc // nil: one request per device
	if all && len(ids) >= batchDump {
		m.mu.Lock()
		links, err := m.linkList(ctx)
		m.mu.Unlock()
		if err != nil {
			return ids, err
		}
		byName := make(map[string]netlink.Link, len(links))
		for _, l := range links {
			byName[l.Attrs().Name] = l
		}
		// The dump is a snapshot: a repair changes it, so a vNIC that is
		// repaired reads its own devices again (see reconcileOne).
		lookup = func(name string) (netlink.Link, error) {
			if l, ok := byName[name]; ok {
				return l, nil
			}
			return nil, netlink.LinkNotFoundError{}
		}
	}
	var first error
	var failed []string
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return append(failed, ids[i:]...), err
		}
		if err := m.reconcileOne(ctx, id, lookup); err != nil {
			failed = append(failed, id)
			if first == nil {
				first = err
			}
		}
	}
	return failed, first
}

// reconcileOne reads one vNIC back and acts on its drift per the policy.
func (m *Manager) reconcileOne(ctx context.Context, id string, lookup lookupFunc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.desired.byID[id]
	if !ok {
		return nil // released meanwhile
	}
	fresh := lookupFunc(m.h.LinkByName)
	snapshot := lookup != nil
	if !snapshot {
		lookup = fresh
	}
	devs, drift, err := m.convergeLocked(ctx, s, false, lookup)
	if (err != nil || len(drift) > 0) && snapshot {
		// The dump may be older than an Ensure that ran since: look again.
		devs, drift, err = m.convergeLocked(ctx, s, false, fresh)
	}
	if err != nil {
		m.recordLocked(id, devs, nil, err, false)
		return fmt.Errorf("vNIC %s: %w", id, err)
	}
	if len(drift) == 0 {
		m.recordLocked(id, devs, nil, nil, false)
		return nil
	}
	m.drifts.Add(1)
	st := m.status[id]
	if m.cfg.Drift == vnic.DriftReportOnly {
		if st == nil || !slices.Equal(st.Drift, drift) {
			m.log.Warn("drift (report-only)", "vnic", id, "devices", devs.STag, "drift", strings.Join(drift, "; "))
		}
		m.recordLocked(id, devs, drift, nil, false)
		return nil
	}
	m.log.Warn("drift, repairing", "vnic", id, "devices", devs.STag, "drift", strings.Join(drift, "; "))
	// Read fresh (not from a dump) for the repair.
	devs, _, err = m.convergeLocked(ctx, s, true, fresh)
	if err != nil {
		m.repairFailures.Add(1)
		m.recordLocked(id, devs, drift, err, false)
		return fmt.Errorf("repair vNIC %s: %w", id, err)
	}
	m.repairs.Add(1)
	m.recordLocked(id, devs, drift, nil, true)
	return nil
}
