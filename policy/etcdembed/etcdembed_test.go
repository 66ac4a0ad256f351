package etcdembed

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testLog sends etcd's errors to the test log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func client(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: NewZapLogger(nil, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSingleRestart: data written to a member survives a stop and a
// restart on the same directory and address, over TCP and a unix socket.
func TestSingleRestart(t *testing.T) {
	for _, unix := range []bool{false, true} {
		name := "tcp"
		if unix {
			name = "unix"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir := t.TempDir()
			s, err := Start(ctx, Config{Dir: dir, Unix: unix, Log: testLog(t), UnsafeNoFsync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("embedded etcd (%s) start: %v, endpoints %v", name, s.StartDuration(), s.Endpoints())
			if unix {
				for _, name := range []string{SocketName, PeerSocketName} {
					if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Type() != os.ModeSocket {
						t.Fatalf("socket %s: %v", name, err)
					}
				}
				if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("directory mode: %v %v", fi.Mode(), err)
				}
				if cfg := s.Config(); cfg.PeerPort != 0 || cfg.ClientPort != 0 {
					t.Fatalf("unix member has TCP ports: %+v", cfg)
				}
			}
			c := client(t, s.Endpoints())
			if _, err := c.Put(ctx, "k", "v1"); err != nil {
				t.Fatal(err)
			}
			cfg := s.Config()
			s.Close()
			c.Close()
			s, err = Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			t.Logf("embedded etcd (%s) restart: %v", name, s.StartDuration())
			c = client(t, s.Endpoints())
			r, err := c.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
				t.Fatalf("after restart: %v", r.Kvs)
			}
		})
	}
}

// TestStartCanceled: Start gives up when ctx ends (a cluster member
// alone never gets a leader).
func TestStartCanceled(t *testing.T) {
	p1, _ := FreePort()
	p2, _ := FreePort()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := Config{Name: "a", Dir: dir, PeerPort: p1, UnsafeNoFsync: true,
		InitialCluster: fmt.Sprintf("a=http://127.0.0.1:%d,b=http://127.0.0.1:%d", p1, p2), ClusterState: "new"}
	_, err := Start(ctx, cfg)
	if err == nil {
		t.Fatal("Start succeeded without quorum")
	}
	t.Log(err)
}

// TestClusterLeaderKill: a 3-node cluster elects a new leader after its
// leader is killed, keeps accepting writes, and the killed member catches
// up after a restart.
func TestClusterLeaderKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t0 := time.Now()
	cl, err := StartCluster(ctx, t.TempDir(), 3, Config{Log: testLog(t), UnsafeNoFsync: true, TickMs: 50, ElectionMs: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc := time.Now(); cl.Close(); t.Logf("cluster close: %v", time.Since(tc)) }) // after the clients' cleanups
	t.Logf("3-node cluster start: %v", time.Since(t0))
	c := client(t, cl.Endpoints())
	lead, err := cl.Leader()
	if err != nil {
		t.Fatal(err)
	}
	tk := time.Now()
	cl.Kill(lead)
	t.Logf("Kill: %v", time.Since(tk))
	t1 := time.Now()
	for {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Put(wctx, "after", "kill")
		wcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no write after leader kill: %v", err)
		}
	}
	t.Logf("first write after leader kill: %v", time.Since(t1))
	if l2, err := cl.Leader(); err != nil || l2 == lead {
		t.Fatalf("leader after kill: %d, %v", l2, err)
	}
	if err := cl.Restart(ctx, lead); err != nil {
		t.Fatal(err)
	}
	one := client(t, cl.MemberEndpoints(lead))
	r, err := one.Get(ctx, "after") // linearizable: goes through the leader
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("restarted member: %v %v", r, err)
	}
}

// TestStartTime logs the embedded etcd's start time: a fresh data
// directory and a restart on existing data, a few times each.
func TestStartTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var fresh, restart []time.Duration
	for range 3 {
		s, err := Start(ctx, Config{Dir: t.TempDir(), Unix: true})
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, s.StartDuration())
		cfg := s.Config()
		s.Close()
		if s, err = Start(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		restart = append(restart, s.StartDuration())
		s.Close()
	}
	t.Logf("embedded etcd start (fsync on, unix socket): fresh %v, restart %v", fresh, restart)
}

// TestConfigErrors: bad configurations are refused before anything
// starts, with these messages.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Dir: dir, LogLevel: "loud"}, `policy etcd tether-policy: log level "loud" is not debug, info, warn or error`},
		{Config{Dir: dir, Remote: &Remote{Addr: "127.0.0.1:1"}}, `policy etcd tether-policy: remote listener: address, certificate, key and CA are all required`},
		{Config{Dir: dir, Remote: &Remote{Addr: "nope", CertFile: "c", KeyFile: "k", CAFile: "a"}}, `policy etcd tether-policy: remote listener: address nope: missing port in address`},
	}
	for _, tt := range tests {
		_, err := Start(context.Background(), tt.cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("got %v\nwant %s", err, tt.want)
		}
	}
}
