package datapath

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// openStore opens a real inventory in a temporary directory.
func openStore(t testing.TB) *inventory.Store {
	t.Helper()
	st, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inventory.db"),
		inventory.Options{NoSync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var testVM = inventory.VM{UUID: inventory.UUID{0xa5, 1}, Name: "vm1", State: inventory.VMStateRunning, Source: "test"}

func testMAC(i int) inventory.MAC { return inventory.MAC{0x52, 0x54, 0, 0xda, 0x7a, byte(i)} }

// addVIF records a VIF of testVM.
func addVIF(t testing.TB, st *inventory.Store, v inventory.VIF) inventory.VIF {
	t.Helper()
	v.VM = testVM.UUID
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(inventory.UpsertVM(testVM), inventory.UpsertVIF(v))); err != nil {
		t.Fatal(err)
	}
	got, err := st.VIF(v.MAC)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// setGone moves the VIF to gone, as a source does when the vNIC leaves.
func setGone(t testing.TB, st *inventory.Store, mac inventory.MAC) {
	t.Helper()
	if _, err := st.Apply(context.Background(), inventory.Change{}.Add(inventory.SetState(mac, inventory.StateGone, "test: unplugged"))); err != nil {
		t.Fatal(err)
	}
}

// run starts r until the test ends.
func run(t testing.TB, r *Reconciler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder is a recording fake of VNICs and SoftSwitch, for the ordering
// and retry tests only (the end-to-end test uses the real packages).
type recorder struct {
	mu    sync.Mutex
	calls []string
	// failEnsure fails the next N vNIC ensures with errEnsure.
	failEnsure int
	errEnsure  error
	// failOnly, when set, limits failEnsure to that VIF.
	failOnly inventory.MAC
	// drift is what Check reports.
	drift []softswitch.Difference
	held  []inventory.MAC
	ports map[string]softswitch.Port
}

func newRecorder() *recorder { return &recorder{ports: map[string]softswitch.Port{}} }

func (r *recorder) add(format string, args ...any) {
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) has(call string) bool { return slices.Contains(r.log(), call) }

func (r *recorder) Ensure(ctx context.Context, v inventory.VIF, a *Answer) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	what := "none"
	if a != nil {
		what = a.String()
	}
	if r.failEnsure > 0 && (r.failOnly.IsZero() || r.failOnly == v.MAC) {
		r.failEnsure--
		r.add("ensure %s %s: failed", v.MAC, what)
		return "", r.errEnsure
	}
	r.add("ensure %s %s", v.MAC, what)
	return "", nil
}

func (r *recorder) Release(ctx context.Context, v inventory.VIF) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add("release %s", v.MAC)
	return nil
}

func (r *recorder) Held(ctx context.Context) ([]inventory.MAC, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.held), nil
}

func (r *recorder) EnsurePort(ctx context.Context, p softswitch.Port) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add("port %s vid %d mac %s rate %d", p.Name, p.VID, p.MAC, p.RateKbps)
	r.ports[p.Name] = p
	return nil
}

func (r *recorder) RemovePort(ctx context.Context, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add("remove port %s", name)
	delete(r.ports, name)
	return nil
}

func (r *recorder) Check(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add("check %s", p.Name)
	return slices.Clone(r.drift), nil
}

func (r *recorder) Ports(ctx context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name := range r.ports {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}
