package switchd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
)

// TestPolicyVMManager: the VM manager of DC-wide mode answers from the
// placement records of a real store (embedded etcd, the cache StartDCPolicy
// runs): the record's host with its MACs and state, a record written just
// before the question (read your writes), a VM with no record passed to
// the inner manager, and a live migration: while the record names the
// destination migrating-in, the host it named before is answered
// migrating-out with its MACs (the source's overlap), and no longer once
// the destination runs the VM.
func TestPolicyVMManager(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, st := startStore(ctx, t, "")
	put := func(n int, host, state string) {
		t.Helper()
		if _, err := st.PutPlacements(ctx, []policy.Placement{*placementRec(n, host, state)}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, "hostA", policy.StateRunning)

	inner := newFakeVMM()
	inner.set("hostC", uuidN(7), verify.VMRunning, macN(7))
	dc, err := StartDCPolicy(ctx, switchconfig.Policy{Endpoints: srv.Endpoints(), Prefix: store.DefaultPrefix,
		DialTimeout: switchconfig.Duration(2 * time.Second), StartWait: switchconfig.Duration(20 * time.Second)},
		StaticProfiles{}, inner, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	vmm := dc.VMManager()
	ask := func(host string, n, mac int) verify.Confirmation {
		t.Helper()
		c, err := vmm.Confirm(ctx, host, uuidN(n), macN(mac))
		if err != nil {
			t.Fatalf("Confirm(%s, VM%d): %v", host, n, err)
		}
		return c
	}
	expect := func(host string, n, mac int, confirmed bool, state verify.VMState) {
		t.Helper()
		waitFor(t, 5*time.Second, "the answer for VM on "+host, func() bool {
			c := ask(host, n, mac)
			return c.Confirmed == confirmed && c.State == state
		})
	}

	expect("hostA", 1, 1, true, verify.VMRunning)
	if c := ask("hostA", 1, 2); c.Confirmed || c.Reason != "the placement record (running) has no MAC 52:54:00:00:00:02" {
		t.Errorf("other MAC: %+v", c)
	}
	if c := ask("hostB", 1, 1); c.Confirmed || c.State != verify.VMAbsent || c.Reason != `the policy store's placement record puts the VM on host "hostA" (running)` {
		t.Errorf("other host: %+v", c)
	}
	// No record: the inner manager answers.
	if c := ask("hostC", 7, 7); !c.Confirmed || c.State != verify.VMRunning {
		t.Errorf("VM with no record, inner manager's: %+v", c)
	}
	// Written just before the question: answered without waiting for the
	// watch by chance (Sync on the miss).
	put(2, "hostB", policy.StatePaused)
	if c := ask("hostB", 2, 2); !c.Confirmed || c.State != verify.VMPaused {
		t.Errorf("record written just before: %+v", c)
	}

	// Live migration of VM1 from hostA to hostB.
	put(1, "hostA", policy.StateMigratingOut)
	expect("hostA", 1, 1, true, verify.VMMigratingOut)
	expect("hostB", 1, 1, false, verify.VMAbsent)
	put(1, "hostB", policy.StateMigratingIn)
	expect("hostB", 1, 1, true, verify.VMMigratingIn)
	expect("hostA", 1, 1, true, verify.VMMigratingOut) // the source, until the destination runs it
	if c := ask("hostC", 1, 1); c.Confirmed {
		t.Errorf("a third host during the migration: %+v", c)
	}
	put(1, "hostB", policy.StateRunning)
	expect("hostB", 1, 1, true, verify.VMRunning)
	expect("hostA", 1, 1, false, verify.VMAbsent)
	put(1, "hostB", policy.StateShutOff)
	expect("hostB", 1, 1, false, verify.VMInactive)

	// Re-application: a record's new state or host gives no VM another
	// profile and announces nothing; a new VM name (port groups match
	// names) or a profile change does.
	changed := dc.Profiles().(ProfileNotifier).Changed()
	settle := func() bool {
		t.Helper()
		if err := dc.Cache().Sync(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	}
	settle()
	put(1, "hostA", policy.StateRunning)
	if settle() {
		t.Error("a placement's state and host change announced a profile change")
	}
	rec := placementRec(1, "hostA", policy.StateRunning)
	rec.Name = "db-1"
	if _, err := st.PutPlacements(ctx, []policy.Placement{*rec}); err != nil {
		t.Fatal(err)
	}
	if !settle() {
		t.Error("a VM's new name announced nothing")
	}
	if _, err := st.Create(ctx, &policy.Profile{Name: "p", Mode: policy.ModeSwitch}); err != nil {
		t.Fatal(err)
	}
	if !settle() {
		t.Error("a new profile announced nothing")
	}
}

func placementRec(n int, host, state string) *policy.Placement {
	return &policy.Placement{VM: uuidN(n).String(), Name: "vm", Host: host, MACs: []string{macN(n).String()}, State: state,
		Source: "test", Updated: time.Now().UTC()}
}

// TestStartDCPolicyBadTLSFiles: TLS files that cannot be read stop the
// start (an unreachable store does not: see the netns tests).
func TestStartDCPolicyBadTLSFiles(t *testing.T) {
	missing := t.TempDir() + "/none.pem"
	_, err := StartDCPolicy(context.Background(), switchconfig.Policy{Endpoints: []string{"https://127.0.0.1:1"}, CA: missing,
		Prefix: store.DefaultPrefix, DialTimeout: switchconfig.Duration(time.Second)}, nil, nil, testLogger())
	if err == nil || !strings.Contains(err.Error(), "switchd: policy: TLS files: ") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err %v", err)
	}
}

// startStore starts an embedded etcd on a unix socket and returns it with
// a store on it under prefix ("" for the default); both are closed when t
// ends.
func startStore(ctx context.Context, t *testing.T, prefix string) (*etcdembed.Server, *store.Store) {
	t.Helper()
	srv, err := etcdembed.Start(ctx, etcdembed.Config{Dir: t.TempDir(), Unix: true, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cli, err := store.Dial(ctx, store.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st, err := store.New(cli, store.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return srv, st
}
