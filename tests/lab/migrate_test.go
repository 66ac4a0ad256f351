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
	"testing"
	"time"
)

// streamLine is l2probe's stream result, as demo.sh prints it.
var streamLine = regexp.MustCompile(`sent=(\d+) received=(\d+) lost=(\d+) rarp=(true|false) first_received=(-?\d+) rx_socket_drops=(\d+)`)

// streamResult is one parsed streamLine.
type streamResult struct {
	sent, received, lost, firstReceived, rxDrops int
	rarp                                         bool
}

func parseStream(m []string) streamResult {
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return streamResult{sent: n(m[1]), received: n(m[2]), lost: n(m[3]), rarp: m[4] == "true", firstReceived: n(m[5]), rxDrops: n(m[6])}
}

// TestLiveMigrationFrameLoss runs the lab (demo.sh) with freshly built
// binaries, in namespaces and a lab directory of its own: web-01 migrates
// live from hostA to hostB with pre-association, then back with tetherd in
// post-move mode, and each time a RARP and 2,000 frames (one every
// 0.5 ms) leave the destination as web-01 as soon as the guest may run;
// the frames that cross the switch to the other host are counted. With
// pre-association none may be lost (and the RARP must cross); the
// post-move losses are logged, side by side. demo.sh itself checks every
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
	lab := filepath.Join(t.TempDir(), "lab")
	ns := fmt.Sprintf("tlm%d", os.Getpid()%100000)
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "tests/lab/demo.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BINDIR="+bin, "TETHER_LAB_DIR="+lab, "TETHER_LAB_NS="+ns)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("demo.sh failed after %v: %v\n%s", took.Round(time.Millisecond), err, out.String())
	}
	var results []streamResult
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if m := streamLine.FindStringSubmatch(sc.Text()); m != nil {
			results = append(results, parseStream(m))
		}
	}
	if len(results) != 2 {
		t.Fatalf("want 2 stream results (pre-associate, post-move), got %d:\n%s", len(results), out.String())
	}
	pre, post := results[0], results[1]
	for _, r := range results {
		if r.sent != 2000 || r.rxDrops != 0 {
			t.Errorf("stream %+v: want 2000 sent and no frame dropped by the receiving socket (else the count is not the wire's)", r)
		}
	}
	if pre.lost != 0 || !pre.rarp || pre.firstReceived != 0 {
		t.Errorf("pre-associate: %+v; want no frame lost, the RARP and frame 0 through", pre)
	}
	t.Logf("frames lost after a live migration, 2,000 sent at 1 per 0.5 ms as soon as the guest may run (demo.sh, %v):", took.Round(time.Millisecond))
	t.Logf("  pre-associate: %d lost (RARP through: %v)", pre.lost, pre.rarp)
	t.Logf("  post-move:     %d lost (RARP through: %v, first frame through: #%d, about %v without a rule)",
		post.lost, post.rarp, post.firstReceived, time.Duration(post.lost)*500*time.Microsecond)
	if !strings.Contains(out.String(), "demo: OK") {
		t.Errorf("demo.sh did not report OK:\n%s", out.String())
	}
}
