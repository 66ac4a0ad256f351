package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testEtcd is the embedded etcd shared by the tests that do not stop it.
var testEtcd *etcdembed.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	srv, stop, err := etcdembed.StartTemp(ctx, "tether-cache-test-", etcdembed.Config{UnsafeNoFsync: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEtcd = srv
	code := m.Run()
	stop()
	os.Exit(code)
}

// dialStore returns a store on endpoints under prefix with its own client.
func dialStore(t testing.TB, endpoints []string, prefix string) *store.Store {
	t.Helper()
	c, err := store.Dial(context.Background(), store.ClientConfig{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := store.New(c, store.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testPrefix is a key prefix unique to the test.
func testPrefix(t testing.TB) string {
	return fmt.Sprintf("/test/%s-%d/", t.Name(), time.Now().UnixNano())
}

func vmUUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", i) }

func mac(i int) string {
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

func placement(i int, host string) policy.Placement {
	return policy.Placement{VM: vmUUID(i), Name: fmt.Sprintf("vm-%d", i), Host: host, State: policy.StateRunning,
		MACs: []string{mac(i)}, Updated: time.Unix(1700000000, 0).UTC()}
}

// recorder is an OnChange that checks events arrive once each, in order.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]int // "key@rev" -> count
	lastRev  int64
	events   int
	relists  int
	disorder []string
	notify   chan int64
}

func newRecorder() *recorder {
	return &recorder{seen: make(map[string]int), notify: make(chan int64, 1)}
}

func (r *recorder) OnChange(ch Change) {
	r.mu.Lock()
	if ch.Relisted {
		r.relists++
	}
	for _, e := range ch.Events {
		k := fmt.Sprintf("%s/%s@%d", e.Kind, e.Key, e.Revision)
		r.seen[k]++
		r.events++
		if e.Revision < r.lastRev {
			r.disorder = append(r.disorder, fmt.Sprintf("%s after revision %d", k, r.lastRev))
		}
		r.lastRev = e.Revision
	}
	if ch.Revision > r.lastRev {
		r.lastRev = ch.Revision
	}
	r.mu.Unlock()
	select {
	case r.notify <- ch.Revision:
	default:
	}
}

// check fails the test on a duplicated or out-of-order event.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", k, n)
		}
	}
	for _, d := range r.disorder {
		t.Errorf("out of order: %s", d)
	}
}

// runCache starts c.Run and stops it at the end of the test.
func runCache(t testing.TB, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
}

// waitRevision waits until the cache has applied rev.
func waitRevision(t testing.TB, c *Cache, rev int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for c.Revision() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("cache at revision %d, want %d after %v", c.Revision(), rev, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// storeRevision returns the store's current revision.
func storeRevision(t testing.TB, s *store.Store) int64 {
	t.Helper()
	r, err := s.Client().Get(context.Background(), "rev-probe", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return r.Header.Revision
}

// compareWithStore fails the test unless the cache holds exactly what
// the store holds.
func compareWithStore(t *testing.T, c *Cache, s *store.Store) {
	t.Helper()
	snap, err := s.ListAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range policy.Kinds() {
		got := c.Objects(k)
		want := snap.Items[k]
		if len(got) != len(want) {
			t.Errorf("%s: cache has %d, store %d", k, len(got), len(want))
		}
		for _, it := range want {
			g, ok := got[it.Object.Key()]
			if !ok {
				t.Errorf("%s/%s missing from the cache", k, it.Object.Key())
				continue
			}
			if !equalJSON(g, it.Object) {
				t.Errorf("%s/%s: cache %+v, store %+v", k, it.Object.Key(), g, it.Object)
			}
		}
	}
}

// newProxy puts an etcdembed.Proxy in front of target (host:port) for
// the test, whose connections it can cut.
func newProxy(t *testing.T, target string) *etcdembed.Proxy {
	t.Helper()
	p, err := etcdembed.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// equalJSON reports whether a and b encode the same.
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Events returns how many events were delivered.
func (r *recorder) Events() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

// Relists returns how many listings were reported.
func (r *recorder) Relists() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.relists
}
