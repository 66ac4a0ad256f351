package agente2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// variant returns the domains of round r: round 0 is n running domains with
// 4 vNICs each; later rounds leave out about one domain in ten, shut off
// about one in four, give each 1 to 4 vNICs and add up to n/10 new ones, so
// that the full reconcile at every start adds, changes, stops and removes.
func variant(rng *rand.Rand, n, r int) []Domain {
	if r == 0 {
		return Fleet(n, 4)
	}
	var doms []Domain
	for i := range n + n/10 {
		if rng.IntN(10) == 0 {
			continue
		}
		doms = append(doms, NewDomain(i, 1+rng.IntN(4), rng.IntN(4) != 0))
	}
	return doms
}

// virshTest runs virsh -q -c uri args (a test-driver URI: virsh loads the
// node file itself) and returns its output.
func virshTest(uri string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", uri}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("virsh -c %s %s: %w: %s", uri, strings.Join(args, " "), err, stderr)
	}
	return string(out), nil
}

// checkTestDriver checks that the test driver lists doms as the test
// expects: `virsh list --all` gives every domain with its state, and
// `virsh domiflist` of a few running ones gives their MACs on testnetJ.
// It keeps CheckInventory honest: the inventory is compared with what
// libvirt lists, not only with what the test wrote.
func checkTestDriver(t *testing.T, uri string, doms []Domain, rng *rand.Rand) {
	t.Helper()
	out, err := virshTest(uri, "list", "--all")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 {
			got[f[1]] = strings.Join(f[2:], " ")
		}
	}
	if len(got) != len(doms) {
		t.Fatalf("virsh list --all of the node file lists %d domains, want %d", len(got), len(doms))
	}
	var running []Domain
	for _, d := range doms {
		want := "shut off"
		if d.Running {
			want = "running"
			running = append(running, d)
		}
		if got[d.Name] != want {
			t.Fatalf("virsh list --all: %s is %q, want %q", d.Name, got[d.Name], want)
		}
	}
	for range min(3, len(running)) {
		d := running[rng.IntN(len(running))]
		out, err := virshTest(uri, "domiflist", d.Name)
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 5 {
				rows = append(rows, f[0]+" "+f[4])
			}
		}
		var want []string
		for j, m := range d.MACs {
			want = append(want, fmt.Sprintf("testnet%d %s", j, m))
		}
		if strings.Join(rows, ",") != strings.Join(want, ",") {
			t.Fatalf("virsh domiflist %s: %v, want %v", d.Name, rows, want)
		}
	}
}

// watcher polls tetherd's status while it runs and remembers the highest
// committed generation it saw and whether it saw it ready.
type watcher struct {
	env  *Env
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	maxGen  uint64
	ready   bool
	answers int
}

// watch starts a watcher that polls every 5 ms.
func watch(env *Env) *watcher {
	w := &watcher{env: env, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			st, err := w.env.Status(context.Background())
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.answers++
			w.maxGen = max(w.maxGen, st.Generation)
			w.ready = w.ready || st.Ready
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watcher and returns what it saw.
func (w *watcher) end() (maxGen uint64, ready bool, answers int) {
	close(w.stop)
	w.wg.Wait()
	return w.maxGen, w.ready, w.answers
}

// badLog returns the records of a tetherd log that say the store or the
// spool was not whole or tetherd could not take over: an error, a record
// problem or repair at open, a problems count above zero, the store locked
// or the socket taken by another tetherd, a spooled event dropped, a replay
// stopped, or a non-JSON line (a panic).
func badLog(recs []LogRecord) []LogRecord {
	var bad []LogRecord
	for _, r := range recs {
		n, _ := r.Num("problems")
		switch {
		case r.Level() == "ERROR", r.Level() == "RAW", n > 0,
			strings.Contains(r.String(), "is locked by"), strings.Contains(r.String(), "already listening"),
			r.Msg() == "inventory record problem", r.Msg() == "inventory repaired at open",
			r.Msg() == "dropping spooled hook event",
			r.Msg() == "spool replay stopped; the rest stays spooled":
			bad = append(bad, r)
		}
	}
	return bad
}

// killAtWrite kills d extra after the store file db first differs (size
// or modification time) from before (nil: absent), which is bbolt writing
// a commit (the full reconcile's, the only writer while libvirt stays as
// it is; or the file's creation at the first start). It polls without
// sleeping, so the kill comes within microseconds. If the file does not
// change within limit, or d exits, it kills d anyway and returns false.
func killAtWrite(t *testing.T, d *Tetherd, db string, before os.FileInfo, extra, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && !d.Exited() {
		fi, err := os.Stat(db)
		if err == nil && (before == nil || fi.Size() != before.Size() || !fi.ModTime().Equal(before.ModTime())) {
			for begin := time.Now(); time.Since(begin) < extra; {
				runtime.Gosched()
			}
			d.Kill(t)
			return true
		}
		runtime.Gosched()
	}
	d.Kill(t)
	return false
}

// seed returns the seed of the random choices: TETHER_E2E_SEED when set,
// else the clock.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("TETHER_E2E_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("TETHER_E2E_SEED=%q: %v", v, err)
		}
	}
	t.Logf("random seed %d (set TETHER_E2E_SEED=%d to repeat the choices)", s, s)
	return s
}

