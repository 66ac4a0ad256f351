package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch/linuxbridge"
	"github.com/tether-net/tether/agent/softswitch/ovs"
	"github.com/tether-net/tether/agent/vnic"
	"github.com/tether-net/tether/agent/vnic/partition"
	"github.com/tether-net/tether/agent/vnic/sriov"
)

// FromConfig builds the Reconciler tetherd's validated configuration asks
// for (the datapath section), with its vNIC managers under
// <state_dir>/sriov and <state_dir>/partition and its soft switch. It
// returns nil, nil when the section enables nothing (the default). close
// releases what it opened; call it after Run returned.
func FromConfig(ctx context.Context, c *config.Config, store *inventory.Store, onApplied func(), log *slog.Logger) (r *Reconciler, closeFn func() error, err error) {
	d := c.Datapath
	if !d.Enabled() {
		return nil, func() error { return nil }, nil
	}
	if log == nil {
		log = slog.Default()
	}
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = closeAll()
		}
	}()
	// One drift policy for the soft switch and both vNIC kinds.
	var drift vnic.DriftPolicy
	if err := drift.UnmarshalText([]byte(d.Drift)); err != nil {
		return nil, nil, fmt.Errorf("datapath: datapath.drift: %w", err)
	}
	cfg := Config{Store: store, VNICs: map[inventory.Kind]VNICs{}, OnApplied: onApplied, Logger: log,
		// Without an uplink nothing else writes the VIFs' states.
		RecordStates: len(c.Uplinks) == 0, Drift: drift}
	if d.HasVNIC(config.VNICVF) {
		m, err := sriov.New(sriov.Options{StateDir: filepath.Join(c.StateDir, "sriov"), Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		closers = append(closers, m.Close)
		cfg.VNICs[inventory.KindVF] = &SRIOV{Manager: m, Watch: true, Drift: drift}
	}
	if d.HasVNIC(config.VNICPartition) {
		dir := filepath.Join(c.StateDir, "partition")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		m, err := partition.Open(ctx, partition.Config{StateDir: dir, Drift: drift, Log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		closers = append(closers, m.Close)
		cfg.VNICs[inventory.KindPartition] = &Partitions{Manager: m, Uplink: c.Uplinks[0].Interface}
	}
	switch d.SoftSwitch {
	case config.SoftSwitchLinuxBridge:
		sw, err := linuxbridge.New(ctx, linuxbridge.Options{Bridge: d.Bridge, Uplink: d.BridgeUplink, STag: d.BridgeSTag, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		closers = append(closers, sw.Close)
		cfg.Switch = Switch{sw}
	case config.SoftSwitchOVS:
		sw, err := ovs.New(ctx, ovs.Config{DB: d.OVSDB, Bridge: d.Bridge, DatapathType: d.OVSDatapath, Uplink: d.BridgeUplink, Log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		closers = append(closers, sw.Close)
		if err := sw.EnsureBridge(ctx); err != nil {
			return nil, nil, fmt.Errorf("datapath: %w", err)
		}
		cfg.Switch = Switch{sw}
	}
	r, err = New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return r, closeAll, nil
}
