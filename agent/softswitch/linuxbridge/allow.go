package linuxbridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/nftbridge"
)

// Names of the objects in the allow-list table. Per-port objects append
// the interface name to a prefix.
const (
	baseChainName   = "prerouting"
	portsMapName    = "ports"
	portChainPrefix = "port-"
	allowSetPrefix  = "allow-"
	accCountPrefix  = "acc-"
	dropCountPrefix = "drop-"
	// rulePrefix starts the comment of every rule written here; the
	// comment names the rule's role, so a chain changed behind our back
	// is noticed and rewritten.
	rulePrefix   = "tether/softswitch/v1 "
	roleDispatch = "dispatch"
	roleAllow    = "allow"
	roleDrop     = "drop"
	// basePriority is NF_BR_PRI_FILTER_BRIDGED: before the bridge learns
	// or forwards.
	basePriority = -200
)

// Counter is what one nftables counter has seen.
type Counter struct {
	// Packets is the number of frames.
	Packets uint64
	// Bytes is their size in bytes.
	Bytes uint64
}

// PortCounters are the allow-list's counters of one port.
type PortCounters struct {
	// Accepted counts frames whose source MAC is on the allow-list.
	Accepted Counter
	// Dropped counts frames with any other source MAC.
	Dropped Counter
}

// allowList keeps the MAC allow-lists of one bridge in an nftables
// bridge-family table:
//
//	table bridge T {
//		map ports { type ifname : verdict }              # "tap0" : jump port-tap0
//		set allow-tap0 { type ether_addr }               # the VM's MAC
//		counter acc-tap0, counter drop-tap0
//		chain prerouting { type filter hook prerouting priority -200; policy accept;
//			iifname vmap @ports }
//		chain port-tap0 {
//			ether saddr @allow-tap0 counter name acc-tap0 accept
//			counter name drop-tap0 drop }
//	}
//
// Frames from ports not in the map (the uplink, ports tether does not
// manage) pass untouched.
type allowList struct {
	netns int
	table *nftables.Table
}

func newAllowList(netns int, table string) *allowList {
	return &allowList{netns: netns, table: &nftables.Table{Name: table, Family: nftables.TableFamilyBridge}}
}

// do runs fn on a fresh nftables socket under ctx's deadline.
func (a *allowList) do(ctx context.Context, what string, fn func(*nftables.Conn) error) error {
	return a.doRaw(ctx, what, func(c *nftables.Conn, _ *netlink.Conn) error { return fn(c) })
}

// doRaw is do that also hands fn the socket itself, for the get requests
// of exists.
func (a *allowList) doRaw(ctx context.Context, what string, fn func(*nftables.Conn, *netlink.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("allow-list: %s: %w", what, err)
	}
	var nl *netlink.Conn
	c, err := nftables.New(
		nftables.AsLasting(),
		nftables.WithNetNSFd(a.netns),
		nftables.WithSockOptions(func(n *netlink.Conn) error { nl = n; return nil }),
	)
	if err != nil {
		return fmt.Errorf("allow-list: %s: open nftables socket: %w", what, err)
	}
	defer c.CloseLasting()
	if nl == nil {
		return fmt.Errorf("allow-list: %s: nftables socket not dialled", what)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nl.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = nl.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := fn(c, nl); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return fmt.Errorf("allow-list: %s: %w", what, err)
	}
	return nil
}

// Object kinds for exists.
const (
	kindTable = iota
	kindChain
	kindSet
	kindCounter
)

