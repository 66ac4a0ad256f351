package switchd

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// writeProfiles writes a switchd.yaml whose only setting is profiles.
func writeProfiles(t *testing.T, path, profiles string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("profiles:\n"+profiles), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestStackProfilesReload: the file's profiles are taken when its content
// changes (even with the same size and modification time), a file that
// does not parse or validate keeps the profiles in force and says why,
// and an unchanged file announces nothing.
func TestStackProfilesReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchd.yaml")
	writeProfiles(t, path, "  default: {name: tenant-a, vid: 100}\n")
	c, err := switchconfig.Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path {
		t.Fatalf("Config.Path = %q, want %q", c.Path, path)
	}
	sp := NewStackProfiles(path, c.Profiles, time.Hour, testLogger())
	ctx := context.Background()
	vid := func() uint16 {
		t.Helper()
		p, err := sp.Profile(ctx, ProfileRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return p.TLV.VID
	}
	changed := func() bool {
		select {
		case <-sp.Changed():
			return true
		default:
			return false
		}
	}
	if err := sp.Check(); err != nil || changed() || vid() != 100 {
		t.Fatalf("unchanged file: Check %v, changed %v, VID %d", err, changed(), vid())
	}
	// Same length, same modification time: only the content differs.
	st, _ := os.Stat(path)
	writeProfiles(t, path, "  default: {name: tenant-a, vid: 200}\n")
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := sp.Check(); err != nil || !changed() || vid() != 200 || sp.Reloads() != 1 {
		t.Fatalf("changed file: Check %v, changed %v, VID %d, reloads %d", err, changed(), vid(), sp.Reloads())
	}
	for _, bad := range []struct{ body, want string }{
		{"  default: {vid: 5000}\n", "profiles.default.vid: 5000 is out of range 0-4094"},
		{"  default: {vid: [1]}\n", "line 2: cannot unmarshal !!seq into uint16"},
		{"  default: {colour: red}\n", `line 2: unknown key "colour"`},
	} {
		writeProfiles(t, path, bad.body)
		err := sp.Check()
		want := "switchd: reload profiles from " + path + " (the profiles in force stay): " + bad.want
		if err == nil || err.Error() != want {
			t.Errorf("bad file %q: err %v\nwant %s", bad.body, err, want)
		}
		if changed() || vid() != 200 {
			t.Errorf("bad file %q: changed %v, VID %d; want the profiles in force kept", bad.body, changed(), vid())
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := sp.Check(); err == nil || !strings.Contains(err.Error(), "no such file") || vid() != 200 {
		t.Errorf("missing file: %v, VID %d", err, vid())
	}
	writeProfiles(t, path, "  default: {name: tenant-a, vid: 200}\n  db: {vid: 300}\n")
	if err := sp.Check(); err != nil || !changed() {
		t.Fatalf("file back: %v", err)
	}
	if p, err := sp.Profile(ctx, ProfileRequest{Group: "db"}); err != nil || p.Group != "db" || p.TLV.VID != 300 || p.TLV.Name != "db" {
		t.Errorf("group db: %+v, %v", p, err)
	}
	writeProfiles(t, path, "  db: {vid: 300}\n")
	if err := sp.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Profile(ctx, ProfileRequest{Group: "web"}); err != ErrNoProfile {
		t.Errorf("no default profile: err %v, want ErrNoProfile", err)
	}
}

// TestProfileChangeReapplied: a profile change in the file that gives a
// new VID ends the live association at once (rule revoked, the station
// told with DE-ASSOCIATE), and the station's new association gets the new
// VID and profile; a change that keeps the VID reaches the station in the
// answer to its next keep-alive, the rule untouched; a VID the profile does
// not give is refused; the profile a migrating VM gets at the destination
// equals the one at the source.
func TestProfileChangeReapplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "switchd.yaml")
	writeProfiles(t, path, "  default: {name: tenant-a, vid: 100, rate_kbps: 1000}\n")
	c, err := switchconfig.Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	sp := NewStackProfiles(path, c.Profiles, 20*time.Millisecond, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sp.Run(ctx)

	r := newMemRig(t, "p1", "p2")
	hv1, hv2 := newHostID(t, "hv1"), newHostID(t, "hv2")
	r.enrol(hv1)
	r.enrol(hv2)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.start(func(o *Options) { o.Profiles = sp })
	a := r.station(hv1, "p1")
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil || res.Profile == nil || res.Profile.VID != 100 || res.Profile.Name != "tenant-a" {
		t.Fatalf("associate: %+v", res)
	}
	if !r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("enforcer: %v", r.enf.callList())
	}

	writeProfiles(t, path, "  default: {name: tenant-a, vid: 200, rate_kbps: 1000}\n")
	// A new VID: the association ends (rule revoked, station told), and
	// the station's new association gets VID 200, rule first.
	a.waitEvent(vdp.EventBridgeDeassociated, 5*time.Second)
	if r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("VID 100 still allowed: %v", r.enf.callList())
	}
	res = a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil || len(res.Filters) != 1 || res.Filters[0].VID != 200 || res.Profile == nil || res.Profile.VID != 200 ||
		!r.enf.allowed("p1", pairN(1, 200)) {
		t.Fatalf("associate after the change: %+v, %v", res, r.enf.callList())
	}
	// A change that keeps the VID reaches the station at its keep-alive.
	writeProfiles(t, path, "  default: {name: tenant-a, vid: 200, rate_kbps: 2000}\n")
	key := vdp.Key{Format: wire.VSIIDUUID, ID: uuidN(1)}
	waitFor(t, 5*time.Second, "the station told the new rate at its keep-alive", func() bool {
		info, ok := a.st.Lookup(key)
		return ok && info.State == vdp.StateAssociated && info.Profile != nil && info.Profile.RateKbps == 2000
	})
	if !r.enf.allowed("p1", pairN(1, 200)) {
		t.Fatalf("the rule went with a rate change: %v", r.enf.callList())
	}
	info, _ := a.st.Lookup(key)
	src := *info.Profile
	// A VID switchd never granted is still refused.
	if re := refusal(t, a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 300, 1))); re == nil {
		t.Fatal("VID 300 accepted")
	}
	// Re-associate (the refusal ended the association), then migrate.
	if res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	r.vmm.set("hv1", uuidN(1), verify.VMMigratingOut, macN(1))
	r.vmm.set("hv2", uuidN(1), verify.VMMigratingIn, macN(1))
	b := r.station(hv2, "p2")
	pre := b.do(wire.VSIPreAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if pre.Err != nil || !r.enf.pending("p2", pairN(1, 200)) {
		t.Fatalf("pre-associate at the destination: %+v, %v", pre, r.enf.callList())
	}
	dst := b.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if dst.Err != nil || dst.Profile == nil {
		t.Fatalf("associate at the destination: %+v", dst)
	}
	if !reflect.DeepEqual(*dst.Profile, src) || !reflect.DeepEqual(*pre.Profile, src) {
		t.Errorf("profile at the destination %+v (pre-associate %+v), at the source %+v", *dst.Profile, *pre.Profile, src)
	}
}

