package vnic

import "testing"

func TestDriftPolicyText(t *testing.T) {
	for _, p := range []DriftPolicy{DriftRepair, DriftReportOnly} {
		b, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var q DriftPolicy
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("round trip of %v: %v, %v", p, q, err)
		}
	}
	var zero DriftPolicy
	if zero != DriftRepair {
		t.Error("the zero DriftPolicy must repair")
	}
	var q DriftPolicy
	if err := q.UnmarshalText([]byte("fix")); err == nil || err.Error() != `vnic: drift policy "fix", want repair or report-only` {
		t.Errorf("UnmarshalText(fix) error %v", err)
	}
	if _, err := DriftPolicy(9).MarshalText(); err == nil || err.Error() != "vnic: invalid drift policy 9" {
		t.Errorf("MarshalText(9) error %v", err)
	}
	if s := DriftPolicy(9).String(); s != "DriftPolicy(9)" {
		t.Errorf("String = %q", s)
	}
}
