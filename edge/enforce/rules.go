package enforce

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/internal/nftbridge"
)

// Names of the objects in the enforcer's table. Per-port objects append the
// interface name to a prefix.
const (
	baseChainName   = "prerouting"
	portsMapName    = "ports"
	controlSetName  = "control"
	portChainPrefix = "port-"
	allowSetPrefix  = "allow-"
	heldSetPrefix   = "held-"
	ctlCountPrefix  = "ctl-"
	accCountPrefix  = "acc-"
	dropCountPrefix = "drop-"
	probeChainName  = "probe-broute"
	// rulePrefix starts the comment of every rule the enforcer writes.
	// The comment names the rule's role; comparing the comments read back
	// with the ones the enforcer would write is how it notices a chain
	// that was changed behind its back, or written by an older version.
	rulePrefix = "tether/v1 "
)

// basePriority is the bridge family's filter priority
// (NF_BR_PRI_FILTER_BRIDGED).
const basePriority = -200

// Registers, as nftables numbers them: NFT_REG_1 is the first 16-byte
// register, NFT_REG32_02 the third 32-bit word of it (bytes 8 to 11), where
// the second field of a key whose first field is a MAC starts (the VID of
// a pair, the EtherType of a control set key).
const (
	reg1      = unix.NFT_REG_1
	regField2 = unix.NFT_REG32_02
	// regField3 is the fourth 32-bit word (bytes 12 to 15): the VID of a
	// pair key, whose second field is the S-VID.
	regField3 = unix.NFT_REG32_03
)

// metaKeyBRIBroute is NFT_META_BRI_BROUTE (Linux 6.4 and later): setting it
// to 1 in the bridge prerouting hook makes the bridge hand the frame to the
// port's own protocol handlers instead of bridging it, as ebtables' broute
// table did.
const metaKeyBRIBroute = 35

// EtherTypes the rules look at.
const (
	etherTypeLLDP   = 0x88cc // IEEE 802.1AB
	etherTypeECP    = 0x8940 // IEEE 802.1Qbg-2012 clause 43
	etherTypeCTag   = 0x8100 // IEEE 802.1Q C-Tag
	etherTypeSTag   = 0x88a8 // IEEE 802.1ad S-Tag
	etherTypeQinQv1 = 0x9100 // pre-standard double tagging
)

// controlDests are the IEEE 802.1 group addresses LLDP and ECP are sent to
// (IEEE 802.1AB-2016 7.1, IEEE 802.1Q-2018 8.6.3): nearest customer bridge,
// nearest non-TPMR bridge, nearest bridge.
var controlDests = [...][6]byte{
	{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00},
	{0x01, 0x80, 0xc2, 0x00, 0x00, 0x03},
	{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e},
}

// Rule roles, the comment after rulePrefix.
const (
	roleDispatch = "dispatch"
	roleControl  = "control"
	roleTagged   = "tagged"
	roleUntagged = "untagged"
	roleSTagged  = "s-channel"
	roleDrop     = "drop"
)

// layout names everything in one enforcer table.
type layout struct {
	table *nftables.Table
	// tpid is the EtherType of the tag whose VID the pairs name.
	tpid uint16
	// broute is whether control frames are brouted (handed to the port's
	// own sockets) rather than bridged.
	broute bool
}

func (l *layout) baseChain() *nftables.Chain {
	return nftbridge.BaseChain(l.table, baseChainName, basePriority)
}

func (l *layout) portChain(port string) *nftables.Chain {
	return &nftables.Chain{Name: portChainPrefix + port, Table: l.table}
}

func (l *layout) portsMap() *nftables.Set {
	return &nftables.Set{
		Table:    l.table,
		Name:     portsMapName,
		IsMap:    true,
		KeyType:  nftables.TypeIFName,
		DataType: nftables.TypeVerdict,
		// nft prints a string key only when told it is in host byte
		// order, as nft itself declares ifname keys.
		KeyByteOrder: binaryutil.NativeEndian,
	}
}

func (l *layout) controlSet() *nftables.Set {
	return &nftables.Set{
		Table:   l.table,
		Name:    controlSetName,
		KeyType: nftables.MustConcatSetType(nftables.TypeEtherAddr, nftables.TypeEtherType),
	}
}

