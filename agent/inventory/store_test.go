package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestApplyAndRead(t *testing.T) {
	s := openTest(t, "", Options{})
	if g := s.Generation(); g != 0 {
		t.Fatalf("fresh store at generation %d", g)
	}
	r := mustApply(t, s, UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)), UpsertVIF(testVIF(1, 1)))
	if r != (Result{Generation: 1, Changed: true}) {
		t.Fatalf("first Apply: %+v", r)
	}
	v, err := s.VIF(testMAC(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if v.State != StatePending || v.Last.From != StateNone || v.Last.Reason != "added" || v.Generation != 1 || v.Last.At.IsZero() {
		t.Errorf("new VIF: %+v", v)
	}
	vm, err := s.VM(testUUID(1))
	if err != nil || vm.Name != "vm-1" || vm.Generation != 1 {
		t.Errorf("VM: %+v, %v", vm, err)
	}

	r = mustApply(t, s, SetState(testMAC(1, 0), StateAssociated, "VDP ASSOCIATE accepted"))
	if r.Generation != 2 {
		t.Errorf("generation after SetState: %d", r.Generation)
	}
	v, _ = s.VIF(testMAC(1, 0))
	if v.State != StateAssociated || v.Last.From != StatePending || v.Last.Reason != "VDP ASSOCIATE accepted" || v.Generation != 2 {
		t.Errorf("after SetState: %+v", v)
	}
	// An attribute that the switch does not see (the host device) keeps the state.
	nv := testVIF(1, 0)
	nv.HostDev = "vnet99"
	mustApply(t, s, UpsertVIF(nv))
	if v, _ = s.VIF(testMAC(1, 0)); v.State != StateAssociated || v.HostDev != "vnet99" || v.Generation != 3 {
		t.Errorf("after host device change: %+v", v)
	}
	// One the switch associated (the S-Tag) sends it back to pending.
	nv.STag = 333
	mustApply(t, s, UpsertVIF(nv))
	if v, _ = s.VIF(testMAC(1, 0)); v.State != StatePending || v.Last.Reason != "attributes changed: s-tag" || v.Last.From != StateAssociated {
		t.Errorf("after S-Tag change: %+v", v)
	}

	if _, err := s.VIF(testMAC(9, 9)); !errors.Is(err, ErrNotFound) || err.Error() != "inventory: VIF 52:54:00:00:09:09 not found" {
		t.Errorf("absent VIF: %v", err)
	}
	if _, err := s.VM(testUUID(9)); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent VM: %v", err)
	}
}

func TestApplyIdempotent(t *testing.T) {
	s := openTest(t, "", Options{})
	c := Change{Ops: []Op{UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)), UpsertVIF(testVIF(1, 1)),
		SetState(testMAC(1, 0), StateAssociated, "ok")}}
	r1, err := s.Apply(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	snap1, _ := s.Snapshot(context.Background())
	r2, err := s.Apply(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r1 != (Result{Generation: 1, Changed: true}) || r2 != (Result{Generation: 1, Changed: false}) {
		t.Errorf("results %+v then %+v", r1, r2)
	}
	snap2, _ := s.Snapshot(context.Background())
	if !reflect.DeepEqual(snap1, snap2) {
		t.Errorf("the same Change twice changed the inventory:\n%+v\n%+v", snap1, snap2)
	}
	// Removing what is absent is a no-op too.
	if r := mustApply(t, s, RemoveVIF(testMAC(5, 5)), RemoveVM(testUUID(5))); r.Changed || r.Generation != 1 {
		t.Errorf("no-op removal: %+v", r)
	}
	// A Change that changes one thing among no-ops bumps once.
	if r := mustApply(t, s, UpsertVM(testVM(1)), SetState(testMAC(1, 1), StateRejected, "refused"), SetState(testMAC(1, 0), StateAssociated, "ok")); r.Generation != 2 {
		t.Errorf("partial no-op: %+v", r)
	}
}

func TestApplyAtomic(t *testing.T) {
	s := openTest(t, "", Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)))
	tests := []struct {
		name string
		ops  []Op
		want string
		is   error
	}{
		{"illegal transition", []Op{UpsertVIF(testVIF(1, 1)), SetState(testMAC(1, 0), StateVerified, "too early")},
			"inventory: op 1 set-state 52:54:00:00:01:00: illegal transition pending -> verified", ErrIllegalTransition},
		{"VIF without VM", []Op{UpsertVIF(testVIF(1, 1)), UpsertVIF(testVIF(2, 0))},
			"inventory: op 1 upsert-vif 52:54:00:00:02:00: VM a5000000-0000-0000-0000-000000000002 not found", ErrNotFound},
		{"unknown VIF", []Op{UpsertVIF(testVIF(1, 1)), SetState(testMAC(3, 0), StateGone, "x")},
			"inventory: op 1 set-state 52:54:00:00:03:00: VIF 52:54:00:00:03:00 not found", ErrNotFound},
		{"no reason", []Op{UpsertVIF(testVIF(1, 1)), SetState(testMAC(1, 0), StateGone, "")},
			"inventory: op 1 set-state 52:54:00:00:01:00: a state change needs a reason", nil},
		{"multicast", []Op{UpsertVIF(testVIF(1, 1)), UpsertVIF(VIF{MAC: MAC{1, 0, 0x5e, 0, 0, 1}, VM: testUUID(1), Kind: KindTap})},
			"inventory: op 1 upsert-vif 01:00:5e:00:00:01: invalid vNIC MAC: 01:00:5e:00:00:01 is a multicast address", ErrInvalidMAC},
		{"bad op", []Op{UpsertVIF(testVIF(1, 1)), {Type: 99}},
			"inventory: op 1 op(99) : unknown operation 99", nil},
	}
	for _, tt := range tests {
		_, err := s.Apply(context.Background(), Change{Ops: tt.ops})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v\nwant %q", tt.name, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: %v does not wrap %v", tt.name, err, tt.is)
		}
		// Op 0 of each Change must not have been written.
		if _, err := s.VIF(testMAC(1, 1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: the failed Change's first op was written", tt.name)
		}
		if g := s.Generation(); g != 1 {
			t.Errorf("%s: generation %d after a failed Change", tt.name, g)
		}
	}
}

