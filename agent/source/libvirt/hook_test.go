package libvirt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// TestHookMarksDomain: a qemu hook makes the worker re-read its domain, so
// a store that drifted from libvirt is repaired without a libvirt event.
func TestHookMarksDomain(t *testing.T) {
	e := newEnv(t, nil)
	d := newTestDom(31, 4)
	h := define(t, e.ctl, d)
	must(t, "start", h.Create())
	e.waitFor("started", func() error {
		return checkVM(e.store, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
	})
	if !e.src.Ready() {
		t.Error("not ready after the first reconcile")
	}
	// Drift: a VIF deleted behind the source's back.
	_, err := e.store.Apply(context.Background(), inventory.Change{}.Add(inventory.RemoveVIF(d.mac(2))))
	must(t, "drift", err)
	xml, err := h.GetXMLDesc(0)
	must(t, "xml", err)
	must(t, "hook", e.src.Hook(context.Background(), api.HookEvent{
		Driver: "qemu", Object: d.name, Operation: "started", SubOperation: "begin", XML: xml,
	}))
	e.waitFor("repaired by the hook", func() error {
		return checkVM(e.store, d, inventory.VMStateRunning, d.wantVIFs(), inventory.StatePending)
	})
}

// TestHookPortAndNetwork: a port hook marks its owner; another network
// hook asks for a full reconcile.
func TestHookPortAndNetwork(t *testing.T) {
	e := newEnv(t, nil)
	port, err := os.ReadFile("../../../libvirthooks/testdata/network-port-created.xml")
	must(t, "read", err)
	syncs := e.src.Stats().DomainSyncs
	must(t, "port hook", e.src.Hook(context.Background(), api.HookEvent{
		Driver: "network", Object: "vepa-net", Operation: "port-created", SubOperation: "begin", XML: string(port),
	}))
	e.waitFor("owner re-read", func() error {
		if n := e.src.Stats().DomainSyncs; n <= syncs {
			return fmt.Errorf("%d domain updates", n)
		}
		return nil
	})
	n := e.src.Stats().Reconciles
	must(t, "network hook", e.src.Hook(context.Background(), api.HookEvent{
		Driver: "network", Object: "default", Operation: "started", SubOperation: "begin",
	}))
	e.waitFor("full reconcile", func() error {
		if r := e.src.Stats().Reconciles; r <= n {
			return fmt.Errorf("%d reconciles", r)
		}
		return nil
	})
}

// TestHookErrors: unusable events are the caller's fault (400).
func TestHookErrors(t *testing.T) {
	s := &Source{Logger: testLogger(t)}
	if s.Ready() {
		t.Error("ready before Run")
	}
	for _, ev := range []api.HookEvent{
		{Driver: "lxc", Object: "d", Operation: "started", SubOperation: "begin", XML: "<domain/>"},
		{Driver: "qemu", Object: "d", Operation: "dance", SubOperation: "begin", XML: "<domain/>"},
		{Driver: "qemu", Object: "d", Operation: "started", SubOperation: "begin"},
		{Driver: "qemu", Object: "d", Operation: "started", SubOperation: "begin", XML: "<domain>"},
		{Driver: "qemu", Object: "other", Operation: "started", SubOperation: "begin",
			XML: "<domain><name>d</name><uuid>00000000-0000-4000-8000-000000000001</uuid></domain>"},
		{Driver: "network", Object: "n", Operation: "port-created", SubOperation: "begin", XML: "<hookData/>"},
	} {
		err := s.Hook(context.Background(), ev)
		var he *HookError
		if !errors.As(err, &he) || he.HTTPStatus() != 400 {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	// A good event before Run is kept for later.
	err := s.Hook(context.Background(), api.HookEvent{Driver: "qemu", Object: "d", Operation: "release", SubOperation: "end",
		Extra: "shutdown", XML: "<domain><name>d</name><uuid>00000000-0000-4000-8000-000000000001</uuid></domain>"})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := s.takeDirty(); len(d) != 1 {
		t.Errorf("dirty %v", d)
	}
}
