package switchd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/cache"
	"github.com/tether-net/tether/wire"
)

// TestPolicyProfiles: with the DC-wide source, the profile comes from
// tether-policyd's store (a real embedded etcd, the watch-fed cache): the
// VM's port group, matched by UUID, gives its profile; a VM in no group is
// refused no-profile; a profile updated in the store reaches the live
// association (ended, the new association gets the new VID).
func TestPolicyProfiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, st := startStore(ctx, t, "/tether-test/")
	prof := &policy.Profile{Name: "tenant-a", VID: 100, Mode: policy.ModeSwitch, RateKbps: 1000}
	if _, err := st.Create(ctx, prof); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, &policy.PortGroup{Name: "web", Profile: "tenant-a", Match: policy.Match{UUIDs: []string{uuidN(1).String()}}}); err != nil {
		t.Fatal(err)
	}
	pp := NewPolicyProfiles(nil)
	c := cache.New(st, cache.Options{OnChange: pp.OnChange})
	pp.c = c
	go func() { _ = c.Run(ctx) }()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pp.Profile(ctx, ProfileRequest{VM: uuidN(2)}); !errors.Is(err, ErrNoProfile) {
		t.Errorf("VM in no group: err %v, want ErrNoProfile", err)
	}

	r := newMemRig(t, "p1")
	hv1 := newHostID(t, "hv1")
	r.enrol(hv1)
	r.vmm.set("hv1", uuidN(1), verify.VMRunning, macN(1))
	r.vmm.set("hv1", uuidN(2), verify.VMRunning, macN(2))
	r.start(func(o *Options) { o.Profiles = pp })
	a := r.station(hv1, "p1")
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	want := wire.TetherProfile{VID: 100, Mode: wire.TetherSTagSwitch, RateKbps: 1000, Name: "tenant-a"}
	if res.Err != nil || res.Profile == nil || res.Profile.VID != want.VID || res.Profile.Name != want.Name || res.Profile.RateKbps != want.RateKbps {
		t.Fatalf("associate: %+v (profile %+v), want %+v", res, res.Profile, want)
	}
	if vms := r.d.VMs(); len(vms) != 1 || vms[0].Profile != "web" {
		t.Errorf("vms: %+v; want port group web", vms)
	}
	if re := refusal(t, a.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(2), 0, 1))); re.Code() != wire.VDPOtherFailure {
		t.Errorf("VM in no group: code %v", re.Code())
	}
	if rj, ok := findReject(r.d, "p1", reasonNoProfile); !ok {
		t.Error("no no-profile refusal recorded")
	} else {
		t.Logf("refusal: %s", rj.Message)
	}

	item, err := st.Get(ctx, policy.KindProfiles, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	prof.VID = 300
	if _, err := st.Update(ctx, prof, item.Revision); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(vdp.EventBridgeDeassociated, 10*time.Second)
	if r.enf.allowed("p1", pairN(1, 100)) {
		t.Fatalf("VID 100 still allowed after the store's change: %v", r.enf.callList())
	}
	res = a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil || len(res.Filters) != 1 || res.Filters[0].VID != 300 || !r.enf.allowed("p1", pairN(1, 300)) {
		t.Fatalf("associate after the change: %+v, %v", res, r.enf.callList())
	}
}
