// Package nftbridge holds what tether's two nftables bridge-family tables
// share: the soft switch's MAC allow-list (agent/softswitch/linuxbridge)
// and the edge switch's enforcer (edge/enforce). Both dispatch on the
// input interface through a verdict map (ifname key -> jump to the
// port's chain), mark their rules with a comment naming each rule's role,
// and count with named counters; both read the table back from the kernel
// as the truth. This package reads such a table (one Snapshot) and
// encodes and decodes its keys, verdicts and comments.
package nftbridge

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Counter is what one named nftables counter has seen.
type Counter struct {
	// Packets is the number of frames.
	Packets uint64
	// Bytes is their size in bytes.
	Bytes uint64
}

// Snapshot is one read of a table's shared objects.
type Snapshot struct {
	// Table is whether the table exists; Dormant whether it is switched
	// off (NFT_TABLE_F_DORMANT).
	Table, Dormant bool
	// Chains are the table's chains by name.
	Chains map[string]*nftables.Chain
	// Sets are the names of the table's sets and maps.
	Sets map[string]bool
	// Counters are the table's named counters by name.
	Counters map[string]Counter
	// Ports maps each interface name in the dispatch map to the chain its
	// element jumps to ("" for any other verdict).
	Ports map[string]string
}

// Read lists table's chains, sets, named counters and the elements of
// its dispatch map portsMap: a handful of netlink dumps, none sized by
// the number of ports. A missing table is a Snapshot with Table false.
func Read(c *nftables.Conn, table *nftables.Table, portsMap *nftables.Set) (*Snapshot, error) {
	s := &Snapshot{Chains: map[string]*nftables.Chain{}, Sets: map[string]bool{}, Counters: map[string]Counter{}, Ports: map[string]string{}}
	tables, err := c.ListTablesOfFamily(table.Family)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == table.Name {
			s.Table = true
			s.Dormant = t.Flags&unix.NFT_TABLE_F_DORMANT != 0
		}
	}
	if !s.Table {
		return s, nil
	}
	chains, err := c.ListChainsOfTableFamily(table.Family)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == table.Name {
			s.Chains[ch.Name] = ch
		}
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, set := range sets {
		s.Sets[set.Name] = true
	}
	objs, err := c.GetNamedObjects(table)
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	for _, o := range objs {
		if n, ok := o.(*nftables.NamedObj); ok && n.Type == nftables.ObjTypeCounter {
			if ctr, ok := n.Obj.(*expr.Counter); ok {
				s.Counters[n.Name] = Counter{Packets: ctr.Packets, Bytes: ctr.Bytes}
			}
		}
	}
	if s.Sets[portsMap.Name] {
		els, err := c.GetSetElements(portsMap)
		if err != nil {
			return nil, fmt.Errorf("list %s map: %w", portsMap.Name, err)
		}
		for _, el := range els {
			s.Ports[PortFromIfnameKey(el.Key)] = JumpTarget(el.Val)
		}
	}
	return s, nil
}

// IfnameKey is the dispatch map's key of an interface name: IFNAMSIZ
// bytes, NUL padded (the layout of meta iifname).
func IfnameKey(port string) []byte {
	var k [unix.IFNAMSIZ]byte
	copy(k[:], port)
	return k[:]
}

// PortFromIfnameKey decodes a key IfnameKey made (or the kernel sent):
// the bytes before the first NUL.
func PortFromIfnameKey(k []byte) string {
	if i := bytes.IndexByte(k, 0); i >= 0 {
		return string(k[:i])
	}
	return string(k)
}

// JumpTarget decodes a verdict map element's value as the kernel sends it
// (the nested NFTA_VERDICT_CODE and NFTA_VERDICT_CHAIN attributes): the
// chain a jump goes to, or "" for any other or malformed verdict. It
// never panics.
func JumpTarget(val []byte) string {
	ad, err := netlink.NewAttributeDecoder(val)
	if err != nil {
		return ""
	}
	ad.ByteOrder = binary.BigEndian
	var code int32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = int32(ad.Uint32())
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || code != int32(expr.VerdictJump) {
		return ""
	}
	return chain
}

// Comment is a rule's user data holding the comment text, as nft(8)
// writes and shows it.
func Comment(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}

// CommentOf returns the comment of a rule read back, and whether it has
// one.
func CommentOf(r *nftables.Rule) (string, bool) {
	return userdata.GetString(r.UserData, userdata.TypeComment)
}
