// Package lab holds the Go test that runs tests/lab/demo.sh, the lab of
// two hypervisors and a switch in network namespaces with the real
// daemons, and checks the live migration figures it measures.
package lab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// migrateLine is l2probe's migrate result, as demo.sh prints it.
var migrateLine = regexp.MustCompile(`src_sent=(\d+) src_lost=(\d+) dst_sent=(\d+) dst_lost=(\d+) rarp=(true|false) dst_first_received=(-?\d+) during_ok=(true|false) stopped_at=(-?\d+) rx_socket_drops=(\d+) backlog_drops=(\d+)`)

// migrateResult is one parsed migrateLine.
type migrateResult struct {
	srcSent, srcLost, dstSent, dstLost, dstFirst, stoppedAt, rxDrops int
	// backlogDrops is what the kernel dropped from its per-CPU input
	// backlogs meanwhile, in every namespace (another test's flood on a
	// starved machine): an upper bound on the lab's frames lost there.
	backlogDrops   int
	rarp, duringOK bool
}

func parseMigrate(m []string) migrateResult {
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return migrateResult{srcSent: n(m[1]), srcLost: n(m[2]), dstSent: n(m[3]), dstLost: n(m[4]), rarp: m[5] == "true",
		dstFirst: n(m[6]), duringOK: m[7] == "true", stoppedAt: n(m[8]), rxDrops: n(m[9]), backlogDrops: n(m[10])}
}

// TestLiveMigrationFrameLoss runs the lab (demo.sh) with freshly built
// binaries, in namespaces and a lab directory of its own: web-01 migrates
// live from hostA to hostB with pre-association, then back with tetherd in
// post-move mode, each time in libvirt's real order: web-01 keeps sending
// from the source (one frame every 0.5 ms) while the destination's
// started hook runs (the Prepare phase, before the memory transfer) and
// for 300 ms after, then at the switchover it sends a RARP and 2,000
// frames from the destination while the source's stopped hook runs.
// Frames from the source are counted at the destination and the other way
// round. With pre-association none may be lost on either side, the RARP
// must cross, and between the started hook and the switchover the switch
// must list web-01 on both ports (the source noted as migrating); the
// post-move losses are logged, side by side. It runs twice: with 300 ms
// between the started hook and the switchover, and with none (the worst
// case for the destination's rule). demo.sh itself checks every
// step on the way (pre-associated VIFs and held-back rule on the
// destination port before the VM runs, the same profile at the
// destination as at the source, the source de-associated).
func TestLiveMigrationFrameLoss(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables)")
	}
	for _, tool := range []string{"ip", "unshare", "jq", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-tags", "libvirt_dlopen", "-o", bin+"/",
		"./cmd/tetherd", "./cmd/tether-switchd", "./cmd/tetherctl", "./cmd/tether-hook")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// 300 ms of memory transfer (demo.sh's default), then none: the guest
	// resuming on the destination the moment its started hook returns,
	// the worst case for the destination's rule.
	for i, transfer := range []string{"300ms", "0s"} {
		t.Run("transfer="+transfer, func(t *testing.T) {
			lab := filepath.Join(t.TempDir(), "lab")
			ns := fmt.Sprintf("tlm%d-%d", os.Getpid()%100000, i)
			cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "tests/lab/demo.sh"))
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "BINDIR="+bin, "TETHER_LAB_DIR="+lab, "TETHER_LAB_NS="+ns, "TETHER_LAB_TRANSFER="+transfer)
			// At the deadline demo.sh gets SIGTERM, so that its EXIT trap
			// stops the daemons and deletes the namespaces (SIGKILL, the
			// default, would leak them); SIGKILL only 30 s later.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 30 * time.Second
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("demo.sh failed after %v: %v\n%s", took.Round(time.Millisecond), err, out.String())
			}
			checkMigrations(t, out.String(), transfer, took)
		})
	}
}

// checkMigrations checks demo.sh's two migrate results and logs them.
func checkMigrations(t *testing.T, out, transfer string, took time.Duration) {
	t.Helper()
	var results []migrateResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := migrateLine.FindStringSubmatch(sc.Text()); m != nil {
			results = append(results, parseMigrate(m))
		}
	}
	if len(results) != 2 {
		t.Fatalf("want 2 migrate results (pre-associate, post-move), got %d:\n%s", len(results), out)
	}
	pre, post := results[0], results[1]
	for _, r := range results {
		if r.dstSent < 2000 || r.srcSent < 150 || r.rxDrops != 0 || r.stoppedAt < 0 || r.stoppedAt >= r.dstSent {
			t.Errorf("migration %+v: want at least 150 frames from the source and 2,000 from the destination, the stopped hook "+
				"done before the last, and no frame dropped by a receiving socket (else the count is not the wire's)", r)
		}
	}
	// No frame lost but for what the kernel's backlogs dropped meanwhile
	// (before the switch: another test's flood, not tether).
	if pre.srcLost+pre.dstLost > pre.backlogDrops || (!pre.rarp && pre.backlogDrops == 0) || pre.dstFirst > pre.backlogDrops || !pre.duringOK {
		t.Errorf("pre-associate: %+v; want no frame lost on either side (but for the kernel's backlog drops), the RARP and the destination's first frame through, "+
			"and web-01 listed on both ports before the switchover", pre)
	}
	t.Logf("frames lost during a live migration in libvirt's order, %s from the started hook to the switchover, 1 frame per 0.5 ms (demo.sh, %v):",
		transfer, took.Round(time.Millisecond))
	t.Logf("  pre-associate: source %d lost of %d (through the destination's started hook), destination %d lost of %d (RARP through: %v; kernel backlog drops meanwhile %d)",
		pre.srcLost, pre.srcSent, pre.dstLost, pre.dstSent, pre.rarp, pre.backlogDrops)
	t.Logf("  post-move:     source %d lost of %d, destination %d lost of %d (RARP through: %v, first frame through: #%d, about %v without a rule)",
		post.srcLost, post.srcSent, post.dstLost, post.dstSent, post.rarp, post.dstFirst, time.Duration(post.srcLost+post.dstLost)*500*time.Microsecond)
	if !strings.Contains(out, "demo: OK") {
		t.Errorf("demo.sh did not report OK:\n%s", out)
	}
}