func TestGoneAndReAdd(t *testing.T) {
	s := openTest(t, "", Options{})
	mac := testMAC(1, 0)
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)))
	mustApply(t, s, SetState(mac, StateGone, "domain stopped"))
	_, err := s.Apply(context.Background(), Change{Ops: []Op{SetState(mac, StatePending, "retry")}})
	if want := "inventory: op 0 set-state 52:54:00:00:01:00: illegal transition gone -> pending: gone is terminal until the VIF is re-added"; err == nil || err.Error() != want {
		t.Errorf("leaving gone: %v", err)
	}
	if r := mustApply(t, s, SetState(mac, StateGone, "again")); r.Changed {
		t.Error("gone -> gone changed something")
	}
	mustApply(t, s, Op{Type: OpUpsertVIF, VIF: testVIF(1, 0), Reason: "libvirt: started"})
	v, _ := s.VIF(mac)
	if v.State != StatePending || v.Last.From != StateGone || v.Last.Reason != "libvirt: started" {
		t.Errorf("re-added: %+v", v)
	}
	mustApply(t, s, SetState(mac, StateRejected, "no profile"))
	mustApply(t, s, SetState(mac, StatePending, "policy updated"))
	if v, _ = s.VIF(mac); v.State != StatePending || v.Last.From != StateRejected {
		t.Errorf("rejected -> pending: %+v", v)
	}
}

