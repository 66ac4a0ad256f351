package enforce

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/enforce/internal/nstest"
)

// benchEnforcer returns an Enforcer in a fresh namespace with port "eth1"
// managed. No traffic flows: the figures are the cost of the kernel
// transaction, which is what "event to rule installed" adds to switchd's
// own processing.
func benchEnforcer(b *testing.B) *Enforcer {
	b.Helper()
	nstest.Require(b)
	ns := nstest.New(b)
	e, err := New(context.Background(), Options{
		NetNS:  int(ns.Open(b).Fd()),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	if err := e.ManagePort(context.Background(), "eth1"); err != nil {
		b.Fatal(err)
	}
	return e
}

// benchMAC returns a distinct unicast MAC for each i.
func benchMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xbe, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// reportQuantiles reports the p50 and p99 of ds, in microseconds, as
// metrics named op-p50-us and op-p99-us.
func reportQuantiles(b *testing.B, op string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(q(0.50), op+"-p50-us")
	b.ReportMetric(q(0.99), op+"-p99-us")
}

// BenchmarkAllowRevoke times Allow and Revoke of one pair, each call
// measured on its own; ns/op is one Allow plus one Revoke.
func BenchmarkAllowRevoke(b *testing.B) {
	e := benchEnforcer(b)
	ctx := context.Background()
	allow := make([]time.Duration, 0, b.N)
	revoke := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mac, vid := benchMAC(i), uint16(i%4094+1)
		t0 := time.Now()
		if err := e.Allow(ctx, "eth1", mac, vid); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.Revoke(ctx, "eth1", mac, vid); err != nil {
			b.Fatal(err)
		}
		allow = append(allow, t1.Sub(t0))
		revoke = append(revoke, time.Since(t1))
	}
	b.StopTimer()
	reportQuantiles(b, "allow", allow)
	reportQuantiles(b, "revoke", revoke)
}

// BenchmarkPendingActivate times the pre-association path: Pending, then
// Activate (the held-to-live move), then Revoke to start over.
func BenchmarkPendingActivate(b *testing.B) {
	e := benchEnforcer(b)
	ctx := context.Background()
	pending := make([]time.Duration, 0, b.N)
	activate := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mac := benchMAC(i)
		t0 := time.Now()
		if err := e.Pending(ctx, "eth1", mac, 0); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.Activate(ctx, "eth1", mac, 0); err != nil {
			b.Fatal(err)
		}
		pending = append(pending, t1.Sub(t0))
		activate = append(activate, time.Since(t1))
		b.StopTimer()
		if err := e.Revoke(ctx, "eth1", mac, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportQuantiles(b, "pending", pending)
	reportQuantiles(b, "activate", activate)
}

// BenchmarkAllow4096 fills one port's allow set with 4,096 pairs, one Allow
// each, and reports the latency of the first and the last 512 calls: flat
// if the set's cost does not grow with its size. ns/op is one Allow.
func BenchmarkAllow4096(b *testing.B) {
	const n = 4096
	e := benchEnforcer(b)
	ctx := context.Background()
	var first, last, all []time.Duration
	inSet := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		if err := e.UnmanagePort(ctx, "eth1"); err != nil {
			b.Fatal(err)
		}
		if err := e.ManagePort(ctx, "eth1"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		inSet = 0
		for i := 0; i < n && done < b.N; i, done = i+1, done+1 {
			t0 := time.Now()
			if err := e.Allow(ctx, "eth1", benchMAC(i), uint16(i%2*100)); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			all = append(all, d)
			switch {
			case i < 512:
				first = append(first, d)
			case i >= n-512:
				last = append(last, d)
			}
			inSet++
		}
	}
	b.StopTimer()
	reportQuantiles(b, "allow", all)
	reportQuantiles(b, "first512", first)
	reportQuantiles(b, "last512", last)
	st, err := e.Observed(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if got := len(st["eth1"].Allowed); got != inSet {
		b.Errorf("set holds %d pairs after %d Allows, want %d", got, inSet, inSet)
	}
}

// BenchmarkSyncNoop times a Sync that finds nothing to change on a port
// holding 4,096 pairs: the periodic reconcile's cost, during which the
// per-pair operations wait.
func BenchmarkSyncNoop(b *testing.B) {
	const n = 4096
	e := benchEnforcer(b)
	ctx := context.Background()
	desired := State{"eth1": {}}
	pp := desired["eth1"]
	for i := 0; i < n; i++ {
		pp.Allowed = append(pp.Allowed, Pair{MAC: [6]byte(benchMAC(i)), VID: uint16(i % 4094)})
	}
	desired["eth1"] = pp
	if st, err := e.Sync(ctx, desired); err != nil || st.Added != n {
		b.Fatalf("initial Sync: %+v, %v", st, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := e.Sync(ctx, desired)
		if err != nil {
			b.Fatal(err)
		}
		if st != (SyncStats{}) {
			b.Fatalf("no-op Sync changed %+v", st)
		}
	}
}

// BenchmarkAllowDuringSync times Allow and Revoke on one port while
// another goroutine runs no-op Syncs over 4,096 pairs in a loop: the
// periodic reconcile must not push the event path past its budget.
func BenchmarkAllowDuringSync(b *testing.B) {
	const n = 4096
	e := benchEnforcer(b)
	ctx := context.Background()
	desired := State{"eth1": {}, "eth2": {}}
	pp := desired["eth1"]
	for i := 0; i < n; i++ {
		pp.Allowed = append(pp.Allowed, Pair{MAC: [6]byte(benchMAC(i)), VID: uint16(i % 4094)})
	}
	desired["eth1"] = pp
	if _, err := e.Sync(ctx, desired); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		syncs := 0
		for {
			select {
			case <-stop:
				done <- syncs
				return
			default:
			}
			// eth2's pairs come and go under the Sync's feet; it may
			// remove one between the Allow and the Revoke below, which
			// both take in their stride.
			if _, err := e.Sync(ctx, desired); err != nil {
				b.Error(err)
			}
			syncs++
		}
	}()
	allow := make([]time.Duration, 0, b.N)
	revoke := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mac := benchMAC(n + i)
		t0 := time.Now()
		if err := e.Allow(ctx, "eth2", mac, 0); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.Revoke(ctx, "eth2", mac, 0); err != nil {
			b.Fatal(err)
		}
		allow = append(allow, t1.Sub(t0))
		revoke = append(revoke, time.Since(t1))
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(<-done), "syncs")
	reportQuantiles(b, "allow", allow)
	reportQuantiles(b, "revoke", revoke)
}
