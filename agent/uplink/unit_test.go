package uplink

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

func TestStatePath(t *testing.T) {
	P, PA, A, V, R, G := inventory.StatePending, inventory.StatePreAssociated, inventory.StateAssociated,
		inventory.StateVerified, inventory.StateRejected, inventory.StateGone
	cases := []struct {
		from, to inventory.State
		want     []inventory.State
	}{
		{P, V, []inventory.State{A, V}},
		{PA, V, []inventory.State{A, V}},
		{R, V, []inventory.State{P, A, V}},
		{V, A, []inventory.State{P, A}},
		{V, PA, []inventory.State{P, PA}},
		{A, R, []inventory.State{R}},
		{V, V, nil},
		{G, P, nil},
	}
	for _, c := range cases {
		if got := statePath(c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("statePath(%s, %s) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestGrantMatching(t *testing.T) {
	m1, m2 := inventory.MAC{0x52, 0x54, 0, 0, 0, 1}, inventory.MAC{0x52, 0x54, 0, 0, 0, 2}
	want := []wire.Filter{{MAC: m1}, {MAC: m2, VID: 20}}
	if !grantMatches([]wire.Filter{{MAC: m1, VID: 100}, {MAC: m2, VID: 20}}, want) {
		t.Error("a null VID matches any granted VID")
	}
	for _, g := range [][]wire.Filter{
		{{MAC: m1, VID: 100}, {MAC: m2, VID: 21}},
		{{MAC: m2, VID: 20}, {MAC: m1, VID: 100}},
		{{MAC: m1, VID: 100}},
	} {
		if grantMatches(g, want) {
			t.Errorf("%v matches %v", g, want)
		}
	}
	v := &inventory.VIF{MAC: m2, CVID: 20}
	if _, ok := grantFor([]wire.Filter{{MAC: m2, VID: 30}}, v); ok {
		t.Error("a grant of another VID than the VIF's C-VID counts")
	}
	if f, ok := grantFor([]wire.Filter{{MAC: m1, VID: 5}, {MAC: m2, VID: 20}}, v); !ok || f.VID != 20 {
		t.Errorf("grantFor = %+v, %v", f, ok)
	}
}

func TestDigest(t *testing.T) {
	vm := inventory.UUID{1}
	a := inventory.VIF{MAC: inventory.MAC{2, 0, 0, 0, 0, 1}, VM: vm, Kind: inventory.KindTap, State: inventory.StatePending}
	b := inventory.VIF{MAC: inventory.MAC{2, 0, 0, 0, 0, 2}, VM: vm, Kind: inventory.KindTap, State: inventory.StateVerified}
	d1, n1 := Digest([]inventory.VIF{a, b})
	if n1 != 2 {
		t.Fatalf("n = %d", n1)
	}
	b.State = inventory.StateRejected
	if d, _ := Digest([]inventory.VIF{a, b}); d != d1 {
		t.Error("the digest depends on the VIF states")
	}
	b.CVID = 7
	if d, _ := Digest([]inventory.VIF{a, b}); d == d1 {
		t.Error("the digest ignores the C-VID")
	}
	b.State = inventory.StateGone
	if d, n := Digest([]inventory.VIF{a, b}); n != 1 || d == d1 {
		t.Errorf("gone VIF counted: n = %d", n)
	}
}

func TestRefusalReason(t *testing.T) {
	var key identity.KeyID
	copy(key[:], []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4})
	res := vdp.Result{Mode: wire.VSIAssociate, Peer: &identity.Verified{Key: key}}
	got := refusalReason("eth0", res, &vdp.ResponseError{Mode: wire.VSIAssociate, Status: wire.ResponseStatus(wire.VDPOtherFailure, false, false)}, 2*time.Second)
	if want := "rejected by switch deadbeef01020304: code 4 other failure (VDP ASSOCIATE on eth0; retry in 2s)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	got = refusalReason("eth0", vdp.Result{Mode: wire.VSIAssociate}, &vdp.ResponseError{Mode: wire.VSIAssociate,
		Status: wire.ResponseStatus(wire.VDPInvalidAddress, false, true)}, time.Second)
	if !strings.HasPrefix(got, "rejected by switch (unsigned): code 5 ") || !strings.HasSuffix(got, "hard error: not retried until the VM's VIFs change)") {
		t.Errorf("got %q", got)
	}
}