func TestRemoveVMCascades(t *testing.T) {
	s := openTest(t, "", Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVM(testVM(2)),
		UpsertVIF(testVIF(1, 0)), UpsertVIF(testVIF(1, 1)), UpsertVIF(testVIF(2, 0)))
	sub := s.Subscribe(16)
	defer sub.Close()
	r := mustApply(t, s, RemoveVM(testUUID(1)))
	var got []string
	for range 3 {
		ev := <-sub.Events()
		if ev.Generation != r.Generation {
			t.Errorf("event generation %d, want %d", ev.Generation, r.Generation)
		}
		key := ev.VM.UUID.String()
		if ev.Type == EventVIFRemoved {
			key = ev.VIF.MAC.String()
		}
		got = append(got, ev.Type.String()+" "+key)
	}
	want := []string{"vif-removed 52:54:00:00:01:00", "vif-removed 52:54:00:00:01:01", "vm-removed a5000000-0000-0000-0000-000000000001"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	vifs, err := s.List(context.Background(), Filter{})
	if err != nil || len(vifs) != 1 || vifs[0].MAC != testMAC(2, 0) {
		t.Errorf("left: %+v, %v", vifs, err)
	}
}

func TestList(t *testing.T) {
	s := openTest(t, "", Options{})
	ops := []Op{UpsertVM(testVM(1)), UpsertVM(testVM(2))}
	for j := range 4 {
		ops = append(ops, UpsertVIF(testVIF(1, j)), UpsertVIF(testVIF(2, j)))
	}
	xen := testVIF(2, 9)
	xen.MAC, xen.Kind, xen.PortGroup = MAC{0x00, 0x16, 0x3e, 1, 2, 3}, KindVF, "db"
	ops = append(ops, UpsertVIF(xen), SetState(testMAC(1, 2), StateAssociated, "ok"))
	mustApply(t, s, ops...)
	count := func(f Filter) int {
		vifs, err := s.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		return len(vifs)
	}
	for _, tt := range []struct {
		f    Filter
		want int
	}{
		{Filter{}, 9},
		{Filter{VM: testUUID(2)}, 5},
		{Filter{State: StateAssociated}, 1},
		{Filter{Kind: KindVF}, 1},
		{Filter{PortGroup: "db"}, 1},
		{Filter{Vendor: VendorXen}, 1},
		{Filter{Vendor: VendorQEMU, VM: testUUID(1), State: StatePending}, 3},
	} {
		if got := count(tt.f); got != tt.want {
			t.Errorf("List(%+v) = %d VIFs, want %d", tt.f, got, tt.want)
		}
	}
}

func TestReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "inventory.db")
	s := openTest(t, path, Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)), UpsertVIF(testVIF(1, 1)))
	mustApply(t, s, SetState(testMAC(1, 1), StatePreAssociated, "migration in"))
	before, _ := s.Snapshot(context.Background())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(context.Background(), Change{Ops: []Op{RemoveVM(testUUID(1))}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode: %v, %v", fi.Mode(), err)
	}
	s2 := openTest(t, path, Options{})
	after, _ := s2.Snapshot(context.Background())
	if !reflect.DeepEqual(before, after) {
		t.Errorf("reopened:\n%+v\nwant\n%+v", after, before)
	}
	if s2.Generation() != 2 || !s2.OpenReport().OK() || s2.OpenReport().VIFs != 2 {
		t.Errorf("reopened at %d, report %+v", s2.Generation(), s2.OpenReport())
	}
	if r := mustApply(t, s2, SetState(testMAC(1, 1), StateAssociated, "migrated")); r.Generation != 3 {
		t.Errorf("generation continues at %d", r.Generation)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	openTest(t, path, Options{})
	start := time.Now()
	_, err := Open(context.Background(), path, Options{LockTimeout: 200 * time.Millisecond, Logger: discard})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	// flock locks belong to the open file, so this process holds it.
	if want := fmt.Sprintf("inventory: %s is locked by another tetherd (pid %d)", path, os.Getpid()); err.Error() != want {
		t.Errorf("second Open: %q\nwant %q", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %s", d)
	}
	// A context deadline shortens the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := Open(ctx, path, Options{LockTimeout: time.Minute, Logger: discard}); !errors.Is(err, ErrLocked) {
		t.Errorf("Open with a deadline: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline ignored: %s", d)
	}
}

func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	s := openTest(t, path, Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, path, Options{ReadOnly: true})
	if vifs, err := ro.List(context.Background(), Filter{}); err != nil || len(vifs) != 1 {
		t.Errorf("read-only List: %v, %v", vifs, err)
	}
	if _, err := ro.Apply(context.Background(), Change{Ops: []Op{RemoveVM(testUUID(1))}}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only Apply: %v", err)
	}
}

