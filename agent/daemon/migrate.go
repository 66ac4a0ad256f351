package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/api"
)

// newMigrations builds the destination side of live migrations over the
// uplinks among sources (uplink.Migrations: the migrate hook records the
// incoming vNICs and pre-associates them, the started hook waits for the
// switch's answer).
func newMigrations(cfg config.Config, st *inventory.Store, sources []Source, log *slog.Logger) (*uplink.Migrations, error) {
	var ups []*uplink.Uplink
	for _, s := range sources {
		if u, ok := s.(*uplink.Uplink); ok {
			ups = append(ups, u)
		}
	}
	return uplink.NewMigrations(uplink.MigrationsConfig{
		Store:       st,
		Uplinks:     ups,
		PostMove:    cfg.Migration.Mode == config.MigrationPostMove,
		StartedWait: time.Duration(cfg.Migration.StartedWait),
		Logger:      log,
	})
}

// dispatchHook hands one event to the migration handler, then, unless it
// consumed the event (an incoming migration in progress, whose domain the
// libvirt source must not re-read yet), to the hook handler.
func (d *Daemon) dispatchHook(ctx context.Context, ev api.HookEvent) error {
	if d.migr != nil {
		consumed, err := d.migr.Hook(ctx, ev)
		if err != nil || consumed {
			return err
		}
	}
	if d.hooks == nil {
		return errors.New("tetherd has no hook handler (libvirt source disabled)")
	}
	return d.hooks.Hook(ctx, ev)
}
