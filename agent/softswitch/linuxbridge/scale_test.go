package linuxbridge

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestAllowListScaleHost logs how long ensuring, checking and removing the
// allow-lists of many ports takes (ports need no interface for the
// nftables part). Set TETHER_TEST_ALL=1 for 1,000 ports; 200 otherwise.
func TestAllowListScaleHost(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	n := 200
	if os.Getenv("TETHER_TEST_ALL") == "1" {
		n = 1000
	}
	l := newLab(t)
	a := newAllowList(l.nsfd, "tether-sw-scale")
	t.Cleanup(func() { _ = a.deleteTable(l.ctx) })
	if _, err := a.ensureBase(l.ctx); err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("vnet%d", i) }
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := a.ensure(l.ctx, name(i), mac(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	ensure := time.Since(start)
	start = time.Now()
	for i := 0; i < n; i++ {
		st, err := a.check(l.ctx, name(i), mac(byte(i)))
		if err != nil || len(st.problems) > 0 {
			t.Fatalf("check %s: %q %v", name(i), st.problems, err)
		}
	}
	check := time.Since(start)
	start = time.Now()
	for i := 0; i < n; i++ {
		if err := a.remove(l.ctx, name(i)); err != nil {
			t.Fatal(err)
		}
	}
	remove := time.Since(start)
	t.Logf("FIGURE allow-list of %d ports on the host: ensure %v (%v/port), check %v (%v/port), remove %v (%v/port)",
		n, ensure, ensure/time.Duration(n), check, check/time.Duration(n), remove, remove/time.Duration(n))
}