// exists asks the kernel whether one object of the table exists, with a
// single (not dump) get request: reading back one port costs the same
// whatever the number of ports. github.com/google/nftables's getters wrap
// errors with %v, so ENOENT could not be told from a failure through them.
func (a *allowList) exists(nl *netlink.Conn, kind int, name string) (bool, error) {
	str := func(v string) []byte { return append([]byte(v), 0) }
	var typ uint16
	var attrs []netlink.Attribute
	switch kind {
	case kindTable:
		typ, attrs = unix.NFT_MSG_GETTABLE, []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: str(a.table.Name)}}
	case kindChain:
		typ, attrs = unix.NFT_MSG_GETCHAIN, []netlink.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: str(a.table.Name)}, {Type: unix.NFTA_CHAIN_NAME, Data: str(name)}}
	case kindSet:
		typ, attrs = unix.NFT_MSG_GETSET, []netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: str(a.table.Name)}, {Type: unix.NFTA_SET_NAME, Data: str(name)}}
	case kindCounter:
		typ, attrs = unix.NFT_MSG_GETOBJ, []netlink.Attribute{
			{Type: unix.NFTA_OBJ_TABLE, Data: str(a.table.Name)},
			{Type: unix.NFTA_OBJ_NAME, Data: str(name)},
			{Type: unix.NFTA_OBJ_TYPE, Data: binary.BigEndian.AppendUint32(nil, unix.NFT_OBJECT_COUNTER)},
		}
	default:
		return false, fmt.Errorf("unknown object kind %d", kind)
	}
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return false, fmt.Errorf("encode get %s: %w", name, err)
	}
	// nfgenmsg: family, version, resource id.
	hdr := []byte{byte(a.table.Family), unix.NFNETLINK_V0, 0, 0}
	_, err = nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Request},
		Data:   append(hdr, data...),
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get %q: %w", name, err)
	}
	return true, nil
}

func (a *allowList) baseChain() *nftables.Chain {
	return nftbridge.BaseChain(a.table, baseChainName, basePriority)
}

func (a *allowList) portsMap() *nftables.Set {
	return &nftables.Set{
		Table:        a.table,
		Name:         portsMapName,
		IsMap:        true,
		KeyType:      nftables.TypeIFName,
		DataType:     nftables.TypeVerdict,
		KeyByteOrder: binaryutil.NativeEndian,
	}
}

func (a *allowList) portChain(port string) *nftables.Chain {
	return &nftables.Chain{Name: portChainPrefix + port, Table: a.table}
}

func (a *allowList) allowSet(port string) *nftables.Set {
	return &nftables.Set{Table: a.table, Name: allowSetPrefix + port, KeyType: nftables.TypeEtherAddr}
}

func (a *allowList) counter(name string) *nftables.NamedObj {
	return nftbridge.CounterObj(a.table, name)
}

func comment(role string) []byte { return nftbridge.Comment(rulePrefix + role) }

// ruleRole returns the role a rule's comment names, or "" for a rule
// without a comment of ours.
func ruleRole(r *nftables.Rule) string { return nftbridge.RoleOf(r, rulePrefix) }

// dispatchRule is the base chain's only rule: iifname vmap @ports.
func (a *allowList) dispatchRule() *nftables.Rule {
	return nftbridge.DispatchRule(a.baseChain(), portsMapName, comment(roleDispatch))
}

// portRules builds a port chain's two rules.
func (a *allowList) portRules(port string) []*nftables.Rule {
	chain := a.portChain(port)
	objref := func(name string) *expr.Objref { return &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name} }
	allow := []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6, DestRegister: 1},
		&expr.Lookup{SourceRegister: 1, SetName: allowSetPrefix + port},
		objref(accCountPrefix + port),
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	drop := []expr.Any{objref(dropCountPrefix + port), &expr.Verdict{Kind: expr.VerdictDrop}}
	return []*nftables.Rule{
		{Table: a.table, Chain: chain, Exprs: allow, UserData: comment(roleAllow + " " + port)},
		{Table: a.table, Chain: chain, Exprs: drop, UserData: comment(roleDrop + " " + port)},
	}
}

// portRoles are the comments of a port chain's rules, in order.
func portRoles(port string) []string {
	return []string{roleAllow + " " + port, roleDrop + " " + port}
}

// read is one read of the table's shared objects.
func (a *allowList) read(c *nftables.Conn) (*nftbridge.Snapshot, error) {
	return nftbridge.Read(c, a.table, a.portsMap())
}

// baseState is what one read of the table's shared objects found.
type baseState struct {
	table    bool
	dormant  bool
	portsMap bool
	chain    *nftables.Chain // nil when missing
	// problems lists what differs from the table as ensureBase writes it.
	problems []string
}