// controlElements are the (destination MAC, EtherType) pairs the control
// rule lets through: LLDP and ECP to each of controlDests.
func controlElements() []nftables.SetElement {
	var els []nftables.SetElement
	for _, d := range controlDests {
		for _, et := range []uint16{etherTypeLLDP, etherTypeECP} {
			var k [12]byte
			copy(k[:6], d[:])
			binary.BigEndian.PutUint16(k[8:10], et)
			els = append(els, nftables.SetElement{Key: k[:]})
		}
	}
	return els
}

// pairSetType is the key type of the pair sets: a MAC, then two 16-bit
// big-endian numbers holding the S-VID (0 without an S-Tag) and the VID.
//
// nft itself would declare `typeof ether saddr . vlan id`, whose VID field
// is an integer of no fixed size that only the typeof annotation (which
// github.com/google/nftables cannot write) gives a length; without it
// `nft list ruleset` aborts (nft 1.0.6: concat_expr_msort_value assertion).
// inet_service is the fixed-size 16-bit big-endian type nft prints as a
// plain decimal number, so `nft list set bridge tether allow-eth1` shows
// "02:00:00:00:00:01 . 0 . 100". Only the type's name is borrowed.
func pairSetType() nftables.SetDatatype {
	return nftables.MustConcatSetType(nftables.TypeEtherAddr, nftables.TypeInetService, nftables.TypeInetService)
}

func (l *layout) allowSet(port string) *nftables.Set {
	return &nftables.Set{Table: l.table, Name: allowSetPrefix + port, KeyType: pairSetType(), KeyByteOrder: binaryutil.BigEndian}
}

func (l *layout) heldSet(port string) *nftables.Set {
	return &nftables.Set{Table: l.table, Name: heldSetPrefix + port, KeyType: pairSetType(), KeyByteOrder: binaryutil.BigEndian}
}

func (l *layout) counterNames(port string) [3]string {
	return [3]string{ctlCountPrefix + port, accCountPrefix + port, dropCountPrefix + port}
}

func (l *layout) counter(name string) *nftables.NamedObj { return nftbridge.CounterObj(l.table, name) }

func comment(role string) []byte {
	return nftbridge.Comment(rulePrefix + role)
}

// ruleRole returns the role a rule's comment names, or "" when the rule
// carries no comment of ours.
func ruleRole(r *nftables.Rule) string { return nftbridge.RoleOf(r, rulePrefix) }

// dispatchRule is the base chain's only rule: iifname vmap @ports.
func (l *layout) dispatchRule() *nftables.Rule {
	return nftbridge.DispatchRule(l.baseChain(), portsMapName, comment(roleDispatch))
}

// portRoles lists the comments of a port chain's rules, in order, as this
// layout writes them. The control and tagged roles name the variant so
// that a change of TPID or of broute support rewrites the chain.
func (l *layout) portRoles() []string {
	ctl := roleControl + " accept"
	if l.broute {
		ctl = roleControl + " broute"
	}
	roles := []string{ctl, fmt.Sprintf("%s %#04x", roleTagged, l.tpid), roleUntagged}
	if l.tpid == etherTypeCTag {
		roles = append(roles, roleSTagged+" tagged", roleSTagged+" untagged")
	}
	return append(roles, roleDrop)
}

