package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink/uplinktest"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/identity"
)

// TestRunStartsUplink runs tetherd in-process with one uplink in a network
// namespace, against the l2 switch peer: the host key is generated (0600)
// and reported by the API, the uplink shows as a connected source, and a
// VIF recorded before the start ends verified.
func TestRunStartsUplink(t *testing.T) {
	uplinktest.Require(t)
	host, sw := uplinktest.NewNS(t), uplinktest.NewNS(t)
	uplinktest.Veth(t, host, "eth0", sw, "swp1")
	dir := t.TempDir()

	// The switch's key is enrolled; the host key does not exist yet.
	swKey, keys := uplinktest.EnrolSwitchKey(t, dir)
	yaml := `state_dir: ` + filepath.Join(dir, "state") + `
socket: ` + filepath.Join(dir, "tetherd.sock") + `
socket_group: ""
spool_dir: ` + filepath.Join(dir, "spool") + `
libvirt:
  uri: ""
uplinks:
  - interface: eth0
identity:
  key_file: ` + filepath.Join(dir, "etc", "host.key") + `
  switch_keys: ` + keys + `
evb: {r: 3, rte: 12, rwd: 20, rka: 22}
`
	cfgPath := filepath.Join(dir, "tetherd.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identity.Counters != filepath.Join(dir, "state", "counters") {
		t.Errorf("identity.counters defaults to %s", cfg.Identity.Counters)
	}

	// A VIF recorded by an earlier run.
	mac := inventory.MAC{0x52, 0x54, 0x00, 0xaa, 0x00, 0x01}
	vm := inventory.UUID{0xa5, 15: 1}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := inventory.Open(context.Background(), filepath.Join(cfg.StateDir, "inventory.db"), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Apply(context.Background(), inventory.Change{}.Add(
		inventory.UpsertVM(inventory.VM{UUID: vm, Name: "vm1", State: inventory.VMStateRunning, Source: "test"}),
		inventory.UpsertVIF(inventory.VIF{MAC: mac, VM: vm, HostDev: "vnet0", Kind: inventory.KindTap})))
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log, host.Listen) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	// The key appears with mode 0600; the switch enrols it.
	var hostKey *identity.PrivateKey
	for deadline := time.Now().Add(10 * time.Second); ; {
		if hostKey, err = identity.LoadPrivateKey(cfg.Identity.KeyFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host key not generated: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fi, err := os.Stat(cfg.Identity.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %v, %v", fi.Mode(), err)
	}
	uplinktest.StartSwitch(t, sw, "swp1", uplinktest.SwitchConfig{Key: swKey, HostKeys: []ed25519.PublicKey{hostKey.Public()}})

	c := &api.Client{Socket: cfg.Socket}
	var status api.Status
	var vif api.VIF
	for deadline := time.Now().Add(15 * time.Second); ; {
		qctx, qcancel := context.WithTimeout(ctx, time.Second)
		status, err = c.Status(qctx)
		if err == nil {
			vif, err = c.VIF(qctx, mac.String())
		}
		qcancel()
		if err == nil && vif.State == "verified" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIF not verified: %+v, status %+v, err %v", vif, status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status.KeyID != hostKey.ID().String() {
		t.Errorf("status key_id %q, want %s", status.KeyID, hostKey.ID())
	}
	found := false
	for _, src := range status.Sources {
		if src.Name == "uplink eth0" {
			found = true
			if !src.Connected {
				t.Errorf("uplink source %+v", src)
			}
		}
	}
	if !found || !status.Ready {
		t.Errorf("status %+v", status)
	}
}
