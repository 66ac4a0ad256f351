package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/client"
	"github.com/tether-net/tether/policy/server"
)

// build builds the real tether-policyd binary into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tether-policyd")
	cmd := exec.Command("go", "build", "-tags", "libvirt_dlopen", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCheckConfigAndHelp(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("write "+server.HashToken("x")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("tokens_file: "+tokens+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--config", good, "--check-config").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tokens_file: "+tokens) || !strings.Contains(string(out), "data_dir: /var/lib/tether/policy") {
		t.Errorf("--check-config of a good file: %v\n%s", err, out)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"listn: x\n", "tether-policyd: config " + filepath.Join(dir, "bad.yaml") + ": line 1: unknown key \"listn\"\n"},
		{"tokens_file: " + filepath.Join(dir, "missing") + "\n", "tether-policyd: tokens file: open " + filepath.Join(dir, "missing") + ": no such file or directory\n"},
	} {
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--config", bad, "--check-config")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || stderr.String() != tc.want {
			t.Errorf("--check-config of %q: %v %q\nwant exit 2 %q", tc.yaml, err, stderr.String(), tc.want)
		}
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	for _, want := range []string{"sha256sum", "tetherctl policy", "etcd.endpoints", "--check-config"} {
		if !strings.Contains(string(help), want) {
			t.Errorf("--help does not mention %q:\n%s", want, help)
		}
	}
}

// TestRSS10k measures the real binary: the embedded etcd's start time as
// tether-policyd logs it, and its RSS empty and with 10,000 VM placements
// and a port group per 100 VMs. Run with
//
//	TETHER_TEST_ALL=1 go test -tags libvirt_dlopen -count=1 -run TestRSS10k -v ./cmd/tether-policyd/
func TestRSS10k(t *testing.T) {
	if os.Getenv("TETHER_TEST_ALL") != "1" {
		t.Skip("loads 10,000 placements: set TETHER_TEST_ALL=1")
	}
	bin := build(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("write "+server.HashToken("bench")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfgPath := filepath.Join(dir, "policyd.yaml")
	cfg := fmt.Sprintf("listen: %s\ntokens_file: %s\netcd:\n  embedded: {data_dir: %s}\n", addr, tokens, filepath.Join(dir, "db"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, es, ready := startBinary(t, bin, cfgPath)
	rss0, _ := rss(t, cmd.Process.Pid)

	c := &client.Client{Server: "http://" + addr, Token: "bench"}
	ctx := context.Background()
	const vms, perGroup, workers = 10000, 100, 32
	if _, err := c.Create(ctx, &policy.Profile{Name: "default", Mode: policy.ModeSwitch, VID: 10}); err != nil {
		t.Fatal(err)
	}
	uuid := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", i) }
	jobs := make(chan policy.Object)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range jobs {
				if _, err := c.Create(ctx, o); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	tLoad := time.Now()
	for g := 0; g < vms/perGroup; g++ {
		grp := &policy.PortGroup{Name: fmt.Sprintf("group-%03d", g), Profile: "default"}
		for i := g * perGroup; i < (g+1)*perGroup; i++ {
			grp.Match.UUIDs = append(grp.Match.UUIDs, uuid(i))
		}
		jobs <- grp
	}
	for i := 0; i < vms; i++ {
		jobs <- &policy.Placement{VM: uuid(i), Name: fmt.Sprintf("vm-%05d", i), Host: fmt.Sprintf("hv%03d", i/100),
			MACs: []string{fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)}, State: policy.StateRunning,
			Source: "bench", Updated: time.Now().UTC()}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	load := time.Since(tLoad)
	tList := time.Now()
	l2, err := c.List(ctx, policy.KindPlacements)
	if err != nil || len(l2.Items) != vms {
		t.Fatalf("list: %d items, %v", len(l2.Items), err)
	}
	list := time.Since(tList)
	rss1, hwm := rss(t, cmd.Process.Pid)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	// Restart on the loaded data: etcd's start time with 10,000 objects.
	cmd2, es2, ready2 := startBinary(t, bin, cfgPath)
	if _, err := c.List(ctx, policy.KindPlacements); err != nil {
		t.Fatal(err)
	}
	rss2, _ := rss(t, cmd2.Process.Pid)
	t.Logf("restart on the loaded data: etcd start %s as logged, serving %v after exec, RSS after one full list %d MiB",
		es2, ready2.Round(time.Millisecond), rss2>>10)
	t.Logf("tether-policyd (real binary, embedded etcd with fsync): etcd start %s as logged, serving %v after exec", es, ready.Round(time.Millisecond))
	t.Logf("RSS empty %d MiB; with %d placements + %d groups (x%d UUIDs) + 1 profile: RSS %d MiB, peak %d MiB",
		rss0>>10, vms, vms/perGroup, perGroup, rss1>>10, hwm>>10)
	t.Logf("load over HTTP with %d clients: %v (%.0f writes/s); list of %d placements: %v",
		workers, load.Round(time.Millisecond), float64(vms+vms/perGroup)/load.Seconds(), vms, list.Round(time.Millisecond))
}

// startBinary starts the binary and waits until it serves; it returns the
// process, the embedded etcd start time it logged and the time from exec
// to serving. The process is stopped at the end of the test.
func startBinary(t *testing.T, bin, cfgPath string) (*exec.Cmd, string, time.Duration) {
	t.Helper()
	t0 := time.Now()
	cmd := exec.Command(bin, "--config", cfgPath)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	startRe := regexp.MustCompile(`msg="embedded etcd started".* start=(\S+)`)
	serving := make(chan struct{}, 1)
	etcdStart := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := startRe.FindStringSubmatch(line); m != nil {
				etcdStart <- m[1]
			}
			if strings.Contains(line, "tether-policyd serving") {
				serving <- struct{}{}
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(90 * time.Second):
		t.Fatal("tether-policyd not serving after 90s")
	}
	return cmd, <-etcdStart, time.Since(t0)
}

// rss returns VmRSS and VmHWM of pid in KiB.
func rss(t *testing.T, pid int) (cur, peak int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			cur = n
		case "VmHWM:":
			peak = n
		}
	}
	return cur, peak
}
