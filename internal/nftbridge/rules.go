package nftbridge

import (
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// BaseChain is a table's base chain: a filter chain on the bridge's
// prerouting hook at priority, accepting what its rules do not decide.
func BaseChain(table *nftables.Table, name string, priority nftables.ChainPriority) *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     name,
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRef(priority),
		Policy:   &policy,
	}
}

// DispatchRule is a base chain's only rule, "iifname vmap @mapName": the
// dispatch map sends each port's frames to its own chain. userData is the
// rule's comment (Comment).
func DispatchRule(base *nftables.Chain, mapName string, userData []byte) *nftables.Rule {
	return &nftables.Rule{
		Table: base.Table,
		Chain: base,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: unix.NFT_REG_1},
			&expr.Lookup{SourceRegister: unix.NFT_REG_1, DestRegister: 0, IsDestRegSet: true, SetName: mapName},
		},
		UserData: userData,
	}
}

// CounterObj is the named counter name in table.
func CounterObj(table *nftables.Table, name string) *nftables.NamedObj {
	return &nftables.NamedObj{Table: table, Name: name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}}
}

// RoleOf returns the rest of a rule's comment after prefix: the role a
// table whose comments all start with prefix gave the rule; "" for a rule
// without such a comment.
func RoleOf(r *nftables.Rule, prefix string) string {
	c, ok := CommentOf(r)
	if !ok || !strings.HasPrefix(c, prefix) {
		return ""
	}
	return strings.TrimPrefix(c, prefix)
}
