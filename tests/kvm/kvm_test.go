package kvm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// prepared makes sure the cache is ready, preparing it on first use, or
// skips the test.
func prepared(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := Ensure(ctx); err != nil {
		if errors.Is(err, ErrNoQEMU) || errors.Is(err, ErrNotPrepared) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return CacheDir()
}

// buildStatic builds the main package in dir (its own module) as a static
// binary.
func buildStatic(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := string(out)
		if strings.Contains(s, "dial tcp") || strings.Contains(s, "proxy.golang.org") || strings.Contains(s, "lookup disabled") {
			t.Skipf("cannot fetch %s's modules (needs the Go module proxy once): %s", dir, s)
		}
		t.Fatalf("build %s: %v\n%s", dir, err, s)
	}
	return bin
}

// TestSmoke boots the kernel VM with testdata/smoke: an 802.1ad S-Tag device
// on a dummy, an 802.1Q C-Tag device on top, a vlan_filtering bridge with a
// VLAN on a veth port, all read back over netlink.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel VM (~4 s under TCG); not in -short")
	}
	prepared(t)
	bin := buildStatic(t, filepath.Join("testdata", "smoke"))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	start := time.Now()
	code, out, err := Run(ctx, bin, nil)
	elapsed := time.Since(start)
	t.Logf("boot + run: %v (kernel %s)", elapsed.Round(10*time.Millisecond), kernelName())
	if err != nil {
		t.Fatalf("Run: %v\nconsole:\n%s", err, out)
	}
	if code != 0 {
		t.Fatalf("exit %d, want 0; console:\n%s", code, out)
	}
	for _, want := range []string{
		"SMOKE vlan stag100 on dum0 id 100 protocol 802.1ad",
		"SMOKE vlan ctag200 on stag100 id 200 protocol 802.1q",
		"SMOKE bridge br0 vlan_filtering=1 (netlink true)",
		"SMOKE bridge port vethA vlan 300 pvid untagged",
		"SMOKE PASS",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("console lacks %q; console:\n%s", want, out)
		}
	}
}

// TestExitStatusAndArgs checks that arguments with spaces and quotes, the
// environment, a testdata directory and a non-zero exit status all cross
// the VM boundary.
func TestExitStatusAndArgs(t *testing.T) {
	if testing.Short() || os.Getenv("TETHER_TEST_ALL") != "1" {
		t.Skip("second kernel-VM boot; set TETHER_TEST_ALL=1")
	}
	prepared(t)
	bin := buildStatic(t, filepath.Join("testdata", "echoexit"))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	args := []string{"-test.run=^TestX$", "two words", `it's "quoted"`, "$HOME", ""}
	pkg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(pkg, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "testdata", "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, err := RunOptions(ctx, Options{Env: []string{"TETHER_X=a b'c"}, Dir: pkg}, bin, args)
	if err != nil {
		t.Fatalf("Run: %v\nconsole:\n%s", err, out)
	}
	if code != 7 {
		t.Errorf("exit %d, want 7", code)
	}
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "ARG="); ok {
			got = append(got, v)
		}
	}
	if !reflect.DeepEqual(got, args) {
		t.Errorf("args %q, want %q", got, args)
	}
	for _, want := range []string{"ENV TETHER_X=a b'c", "ENV TETHER_KVM=1", "CWD /pkg", "TESTDATA hi"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
}

func kernelName() string {
	b, _ := os.ReadFile(filepath.Join(CacheDir(), "VERSION"))
	return strings.TrimSpace(string(b))
}

func TestScriptQuoting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := []string{"a b", `it's`, `"$x"`, "", "-test.run=^A$|B"}
	s := string(testScript("/", []string{"TETHER_Y=1 2", "bad-name=x"}, args))
	if strings.Contains(s, "bad-name") {
		t.Errorf("invalid variable name exported:\n%s", s)
	}
	// Run the script's command line with printf in place of /test.
	s = strings.Replace(s, "exec /test", `printf '%s\n' "$TETHER_Y"`, 1)
	out, err := exec.Command(sh, "-c", s).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"1 2"}, args...)
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCheckStatic(t *testing.T) {
	if err := checkStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("checkStatic(/bin/sh) = %v, want dynamically linked error", err)
	}
	if _, _, err := RunOptions(context.Background(), Options{Cache: t.TempDir()}, "/bin/sh", nil); !errors.Is(err, ErrNotPrepared) {
		t.Errorf("RunOptions with empty cache: %v, want ErrNotPrepared", err)
	}
}

// TestTimeout checks that a context deadline stops the guest and is
// reported as an error, not as an exit status.
func TestTimeout(t *testing.T) {
	if testing.Short() || os.Getenv("TETHER_TEST_ALL") != "1" {
		t.Skip("kernel-VM boot; set TETHER_TEST_ALL=1")
	}
	prepared(t)
	bin := buildStatic(t, filepath.Join("testdata", "echoexit"))
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	start := time.Now()
	code, _, err := Run(ctx, bin, nil)
	if !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Errorf("Run = %d, %v; want -1, deadline exceeded", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v; QEMU was not stopped promptly", d)
	}
}
