package nftbridge

import (
	"fmt"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestRoleOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule *nftables.Rule
		want string
	}{
		{"ours", &nftables.Rule{UserData: Comment("tether/v1 dispatch")}, "dispatch"},
		{"prefix only", &nftables.Rule{UserData: Comment("tether/v1 ")}, ""},
		{"other table's", &nftables.Rule{UserData: Comment("someone else")}, ""},
		{"no comment", &nftables.Rule{}, ""},
	} {
		if got := RoleOf(tc.rule, "tether/v1 "); got != tc.want {
			t.Errorf("%s: RoleOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestDispatchRule: the dispatch rule looks the input interface up in the
// verdict map, in the base chain's table, with its comment.
func TestDispatchRule(t *testing.T) {
	table := &nftables.Table{Name: "t", Family: nftables.TableFamilyBridge}
	base := BaseChain(table, "prerouting", -200)
	if base.Table != table || *base.Priority != -200 || base.Hooknum == nil || *base.Hooknum != *nftables.ChainHookPrerouting ||
		*base.Policy != nftables.ChainPolicyAccept {
		t.Errorf("BaseChain = %+v", base)
	}
	r := DispatchRule(base, "ports", Comment("tether/v1 dispatch"))
	if r.Table != table || r.Chain != base || RoleOf(r, "tether/v1 ") != "dispatch" {
		t.Errorf("DispatchRule = %+v", r)
	}
	want := fmt.Sprintf("meta %d; lookup ports map true invert false", expr.MetaKeyIIFNAME)
	if got := RuleShape(r); got != want {
		t.Errorf("DispatchRule's shape %q, want %q", got, want)
	}
	if c := CounterObj(table, "drop-x"); c.Table != table || c.Name != "drop-x" || c.Type != nftables.ObjTypeCounter {
		t.Errorf("CounterObj = %+v", c)
	}
}
