package inventory

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The crash test: a child process (this test binary, re-executed into
// TestHelperProcess) applies Changes in a loop until the parent SIGKILLs it
// at a random moment; the parent reopens the store and checks that it is
// whole. Several rounds run on the same file, each child continuing where
// the last one's committed state ends.
//
// Each stream s writes Change k (k = 1, 2, ...) as:
//
//	upsert VM (s,k) named "s<s>-batch-<k>"
//	upsert VIFs (s,k,0..3) with port group "s<s>-batch-<k>" (the marker)
//	VIFs (s,k-1,0..2) -> associated, reason "s<s>-batch-<k>"; remove VIF (s,k-1,3)
//	remove VM (s,k-crashWindow) and, by cascade, its VIFs
//
// so that after any crash the inventory must be exactly the state after
// some Change K_s per stream, which checkCrashInvariants verifies.
const (
	crashEnvPath = "TETHER_INVENTORY_CRASH_DB"
	crashEnvMode = "TETHER_INVENTORY_CRASH_MODE"
	crashWindow  = 8
	crashVIFs    = 4
)

func crashUUID(s, k uint64) UUID {
	var u UUID
	u[0], u[1] = 0xc0, byte(s)
	binary.BigEndian.PutUint64(u[8:], k)
	return u
}

func crashMAC(s, k uint64, i int) MAC {
	return MAC{0x02, byte(s), byte(k >> 16), byte(k >> 8), byte(k), byte(i)}
}

func crashMarker(s, k uint64) string { return fmt.Sprintf("s%d-batch-%d", s, k) }

func crashChange(s, k uint64) Change {
	var c Change
	c = c.Add(UpsertVM(VM{UUID: crashUUID(s, k), Name: crashMarker(s, k), State: VMStateRunning, Source: "crash"}))
	for i := range crashVIFs {
		c = c.Add(UpsertVIF(VIF{MAC: crashMAC(s, k, i), VM: crashUUID(s, k), Kind: KindTap,
			HostDev: fmt.Sprintf("vnet%d", i), STag: uint16(k%4000) + 1, PortGroup: crashMarker(s, k)}))
	}
	if k > 1 {
		for i := range crashVIFs - 1 {
			c = c.Add(SetState(crashMAC(s, k-1, i), StateAssociated, crashMarker(s, k)))
		}
		c = c.Add(RemoveVIF(crashMAC(s, k-1, crashVIFs-1)))
	}
	if k > crashWindow {
		c = c.Add(RemoveVM(crashUUID(s, k-crashWindow)))
	}
	return c
}

// crashHeads returns the last Change number per stream found in snap.
func crashHeads(snap *Snapshot) map[uint64]uint64 {
	heads := map[uint64]uint64{}
	for _, vm := range snap.VMs {
		if vm.UUID[0] != 0xc0 {
			continue
		}
		s, k := uint64(vm.UUID[1]), binary.BigEndian.Uint64(vm.UUID[8:])
		heads[s] = max(heads[s], k)
	}
	return heads
}

// TestHelperProcess is the crash test's child; it does nothing unless the
// parent set crashEnvPath.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		return
	}
	mode := os.Getenv(crashEnvMode)
	fail := func(err error) {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	ctx := context.Background()
	s, err := Open(ctx, path, Options{Logger: discard, NoSync: mode == "nosync", LockTimeout: 10 * time.Second})
	if err != nil {
		fail(err)
	}
	if mode == "hold" { // for TestLockedByAnotherProcess
		fmt.Println("ready")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		fail(err)
	}
	heads := crashHeads(snap)
	streams, apply := uint64(1), s.Apply
	if mode == "batch" {
		streams, apply = 4, s.ApplyBatch
	}
	var mu sync.Mutex // one writer to stdout at a time
	var wg sync.WaitGroup
	for st := range streams {
		wg.Go(func() {
			for k := heads[st] + 1; ; k++ {
				r, err := apply(ctx, crashChange(st, k))
				if err != nil {
					fail(err)
				}
				mu.Lock()
				fmt.Printf("ack %d %d %d\n", st, k, r.Generation)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	rounds := 9
	if os.Getenv("TETHER_TEST_ALL") != "" {
		rounds = 45
	}
	path := filepath.Join(t.TempDir(), "inventory.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	modes := []string{"sync", "batch", "nosync"}
	total := 0
	for round := range rounds {
		mode := modes[round%len(modes)]
		acked, n := crashRound(t, path, mode, rng)
		total += n
		s, err := Open(context.Background(), path, Options{Logger: discard})
		if err != nil {
			t.Fatalf("round %d (%s): reopen: %v", round, mode, err)
		}
		if rep := s.OpenReport(); !rep.OK() {
			t.Errorf("round %d (%s): the store needed repair: %+v", round, mode, rep.Problems)
		}
		snap, err := s.Snapshot(context.Background())
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		heads := crashHeads(snap)
		for st, k := range acked {
			if heads[st] < k {
				t.Errorf("round %d (%s): stream %d acknowledged Change %d, store ends at %d", round, mode, st, k, heads[st])
			}
		}
		if err := checkCrashInvariants(snap); err != nil {
			t.Fatalf("round %d (%s): %v", round, mode, err)
		}
		t.Logf("round %d (%s): %d Changes acknowledged, store at generation %d, heads %v", round, mode, n, snap.Generation, heads)
	}
	if total < rounds {
		t.Errorf("only %d Changes in %d rounds: the children did not get going", total, rounds)
	}
}

// crashRound runs one child until a random SIGKILL and returns the last
// acknowledged Change per stream and the number of acknowledgements.
func crashRound(t *testing.T, path, mode string, rng *rand.Rand) (map[uint64]uint64, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvMode+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]uint64{}
	n := 0
	var mu sync.Mutex
	first := make(chan struct{})
	done := make(chan struct{})
	var childErr string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		once := sync.OnceFunc(func() { close(first) })
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[0] == "ack" {
				st, _ := strconv.ParseUint(f[1], 10, 64)
				k, _ := strconv.ParseUint(f[2], 10, 64)
				mu.Lock()
				acked[st] = max(acked[st], k)
				n++
				mu.Unlock()
				once()
			} else if strings.HasPrefix(sc.Text(), "error") {
				childErr = sc.Text()
			}
		}
	}()
	// Mostly kill in the middle of the burst; sometimes early, while the
	// child may still be opening or checking the store.
	if rng.IntN(4) == 0 {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
	} else {
		select {
		case <-first:
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("child (%s) acknowledged nothing in 30s", mode)
		}
		time.Sleep(time.Duration(5+rng.IntN(250)) * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL
	<-done
	err = cmd.Wait()
	if childErr != "" {
		t.Fatalf("child (%s) failed: %s", mode, childErr)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
		t.Fatalf("child (%s) was not killed by the signal: %v", mode, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return acked, n
}

// checkCrashInvariants checks that snap is exactly the state after Change
// K_s of every stream s, and that the generation counts the Changes.
func checkCrashInvariants(snap *Snapshot) error {
	heads := crashHeads(snap)
	vms := map[UUID]VM{}
	for _, vm := range snap.VMs {
		vms[vm.UUID] = vm
	}
	vifs := map[MAC]VIF{}
	for _, v := range snap.VIFs {
		if _, ok := vms[v.VM]; !ok {
			return fmt.Errorf("VIF %s without its VM %s", v.MAC, v.VM)
		}
		vifs[v.MAC] = v
	}
	wantVMs, wantVIFs := 0, 0
	sum := uint64(0)
	for st, K := range heads {
		sum += K
		lastGen := uint64(0)
		for k := uint64(1); k <= K; k++ {
			vm, ok := vms[crashUUID(st, k)]
			if k+crashWindow <= K {
				if ok {
					return fmt.Errorf("stream %d: VM %d still present at head %d", st, k, K)
				}
				continue
			}
			if !ok {
				return fmt.Errorf("stream %d: VM %d missing at head %d", st, k, K)
			}
			wantVMs++
			if vm.Name != crashMarker(st, k) || vm.Generation <= lastGen {
				return fmt.Errorf("stream %d: VM %d: %+v (previous generation %d)", st, k, vm, lastGen)
			}
			lastGen = vm.Generation
			n := crashVIFs
			if k < K {
				n--
			}
			for i := range crashVIFs {
				v, ok := vifs[crashMAC(st, k, i)]
				if i >= n {
					if ok {
						return fmt.Errorf("stream %d: VIF %s of Change %d should be removed by Change %d", st, v.MAC, k, k+1)
					}
					continue
				}
				if !ok {
					return fmt.Errorf("stream %d: VIF (%d, %d) missing at head %d: partial Change", st, k, i, K)
				}
				wantVIFs++
				if v.PortGroup != vm.Name || v.VM != vm.UUID {
					return fmt.Errorf("stream %d: VIF %s marker %q, VM %q", st, v.MAC, v.PortGroup, vm.Name)
				}
				switch {
				case k == K && (v.State != StatePending || v.Last.Reason != "added" || v.Generation != vm.Generation):
					return fmt.Errorf("stream %d: head VIF %s: %+v (VM generation %d)", st, v.MAC, v, vm.Generation)
				case k < K && (v.State != StateAssociated || v.Last.Reason != crashMarker(st, k+1)):
					return fmt.Errorf("stream %d: VIF %s not moved by Change %d: %+v", st, v.MAC, k+1, v)
				}
			}
		}
	}
	if len(snap.VMs) != wantVMs || len(snap.VIFs) != wantVIFs {
		return fmt.Errorf("%d VMs and %d VIFs, want %d and %d", len(snap.VMs), len(snap.VIFs), wantVMs, wantVIFs)
	}
	if snap.Generation != sum {
		return fmt.Errorf("generation %d, but the streams' Changes add up to %d (heads %v)", snap.Generation, sum, heads)
	}
	return nil
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvMode+"=hold")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	_, err = Open(context.Background(), path, Options{LockTimeout: 100 * time.Millisecond, Logger: discard})
	want := fmt.Sprintf("inventory: %s is locked by another tetherd (pid %d)", path, cmd.Process.Pid)
	if err == nil || err.Error() != want {
		t.Errorf("Open: %v\nwant %s", err, want)
	}
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Errorf("LockedError: %+v", le)
	}
}
