package inventory

import (
	"errors"
	"fmt"
	"testing"
)

func TestCheckTransition(t *testing.T) {
	states := []State{StatePending, StatePreAssociated, StateAssociated, StateVerified, StateRejected, StateGone}
	// want[from][to]: "" legal, otherwise the exact error.
	illegal := func(from, to State) string { return fmt.Sprintf("inventory: illegal transition %s -> %s", from, to) }
	goneErr := func(to State) string {
		return fmt.Sprintf("inventory: illegal transition gone -> %s: gone is terminal until the VIF is re-added", to)
	}
	legalEdges := map[State][]State{
		StatePending:       {StatePending, StatePreAssociated, StateAssociated, StateRejected, StateGone},
		StatePreAssociated: {StatePreAssociated, StatePending, StateAssociated, StateRejected, StateGone},
		StateAssociated:    {StateAssociated, StatePending, StateVerified, StateRejected, StateGone},
		StateVerified:      {StateVerified, StatePending, StateRejected, StateGone},
		StateRejected:      {StateRejected, StatePending, StateGone},
		StateGone:          {StateGone},
	}
	for _, from := range states {
		for _, to := range states {
			want := illegal(from, to)
			if from == StateGone {
				want = goneErr(to)
			}
			for _, l := range legalEdges[from] {
				if l == to {
					want = ""
				}
			}
			err := CheckTransition(from, to)
			switch {
			case want == "" && err != nil:
				t.Errorf("%s -> %s: %v, want legal", from, to, err)
			case want != "" && (err == nil || err.Error() != want):
				t.Errorf("%s -> %s: %v, want %q", from, to, err, want)
			case want != "" && !errors.Is(err, ErrIllegalTransition):
				t.Errorf("%s -> %s: %v does not wrap ErrIllegalTransition", from, to, err)
			}
		}
	}
	// Spot checks spelled out, as an operator reads them.
	spelled := []struct {
		from, to State
		want     string
	}{
		{StatePending, StateVerified, "inventory: illegal transition pending -> verified"},
		{StateRejected, StateAssociated, "inventory: illegal transition rejected -> associated"},
		{StateVerified, StatePreAssociated, "inventory: illegal transition verified -> pre-associated"},
		{StateGone, StatePending, "inventory: illegal transition gone -> pending: gone is terminal until the VIF is re-added"},
		{StateNone, StatePending, "inventory: illegal transition none -> pending: not a VIF state"},
		{StatePending, State(42), "inventory: illegal transition pending -> state(42): not a VIF state"},
	}
	for _, tt := range spelled {
		if err := CheckTransition(tt.from, tt.to); err == nil || err.Error() != tt.want {
			t.Errorf("CheckTransition(%s, %s) = %v, want %q", tt.from, tt.to, err, tt.want)
		}
	}
}

func TestEnumText(t *testing.T) {
	type textEnum interface {
		MarshalText() ([]byte, error)
		String() string
	}
	cases := []struct {
		v    textEnum
		want string
		back func([]byte) (any, error)
	}{
		{StatePreAssociated, "pre-associated", func(b []byte) (any, error) { var s State; err := s.UnmarshalText(b); return s, err }},
		{StateGone, "gone", func(b []byte) (any, error) { var s State; err := s.UnmarshalText(b); return s, err }},
		{KindVF, "vf", func(b []byte) (any, error) { var k Kind; err := k.UnmarshalText(b); return k, err }},
		{KindPartition, "partition", func(b []byte) (any, error) { var k Kind; err := k.UnmarshalText(b); return k, err }},
		{VMStatePMSuspended, "pmsuspended", func(b []byte) (any, error) { var s VMState; err := s.UnmarshalText(b); return s, err }},
		{VirtualPort8021Qbg, "802.1Qbg", func(b []byte) (any, error) { var s VirtualPortType; err := s.UnmarshalText(b); return s, err }},
		{OpSetState, "set-state", func(b []byte) (any, error) { var s OpType; err := s.UnmarshalText(b); return s, err }},
		{EventVIFState, "vif-state", func(b []byte) (any, error) { var s EventType; err := s.UnmarshalText(b); return s, err }},
	}
	for _, c := range cases {
		b, err := c.v.MarshalText()
		if err != nil || string(b) != c.want || c.v.String() != c.want {
			t.Errorf("%v: MarshalText = %q, %v; String = %q; want %q", c.v, b, err, c.v.String(), c.want)
		}
		back, err := c.back(b)
		if err != nil || back != any(c.v) {
			t.Errorf("%s: UnmarshalText = %v, %v", c.want, back, err)
		}
		if _, err := c.back([]byte("PENDING-ish")); err == nil {
			t.Errorf("%T accepted an unknown name", c.v)
		}
	}
	var vp VirtualPortType
	if err := vp.UnmarshalText([]byte("802.1qbh")); err != nil || vp != VirtualPort8021Qbh {
		t.Errorf("virtual port type is case-insensitive like libvirt: %v %v", vp, err)
	}
	if _, err := State(200).MarshalText(); err == nil {
		t.Error("State(200).MarshalText succeeded")
	}
}