// TestTetherdKill9DuringBurst SIGKILLs tetherd at a random moment of its
// start (opening the store, replaying the spool, the full reconcile that
// commits the round's changes) or of its run, while a burst of tether-hook
// runs (3 workers, the real binary) goes on, over several rounds. tetherd
// follows the test driver loaded from a node file that changes every round
// (domains added, removed, stopped, vNICs added and removed: see variant),
// so every start has something to commit. The burst goes on after the kill
// until some hooks have spooled, then stops, and a new tetherd starts. The
// test checks that
//
//   - it starts and gets ready: no lock error, and neither its log nor the
//     killed one's reports a store problem (problems=0 at open, no repair,
//     no error, no panic);
//   - its store opens at a generation at least the highest one the killed
//     tetherd reported through the API (a committed change survives
//     SIGKILL);
//   - it replayed exactly the events the spool held (its log and its hooks
//     counter say so), leaving the spool empty with no corrupt file;
//   - no tether-hook run failed (each delivered or spooled);
//   - its VMs and VIFs equal what the test driver lists (CheckInventory,
//     which `virsh list --all` and `virsh domiflist` of the same node file
//     confirm).
//
// The default run has 6 rounds on 200 domains; TETHER_TEST_ALL=1 has 25
// rounds on 1,000 domains (4,000 vNICs in round 0).
func TestTetherdKill9DuringBurst(t *testing.T) {
	bins := Build(t)
	rounds, n := 6, 200
	if all() {
		rounds, n = 25, 1000
	}
	rng := rand.New(rand.NewPCG(seed(t), 1))
	dir := t.TempDir()
	env := NewEnv(t, bins, dir, "")
	var known Known
	window := 300 * time.Millisecond // kills land in [0, window) after exec
	phases := map[string]int{}
	var prevGen uint64 // the generation the last round ended with
	for r := range rounds {
		doms := variant(rng, n, r)
		known.Add(doms)
		uri, err := WriteNode(filepath.Join(dir, fmt.Sprintf("node-%02d.xml", r)), doms)
		if err != nil {
			t.Fatal(err)
		}
		checkTestDriver(t, uri, doms, rng)
		env.SetURI(t, uri)

		// When to kill is the random moment under test (the waits are not
		// assertions). Even rounds pick it in [0, window) after exec; odd
		// rounds aim at the reconcile's commit: the kill comes 0 to 2 ms
		// after the store file starts to change.
		db := filepath.Join(env.StateDir, "inventory.db")
		dbBefore, _ := os.Stat(db) // nil before the first start
		victim := env.Start(t)
		w := watch(env)
		burst := StartBurst(env, doms, 3, rng.Uint64())
		var aim string
		var delay time.Duration
		if r%2 == 0 {
			delay = time.Duration(rng.Int64N(int64(window)))
			aim = fmt.Sprintf("%v after exec", delay.Round(time.Millisecond))
			time.Sleep(delay)
			victim.Kill(t)
		} else {
			delay = time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
			if seen := killAtWrite(t, victim, db, dbBefore, delay, waitLong); seen {
				aim = fmt.Sprintf("%v after the store file changed, %v after exec", delay.Round(10*time.Microsecond), time.Since(victim.Began).Round(time.Millisecond))
			} else {
				aim = "when the store file had not changed for 20 s"
			}
		}
		killed := time.Now()
		maxGen, sawReady, answers := w.end()
		// Some hooks run while no tetherd listens: they must spool.
		Eventually(t, waitLong, "hook runs with tetherd down", func() error {
			if n := burst.RunsSince(killed); n < 4 {
				return fmt.Errorf("%d runs since the kill", n)
			}
			return nil
		})
		// The burst stops before the next tetherd starts: an event refused
		// during that tetherd's startup replay can be left in the spool (see
		// TestHookRefusedDuringReplayIsNotStranded), which is not what this
		// test is about.
		stats := burst.Stop()
		for _, f := range stats.Failed {
			t.Errorf("round %d: %s", r, f)
		}
		spooled, _, err := env.SpoolFiles()
		if err != nil {
			t.Fatal(err)
		}

		vrecs, err := victim.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range badLog(vrecs) {
			t.Errorf("round %d: killed tetherd logged: %v", r, rec)
		}

		checker := env.Start(t)
		st := checker.WaitReady(t, 2*time.Minute)
		readyIn := time.Since(checker.Began)
		// The killed tetherd shares the CPUs with the burst: give it more.
		window = max(3*readyIn, 200*time.Millisecond)
		Eventually(t, 10*time.Second, fmt.Sprintf("round %d: spool drained", r), func() error {
			events, bad, err := env.SpoolFiles()
			if err == nil && (len(events) > 0 || len(bad) > 0) {
				err = fmt.Errorf("spool holds %d events %v, bad/ %v", len(events), events, bad)
			}
			return err
		})
		Eventually(t, waitLong, fmt.Sprintf("round %d: inventory matches the test driver", r), func() error {
			vms, vifs, err := env.Snapshot(context.Background())
			if err != nil {
				return err
			}
			return CheckInventory(doms, known, vms, vifs)
		})

		crecs, err := checker.Records()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range badLog(crecs) {
			t.Errorf("round %d: restarted tetherd logged: %v", r, rec)
		}
		opened := Find(crecs, "inventory opened")
		if len(opened) != 1 {
			t.Fatalf("round %d: restarted tetherd logged %d \"inventory opened\" records, want 1", r, len(opened))
		}
		openGen, _ := opened[0].Num("generation")
		if uint64(openGen) < maxGen {
			t.Errorf("round %d: the store opened at generation %v after the kill, but the killed tetherd had reported %d", r, openGen, maxGen)
		}
		replayed := 0.0
		for _, rec := range Find(crecs, "replayed spooled hook events") {
			c, _ := rec.Num("count")
			replayed += c
		}
		if int(replayed) != len(spooled) {
			t.Errorf("round %d: restarted tetherd replayed %v spooled events, the spool held %d", r, replayed, len(spooled))
		}
		if hooks, _ := Source(st, "hooks"); hooks.Events != uint64(len(spooled)) {
			t.Errorf("round %d: restarted tetherd's hooks source counted %d events, the spool held %d", r, hooks.Events, len(spooled))
		}

		// Where the kill landed, from the logs and the generation the
		// store opened with: the killed tetherd's reconcile is the only
		// writer, so a higher generation is its commit.
		phase := "before the store opened"
		switch {
		case len(Find(vrecs, "inventory opened")) == 0:
		case uint64(openGen) == prevGen:
			phase = "before its commit was durable"
		case sawReady:
			phase = "after its commit, after ready"
		default:
			phase = "after its commit"
		}
		phases[phase]++
		// The status WaitReady returned may predate the reconcile's commit
		// (see TestFirstReadyStatusHasTheReconciledInventory): ask again.
		if st, err = env.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d domains, %d live vNICs; killed %s: %s (%d status answers, highest generation %d); "+
			"restart opened generation %v, ready in %v, then at %d; %d events spooled, %v replayed; burst: %d runs, %d delivered, %d spooled",
			r, len(doms), len(LiveMACs(doms)), aim, phase, answers, maxGen,
			openGen, readyIn.Round(time.Millisecond), st.Generation, len(spooled), replayed, stats.Runs, stats.Delivered, stats.Spooled)
		if t.Failed() {
			t.FailNow()
		}
		prevGen = st.Generation
		checker.Kill(t) // a kill at rest, too: the next round's tetherd opens after it
	}
	t.Logf("where the kills landed: %v", phases)
}