// corrupt writes raw bytes under a key, behind the store's back.
func corrupt(t *testing.T, path string, f func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRepairs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	s := openTest(t, path, Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVM(testVM(2)), UpsertVIF(testVIF(1, 0)), UpsertVIF(testVIF(1, 1)), UpsertVIF(testVIF(2, 0)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, path, func(tx *bolt.Tx) error {
		vifs := tx.Bucket(bucketVIFs)
		m := testMAC(1, 1)
		b := append([]byte(nil), vifs.Get(m[:])...)
		b[30] ^= 0xff // damage: checksum fails
		if err := vifs.Put(m[:], b); err != nil {
			return err
		}
		id := testUUID(2)
		return tx.Bucket(bucketVMs).Delete(id[:]) // orphans VIF 2/0
	})

	// Read-only: report, do not touch.
	ro := openTest(t, path, Options{ReadOnly: true})
	rep := ro.OpenReport()
	if len(rep.Problems) != 2 || rep.Problems[0].Action != "none" || rep.VIFs != 1 {
		t.Errorf("read-only report: %+v", rep)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, Options{})
	rep = s.OpenReport()
	if len(rep.Problems) != 2 || rep.VMs != 1 || rep.VIFs != 1 || rep.Generation != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, p := range rep.Problems {
		if p.Bucket != "vifs" || p.Action != "quarantined" {
			t.Errorf("problem %+v", p)
		}
	}
	if !strings.Contains(rep.Problems[0].Detail, "checksum") || !strings.Contains(rep.Problems[1].Detail, "belongs to VM a5000000-0000-0000-0000-000000000002, which is not stored") {
		t.Errorf("details: %q, %q", rep.Problems[0].Detail, rep.Problems[1].Detail)
	}
	if s.Generation() != 2 {
		t.Errorf("a repair must raise the generation: %d", s.Generation())
	}
	if r, err := s.Check(context.Background()); err != nil || !r.OK() || r.VIFs != 1 {
		t.Errorf("check after repair: %+v, %v", r, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The bad records are kept for forensics.
	corrupt(t, path, func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketQuarantine).Stats().KeyN; n != 2 {
			t.Errorf("quarantine holds %d records", n)
		}
		return nil
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	s := openTest(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte{0, 0, 0, 2}) })
	_, err := Open(context.Background(), path, Options{Logger: discard})
	if want := "inventory: open " + path + ": schema version 2, this tetherd reads version 1"; err == nil || err.Error() != want {
		t.Errorf("newer schema: %v", err)
	}
}

func TestOpenRaisesGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	s := openTest(t, path, Options{})
	mustApply(t, s, UpsertVM(testVM(1)))
	mustApply(t, s, UpsertVIF(testVIF(1, 0)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	corrupt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyGeneration, []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	s = openTest(t, path, Options{})
	if rep := s.OpenReport(); len(rep.Problems) != 1 || rep.Problems[0].Action != "generation raised" || s.Generation() != 3 {
		t.Errorf("report %+v, generation %d", rep, s.Generation())
	}
}

func TestSubscribe(t *testing.T) {
	s := openTest(t, "", Options{})
	mustApply(t, s, UpsertVM(testVM(1)))
	sub := s.Subscribe(8)
	if sub.Start() != 1 {
		t.Errorf("Start = %d", sub.Start())
	}
	mustApply(t, s, UpsertVIF(testVIF(1, 0)))
	mustApply(t, s, SetState(testMAC(1, 0), StateAssociated, "ok"))
	ev := <-sub.Events()
	if ev.Type != EventVIFUpserted || ev.Generation != 2 || ev.Transition.To != StatePending || ev.VIF.MAC != testMAC(1, 0) {
		t.Errorf("first event %+v", ev)
	}
	ev = <-sub.Events()
	if ev.Type != EventVIFState || ev.Generation != 3 || ev.Transition != (Transition{From: StatePending, To: StateAssociated, Reason: "ok", At: ev.VIF.Last.At}) {
		t.Errorf("second event %+v", ev)
	}
	stored, _ := s.VIF(testMAC(1, 0))
	if !reflect.DeepEqual(stored, ev.VIF) {
		t.Errorf("event VIF %+v\nstored %+v", ev.VIF, stored)
	}
	sub.Close()
	sub.Close()
	if _, ok := <-sub.Events(); ok || sub.Err() != nil {
		t.Errorf("after Close: open channel or error %v", sub.Err())
	}

	// A slow subscriber is dropped; Apply does not wait for it.
	slow := s.Subscribe(1)
	fast := s.Subscribe(64)
	for j := 1; j < 4; j++ {
		mustApply(t, s, UpsertVIF(testVIF(1, j)))
	}
	for j := 1; j < 4; j++ {
		if ev := <-fast.Events(); ev.VIF.MAC != testMAC(1, j) {
			t.Errorf("fast subscriber event %d: %+v", j, ev)
		}
	}
	for range slow.Events() {
		// at most the events handed out before the drop
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Errorf("slow subscriber: %v", slow.Err())
	}
	if st := s.Stats(); st.DroppedSubscribers != 1 || st.Subscribers != 1 || st.Generation != 6 {
		t.Errorf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range fast.Events() {
	}
	if !errors.Is(fast.Err(), ErrClosed) {
		t.Errorf("after store Close: %v", fast.Err())
	}
}

func TestApplyBatchConcurrent(t *testing.T) {
	s := openTest(t, "", Options{BatchDelay: 2 * time.Millisecond})
	const writers, each = 8, 25
	var ops []Op
	for w := range writers {
		ops = append(ops, UpsertVM(testVM(uint64(w))))
	}
	mustApply(t, s, ops...)
	sub := s.Subscribe(writers*each + 8)
	defer sub.Close()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for j := range each {
				c := Change{Ops: []Op{UpsertVIF(testVIF(uint64(w), j))}}
				if j%5 == 4 {
					c.Ops = append(c.Ops, SetState(testMAC(uint64(w), 99), StateGone, "x")) // fails: rolls back alone
				}
				_, err := s.ApplyBatch(context.Background(), c)
				if (err != nil) != (j%5 == 4) {
					errs <- fmt.Errorf("writer %d change %d: %v", w, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := uint64(1 + writers*each*4/5)
	if g := s.Generation(); g != want {
		t.Errorf("generation %d, want %d", g, want)
	}
	// Events arrive in generation order without gaps.
	for g := uint64(2); g <= want; g++ {
		select {
		case ev := <-sub.Events():
			if ev.Generation != g {
				t.Fatalf("event generation %d, want %d", ev.Generation, g)
			}
		case <-time.After(time.Second):
			t.Fatalf("no event for generation %d", g)
		}
	}
	vifs, _ := s.List(context.Background(), Filter{})
	if len(vifs) != writers*each*4/5 {
		t.Errorf("%d VIFs", len(vifs))
	}
}

func TestApplyContext(t *testing.T) {
	s := openTest(t, "", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, Change{Ops: []Op{UpsertVM(testVM(1))}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Apply: %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Open: %v", err)
	}
}

func TestUpsertMovesVIF(t *testing.T) {
	s := openTest(t, "", Options{})
	mustApply(t, s, UpsertVM(testVM(1)), UpsertVM(testVM(2)), UpsertVIF(testVIF(1, 0)))
	mustApply(t, s, SetState(testMAC(1, 0), StateAssociated, "ok"))
	mustApply(t, s, SetState(testMAC(1, 0), StateVerified, "profile verified"))
	moved := testVIF(1, 0)
	moved.VM, moved.PortGroup = testUUID(2), "db"
	mustApply(t, s, UpsertVIF(moved))
	v, _ := s.VIF(testMAC(1, 0))
	if v.State != StatePending || v.VM != testUUID(2) || v.Last != (Transition{From: StateVerified, To: StatePending, Reason: "attributes changed: vm, portgroup", At: v.Last.At}) {
		t.Errorf("moved VIF: %+v", v)
	}
	// Removing VM 1 no longer touches it.
	mustApply(t, s, RemoveVM(testUUID(1)))
	if _, err := s.VIF(testMAC(1, 0)); err != nil {
		t.Errorf("moved VIF removed with its old VM: %v", err)
	}
}

func TestApplyBatchIdempotent(t *testing.T) {
	s := openTest(t, "", Options{})
	c := Change{Ops: []Op{UpsertVM(testVM(1)), UpsertVIF(testVIF(1, 0))}}
	r1, err1 := s.ApplyBatch(context.Background(), c)
	r2, err2 := s.ApplyBatch(context.Background(), c)
	if err1 != nil || err2 != nil || r1 != (Result{Generation: 1, Changed: true}) || r2 != (Result{Generation: 1}) {
		t.Errorf("%+v %v, then %+v %v", r1, err1, r2, err2)
	}
}

// TestSubscribeBigChange checks that one Change with far more events than
// the subscriber's queue (a full reconcile) does not drop the subscriber.
func TestSubscribeBigChange(t *testing.T) {
	s := openTest(t, "", Options{NoSync: true})
	sub := s.Subscribe(4)
	defer sub.Close()
	c := Change{}.Add(UpsertVM(testVM(1)))
	for j := 0; j < 3000; j++ {
		c = c.Add(UpsertVIF(testVIF(1, j)))
	}
	if _, err := s.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 3001; n++ {
		if _, ok := <-sub.Events(); !ok {
			t.Fatalf("subscription closed after %d events: %v", n, sub.Err())
		}
	}
	if st := s.Stats(); st.DroppedSubscribers != 0 {
		t.Fatalf("stats %+v", st)
	}
}
