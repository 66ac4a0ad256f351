package nftbridge

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// RuleShape describes what a rule does, expression by expression, in a
// form that is the same for a rule as built and as the kernel sends it
// back: what it loads (meta key, payload base, offset and length), which
// set or map it looks up, which named object it references and its
// verdict. Two rules with the same comment but different shapes are drift
// (an accept where the drop was).
func RuleShape(r *nftables.Rule) string {
	parts := make([]string, 0, len(r.Exprs))
	for _, e := range r.Exprs {
		switch x := e.(type) {
		case *expr.Meta:
			parts = append(parts, fmt.Sprintf("meta %d", x.Key))
		case *expr.Payload:
			parts = append(parts, fmt.Sprintf("payload %d %d %d", x.Base, x.Offset, x.Len))
		case *expr.Lookup:
			parts = append(parts, fmt.Sprintf("lookup %s map %v invert %v", x.SetName, x.IsDestRegSet, x.Invert))
		case *expr.Objref:
			parts = append(parts, fmt.Sprintf("objref %d %s", x.Type, x.Name))
		case *expr.Verdict:
			parts = append(parts, fmt.Sprintf("verdict %d %s", x.Kind, x.Chain))
		default:
			parts = append(parts, fmt.Sprintf("%T", e))
		}
	}
	return strings.Join(parts, "; ")
}

// RuleShapes is RuleShape of each rule, in order.
func RuleShapes(rules []*nftables.Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = RuleShape(r)
	}
	return out
}
