package enforce

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/nftables"
)

// PortPairs is the pair state of one managed port.
type PortPairs struct {
	// Allowed pairs let their frames through.
	Allowed []Pair
	// Pending pairs are installed held back (see Enforcer.Pending) and let
	// nothing through. A pair is never in both lists: allowed wins.
	Pending []Pair
}

// State maps the name of each managed port to its pairs.
type State map[string]PortPairs

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// PortCounters are the counters of one managed port since ManagePort
// first set it up; they survive restarts of the Enforcer.
type PortCounters struct {
	// Control counts LLDP and ECP frames let through.
	Control Counter
	// Accepted counts frames from allowed pairs.
	Accepted Counter
	// Dropped counts every other frame.
	Dropped Counter
}

// SyncStats says what Sync changed.
type SyncStats struct {
	// PortsSetUp counts ports that were created or repaired.
	PortsSetUp int
	// PortsRemoved counts ports (or leftovers of ports) taken away
	// because they were not in the desired state.
	PortsRemoved int
	// Added and Removed count set elements, allowed and pending.
	Added, Removed int
}

// maxElemsPerBatch bounds the elements in one Sync transaction, keeping
// each batch well inside a netlink socket's send buffer.
const maxElemsPerBatch = 1024

// Observed reads the managed ports and their pairs back from the kernel.
// It reports what is enforced, whatever any Enforcer remembers; after a
// restart it is the starting point of reconciliation.
func (e *Enforcer) Observed(ctx context.Context) (State, error) {
	e.r.mu.Lock()
	defer e.r.mu.Unlock()
	var st State
	err := e.r.do(ctx, "read state", func(c *nftables.Conn) error {
		s, err := e.read(c)
		if err != nil {
			return err
		}
		st = State{}
		for port := range s.Ports {
			allow, held, err := e.readPairs(c, s, port)
			if err != nil {
				return err
			}
			st[port] = normalise(allow, held)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Counters reads the counters of every managed port.
func (e *Enforcer) Counters(ctx context.Context) (map[string]PortCounters, error) {
	e.r.mu.Lock()
	defer e.r.mu.Unlock()
	var out map[string]PortCounters
	err := e.r.do(ctx, "read counters", func(c *nftables.Conn) error {
		s, err := e.read(c)
		if err != nil {
			return err
		}
		out = make(map[string]PortCounters, len(s.Ports))
		for port := range s.Ports {
			n := e.lay.counterNames(port)
			out[port] = PortCounters{Control: Counter(s.Counters[n[0]]), Accepted: Counter(s.Counters[n[1]]), Dropped: Counter(s.Counters[n[2]])}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readPairs returns the raw contents of a port's allow and held sets; a
// missing set reads as empty.
func (e *Enforcer) readPairs(c *nftables.Conn, s *snapshot, port string) (allow, held []Pair, err error) {
	get := func(set *nftables.Set) ([]Pair, error) {
		if !s.Sets[set.Name] {
			return nil, nil
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("list set %s: %w", set.Name, err)
		}
		out := make([]Pair, 0, len(els))
		for _, el := range els {
			p, err := pairFromKey(el.Key)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", set.Name, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	if allow, err = get(e.lay.allowSet(port)); err != nil {
		return nil, nil, err
	}
	if held, err = get(e.lay.heldSet(port)); err != nil {
		return nil, nil, err
	}
	return allow, held, nil
}

func comparePairs(a, b Pair) int {
	if c := bytes.Compare(a.MAC[:], b.MAC[:]); c != 0 {
		return c
	}
	if a.SVID != b.SVID {
		return int(a.SVID) - int(b.SVID)
	}
	return int(a.VID) - int(b.VID)
}

// normalise turns raw set contents (or a caller's desired lists) into
// PortPairs: sorted, without duplicates, allowed winning over pending.
func normalise(allow, held []Pair) PortPairs {
	in := make(map[Pair]bool, len(allow))
	var pp PortPairs
	for _, p := range allow {
		if !in[p] {
			in[p] = true
			pp.Allowed = append(pp.Allowed, p)
		}
	}
	for _, p := range held {
		if !in[p] {
			in[p] = true
			pp.Pending = append(pp.Pending, p)
		}
	}
	slices.SortFunc(pp.Allowed, comparePairs)
	slices.SortFunc(pp.Pending, comparePairs)
	return pp
}

// portPlan is what converging one port's sets takes.
type portPlan struct {
	addAllow, addHeld, delAllow, delHeld []Pair
}

func (p portPlan) empty() bool {
	return len(p.addAllow)+len(p.addHeld)+len(p.delAllow)+len(p.delHeld) == 0
}

// planPort compares the raw set contents with the desired pairs. Pairs in
// both stay untouched. A desired pair that is pending but found allowed is
// taken out of the allow set (the caller asked for it held back); a pair
// found in both sets but desired allowed loses its stale held copy.
func planPort(allow, held []Pair, want PortPairs) portPlan {
	w := normalise(want.Allowed, want.Pending)
	wantAllow := setOf(w.Allowed)
	wantHeld := setOf(w.Pending)
	haveAllow := setOf(allow)
	haveHeld := setOf(held)
	var p portPlan
	for _, x := range w.Allowed {
		if !haveAllow[x] {
			p.addAllow = append(p.addAllow, x)
		}
	}
	for _, x := range w.Pending {
		if !haveHeld[x] {
			p.addHeld = append(p.addHeld, x)
		}
	}
	for _, x := range sortedKeys(haveAllow) {
		if !wantAllow[x] {
			p.delAllow = append(p.delAllow, x)
		}
	}
	for _, x := range sortedKeys(haveHeld) {
		if !wantHeld[x] {
			p.delHeld = append(p.delHeld, x)
		}
	}
	return p
}

func setOf(ps []Pair) map[Pair]bool {
	m := make(map[Pair]bool, len(ps))
	for _, p := range ps {
		m[p] = true
	}
	return m
}

func sortedKeys(m map[Pair]bool) []Pair {
	out := make([]Pair, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePairs)
	return out
}

// Validate checks every port name and pair in s.
func (s State) Validate() error {
	for port, pp := range s {
		if err := validPort(port); err != nil {
			return err
		}
		for _, list := range [][]Pair{pp.Allowed, pp.Pending} {
			for _, p := range list {
				if err := p.Validate(); err != nil {
					return fmt.Errorf("port %s: %w", port, err)
				}
			}
		}
	}
	return nil
}

// Sync converges the kernel to desired, the complete enforcement state:
// every port in desired is managed (created or repaired) and holds exactly
// its pairs; every port not in desired is unmanaged, so it forwards
// unfiltered (list a port with no pairs to keep it closed). Leftovers of
// ports (chains, sets, counters without a dispatch element) are swept.
//
// Sync never removes, not even briefly, a pair that desired allows: pairs
// present on both sides are not touched, and all additions are committed
// before any removal. Each port's repair is one transaction, and element
// changes go in transactions of up to 1024 elements, so a Sync
// interrupted half way leaves a state that is safe to run Sync on again.
//
// Sync compares on the reading socket and takes the change socket only
// when there is something to change, so a Sync that finds the kernel
// right does not delay Allow or Revoke. A per-pair operation that runs
// while Sync compares wins until the next Sync: desired is expected to
// reflect it.
//
// desired is validated as a whole before anything changes.
func (e *Enforcer) Sync(ctx context.Context, desired State) (SyncStats, error) {
	var st SyncStats
	if err := desired.Validate(); err != nil {
		return st, err
	}
	ports := make([]string, 0, len(desired))
	for port := range desired {
		ports = append(ports, port)
	}
	sort.Strings(ports)

	// Compare, on the reading socket.
	var (
		base      baseNeeds
		setup     = make([]bool, len(ports))
		plans     = make([]portPlan, len(ports))
		leftovers []string
	)
	e.r.mu.Lock()
	err := e.r.do(ctx, "sync: read state", func(c *nftables.Conn) error {
		s, err := e.read(c)
		if err != nil {
			return err
		}
		if base, err = e.checkBase(c, s); err != nil {
			return err
		}
		for i, port := range ports {
			n, err := e.checkPortSetup(c, s, port)
			if err != nil {
				return err
			}
			setup[i] = n.any()
			allow, held, err := e.readPairs(c, s, port)
			if err != nil {
				return err
			}
			plans[i] = planPort(allow, held, desired[port])
		}
		leftovers = leftoverPorts(s, desired)
		return nil
	})
	e.r.mu.Unlock()
	if err != nil {
		return st, err
	}
	work := base.any() || len(leftovers) > 0
	for i := range ports {
		work = work || setup[i] || !plans[i].empty()
	}
	if !work {
		return st, nil
	}

	// Change, on the change socket.
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	err = e.w.do(ctx, "sync", func(c *nftables.Conn) error {
		if base.any() {
			if err := e.ensureBase(c); err != nil {
				return err
			}
		}
		for i, port := range ports {
			if !setup[i] {
				continue
			}
			changed, err := e.ensurePort(c, port)
			if err != nil {
				return err
			}
			if changed {
				st.PortsSetUp++
			}
		}
		b := batcher{c: c}
		for i, port := range ports { // every addition first
			if err := b.queue(e.lay.allowSet(port), plans[i].addAllow, false); err != nil {
				return err
			}
			if err := b.queue(e.lay.heldSet(port), plans[i].addHeld, false); err != nil {
				return err
			}
		}
		for i, port := range ports { // then every removal
			if err := b.queue(e.lay.allowSet(port), plans[i].delAllow, true); err != nil {
				return err
			}
			if err := b.queue(e.lay.heldSet(port), plans[i].delHeld, true); err != nil {
				return err
			}
		}
		err := b.flush()
		st.Added, st.Removed = b.added, b.removed
		if err != nil || len(leftovers) == 0 {
			return err
		}
		s, err := e.read(c)
		if err != nil {
			return err
		}
		for _, port := range leftoverPorts(s, desired) {
			changed, err := e.removePort(c, s, port)
			if err != nil {
				return err
			}
			if changed {
				st.PortsRemoved++
				e.log.Info("port unmanaged: not in desired state", "port", port)
			}
		}
		return nil
	})
	if st != (SyncStats{}) {
		e.log.Info("synced", "ports_set_up", st.PortsSetUp, "ports_removed", st.PortsRemoved, "added", st.Added, "removed", st.Removed)
	}
	return st, err
}

// leftoverPorts names every port the table holds anything of (dispatch
// element, chain, set or counter) that desired does not list, sorted.
func leftoverPorts(s *snapshot, desired State) []string {
	found := map[string]bool{}
	for port := range s.Ports {
		found[port] = true
	}
	add := func(name string, prefixes ...string) {
		for _, p := range prefixes {
			if rest, ok := strings.CutPrefix(name, p); ok && rest != "" {
				found[rest] = true
			}
		}
	}
	for name := range s.Chains {
		add(name, portChainPrefix)
	}
	for name := range s.Sets {
		add(name, allowSetPrefix, heldSetPrefix)
	}
	for name := range s.Counters {
		add(name, ctlCountPrefix, accCountPrefix, dropCountPrefix)
	}
	var out []string
	for port := range found {
		if _, ok := desired[port]; !ok {
			out = append(out, port)
		}
	}
	sort.Strings(out)
	return out
}

// batcher queues element changes and commits them in transactions of at
// most maxElemsPerBatch elements.
type batcher struct {
	c       *nftables.Conn
	pending int
	// queued counts of the transaction being built, moved to added and
	// removed when it commits.
	qAdded, qRemoved int
	added, removed   int
}

func (b *batcher) queue(s *nftables.Set, pairs []Pair, del bool) error {
	for len(pairs) > 0 {
		n := min(len(pairs), max(1, maxElemsPerBatch-b.pending))
		els := make([]nftables.SetElement, n)
		for i, p := range pairs[:n] {
			els[i] = nftables.SetElement{Key: p.key()}
		}
		var err error
		if del {
			// The plan was made on another socket: an element may have
			// gone since. Deleting it if present keeps the batch from
			// failing on it.
			err = deleteIfPresent(b.c, s, els)
			b.qRemoved += n
		} else {
			err = b.c.SetAddElements(s, els)
			b.qAdded += n
		}
		if err != nil {
			return fmt.Errorf("queue elements of %s: %w", s.Name, err)
		}
		b.pending += n
		pairs = pairs[n:]
		if b.pending >= maxElemsPerBatch {
			if err := b.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *batcher) flush() error {
	if b.pending == 0 {
		return nil
	}
	if err := b.c.Flush(); err != nil {
		return fmt.Errorf("commit %d element changes: %w", b.pending, err)
	}
	b.added += b.qAdded
	b.removed += b.qRemoved
	b.pending, b.qAdded, b.qRemoved = 0, 0, 0
	return nil
}