// readBase reads the table, the dispatch map and the base chain with get
// requests (no dump of the per-port objects).
func (a *allowList) readBase(c *nftables.Conn, nl *netlink.Conn) (baseState, error) {
	var b baseState
	ok, err := a.exists(nl, kindTable, a.table.Name)
	if err != nil || !ok {
		b.problems = []string{"table missing"}
		return b, err
	}
	b.table = true
	t, err := c.ListTableOfFamily(a.table.Name, a.table.Family)
	if err != nil {
		return b, fmt.Errorf("read table: %w", err)
	}
	if t.Flags&unix.NFT_TABLE_F_DORMANT != 0 {
		b.dormant = true
		b.problems = append(b.problems, "table dormant")
	}
	if b.portsMap, err = a.exists(nl, kindSet, portsMapName); err != nil {
		return b, err
	} else if !b.portsMap {
		b.problems = append(b.problems, "ports map missing")
	}
	ok, err = a.exists(nl, kindChain, baseChainName)
	if err != nil {
		return b, err
	}
	if !ok {
		b.problems = append(b.problems, "base chain missing")
		return b, nil
	}
	ch, err := c.ListChain(a.table, baseChainName)
	if err != nil {
		return b, fmt.Errorf("read base chain: %w", err)
	}
	b.chain = ch
	if !isOurBase(ch) {
		b.problems = append(b.problems, "base chain is not a prerouting filter chain at priority -200 with policy accept")
		return b, nil
	}
	rules, err := c.GetRules(a.table, ch)
	if err != nil {
		return b, fmt.Errorf("list base chain rules: %w", err)
	}
	if len(rules) != 1 || ruleRole(rules[0]) != roleDispatch {
		b.problems = append(b.problems, fmt.Sprintf("base chain has %d rules, want the dispatch rule alone", len(rules)))
	} else if got, want := nftbridge.RuleShape(rules[0]), nftbridge.RuleShape(a.dispatchRule()); got != want {
		b.problems = append(b.problems, fmt.Sprintf("dispatch rule is %q, want %q", got, want))
	}
	return b, nil
}

// isOurBase reports whether ch hooks where ensureBase puts the base chain.
func isOurBase(ch *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPrerouting &&
		ch.Priority != nil && *ch.Priority == *nftables.ChainPriorityRef(basePriority) &&
		ch.Policy != nil && *ch.Policy == nftables.ChainPolicyAccept
}

// ensureBase creates or repairs the table, the dispatch map and the base
// chain, and returns what it repaired.
func (a *allowList) ensureBase(ctx context.Context) ([]string, error) {
	var fixed []string
	err := a.doRaw(ctx, "ensure table "+a.table.Name, func(c *nftables.Conn, nl *netlink.Conn) error {
		b, err := a.readBase(c, nl)
		if err != nil || len(b.problems) == 0 {
			return err
		}
		fixed = b.problems
		// AddTable sends flags 0, which also wakes a dormant table.
		c.AddTable(a.table)
		if !b.portsMap {
			if err := c.AddSet(a.portsMap(), nil); err != nil {
				return fmt.Errorf("add ports map: %w", err)
			}
		}
		if b.chain != nil && !isOurBase(b.chain) {
			c.FlushChain(b.chain)
			c.DelChain(b.chain)
		}
		base := c.AddChain(a.baseChain())
		c.FlushChain(base)
		c.AddRule(a.dispatchRule())
		if err := c.Flush(); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
		return nil
	})
	return fixed, err
}

// portState is the allow-list of one port as read back.
type portState struct {
	// problems lists what differs from the desired allow-list; empty when
	// consistent.
	problems []string
	// macs is the port's set's contents (nil when the set is missing).
	macs []net.HardwareAddr
	// managed is whether the port is in the dispatch map; jump is where
	// its element jumps to.
	managed bool
	jump    string
	// What exists of the port's objects.
	chain, set bool
	counters   map[string]bool
}

// portJump looks the port up in the dispatch map. The map's elements are
// dumped (github.com/google/nftables has no single-element get): 16 bytes
// of key and a verdict per port.
func (a *allowList) portJump(c *nftables.Conn, port string) (string, bool, error) {
	els, err := c.GetSetElements(a.portsMap())
	if err != nil {
		return "", false, fmt.Errorf("list %s map: %w", portsMapName, err)
	}
	for _, el := range els {
		if nftbridge.PortFromIfnameKey(el.Key) == port {
			return nftbridge.JumpTarget(el.Val), true, nil
		}
	}
	return "", false, nil
}

