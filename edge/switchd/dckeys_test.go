package switchd

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/policy"
)

func pemKey(t testing.TB, pub ed25519.PublicKey) string {
	t.Helper()
	b, err := identity.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMergeHostKeys: the file's and the store's host keys merge as
// dckeys.go documents, each conflict named in one sentence.
func TestMergeHostKeys(t *testing.T) {
	keys := map[string]*identity.PrivateKey{}
	for _, n := range []string{"k1", "k2", "k3", "k4"} {
		k, err := identity.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k
	}
	pub := func(n string) ed25519.PublicKey { return keys[n].Public() }
	id := func(n string) string { return keys[n].ID().String() }
	rec := func(name, role, k string) policy.Host {
		return policy.Host{Name: name, Role: role, PublicKey: pemKey(t, pub(k))}
	}
	for _, tc := range []struct {
		name     string
		file     map[string]string // host -> key name
		records  []policy.Host
		want     map[string]string
		problems []string
	}{
		{name: "file only", file: map[string]string{"hv1": "k1"}, want: map[string]string{"hv1": "k1"}},
		{name: "store only", records: []policy.Host{rec("hv1", policy.RoleHost, "k1")}, want: map[string]string{"hv1": "k1"}},
		{name: "union", file: map[string]string{"hv1": "k1"}, records: []policy.Host{rec("hv2", policy.RoleHost, "k2")},
			want: map[string]string{"hv1": "k1", "hv2": "k2"}},
		{name: "same key in both", file: map[string]string{"hv1": "k1"}, records: []policy.Host{rec("hv1", policy.RoleHost, "k1")},
			want: map[string]string{"hv1": "k1"}},
		{name: "different keys: the store wins", file: map[string]string{"hv1": "k1"}, records: []policy.Host{rec("hv1", policy.RoleHost, "k2")},
			want:     map[string]string{"hv1": "k2"},
			problems: []string{fmt.Sprintf(`host "hv1": host_keys has key %s, the policy store %s: the store's is enrolled`, id("k1"), id("k2"))}},
		{name: "switch records enrol nothing", file: map[string]string{"hv1": "k1"},
			records: []policy.Host{rec("tor1", policy.RoleSwitch, "k2"), rec("hv1", policy.RoleSwitch, "k3")},
			want:    map[string]string{"hv1": "k1"}},
		{name: "a file key held by another store record", file: map[string]string{"hv1": "k1", "hv3": "k3"},
			records:  []policy.Host{rec("hv2", policy.RoleHost, "k1")},
			want:     map[string]string{"hv2": "k1", "hv3": "k3"},
			problems: []string{fmt.Sprintf(`host "hv1": its key %s in host_keys is the policy store's key of "hv2": not enrolled for "hv1"`, id("k1"))}},
		{name: "two store records with one key", file: map[string]string{"hv1": "k4"},
			records:  []policy.Host{rec("hv3", policy.RoleHost, "k1"), rec("hv2", policy.RoleHost, "k1"), rec("hv4", policy.RoleHost, "k2")},
			want:     map[string]string{"hv1": "k4", "hv4": "k2"},
			problems: []string{fmt.Sprintf(`store host records "hv2", "hv3" have the same key %s: none of them is enrolled`, id("k1"))}},
		{name: "unparsable store key", records: []policy.Host{{Name: "hv9", Role: policy.RoleHost, PublicKey: "junk"}},
			want:     map[string]string{},
			problems: []string{`store host record "hv9": public key: identity: public key: no PEM block (not enrolled)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := map[string]ed25519.PublicKey{}
			for h, k := range tc.file {
				file[h] = pub(k)
			}
			got, problems := MergeHostKeys(file, tc.records)
			want := map[string]ed25519.PublicKey{}
			for h, k := range tc.want {
				want[h] = pub(k)
			}
			if !maps.EqualFunc(got, want, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
				t.Errorf("keys: got %v, want %v", hostsOf(got), tc.want)
			}
			if !slices.Equal(problems, tc.problems) {
				t.Errorf("problems:\n got  %q\n want %q", problems, tc.problems)
			}
		})
	}
}

func hostsOf(m map[string]ed25519.PublicKey) map[string]string {
	out := map[string]string{}
	for h, k := range m {
		out[h] = identity.KeyIDOf(k).String()
	}
	return out
}

// staticRecords is a HostRecords table set by the test (the cache's
// Objects in RunConfig).
type staticRecords map[string]policy.Object

func (s staticRecords) Objects(kind policy.Kind) map[string]policy.Object {
	if kind != policy.KindHosts {
		return nil
	}
	return maps.Clone(s)
}

// TestDCKeysApply: dcKeys hands SetHostKeys the merge only when it
// changes, and again after SIGHUP's setFile.
func TestDCKeysApply(t *testing.T) {
	k1, _ := identity.GenerateKey(nil)
	k2, _ := identity.GenerateKey(nil)
	recs := staticRecords{}
	ch := make(chan struct{}, 1)
	dk := newDCKeys(recs, ch, map[string]ed25519.PublicKey{"hv1": k1.Public()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := dk.initial(); len(got) != 1 || !got["hv1"].Equal(k1.Public()) {
		t.Fatalf("initial: %v", hostsOf(got))
	}
	var calls []map[string]ed25519.PublicKey
	set := func(_ context.Context, m map[string]ed25519.PublicKey) error {
		calls = append(calls, m)
		return nil
	}
	ctx := context.Background()
	if err := dk.apply(ctx, set); err != nil || len(calls) != 0 {
		t.Fatalf("apply without a change: %v, %d calls", err, len(calls))
	}
	recs["hv2"] = &policy.Host{Name: "hv2", Role: policy.RoleHost, PublicKey: pemKey(t, k2.Public())}
	if err := dk.apply(ctx, set); err != nil || len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("apply after a new record: %v, calls %d", err, len(calls))
	}
	if err := dk.setFile(ctx, map[string]ed25519.PublicKey{}, set); err != nil || len(calls) != 2 || hostsOf(calls[1])["hv2"] == "" || len(calls[1]) != 1 {
		t.Fatalf("setFile: %v, calls %v", err, len(calls))
	}
	setErr := fmt.Errorf("refused")
	delete(recs, "hv2")
	if err := dk.apply(ctx, func(context.Context, map[string]ed25519.PublicKey) error { return setErr }); err != setErr {
		t.Fatalf("apply's error: %v", err)
	}
	// A failed apply is retried at the next change.
	if err := dk.apply(ctx, set); err != nil || len(calls) != 3 || len(calls[2]) != 0 {
		t.Fatalf("retry: %v, calls %d", err, len(calls))
	}
}
