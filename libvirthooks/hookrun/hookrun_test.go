package hookrun

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
)

const domXML = `<domain type='kvm'><name>vm1</name><uuid>0b6e5c1a-4f0e-4c53-9a7a-1d2e3f405061</uuid>
<devices><interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='vnet0'/></interface></devices></domain>`

// fakeTetherd records hook events; status, when non-zero, is answered instead.
type fakeTetherd struct {
	mu     sync.Mutex
	got    []api.HookEvent
	status int
	block  chan struct{}
}

func (f *fakeTetherd) start(t *testing.T) *api.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tetherd.sock")
	l, err := api.Listen(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathHook, func(w http.ResponseWriter, r *http.Request) {
		if f.block != nil {
			select {
			case <-f.block:
			case <-r.Context().Done():
				return
			}
		}
		var ev api.HookEvent
		if st, err := api.DecodeJSON(w, r, 0, &ev); err != nil {
			api.WriteError(w, st, "bad_request", err.Error())
			return
		}
		if f.status != 0 {
			api.WriteError(w, f.status, "refused", "refused by test")
			return
		}
		f.mu.Lock()
		f.got = append(f.got, ev)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &api.Client{Socket: sock}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && !strings.HasSuffix(e.Name(), ".lock") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func TestRunDelivers(t *testing.T) {
	f := &fakeTetherd{}
	client := f.start(t)
	spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	var stderr bytes.Buffer
	code, res := Run(context.Background(), Options{
		Args: []string{"qemu", "vm1", "started", "begin", "-"}, Stdin: strings.NewReader(domXML),
		Stderr: &stderr, Client: client, Spool: spool,
	})
	if code != 0 || res != Delivered {
		t.Fatalf("Run = %d, %v; stderr %q", code, res, stderr.String())
	}
	if len(f.got) != 1 || f.got[0].Object != "vm1" || f.got[0].Operation != "started" || f.got[0].XML != domXML {
		t.Fatalf("tetherd got %+v", f.got)
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr %q, want nothing", stderr.String())
	}
	if n := spoolFiles(t, spool.Dir); len(n) != 0 {
		t.Fatalf("spool has %v", n)
	}
}

func TestRunSpoolsWhenDown(t *testing.T) {
	client := &api.Client{Socket: filepath.Join(t.TempDir(), "absent.sock")}
	spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	var stderr bytes.Buffer
	ops := []string{"prepare", "start", "started", "stopped", "release"}
	for _, op := range ops {
		code, res := Run(context.Background(), Options{
			Args: []string{"qemu", "vm1", op, "begin", "-"}, Stdin: strings.NewReader(domXML),
			Stderr: &stderr, Client: client, Spool: spool,
		})
		if code != 0 || res != Spooled {
			t.Fatalf("%s: Run = %d, %v; stderr %q", op, code, res, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), "tetherd is not running") || !strings.Contains(stderr.String(), "spooled in "+spool.Dir) {
		t.Fatalf("stderr does not explain: %q", stderr.String())
	}
	// Replay gives the events back whole and in order.
	var got []string
	err := spool.Replay(context.Background(), func(se libvirthooks.SpooledEvent) error {
		if string(se.XML) != domXML {
			t.Errorf("spooled XML differs")
		}
		got = append(got, string(se.Event.Operation))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(ops, ",") {
		t.Fatalf("replayed %v, want %v", got, ops)
	}
}

func TestRunSpoolsWhenHung(t *testing.T) {
	f := &fakeTetherd{block: make(chan struct{})}
	defer close(f.block)
	client := f.start(t)
	spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	code, res := Run(context.Background(), Options{
		Args: []string{"qemu", "vm1", "stopped", "end", "-"}, Stdin: strings.NewReader(domXML),
		Stderr: &bytes.Buffer{}, Client: client, Spool: spool, DeliverTimeout: 100 * time.Millisecond,
	})
	if code != 0 || res != Spooled || len(spoolFiles(t, spool.Dir)) != 1 {
		t.Fatalf("Run = %d, %v, spool %v", code, res, spoolFiles(t, spool.Dir))
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	f := &fakeTetherd{}
	client := f.start(t)
	cases := []struct {
		name   string
		args   []string
		stdin  string
		limit  int64
		code   int
		stderr string
	}{
		{"no args", nil, domXML, 0, 2, "tether-hook: want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got 0\n"},
		{"four args", []string{"qemu", "vm1", "start", "begin"}, domXML, 0, 2, "tether-hook: want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got 4\n"},
		{"bad driver", []string{"lxc", "vm1", "start", "begin", "-"}, domXML, 0, 2, "tether-hook: unknown hook driver \"lxc\" (want qemu or network)\n"},
		{"garbage xml", []string{"qemu", "vm1", "start", "begin", "-"}, "<domain><name>vm1", 0, 3, ""},
		{"other domain", []string{"qemu", "vm2", "start", "begin", "-"}, domXML, 0, 3, ""},
		{"oversize", []string{"qemu", "vm1", "start", "begin", "-"}, domXML, 64, 4, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
			var stderr bytes.Buffer
			code, res := Run(context.Background(), Options{Args: tc.args, Stdin: strings.NewReader(tc.stdin),
				Stderr: &stderr, Client: client, Spool: spool, XMLLimit: tc.limit})
			if code != tc.code || res != Failed {
				t.Fatalf("Run = %d, %v; want %d; stderr %q", code, res, tc.code, stderr.String())
			}
			if tc.stderr != "" && stderr.String() != tc.stderr {
				t.Fatalf("stderr %q\nwant   %q", stderr.String(), tc.stderr)
			}
			if !strings.HasPrefix(stderr.String(), "tether-hook: ") {
				t.Fatalf("stderr %q has no message", stderr.String())
			}
			if len(f.got) != 0 || len(spoolFiles(t, spool.Dir)) != 0 {
				t.Fatalf("bad input reached tetherd (%d) or the spool", len(f.got))
			}
		})
	}
}

func TestRunIgnoresUnknownOperation(t *testing.T) {
	f := &fakeTetherd{}
	client := f.start(t)
	spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	var stderr bytes.Buffer
	code, res := Run(context.Background(), Options{Args: []string{"qemu", "vm1", "teleport", "begin", "-"},
		Stdin: strings.NewReader(domXML), Stderr: &stderr, Client: client, Spool: spool})
	if code != 0 || res != Ignored || len(f.got) != 0 || len(spoolFiles(t, spool.Dir)) != 0 {
		t.Fatalf("Run = %d, %v; delivered %d", code, res, len(f.got))
	}
	if !strings.HasPrefix(stderr.String(), "tether-hook: ignoring event: ") {
		t.Fatalf("stderr %q", stderr.String())
	}
}

func TestRunRefusedByTetherdIsNotSpooled(t *testing.T) {
	f := &fakeTetherd{status: http.StatusUnprocessableEntity}
	client := f.start(t)
	spool := &libvirthooks.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	var stderr bytes.Buffer
	code, res := Run(context.Background(), Options{Args: []string{"qemu", "vm1", "start", "begin", "-"},
		Stdin: strings.NewReader(domXML), Stderr: &stderr, Client: client, Spool: spool})
	if code != 1 || res != Failed || len(spoolFiles(t, spool.Dir)) != 0 {
		t.Fatalf("Run = %d, %v, spool %v", code, res, spoolFiles(t, spool.Dir))
	}
	if stderr.String() != "tether-hook: tetherd refused qemu vm1 start begin -: refused by test\n" {
		t.Fatalf("stderr %q", stderr.String())
	}
}

// BenchmarkHookRoundTrip measures one hook invocation in process: argv and
// XML validation plus the round trip to a tetherd API server on a unix
// socket (the cost libvirtd waits for, less the process exec).
func BenchmarkHookRoundTrip(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "tetherd.sock")
	l, err := api.Listen(sock, "")
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathHook, func(w http.ResponseWriter, r *http.Request) {
		var ev api.HookEvent
		api.DecodeJSON(w, r, 0, &ev)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	defer srv.Close()
	client := &api.Client{Socket: sock}
	spool := &libvirthooks.Spool{Dir: filepath.Join(b.TempDir(), "spool")}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		code, res := Run(context.Background(), Options{Args: []string{"qemu", "vm1", "started", "begin", "-"},
			Stdin: strings.NewReader(domXML), Client: client, Spool: spool})
		lat = append(lat, time.Since(start))
		if code != 0 || res != Delivered {
			b.Fatalf("Run = %d, %v", code, res)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