// TestPlacementVMManager: hosts listed in the placements file are answered
// from it (state, MACs), the others by the inner manager; an edit is seen
// by the next question, a broken file keeps the records in force.
func TestPlacementVMManager(t *testing.T) {
	path := filepath.Join(t.TempDir(), "placements.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path+".tmp", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	vm := uuidN(1)
	write("hv2:\n  - {uuid: " + vm.String() + ", state: migrating-in, macs: [\"" + macN(1).String() + "\"]}\n")
	inner := newFakeVMM()
	inner.set("hv1", vm, verify.VMRunning, macN(1))
	m, err := NewPlacementVMManager(path, inner, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ask := func(host string, mac verify.MAC) verify.Confirmation {
		t.Helper()
		c, err := m.Confirm(ctx, host, vm, mac)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := ask("hv2", macN(1)); !c.Confirmed || c.State != verify.VMMigratingIn {
		t.Errorf("hv2: %+v", c)
	}
	if c := ask("hv2", macN(2)); c.Confirmed || c.Reason != "the placement record (migrating-in) has no MAC "+macN(2).String() {
		t.Errorf("hv2, other MAC: %+v", c)
	}
	if c := ask("hv1", macN(1)); !c.Confirmed || c.State != verify.VMRunning {
		t.Errorf("hv1 (inner manager): %+v", c)
	}
	write("hv2:\n  - {uuid: " + vm.String() + ", state: inactive, macs: [\"" + macN(1).String() + "\"]}\nhv1: []\n")
	if c := ask("hv2", macN(1)); c.Confirmed || c.State != verify.VMInactive {
		t.Errorf("hv2 after the edit: %+v", c)
	}
	if c := ask("hv1", macN(1)); c.Confirmed || c.State != verify.VMAbsent || c.Reason != "no placement record of the VM on hv1" {
		t.Errorf("hv1 listed empty: %+v", c)
	}
	write("hv2: [{uuid: nope}]\n")
	if c := ask("hv2", macN(1)); c.State != verify.VMInactive {
		t.Errorf("after a broken edit: %+v; want the records in force", c)
	}
	write("hv2: [{uuid: nope}]\n")
	if _, err := NewPlacementVMManager(path, inner, testLogger()); err == nil ||
		err.Error() != "switchd: placements "+path+`: hv2[0].uuid: "nope" is not a UUID`+"\n"+
			`hv2[0].state: "" is not one of running, paused, migrating-in, migrated-in, migrating-out, inactive` {
		t.Errorf("a broken file at start: %v", err)
	}
}
