package daemon

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// TestMigrationHooksDispatch: through the local API, an incoming
// migration's hooks (migrate, prepare, start, started) are taken by the
// migration handler, which records the VM and its vNICs from the migrate
// hook's XML, and are not handed to the libvirt source (which would drop a
// domain libvirt does not have yet); the hooks of other VMs, and of the
// migrated VM afterwards, reach the libvirt source as before.
func TestMigrationHooksDispatch(t *testing.T) {
	cfg := testConfig(t)
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
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	const incoming = `<domain type='kvm'><name>web-01</name><uuid>6f1d0000-0000-4000-8000-00000000a001</uuid><devices>
  <interface type='bridge'><mac address='52:54:00:0a:00:01'/><source bridge='br0'/></interface></devices></domain>`
	c := &api.Client{Socket: cfg.Socket}
	post := func(obj, op, sub, xml string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := c.PostHook(ctx, api.HookEvent{Driver: "qemu", Object: obj, Operation: op, SubOperation: sub, Extra: "-", XML: xml})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", obj, op, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	post("web-01", "migrate", "begin", incoming)
	post("vm1", "prepare", "begin", domXML)
	post("web-01", "prepare", "begin", incoming)
	post("web-01", "start", "begin", incoming)
	post("web-01", "started", "begin", incoming) // no uplink: nothing to wait for
	post("web-01", "stopped", "end", incoming)
	if got := src.seen(); got != "prepare,stopped" {
		t.Errorf("the libvirt source saw %q, want vm1's prepare and web-01's stopped only", got)
	}
	vifs, err := c.VIFs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vifs) != 1 || vifs[0].MAC != "52:54:00:0a:00:01" || vifs[0].VMName != "web-01" {
		t.Errorf("VIFs %+v, want web-01's from the migrate hook", vifs)
	}
	vm, err := d.Store().VM(mustUUID(t, "6f1d0000-0000-4000-8000-00000000a001"))
	if err != nil || vm.State != inventory.VMStateRunning {
		t.Errorf("web-01 %+v, %v; want running after started", vm, err)
	}
}

func mustUUID(t *testing.T, s string) inventory.UUID {
	t.Helper()
	id, err := inventory.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