// portRules builds the rules of a port's chain:
//
//	ether daddr . ether type @control counter name ctl-P [meta broute set 1] accept
//	ether type 0x8100 ether saddr . 0 . vlan id @allow-P counter name acc-P accept
//	ether type != {0x8100, 0x88a8, 0x9100} ether saddr . 0 . 0 @allow-P counter name acc-P accept
//	ether type 0x88a8 [@ll,128,16 0x8100] ether saddr . s-vid . c-vid @allow-P counter name acc-P accept
//	ether type 0x88a8 [@ll,128,16 != tags] ether saddr . s-vid . 0 @allow-P counter name acc-P accept
//	counter name drop-P drop
//
// The two S-channel rules (only with TPID 0x8100) take frames in an
// 802.1ad S-Tag, whose S-VID is the pair's SVID: with a C-Tag inside, its
// VID is the pair's VID, without one the pair's VID is 0.
func (l *layout) portRules(port string) []*nftables.Rule {
	chain := l.portChain(port)
	roles := l.portRoles()
	names := l.counterNames(port)
	allow := allowSetPrefix + port
	ll := func(off, n, reg uint32) *expr.Payload {
		return &expr.Payload{OperationType: expr.PayloadLoad, Base: expr.PayloadBaseLLHeader, Offset: off, Len: n, DestRegister: reg}
	}
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	objref := func(name string) *expr.Objref { return &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name} }

	control := []expr.Any{
		ll(0, 6, reg1),       // ether daddr
		ll(12, 2, regField2), // ether type
		&expr.Lookup{SourceRegister: reg1, SetName: controlSetName},
		objref(names[0]),
	}
	if l.broute {
		control = append(control,
			&expr.Immediate{Register: reg1, Data: []byte{1}},
			&expr.Meta{Key: metaKeyBRIBroute, SourceRegister: true, Register: reg1})
	}
	control = append(control, &expr.Verdict{Kind: expr.VerdictAccept})

	tagged := []expr.Any{
		ll(12, 2, reg1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(l.tpid)},
		ll(6, 6, reg1), // ether saddr
		&expr.Immediate{Register: regField2, Data: be16(0)},
		ll(14, 2, regField3), // TCI
		&expr.Bitwise{SourceRegister: regField3, DestRegister: regField3, Len: 2, Mask: be16(0x0fff), Xor: be16(0)},
		&expr.Lookup{SourceRegister: reg1, SetName: allow},
		objref(names[1]),
		&expr.Verdict{Kind: expr.VerdictAccept},
	}

	untagged := []expr.Any{ll(12, 2, reg1)}
	for _, et := range []uint16{etherTypeCTag, etherTypeSTag, etherTypeQinQv1} {
		untagged = append(untagged, &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: be16(et)})
	}
	untagged = append(untagged,
		ll(6, 6, reg1),
		&expr.Immediate{Register: regField2, Data: be16(0)},
		&expr.Immediate{Register: regField3, Data: be16(0)},
		&expr.Lookup{SourceRegister: reg1, SetName: allow},
		objref(names[1]),
		&expr.Verdict{Kind: expr.VerdictAccept},
	)

	drop := []expr.Any{objref(names[2]), &expr.Verdict{Kind: expr.VerdictDrop}}

	all := [][]expr.Any{control, tagged, untagged}
	if l.tpid == etherTypeCTag {
		// S-channels: the S-Tag's VID (bytes 14-15) is the S-VID; the
		// EtherType inside it (bytes 16-17) a C-Tag (its VID at 18-19) or
		// anything but a tag.
		sTag := func() []expr.Any {
			return []expr.Any{
				ll(12, 2, reg1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(etherTypeSTag)},
			}
		}
		sTagged := append(sTag(),
			ll(16, 2, reg1),
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(etherTypeCTag)},
			ll(6, 6, reg1),
			ll(14, 2, regField2),
			&expr.Bitwise{SourceRegister: regField2, DestRegister: regField2, Len: 2, Mask: be16(0x0fff), Xor: be16(0)},
			ll(18, 2, regField3),
			&expr.Bitwise{SourceRegister: regField3, DestRegister: regField3, Len: 2, Mask: be16(0x0fff), Xor: be16(0)},
			&expr.Lookup{SourceRegister: reg1, SetName: allow},
			objref(names[1]),
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
		sUntagged := append(sTag(), ll(16, 2, reg1))
		for _, et := range []uint16{etherTypeCTag, etherTypeSTag, etherTypeQinQv1} {
			sUntagged = append(sUntagged, &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: be16(et)})
		}
		sUntagged = append(sUntagged,
			ll(6, 6, reg1),
			ll(14, 2, regField2),
			&expr.Bitwise{SourceRegister: regField2, DestRegister: regField2, Len: 2, Mask: be16(0x0fff), Xor: be16(0)},
			&expr.Immediate{Register: regField3, Data: be16(0)},
			&expr.Lookup{SourceRegister: reg1, SetName: allow},
			objref(names[1]),
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
		all = append(all, sTagged, sUntagged)
	}
	all = append(all, drop)

	var rules []*nftables.Rule
	for i, ex := range all {
		rules = append(rules, &nftables.Rule{Table: l.table, Chain: chain, Exprs: ex, UserData: comment(roles[i])})
	}
	return rules
}

// probeRule is the one rule of a throw-away chain c: it sets meta broute,
// which the kernel refuses when it lacks NFT_META_BRI_BROUTE.
func (l *layout) probeRule(c *nftables.Chain) *nftables.Rule {
	return &nftables.Rule{Table: l.table, Chain: c, Exprs: []expr.Any{
		&expr.Immediate{Register: reg1, Data: []byte{1}},
		&expr.Meta{Key: metaKeyBRIBroute, SourceRegister: true, Register: reg1},
	}}
}
