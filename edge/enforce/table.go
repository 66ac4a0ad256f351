package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/nftbridge"
)

// snapshot is what one read of the table found (internal/nftbridge reads
// the objects tether's bridge tables share).
type snapshot = nftbridge.Snapshot

// read lists the table's chains, sets, counters and dispatch map: five
// netlink dumps, none of them sized by the number of pairs.
func (e *Enforcer) read(c *nftables.Conn) (*snapshot, error) {
	s, err := nftbridge.Read(c, e.lay.table, e.lay.portsMap())
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", e.lay.table.Name, err)
	}
	return s, nil
}

func jumpTo(chain string) *expr.Verdict {
	return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain}
}

// baseNeeds lists what the table's shared objects lack.
type baseNeeds struct {
	table       bool // missing or dormant
	controlSet  bool // missing
	controlEls  bool // elements differ
	portsMap    bool // missing
	chain       bool // missing
	chainWrong  bool // not our base chain (hook, priority, type or policy)
	rulesWrong  bool // rules differ
	description []string
}

func (n *baseNeeds) any() bool { return len(n.description) > 0 }

func (n *baseNeeds) add(flag *bool, what string) {
	*flag = true
	n.description = append(n.description, what)
}

// checkBase compares the shared objects with what they must be, without
// changing anything.
func (e *Enforcer) checkBase(c *nftables.Conn, s *snapshot) (baseNeeds, error) {
	var n baseNeeds
	if !s.Table || s.Dormant {
		n.add(&n.table, "table")
	}
	if !s.Sets[controlSetName] {
		n.add(&n.controlSet, "control set")
	} else {
		els, err := c.GetSetElements(e.lay.controlSet())
		if err != nil {
			return n, fmt.Errorf("list control set: %w", err)
		}
		var got, want [][]byte
		for _, el := range els {
			got = append(got, el.Key)
		}
		for _, el := range controlElements() {
			want = append(want, el.Key)
		}
		slices.SortFunc(got, bytes.Compare)
		slices.SortFunc(want, bytes.Compare)
		if !slices.EqualFunc(got, want, bytes.Equal) {
			n.add(&n.controlEls, "control set elements")
		}
	}
	if !s.Sets[portsMapName] {
		n.add(&n.portsMap, "ports map")
	}
	ch, ok := s.Chains[baseChainName]
	switch {
	case !ok:
		n.add(&n.chain, "base chain")
	case !isOurBaseChain(ch):
		n.add(&n.chainWrong, "base chain hook")
	default:
		rules, err := c.GetRules(e.lay.table, ch)
		if err != nil {
			return n, fmt.Errorf("read base chain: %w", err)
		}
		if len(rules) != 1 || ruleRole(rules[0]) != roleDispatch {
			n.add(&n.rulesWrong, "base chain rules")
		}
	}
	return n, nil
}

func isOurBaseChain(ch *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPrerouting &&
		ch.Priority != nil && *ch.Priority == basePriority &&
		ch.Type == nftables.ChainTypeFilter &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept
}

// fixBase creates or repairs the shared objects in one transaction.
func (e *Enforcer) fixBase(c *nftables.Conn, n baseNeeds) error {
	l := &e.lay
	// NEWTABLE on an existing table is an update; it also wakes a
	// dormant one.
	c.AddTable(l.table)
	switch {
	case n.controlSet:
		if err := c.AddSet(l.controlSet(), controlElements()); err != nil {
			return fmt.Errorf("add control set: %w", err)
		}
	case n.controlEls:
		c.FlushSet(l.controlSet())
		if err := c.SetAddElements(l.controlSet(), controlElements()); err != nil {
			return fmt.Errorf("refill control set: %w", err)
		}
	}
	if n.portsMap {
		if err := c.AddSet(l.portsMap(), nil); err != nil {
			return fmt.Errorf("add ports map: %w", err)
		}
	}
	base := l.baseChain()
	switch {
	case n.chainWrong:
		// Hook and priority of a chain cannot change: replace it, in
		// the same transaction.
		c.FlushChain(base)
		c.DelChain(base)
		c.AddChain(base)
		c.AddRule(l.dispatchRule())
	case n.chain:
		c.AddChain(base)
		c.AddRule(l.dispatchRule())
	case n.rulesWrong:
		c.FlushChain(base)
		c.AddRule(l.dispatchRule())
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set up table %s: %w", l.table.Name, err)
	}
	return nil
}

