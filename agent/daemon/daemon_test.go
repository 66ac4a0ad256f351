package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
)

// recordingSource is a Source whose readiness the test controls and which
// records the hook events it is handed, in order.
type recordingSource struct {
	ready atomic.Bool
	mu    sync.Mutex
	ops   []string
}

func (s *recordingSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *recordingSource) Ready() bool                   { return s.ready.Load() }
func (s *recordingSource) Status() api.SourceStatus {
	return api.SourceStatus{Name: "recording", Connected: true}
}
func (s *recordingSource) Hook(_ context.Context, ev api.HookEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tag := ev.Operation
	if ev.Spooled {
		tag += "(spooled)"
	}
	s.ops = append(s.ops, tag)
	return nil
}
func (s *recordingSource) seen() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.ops, ",")
}

const domXML = `<domain type='kvm'><name>vm1</name><uuid>0b6e5c1a-4f0e-4c53-9a7a-1d2e3f405061</uuid><devices/></domain>`

func testConfig(t *testing.T) config.Config {
	dir := t.TempDir()
	c := config.Default()
	c.StateDir = filepath.Join(dir, "state")
	c.Socket = filepath.Join(dir, "tetherd.sock")
	c.SpoolDir = filepath.Join(dir, "spool")
	c.SocketGroup = ""
	return c
}

// TestSpoolReplayedInOrderThenLive checks that events spooled while tetherd
// was down reach the handler first, in order, before live events.
func TestSpoolReplayedInOrderThenLive(t *testing.T) {
	cfg := testConfig(t)
	spool := &libvirthooks.Spool{Dir: cfg.SpoolDir}
	for _, op := range []string{"prepare", "start", "started"} {
		ev, err := libvirthooks.ParseArgs([]string{"qemu", "vm1", op, "begin", "-"})
		if err != nil {
			t.Fatal(err)
		}
		if err := spool.Put(context.Background(), ev, []byte(domXML)); err != nil {
			t.Fatal(err)
		}
	}
	src := &recordingSource{}
	src.ready.Store(true)
	d, err := New(context.Background(), Options{Config: cfg, NewSources: func(*inventory.Store, *slog.Logger) ([]Source, HookHandler, error) {
		return []Source{src}, src, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	c := &api.Client{Socket: cfg.Socket}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.PostHook(ctx, api.HookEvent{Driver: "qemu", Object: "vm1", Operation: "stopped", SubOperation: "end", Extra: "-", XML: domXML})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live hook never accepted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := src.seen(); got != "prepare(spooled),start(spooled),started(spooled),stopped" {
		t.Fatalf("handler saw %s", got)
	}
	if n, _, _ := spool.Len(); n != 0 {
		t.Fatalf("spool still holds %d events", n)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hooks api.SourceStatus
	for _, s := range st.Sources {
		if s.Name == "hooks" {
			hooks = s
		}
	}
	if hooks.Events != 4 || !hooks.Connected {
		t.Fatalf("hooks status %+v", hooks)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after stop: %v", err)
	}
}

// TestSystemdNotify checks READY=1 is sent only once the sources are ready,
// and that the watchdog is fed, over a real NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	cfg := testConfig(t)
	nsock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", nsock)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	src := &recordingSource{}
	d, err := New(context.Background(), Options{Config: cfg, NewSources: func(*inventory.Store, *slog.Logger) ([]Source, HookHandler, error) {
		return []Source{src}, src, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	read := func() string {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	// Not ready yet: only watchdog pets may arrive.
	for i := 0; i < 2; i++ {
		if m := read(); m != "WATCHDOG=1" {
			t.Fatalf("before ready got %q", m)
		}
	}
	src.ready.Store(true)
	seenReady := false
	for i := 0; i < 10 && !seenReady; i++ {
		seenReady = read() == "READY=1"
	}
	if !seenReady {
		t.Fatal("READY=1 never sent after the source became ready")
	}
	cancel()
	<-done
}
