package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tether-net/tether/agent/datapath"
	"github.com/tether-net/tether/agent/uplink"
)

// datapathSource runs the datapath Reconciler as a source (its status in
// the API, its first pass part of readiness) and closes what it opened
// once it stopped.
type datapathSource struct {
	*datapath.Reconciler
	close func() error
}

// Run runs the reconciler until ctx ends, then closes its managers.
func (s datapathSource) Run(ctx context.Context) error {
	err := s.Reconciler.Run(ctx)
	if cerr := s.close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("datapath: close: %w", cerr))
	}
	return err
}

// addDatapath builds the vNIC datapath and soft switch the configuration
// asks for (none by default), hands the switch's answers of every uplink
// among the sources to it, and adds it to the sources.
func (d *Daemon) addDatapath(ctx context.Context, log *slog.Logger) error {
	var ups []*uplink.Uplink
	for _, s := range d.sources {
		if u, ok := s.(*uplink.Uplink); ok {
			ups = append(ups, u)
		}
	}
	kick := func() {
		for _, u := range ups {
			u.Kick()
		}
	}
	r, closeFn, err := datapath.FromConfig(ctx, &d.opts.Config, d.store, kick, log)
	if err != nil || r == nil {
		return err
	}
	for _, u := range ups {
		u.SetDatapath(r)
	}
	d.sources = append(d.sources, datapathSource{Reconciler: r, close: closeFn})
	d.log.Info("datapath enabled", "vnics", d.opts.Config.Datapath.VNICs, "soft_switch", d.opts.Config.Datapath.SoftSwitch)
	return nil
}