// probeBroute adds and removes, in one transaction, a chain with a rule
// that sets meta broute. The kernel refuses the whole transaction when it
// does not know the key.
func (e *Enforcer) probeBroute(c *nftables.Conn) (bool, error) {
	ch := &nftables.Chain{Name: probeChainName, Table: e.lay.table}
	c.AddChain(ch)
	c.AddRule(e.lay.probeRule(ch))
	c.FlushChain(ch)
	c.DelChain(ch)
	err := c.Flush()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		e.log.Debug("broute probe refused", "err", err)
		return false, nil
	default:
		return false, fmt.Errorf("probe meta broute: %w", err)
	}
}

// portNeeds lists what a managed port lacks.
type portNeeds struct {
	allowSet, heldSet bool
	counters          []string
	chain             bool // missing
	rulesWrong        bool
	dispatch          bool // element missing
	staleDispatch     bool // element jumps elsewhere
}

func (n *portNeeds) any() bool {
	return n.allowSet || n.heldSet || len(n.counters) > 0 || n.chain || n.rulesWrong || n.dispatch || n.staleDispatch
}

// checkPortSetup compares what a managed port needs with what s holds,
// without changing anything.
func (e *Enforcer) checkPortSetup(c *nftables.Conn, s *snapshot, port string) (portNeeds, error) {
	l := &e.lay
	var n portNeeds
	n.allowSet = !s.Sets[allowSetPrefix+port]
	n.heldSet = !s.Sets[heldSetPrefix+port]
	for _, name := range l.counterNames(port) {
		if _, ok := s.Counters[name]; !ok {
			n.counters = append(n.counters, name)
		}
	}
	chain := l.portChain(port)
	if _, ok := s.Chains[chain.Name]; ok {
		rules, err := c.GetRules(l.table, chain)
		if err != nil {
			return n, fmt.Errorf("read chain %s: %w", chain.Name, err)
		}
		want := l.portRoles()
		n.rulesWrong = len(rules) != len(want)
		for i := 0; !n.rulesWrong && i < len(rules); i++ {
			n.rulesWrong = ruleRole(rules[i]) != want[i]
		}
	} else {
		n.chain = true
	}
	if target, ok := s.Ports[port]; !ok {
		n.dispatch = true
	} else if target != chain.Name {
		n.staleDispatch = true
	}
	return n, nil
}

// fixPort creates or repairs, in one transaction, what checkPortSetup
// found missing: sets, counters, the chain with its rules, the dispatch
// element. Pairs already in the sets stay.
func (e *Enforcer) fixPort(c *nftables.Conn, port string, n portNeeds) error {
	l := &e.lay
	if n.allowSet {
		if err := c.AddSet(l.allowSet(port), nil); err != nil {
			return fmt.Errorf("add allow set: %w", err)
		}
	}
	if n.heldSet {
		if err := c.AddSet(l.heldSet(port), nil); err != nil {
			return fmt.Errorf("add held set: %w", err)
		}
	}
	for _, name := range n.counters {
		c.AddObj(l.counter(name))
	}
	chain := l.portChain(port)
	if n.chain {
		c.AddChain(chain)
	} else if n.rulesWrong {
		e.log.Warn("port chain differs from ours: rewriting it", "port", port)
		c.FlushChain(chain)
	}
	if n.chain || n.rulesWrong {
		for _, r := range l.portRules(port) {
			c.AddRule(r)
		}
	}
	el := []nftables.SetElement{{Key: nftbridge.IfnameKey(port), VerdictData: jumpTo(chain.Name)}}
	if n.staleDispatch {
		if err := c.SetDeleteElements(l.portsMap(), el); err != nil {
			return fmt.Errorf("drop stale dispatch element: %w", err)
		}
	}
	if n.dispatch || n.staleDispatch {
		if err := c.SetAddElements(l.portsMap(), el); err != nil {
			return fmt.Errorf("add dispatch element: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set up port %s: %w", port, err)
	}
	return nil
}

// removePort deletes, in one transaction, whatever exists of a port's
// dispatch element, chain, sets and counters.
func (e *Enforcer) removePort(c *nftables.Conn, s *snapshot, port string) (bool, error) {
	l := &e.lay
	changed := false
	if _, ok := s.Ports[port]; ok {
		if err := c.SetDeleteElements(l.portsMap(), []nftables.SetElement{{Key: nftbridge.IfnameKey(port)}}); err != nil {
			return false, fmt.Errorf("delete dispatch element: %w", err)
		}
		changed = true
	}
	if chain := l.portChain(port); s.Chains[chain.Name] != nil {
		c.FlushChain(chain)
		c.DelChain(chain)
		changed = true
	}
	for _, set := range []*nftables.Set{l.allowSet(port), l.heldSet(port)} {
		if s.Sets[set.Name] {
			c.DelSet(set)
			changed = true
		}
	}
	for _, name := range l.counterNames(port) {
		if _, ok := s.Counters[name]; ok {
			c.DeleteObject(l.counter(name))
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("remove port %s: %w", port, err)
	}
	return true, nil
}