// readPort reads one port's objects and compares them with the allow-list
// holding only mac (nil: the port must not be managed).
func (a *allowList) readPort(c *nftables.Conn, nl *netlink.Conn, b baseState, port string, mac net.HardwareAddr) (portState, error) {
	st := portState{counters: map[string]bool{}}
	if !b.table {
		if mac != nil {
			st.problems = append(st.problems, "table missing")
		}
		return st, nil
	}
	if b.portsMap {
		jump, ok, err := a.portJump(c, port)
		if err != nil {
			return st, err
		}
		st.jump, st.managed = jump, ok
	}
	var err error
	if st.chain, err = a.exists(nl, kindChain, portChainPrefix+port); err != nil {
		return st, err
	}
	if st.set, err = a.exists(nl, kindSet, allowSetPrefix+port); err != nil {
		return st, err
	}
	for _, n := range []string{accCountPrefix + port, dropCountPrefix + port} {
		if st.counters[n], err = a.exists(nl, kindCounter, n); err != nil {
			return st, err
		}
	}
	if mac == nil {
		if st.managed {
			st.problems = append(st.problems, "port is in the dispatch map")
		}
		return st, nil
	}
	switch {
	case !st.managed:
		st.problems = append(st.problems, "port missing from the dispatch map")
	case st.jump != portChainPrefix+port:
		st.problems = append(st.problems, fmt.Sprintf("dispatch map sends the port to %q, want jump %s", st.jump, portChainPrefix+port))
	}
	for _, n := range []string{accCountPrefix + port, dropCountPrefix + port} {
		if !st.counters[n] {
			st.problems = append(st.problems, "counter "+n+" missing")
		}
	}
	if !st.chain {
		st.problems = append(st.problems, "chain "+portChainPrefix+port+" missing")
	} else {
		rules, err := c.GetRules(a.table, a.portChain(port))
		if err != nil {
			return st, fmt.Errorf("list rules of %s: %w", portChainPrefix+port, err)
		}
		var roles []string
		for _, r := range rules {
			roles = append(roles, ruleRole(r))
		}
		if !slices.Equal(roles, portRoles(port)) {
			st.problems = append(st.problems, fmt.Sprintf("chain %s has rules %q, want %q", portChainPrefix+port, roles, portRoles(port)))
		} else if got, want := nftbridge.RuleShapes(rules), nftbridge.RuleShapes(a.portRules(port)); !slices.Equal(got, want) {
			// The right comments on rules that do something else.
			st.problems = append(st.problems, fmt.Sprintf("chain %s rules are %q, want %q", portChainPrefix+port, got, want))
		}
	}
	if !st.set {
		st.problems = append(st.problems, "set "+allowSetPrefix+port+" missing")
		return st, nil
	}
	els, err := c.GetSetElements(a.allowSet(port))
	if err != nil {
		return st, fmt.Errorf("list set %s: %w", allowSetPrefix+port, err)
	}
	st.macs = []net.HardwareAddr{}
	for _, el := range els {
		if len(el.Key) >= 6 {
			st.macs = append(st.macs, net.HardwareAddr(slices.Clone(el.Key[:6])))
		}
	}
	if len(st.macs) != 1 || !bytes.Equal(st.macs[0], mac) {
		st.problems = append(st.problems, fmt.Sprintf("set %s holds %v, want [%s]", allowSetPrefix+port, st.macs, mac))
	}
	return st, nil
}

// check reads the port's allow-list back without changing anything; the
// table's shared objects are checked too.
func (a *allowList) check(ctx context.Context, port string, mac net.HardwareAddr) (portState, error) {
	var st portState
	err := a.doRaw(ctx, "read "+port, func(c *nftables.Conn, nl *netlink.Conn) error {
		b, err := a.readBase(c, nl)
		if err != nil {
			return err
		}
		ps, err := a.readPort(c, nl, b, port, mac)
		st = ps
		st.problems = append(slices.Clone(b.problems), ps.problems...)
		if !b.table && mac == nil {
			st.problems = nil // no table, so no port: as desired
		}
		return err
	})
	return st, err
}