func TestConfigFrom(t *testing.T) {
	c, err := config.Parse(strings.NewReader(`uplinks: [{interface: eth1}]
cid: 7a-00-02
require_signed: false
evb: {r: 2, rte: 13, rwd: 19, rka: 21}
dcbx:
  ets: {max_tcs: 8, priority_tc: [0,0,0,1,0,0,0,7], bandwidth: [60,40,0,0,0,0,0,0], tsa: [ets,ets,strict,strict,strict,strict,strict,vendor]}
  pfc: {cap: 2, enable: [3, 4]}
vdp: {manager_id: mgr, type_id: 42, type_version: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c.Identity = config.Identity{KeyFile: filepath.Join(dir, "k", "host.key"), Counters: filepath.Join(dir, "c"), SwitchKeys: filepath.Join(dir, "none")}
	id, err := OpenIdentity(IdentityConfigFrom(&c), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	u := ConfigFrom(&c, "eth1", nil, id, nil)
	mgr, _ := wire.ManagerIDFromString("mgr")
	if u.Interface != "eth1" || u.RequireSigned || u.CID != (wire.OUI{0x7a, 0, 2}) || u.EVB.R != 2 || u.EVB.RTE != 13 ||
		u.EVB.RWD != 19 || u.EVB.RKA != 21 || u.Manager != mgr || u.TypeID != 42 || u.TypeVersion != 3 || u.Signer != id.Signer {
		t.Errorf("config %+v", u)
	}
	if e := u.ETS; e == nil || e.MaxTCs != 0 || e.PriorityTC[3] != 1 || e.PriorityTC[7] != 7 || e.Bandwidth[0] != 60 ||
		e.TSA[0] != wire.TSAETS || e.TSA[2] != wire.TSAStrict || e.TSA[7] != wire.TSAVendor {
		t.Errorf("ETS %+v", e)
	}
	if p := u.PFC; p == nil || p.Cap != 2 || p.Enable != 1<<3|1<<4 {
		t.Errorf("PFC %+v", p)
	}
	// A second process cannot use the same counters.
	if _, err := OpenIdentity(IdentityConfigFrom(&c), nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second OpenIdentity: %v", err)
	}
	// The key is loaded again, not replaced.
	id.Close()
	id2, err := OpenIdentity(IdentityConfigFrom(&c), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer id2.Close()
	if id2.Key.ID() != id.Key.ID() {
		t.Error("the host key changed on the second open")
	}
}

func TestDirKeys(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	k, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirKeys(filepath.Join(dir, "missing"), log)
	if err := d.Reload(); err != nil || len(d.IDs()) != 0 {
		t.Fatalf("missing directory: %v, %v", d.IDs(), err)
	}
	d = NewDirKeys(dir, log)
	pem, _ := identity.MarshalPublicKeyPEM(k.Public())
	os.WriteFile(filepath.Join(dir, "tor1.pem"), pem, 0o644)
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a key"), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden"), []byte("ignored"), 0o644)
	// Nothing loaded yet: the miss reloads.
	if pub, err := d.PublicKey(context.Background(), k.ID()); err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("PublicKey: %v", err)
	}
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "junk.pem") {
		t.Errorf("Reload: %v", err)
	}
	if ids := d.IDs(); len(ids) != 1 || ids[0] != k.ID() {
		t.Errorf("IDs %v", ids)
	}
	var other identity.KeyID
	if _, err := d.PublicKey(context.Background(), other); !errors.Is(err, identity.ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
}
