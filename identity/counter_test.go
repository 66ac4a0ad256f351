package identity

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestFileCounterStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "counters")
	a, b := KeyID{1, 2, 3, 4, 5, 6, 7, 8}, KeyID{0xff, 0, 0, 0, 0, 0, 0, 1}
	s, err := OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Load(ctx, a, "eth0"); m != 0 || err != nil {
		t.Fatalf("empty store: Load = %d, %v", m, err)
	}
	for _, st := range []struct {
		key  KeyID
		ch   string
		mark uint64
	}{
		{b, "eth0", 7},
		{a, `odd "channel" name`, 1 << 63},
		{a, "eth0", 1024},
		{a, "eth0", 1000}, // lower: ignored
	} {
		if err := s.Store(ctx, st.key, st.ch, st.mark); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const want = "tether counters v1\n" +
		"0102030405060708 1024 \"eth0\"\n" +
		"0102030405060708 9223372036854775808 \"odd \\\"channel\\\" name\"\n" +
		"ff00000000000001 7 \"eth0\"\n"
	if string(data) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", data, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode())
	}
	// A second process cannot open it.
	if _, err := OpenFileCounterStore(path); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, a, "eth0", 2000); err == nil {
		t.Fatal("Store after Close succeeded")
	}
	// A leftover temporary file from a crash mid-write is ignored.
	if err := os.WriteFile(filepath.Join(dir, ".counters.tmp-123"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		key  KeyID
		ch   string
		want uint64
	}{{a, "eth0", 1024}, {a, `odd "channel" name`, 1 << 63}, {b, "eth0", 7}, {b, "eth1", 0}} {
		if m, err := s.Load(ctx, c.key, c.ch); m != c.want || err != nil {
			t.Errorf("reopened: Load(%s, %q) = %d, %v; want %d", c.key, c.ch, m, err, c.want)
		}
	}
}

func TestFileCounterStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"empty":         "",
		"no header":     "0102030405060708 1 \"eth0\"\n",
		"bad key":       "tether counters v1\n01020304 1 \"eth0\"\n",
		"bad mark":      "tether counters v1\n0102030405060708 -1 \"eth0\"\n",
		"bad channel":   "tether counters v1\n0102030405060708 1 eth0\n",
		"missing field": "tether counters v1\n0102030405060708 1\n",
		"duplicate":     "tether counters v1\n0102030405060708 1 \"eth0\"\n0102030405060708 2 \"eth0\"\n",
	}
	for name, content := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFileCounterStore(path)
		if err == nil {
			s.Close()
			t.Errorf("%s: opened a corrupt store", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func TestFileCounterStoreGroupCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "counters")
	s, err := OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Store(ctx, KeyID{byte(i)}, "ch", uint64(i+1)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s.crash()
	s, err = OpenFileCounterStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < n; i++ {
		if m, _ := s.Load(ctx, KeyID{byte(i)}, "ch"); m != uint64(i+1) {
			t.Errorf("key %d: mark %d after reopen, want %d", i, m, i+1)
		}
	}
}

func TestCounterStoreContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := OpenFileCounterStore(filepath.Join(t.TempDir(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, st := range map[string]CounterStore{"file": s, "memory": new(MemoryCounterStore)} {
		if err := st.Store(ctx, KeyID{}, "x", 1); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Store with a canceled context: %v", name, err)
		}
		if _, err := st.Load(ctx, KeyID{}, "x"); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Load with a canceled context: %v", name, err)
		}
	}
	// A Signer does not hand out a counter it could not reserve.
	sg, err := NewSigner(testKey(t, 1), s, SignerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	frame := vdpFrame()
	out, err := sg.Sign(ctx, "eth0", frame)
	if !errors.Is(err, context.Canceled) || len(out) != len(frame) {
		t.Fatalf("Sign with a canceled context: %d bytes, %v", len(out), err)
	}
}

// failingStore fails every Store.
type failingStore struct{ MemoryCounterStore }

func (*failingStore) Store(context.Context, KeyID, string, uint64) error {
	return errors.New("disk full")
}

func TestVerifierRefusesWhenMarkNotPersisted(t *testing.T) {
	ctx := context.Background()
	ts := newSetup(t)
	keys, _ := NewStaticKeys(ts.key.Public())
	v, err := NewVerifier(keys, new(failingStore), VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ts.signer.Sign(ctx, "eth0", vdpFrame())
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(ctx, "swp7", f)
	want := fmt.Sprintf(`identity: persist high-water mark of key %s on channel "swp7": disk full`, ts.key.ID())
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n got %v\nwant %s", err, want)
	}
}
