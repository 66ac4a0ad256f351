package store

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testEtcd is the embedded etcd every test of the package shares; each
// test uses its own key prefix.
var testEtcd *etcdembed.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	srv, stop, err := etcdembed.StartTemp(ctx, "tether-store-test-", etcdembed.Config{UnsafeNoFsync: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEtcd = srv
	fmt.Printf("embedded etcd start: %v\n", testEtcd.StartDuration())
	code := m.Run()
	stop()
	os.Exit(code)
}

// newStore returns a store on the shared etcd under a prefix of the test.
func newStore(t testing.TB) *Store {
	t.Helper()
	c, err := Dial(context.Background(), ClientConfig{Endpoints: testEtcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := New(c, Options{Prefix: fmt.Sprintf("/test/%s-%d/", t.Name(), time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const vm1 = "6f1c1b3e-2a4d-4c5e-9f00-0123456789ab"

func vmUUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", i) }

func placement(i int, host string) *policy.Placement {
	return &policy.Placement{VM: vmUUID(i), Name: fmt.Sprintf("vm-%d", i), Host: host, State: policy.StateRunning,
		MACs: []string{fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)}, Updated: time.Unix(1700000000, 0).UTC()}
}

func TestCRUD(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	web := &policy.Profile{Name: "web", VID: 100, Mode: policy.ModeSwitch}
	rev1, err := s.Create(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, web); !errors.Is(err, policy.ErrExists) || err.Error() != `policy store: create profiles "web": already exists` {
		t.Fatalf("second create: %v", err)
	}
	it, err := s.Get(ctx, policy.KindProfiles, "web")
	if err != nil || it.Revision != rev1 || !reflect.DeepEqual(it.Object, web) {
		t.Fatalf("get: %+v %v", it, err)
	}
	// Update at the right revision, then a stale one.
	web2 := &policy.Profile{Name: "web", VID: 200, Mode: policy.ModeSwitch}
	rev2, err := s.Update(ctx, web2, rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("update: %d %v", rev2, err)
	}
	_, err = s.Update(ctx, &policy.Profile{Name: "web", VID: 300, Mode: policy.ModeSwitch}, rev1)
	if !errors.Is(err, policy.ErrConflict) || err.Error() != fmt.Sprintf(`policy store: update profiles "web": stored at revision %d, expected %d: revision conflict`, rev2, rev1) {
		t.Fatalf("stale update: %v", err)
	}
	if it, _ := s.Get(ctx, policy.KindProfiles, "web"); it.Object.(*policy.Profile).VID != 200 {
		t.Fatalf("stale update wrote: %+v", it.Object)
	}
	if _, err := s.Update(ctx, &policy.Profile{Name: "nope", Mode: policy.ModeSwitch}, 0); !errors.Is(err, policy.ErrNotFound) || err.Error() != `policy store: update profiles "nope": not found` {
		t.Fatalf("update missing: %v", err)
	}
	if _, err := s.Update(ctx, &policy.Profile{Name: "nope", Mode: policy.ModeSwitch}, 5); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("update missing at rev: %v", err)
	}
	// List.
	if _, err := s.Create(ctx, &policy.Profile{Name: "db", Mode: policy.ModeIOExtender}); err != nil {
		t.Fatal(err)
	}
	items, rev, err := s.List(ctx, policy.KindProfiles)
	if err != nil || len(items) != 2 || items[0].Object.Key() != "db" || items[1].Object.Key() != "web" || rev < rev2 {
		t.Fatalf("list: %+v %d %v", items, rev, err)
	}
	// Delete: stale revision, right revision, missing.
	if _, err := s.Delete(ctx, policy.KindProfiles, "web", rev1); !errors.Is(err, policy.ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := s.Delete(ctx, policy.KindProfiles, "web", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, policy.KindProfiles, "web", 0); !errors.Is(err, policy.ErrNotFound) || err.Error() != `policy store: delete profiles "web": not found` {
		t.Fatalf("delete missing: %v", err)
	}
	if _, err := s.Get(ctx, policy.KindProfiles, "web"); !errors.Is(err, policy.ErrNotFound) || err.Error() != `policy store: get profiles "web": not found` {
		t.Fatalf("get deleted: %v", err)
	}
	// Hosts get their KeyID derived; placements are normalized.
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	pemKey, _ := identity.MarshalPublicKeyPEM(pub)
	if _, err := s.Create(ctx, &policy.Host{Name: "hv1", Role: policy.RoleHost, PublicKey: string(pemKey)}); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, policy.KindHosts, "hv1"); err != nil || it.Object.(*policy.Host).KeyID != identity.KeyIDOf(pub).String() {
		t.Fatalf("host: %+v %v", it, err)
	}
	p := &policy.Placement{VM: strings.ToUpper(vm1), Host: "hv1", State: policy.StateRunning, MACs: []string{"52-54-00-AA-BB-CC"}}
	if _, err := s.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if it, err := s.Get(ctx, policy.KindPlacements, vm1); err != nil || it.Object.(*policy.Placement).MACs[0] != "52:54:00:aa:bb:cc" {
		t.Fatalf("placement: %+v %v", it, err)
	}
}

// TestValidationErrors: invalid objects are rejected with the exact
// message, wrap ErrInvalid, and write nothing.
func TestValidationErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tests := []struct {
		op   func() error
		want string
	}{
		{func() error {
			_, err := s.Create(ctx, &policy.Profile{Name: "web", VID: 4095, Mode: policy.ModeSwitch})
			return err
		},
			`policy store: create: profile "web": vid: 4095 is not 0-4094`},
		{func() error { _, err := s.Create(ctx, &policy.PortGroup{Name: "g/x", Profile: "web"}); return err },
			`policy store: create: group "g/x": name: "g/x": only letters, digits, '.', '_' and '-' allowed`},
		{func() error {
			_, err := s.Create(ctx, &policy.Host{Name: "hv1", Role: "host", PublicKey: ""})
			return err
		},
			`policy store: create: host "hv1": public_key: public key: no PEM block`},
		{func() error {
			_, err := s.Update(ctx, &policy.Placement{VM: vm1, Host: "hv1", State: "gone"}, 0)
			return err
		}, `policy store: update: placement "` + vm1 + `": state: "gone" is not one of running, paused, migrating-in, migrating-out, shut-off`},
		{func() error {
			ps := []policy.Placement{*placement(1, "hv1"), *placement(2, "hv1"), {VM: vmUUID(3), Host: "", State: policy.StateRunning}}
			_, err := s.PutPlacements(ctx, ps)
			return err
		}, `policy store: put placements: [2]: placement "` + vmUUID(3) + `": host: empty`},
		{func() error { _, err := s.Create(ctx, nil); return err }, `policy store: create: nil object: invalid`},
		{func() error { _, err := s.Delete(ctx, "vms", "x", 0); return err }, `policy store: delete: unknown kind "vms": invalid`},
		{func() error { _, err := s.Delete(ctx, policy.KindProfiles, "x", -1); return err }, `policy store: delete profiles "x": expected revision -1 is negative: invalid`},
	}
	for _, tt := range tests {
		err := tt.op()
		if err == nil || err.Error() != tt.want {
			t.Errorf("error\n got %v\nwant %s", err, tt.want)
			continue
		}
		if !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%v does not wrap ErrInvalid", err)
		}
	}
	snap, err := s.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Items) != 0 {
		t.Fatalf("invalid writes left %+v", snap.Items)
	}
}

// TestPutPlacements: a batch larger than etcd's transaction limit is
// written in chunks; duplicates in a batch are written once.
func TestPutPlacements(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var ps []policy.Placement
	for i := range 300 {
		ps = append(ps, *placement(i, "hv1"))
	}
	dup := *placement(7, "hv2")
	ps = append(ps, dup)
	before, _ := s.c.Get(ctx, "x")
	rev, err := s.PutPlacements(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	// 300 distinct keys in chunks of 128: 3 transactions, 3 revisions.
	if got := rev - before.Header.Revision; got != 3 {
		t.Errorf("%d revisions for 300 placements, want 3 transactions", got)
	}
	items, _, err := s.List(ctx, policy.KindPlacements)
	if err != nil || len(items) != 300 {
		t.Fatalf("list: %d %v", len(items), err)
	}
	for _, it := range items {
		if p := it.Object.(*policy.Placement); p.VM == vmUUID(7) && p.Host != "hv2" {
			t.Errorf("duplicate in batch: last one should win, got %+v", p)
		}
	}
	// Retrying the same batch converges to the same content.
	if _, err := s.PutPlacements(ctx, ps); err != nil {
		t.Fatal(err)
	}
	items2, _, _ := s.List(ctx, policy.KindPlacements)
	if len(items2) != 300 {
		t.Fatalf("after retry %d placements", len(items2))
	}
}

// TestWatch: events arrive in order from a revision; a compacted revision
// ends the watch with ErrCompacted; undecodable and foreign keys are
// skipped.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newStore(t)
	r0, err := s.Create(ctx, &policy.Profile{Name: "p0", Mode: policy.ModeSwitch})
	if err != nil {
		t.Fatal(err)
	}
	// Foreign and broken keys under the prefix.
	if _, err := s.c.Put(ctx, s.prefix+"other/x", "{}"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Put(ctx, s.prefix+"profiles/bad", `{"name":"bad","vid":9999,"mode":"switch"}`); err != nil {
		t.Fatal(err)
	}
	r1, _ := s.Create(ctx, &policy.Profile{Name: "p1", Mode: policy.ModeSwitch})
	r2, _ := s.Update(ctx, &policy.Profile{Name: "p1", VID: 5, Mode: policy.ModeSwitch}, r1)
	r3, _ := s.Delete(ctx, policy.KindProfiles, "p0", 0)
	r4, _ := s.PutPlacements(ctx, []policy.Placement{*placement(1, "hv1")})
	want := []string{fmt.Sprintf("put profiles/p0@%d", r0), fmt.Sprintf("put profiles/p1@%d", r1),
		fmt.Sprintf("put profiles/p1@%d", r2), fmt.Sprintf("delete profiles/p0@%d", r3), fmt.Sprintf("put placements/%s@%d", vmUUID(1), r4)}
	wctx, wcancel := context.WithCancel(ctx)
	ch := s.Watch(wctx, r0)
	var got []string
	var lastRev int64
	for len(got) < len(want) {
		b, ok := <-ch
		if !ok || b.Err != nil {
			t.Fatalf("watch ended: %v", b.Err)
		}
		for _, e := range b.Events {
			got = append(got, fmt.Sprintf("%s %s/%s@%d", e.Type, e.Kind, e.Key, e.Revision))
		}
		lastRev = b.Revision
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
	if lastRev != r4 {
		t.Errorf("batch revision %d, want %d", lastRev, r4)
	}
	wcancel()
	for range ch {
	}
	// From now: earlier changes are not delivered, later ones are.
	nctx, ncancel := context.WithCancel(ctx)
	ch = s.Watch(nctx, 0)
	r5, err := s.Create(ctx, &policy.Profile{Name: "p5", Mode: policy.ModeSwitch})
	if err != nil {
		t.Fatal(err)
	}
	if b := <-ch; len(b.Events) != 1 || b.Events[0].Key != "p5" || b.Revision != r5 {
		t.Fatalf("watch from now: %+v", b)
	}
	ncancel()
	for range ch {
	}
	// Compact, then watch from before the compaction.
	if _, err := s.c.Compact(ctx, r3); err != nil {
		t.Fatal(err)
	}
	ch = s.Watch(ctx, r1)
	b := <-ch
	if !errors.Is(b.Err, ErrCompacted) {
		t.Fatalf("watch from compacted revision: %+v", b)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel not closed after ErrCompacted")
	}
	t.Log(b.Err)
}

// FuzzDecodeValue: stored values never panic the decoder, and what it
// accepts is valid and re-encodes to a value that decodes to the same
// object.
func FuzzDecodeValue(f *testing.F) {
	f.Add("profiles", "web", []byte(`{"name":"web","vid":100,"mode":"switch","ether_types":[2048],"rate_kbps":10,"priority":3,"acl":"a"}`))
	f.Add("groups", "g", []byte(`{"name":"g","profile":"web","match":{"uuids":["`+vm1+`"],"name_patterns":["web-*"],"labels":{"tenant":"a"},"priority":2}}`))
	f.Add("placements", vm1, []byte(`{"vm":"`+vm1+`","host":"hv1","macs":["52:54:00:00:00:01"],"state":"running","updated":"2026-01-02T03:04:05Z"}`))
	f.Add("hosts", "hv1", []byte(`{"name":"hv1","role":"host","public_key":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAO2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=\n-----END PUBLIC KEY-----\n"}`))
	f.Add("placements", vm1, []byte(`{"vm":"`+vm1+`","host":"hv1","labels":["tenant=a","pci"],"state":"running","updated":"2026-01-02T03:04:05Z"}`))
	f.Add("placements", vm1, []byte(`{"vm":"`+vm1+`","host":"hv1","labels":[],"state":"running","updated":"2026-01-02T03:04:05Z"}`))
	f.Add("profiles", "web", []byte(`{"name":"web","vid":"x"}`))
	f.Add("profiles", "web", []byte(`null`))
	f.Fuzz(func(t *testing.T, kind, key string, value []byte) {
		obj, err := DecodeValue(policy.Kind(kind), key, value)
		if err != nil {
			return
		}
		if err := obj.Validate(); err != nil {
			t.Fatalf("accepted an invalid object: %v", err)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		obj2, err := DecodeValue(policy.Kind(kind), key, b)
		if err != nil {
			t.Fatalf("re-encoded value does not decode: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(obj, obj2) {
			t.Fatalf("round trip\n%+v\n%+v", obj, obj2)
		}
	})
}

// TestDecodeValueErrors: malformed stored values and their errors.
func TestDecodeValueErrors(t *testing.T) {
	tests := []struct {
		kind, key, value, want string
	}{
		{"profiles", "web", `{"name":"web","vid":"x"}`, `decode profiles/web: json: cannot unmarshal string into Go struct field Profile.vid of type uint16`},
		{"profiles", "web", `{"name":"db","mode":"switch"}`, `decode profiles/web: value names "db"`},
		{"profiles", "web", `{"name":"web","mode":"switch"`, `decode profiles/web: unexpected end of JSON input`},
		{"profiles", "web", `{"name":"web","vid":70000,"mode":"switch"}`, `decode profiles/web: json: cannot unmarshal number 70000 into Go struct field Profile.vid of type uint16`},
		{"profiles", "web", `{"name":"web","mode":"x"}`, `decode profiles/web: profile "web": mode: "x" is not "switch" or "io-extender"`},
		{"vms", "x", `{}`, `decode vms/x: unknown kind`},
		{"placements", vm1, `{"vm":"` + vm1 + `","host":"hv1","state":"running","updated":"yesterday"}`, `decode placements/` + vm1 + `: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{"groups", "g", strings.Repeat(" ", MaxValueBytes+1), `decode groups/g: value is 65537 bytes, at most 65536 allowed`},
	}
	for _, tt := range tests {
		_, err := DecodeValue(policy.Kind(tt.kind), tt.key, []byte(tt.value))
		if err == nil || err.Error() != tt.want {
			t.Errorf("DecodeValue(%s, %s, %.40q)\n got %v\nwant %s", tt.kind, tt.key, tt.value, err, tt.want)
		}
	}
}

// TestDialTLSError: a TLS file that does not exist is reported.
func TestDialErrors(t *testing.T) {
	_, err := Dial(context.Background(), ClientConfig{Endpoints: []string{"https://127.0.0.1:1"}, CAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "policy store: dial: TLS") {
		t.Fatalf("got %v", err)
	}
	if _, err := Dial(context.Background(), ClientConfig{}); err == nil || err.Error() != "policy store: dial: no endpoints" {
		t.Fatalf("got %v", err)
	}
	if _, err := New(&clientv3.Client{}, Options{Prefix: "/x"}); err == nil || err.Error() != `policy store: prefix "/x" does not end with /` {
		t.Fatalf("got %v", err)
	}
}
