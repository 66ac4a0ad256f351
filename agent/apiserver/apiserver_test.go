package apiserver

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

type fakeSink struct {
	err error
	got []api.HookEvent
}

func (f *fakeSink) Hook(_ context.Context, ev api.HookEvent) error {
	f.got = append(f.got, ev)
	return f.err
}

type badEvent struct{}

func (badEvent) Error() string   { return "domain XML names vm2, hook says vm1" }
func (badEvent) HTTPStatus() int { return http.StatusBadRequest }

// setup runs a Server over a real store on a real unix socket.
func setup(t *testing.T, sink HookSink) (*inventory.Store, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	st, err := inventory.Open(context.Background(), filepath.Join(dir, "inv.db"), inventory.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := &Server{Store: st, Hooks: sink, Version: "test", Started: time.Now()}
	l, err := api.Listen(filepath.Join(dir, "d.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return st, &api.Client{Socket: filepath.Join(dir, "d.sock")}
}

func seed(t *testing.T, st *inventory.Store) (inventory.UUID, inventory.MAC) {
	t.Helper()
	id, _ := inventory.ParseUUID("0b6e5c1a-4f0e-4c53-9a7a-1d2e3f405061")
	mac, _ := inventory.ParseMAC("52:54:00:00:00:01")
	_, err := st.Apply(context.Background(), inventory.Change{}.Add(
		inventory.UpsertVM(inventory.VM{UUID: id, Name: "web-01", State: inventory.VMStateRunning, Source: "libvirt"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mac, VM: id, HostDev: "vnet0", Kind: inventory.KindTap, STag: 100, PortGroup: "web"}),
	))
	if err != nil {
		t.Fatal(err)
	}
	return id, mac
}

func TestInventoryEndpoints(t *testing.T) {
	st, c := setup(t, nil)
	ctx := context.Background()
	id, mac := seed(t, st)

	s, err := c.Status(ctx)
	if err != nil || s.VMs != 1 || s.VIFs != 1 || s.Generation != 1 || !s.Ready || s.Version != "test" {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	vms, err := c.VMs(ctx)
	if err != nil || len(vms) != 1 || vms[0].UUID != id.String() || vms[0].State != "running" || len(vms[0].VIFs) != 1 || vms[0].VIFs[0] != mac.String() {
		t.Fatalf("VMs = %+v, %v", vms, err)
	}
	vifs, err := c.VIFs(ctx)
	if err != nil || len(vifs) != 1 {
		t.Fatalf("VIFs = %+v, %v", vifs, err)
	}
	v := vifs[0]
	if v.MAC != "52:54:00:00:00:01" || v.Vendor != "qemu" || v.VMName != "web-01" || v.Kind != "tap" ||
		v.STag != 100 || v.PortGroup != "web" || v.State != "pending" || v.Device != "vnet0" || v.Since.IsZero() {
		t.Fatalf("VIF = %+v", v)
	}
	one, err := c.VIF(ctx, "52:54:00:00:00:01")
	if err != nil || one.MAC != v.MAC || one.VMName != "web-01" {
		t.Fatalf("VIF(mac) = %+v, %v", one, err)
	}
	var se *api.StatusError
	if _, err := c.VIF(ctx, "52:54:00:00:00:02"); !errors.As(err, &se) || se.HTTPStatus != 404 ||
		err.Error() != "no VIF with MAC 52:54:00:00:00:02 in the inventory" {
		t.Fatalf("missing VIF: %v", err)
	}
	if _, err := c.VIF(ctx, "not-a-mac"); !errors.As(err, &se) || se.HTTPStatus != 400 {
		t.Fatalf("bad MAC: %v", err)
	}
}

func TestEventsFollowCommits(t *testing.T) {
	st, c := setup(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan api.Event, 16)
	go c.Events(ctx, 0, func(ev api.Event) error { got <- ev; return nil })
	for st.Stats().Subscribers == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the events stream never subscribed")
		case <-time.After(5 * time.Millisecond):
		}
	}
	id, mac := seed(t, st)
	if _, err := st.Apply(ctx, inventory.Change{}.Add(inventory.SetState(mac, inventory.StateGone, "domain stopped"))); err != nil {
		t.Fatal(err)
	}
	want := []api.Event{
		{Generation: 1, Kind: "vm", Op: "upsert", Key: id.String()},
		{Generation: 1, Kind: "vif", Op: "upsert", Key: mac.String(), From: "none", To: "pending"},
		{Generation: 2, Kind: "vif", Op: "transition", Key: mac.String(), From: "pending", To: "gone", Reason: "domain stopped"},
	}
	for i, w := range want {
		select {
		case ev := <-got:
			if ev.Time.IsZero() {
				t.Errorf("event %d has no time", i)
			}
			ev.Time = time.Time{}
			if ev.Reason != "" && w.Reason == "" {
				w.Reason = ev.Reason // the store's own wording for creation
			}
			if ev != w {
				t.Errorf("event %d = %+v\nwant      %+v", i, ev, w)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d events", i, len(want))
		}
	}
}

func TestHookEndpoint(t *testing.T) {
	ctx := context.Background()
	ev := api.HookEvent{Driver: "qemu", Object: "vm1", Operation: "started", SubOperation: "begin", Extra: "-"}

	_, c := setup(t, nil)
	var se *api.StatusError
	if err := c.PostHook(ctx, ev); !errors.As(err, &se) || se.HTTPStatus != 503 {
		t.Fatalf("no sink: %v", err)
	}

	sink := &fakeSink{}
	_, c = setup(t, sink)
	if err := c.PostHook(ctx, ev); err != nil || len(sink.got) != 1 || sink.got[0] != ev {
		t.Fatalf("PostHook: %v, sink %+v", err, sink.got)
	}
	sink.err = badEvent{}
	if err := c.PostHook(ctx, ev); !errors.As(err, &se) || se.HTTPStatus != 400 || err.Error() != "domain XML names vm2, hook says vm1" {
		t.Fatalf("refused event: %v", err)
	}
	sink.err = errors.New("store closed")
	if err := c.PostHook(ctx, ev); !errors.As(err, &se) || se.HTTPStatus != 503 {
		t.Fatalf("failing sink: %v", err)
	}
}

func TestUnknownPath(t *testing.T) {
	_, c := setup(t, nil)
	req, _ := http.NewRequest("GET", "http://tetherd/v2/vifs", nil)
	resp, err := (&http.Client{Transport: unixTransport(c.Socket)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /v2/vifs = %d", resp.StatusCode)
	}
}