// ensure makes the port's allow-list hold mac alone, and returns what it
// repaired (nothing when it was already right). The table must exist
// (ensureBase).
func (a *allowList) ensure(ctx context.Context, port string, mac net.HardwareAddr) ([]string, error) {
	var fixed []string
	err := a.doRaw(ctx, "ensure "+port, func(c *nftables.Conn, nl *netlink.Conn) error {
		b, err := a.readBase(c, nl)
		if err != nil {
			return err
		}
		if !b.table || !b.portsMap {
			return fmt.Errorf("table or ports map missing (%s)", strings.Join(b.problems, "; "))
		}
		st, err := a.readPort(c, nl, b, port, mac)
		if err != nil || len(st.problems) == 0 {
			return err
		}
		fixed = st.problems
		set := a.allowSet(port)
		if !st.set {
			if err := c.AddSet(set, nil); err != nil {
				return fmt.Errorf("add set %s: %w", set.Name, err)
			}
		}
		c.FlushSet(set)
		if err := c.SetAddElements(set, []nftables.SetElement{{Key: slices.Clone(mac)}}); err != nil {
			return fmt.Errorf("add %s to %s: %w", mac, set.Name, err)
		}
		for _, n := range []string{accCountPrefix + port, dropCountPrefix + port} {
			if !st.counters[n] {
				c.AddObj(a.counter(n))
			}
		}
		ch := c.AddChain(a.portChain(port))
		c.FlushChain(ch)
		for _, r := range a.portRules(port) {
			c.AddRule(r)
		}
		el := []nftables.SetElement{{Key: nftbridge.IfnameKey(port), VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name}}}
		if st.managed && st.jump != ch.Name {
			if err := c.SetDeleteElements(a.portsMap(), el); err != nil {
				return fmt.Errorf("delete %s from the dispatch map: %w", port, err)
			}
		}
		if !st.managed || st.jump != ch.Name {
			if err := c.SetAddElements(a.portsMap(), el); err != nil {
				return fmt.Errorf("add %s to the dispatch map: %w", port, err)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
	return fixed, err
}

// remove takes the port's objects out of the table; a port without any is
// left alone.
func (a *allowList) remove(ctx context.Context, port string) error {
	return a.doRaw(ctx, "remove "+port, func(c *nftables.Conn, nl *netlink.Conn) error {
		b, err := a.readBase(c, nl)
		if err != nil || !b.table {
			return err
		}
		st, err := a.readPort(c, nl, b, port, nil)
		if err != nil {
			return err
		}
		n := 0
		if st.managed {
			if err := c.SetDeleteElements(a.portsMap(), []nftables.SetElement{{Key: nftbridge.IfnameKey(port)}}); err != nil {
				return fmt.Errorf("delete %s from the dispatch map: %w", port, err)
			}
			n++
		}
		if st.chain {
			c.FlushChain(a.portChain(port))
			c.DelChain(a.portChain(port))
			n++
		}
		if st.set {
			c.DelSet(a.allowSet(port))
			n++
		}
		for _, name := range []string{accCountPrefix + port, dropCountPrefix + port} {
			if st.counters[name] {
				c.DeleteObject(a.counter(name))
				n++
			}
		}
		if n == 0 {
			return nil
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
}

// managedPorts lists the ports in the dispatch map.
func (a *allowList) managedPorts(ctx context.Context) ([]string, error) {
	var out []string
	err := a.do(ctx, "list ports", func(c *nftables.Conn) error {
		s, err := a.read(c)
		if err != nil {
			return err
		}
		for p := range s.Ports {
			out = append(out, p)
		}
		// Ports whose chain exists without a map entry are half-written.
		for name := range s.Chains {
			if p, ok := strings.CutPrefix(name, portChainPrefix); ok {
				if _, in := s.Ports[p]; !in {
					out = append(out, p)
				}
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// counters reads the port's counters.
func (a *allowList) counters(ctx context.Context, port string) (PortCounters, error) {
	var pc PortCounters
	err := a.do(ctx, "read counters of "+port, func(c *nftables.Conn) error {
		s, err := a.read(c)
		if err != nil {
			return err
		}
		acc, ok1 := s.Counters[accCountPrefix+port]
		drop, ok2 := s.Counters[dropCountPrefix+port]
		if !ok1 || !ok2 {
			return fmt.Errorf("port %s has no counters", port)
		}
		pc = PortCounters{Accepted: Counter(acc), Dropped: Counter(drop)}
		return nil
	})
	return pc, err
}

// deleteTable removes the whole table (tests, uninstall).
func (a *allowList) deleteTable(ctx context.Context) error {
	return a.do(ctx, "delete table", func(c *nftables.Conn) error {
		s, err := a.read(c)
		if err != nil || !s.Table {
			return err
		}
		c.DelTable(a.table)
		return c.Flush()
	})
}
