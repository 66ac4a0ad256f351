package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
)

// TestDatapathWiring: the default configuration runs no datapath; with
// datapath.vnics [vf] tetherd runs it as a source (its SR-IOV records under
// state_dir/sriov), and a VIF whose VF cannot be found shows the reason
// in the datapath's status and, with no uplink, as the VIF's reason in the
// API (what `tetherctl vif` prints).
func TestDatapathWiring(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		cfg := testConfig(t)
		if enabled {
			cfg.Datapath.VNICs = []string{config.VNICVF}
		}
		d, err := New(context.Background(), Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		if enabled {
			vm := inventory.VM{UUID: inventory.UUID{0xa5, 9}, Name: "vm9", State: inventory.VMStateRunning, Source: "test"}
			vif := inventory.VIF{MAC: inventory.MAC{0x52, 0x54, 0, 0, 0, 9}, VM: vm.UUID, Kind: inventory.KindVF}
			if _, err := d.Store().Apply(ctx, inventory.Change{}.Add(inventory.UpsertVM(vm), inventory.UpsertVIF(vif))); err != nil {
				t.Fatal(err)
			}
		}
		c := &api.Client{Socket: cfg.Socket}
		var dp *api.SourceStatus
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := c.Status(ctx)
			dp = nil
			if err == nil {
				for i := range st.Sources {
					if st.Sources[i].Name == "datapath" {
						dp = &st.Sources[i]
					}
				}
			}
			if err == nil && (!enabled || (dp != nil && dp.LastError != "")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("enabled %v: status %+v, %v", enabled, dp, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		switch {
		case !enabled && dp != nil:
			t.Errorf("the default configuration runs a datapath: %+v", dp)
		case enabled && !strings.Contains(dp.LastError, "vf VIF 52:54:00:00:00:09 has no host device"):
			t.Errorf("datapath status %+v does not say why the VF failed", dp)
		}
		if enabled {
			// No uplink: the datapath records the failure on the VIF, as
			// `tetherctl vif` shows it.
			var got api.VIF
			for deadline := time.Now().Add(10 * time.Second); ; {
				got, err = c.VIF(ctx, "52:54:00:00:00:09")
				if err == nil && got.State == "rejected" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("VIF %+v, %v; want rejected", got, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !strings.HasPrefix(got.Reason, "datapath failed: ensure vf vNIC: vf VIF 52:54:00:00:00:09 has no host device") {
				t.Errorf("VIF reason %q", got.Reason)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.StateDir, "sriov")); enabled != (err == nil) {
			t.Errorf("enabled %v: state_dir/sriov: %v", enabled, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
