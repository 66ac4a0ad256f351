// Package daemon assembles tetherd: it opens the inventory, serves the local
// API, replays the hook spool, runs the event sources, and talks to systemd
// (readiness and watchdog). The pieces live in their own packages; this one
// only wires them and owns their start and stop order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/user"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/tether-net/tether/agent/apiserver"
	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/internal/sdwatchdog"
	"github.com/tether-net/tether/libvirthooks"
)

// Source is an event source run by the daemon (libvirt today, CNI later).
type Source interface {
	// Run feeds the inventory until ctx ends.
	Run(ctx context.Context) error
	// Status reports the source's health for the API.
	Status() api.SourceStatus
	// Ready reports whether the first full reconcile has finished.
	Ready() bool
}

// HookHandler applies one libvirt hook event to the inventory.
type HookHandler interface {
	Hook(ctx context.Context, ev api.HookEvent) error
}

// Options are what main hands the daemon.
type Options struct {
	// Config is the validated configuration.
	Config config.Config
	// Logger is the root logger.
	Logger *slog.Logger
	// Version is reported by the API.
	Version string
	// KeyID is the host key's ID, reported by the API (empty: none).
	KeyID string
	// NewSources builds the event sources and the hook handler once the
	// store is open (main wires the libvirt source here; tests pass their
	// own).
	NewSources func(store *inventory.Store, log *slog.Logger) ([]Source, HookHandler, error)
}

// Daemon is a running tetherd.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	store   *inventory.Store
	ln      net.Listener
	sources []Source
	hooks   HookHandler
	migr    *uplink.Migrations // the destination side of live migrations (migrate.go)
	started time.Time

	hooksOn                       atomic.Bool
	replayed                      chan struct{} // closed after the first spool replay
	hookEvents, hookErrs, spooled atomic.Uint64
	hookLastErr                   atomic.Pointer[string]
}

// hookStatus reports the hook path as a source in GET /v1/status.
type hookStatus struct{ d *Daemon }

// Status implements apiserver.SourceStatus.
func (h hookStatus) Status() api.SourceStatus {
	st := api.SourceStatus{Name: "hooks", Connected: h.d.hooksOn.Load() && h.d.hooks != nil, Events: h.d.hookEvents.Load()}
	if p := h.d.hookLastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// New opens the store and the API socket. Nothing runs until Run.
func New(ctx context.Context, opts Options) (*Daemon, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{opts: opts, log: log.With("component", "tetherd"), started: time.Now().UTC(), replayed: make(chan struct{})}
	cfg := opts.Config
	st, err := inventory.Open(ctx, filepath.Join(cfg.StateDir, "inventory.db"), inventory.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("tetherd: %w", err)
	}
	if rep := st.OpenReport(); !rep.OK() {
		d.log.Warn("inventory repaired at open", "problems", len(rep.Problems))
	}
	d.store = st
	if opts.NewSources != nil {
		d.sources, d.hooks, err = opts.NewSources(st, log)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("tetherd: %w", err)
		}
	}
	if d.migr, err = newMigrations(cfg, st, d.sources, log); err != nil {
		st.Close()
		return nil, fmt.Errorf("tetherd: %w", err)
	}
	d.ln, err = api.Listen(cfg.Socket, cfg.SocketGroup)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("tetherd: %w", err)
	}
	if cfg.SocketGroup != "" {
		if _, err := user.LookupGroup(cfg.SocketGroup); err != nil {
			d.log.Warn("socket_group does not exist: only root can use the local API (create the group, or set socket_group)",
				"socket", cfg.Socket, "socket_group", cfg.SocketGroup)
		}
	}
	if err := d.addDatapath(ctx, log); err != nil {
		d.ln.Close()
		st.Close()
		return nil, fmt.Errorf("tetherd: %w", err)
	}
	return d, nil
}

// Store returns the inventory, for tests.
func (d *Daemon) Store() *inventory.Store { return d.store }

// ready is true when every source finished its first reconcile.
func (d *Daemon) ready() bool {
	for _, s := range d.sources {
		if !s.Ready() {
			return false
		}
	}
	return true
}

// Hook implements apiserver.HookSink. A live event waits until the spool
// has been replayed once, so spooled events go first; if the wait outlasts
// the request (tether-hook's delivery timeout), the hook spools the event
// and the periodic drain picks it up.
func (d *Daemon) Hook(ctx context.Context, ev api.HookEvent) error {
	if d.hooks == nil && d.migr == nil {
		return errors.New("tetherd has no hook handler (libvirt source disabled)")
	}
	select {
	case <-d.replayed:
	case <-ctx.Done():
		return fmt.Errorf("tetherd is still replaying spooled hook events: %w", ctx.Err())
	}
	return d.applyHook(ctx, ev)
}

// applyHook hands one event to the handler and counts it.
func (d *Daemon) applyHook(ctx context.Context, ev api.HookEvent) error {
	err := d.dispatchHook(ctx, ev)
	if err != nil {
		d.hookErrs.Add(1)
		msg := err.Error()
		d.hookLastErr.Store(&msg)
		return err
	}
	d.hookEvents.Add(1)
	if ev.Spooled {
		d.spooled.Add(1)
	}
	return nil
}

// Run serves until ctx ends, then stops everything in order and closes the
// store. It returns the first fatal error.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	statuses := []apiserver.SourceStatus{hookStatus{d}}
	for _, s := range d.sources {
		statuses = append(statuses, s)
	}
	srv := &apiserver.Server{
		Store: d.store, Hooks: d, Sources: statuses, Ready: d.ready,
		Version: d.opts.Version, Started: d.started, Logger: d.log, KeyID: d.opts.KeyID,
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	errc := make(chan error, len(d.sources)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := httpSrv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("local API: %w", err)
		}
	}()

	// Spooled hook events first, in order; live ones wait for that. Events
	// spooled later (a hook that timed out, or raced the replay) are
	// drained by a periodic pass, so none stays until the next start.
	spool := &libvirthooks.Spool{Dir: d.opts.Config.SpoolDir, Logger: d.log}
	d.replay(ctx, spool)
	d.hooksOn.Store(true)
	close(d.replayed)
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.drainSpool(ctx, spool, time.Second)
	}()

	for _, s := range d.sources {
		wg.Add(1)
		go func(s Source) {
			defer wg.Done()
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("source %s: %w", s.Status().Name, err)
			}
		}(s)
	}
	go d.notifySystemd(ctx)
	d.log.Info("tetherd running", "socket", d.opts.Config.Socket, "generation", d.store.Generation())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		d.log.Error("tetherd stopping on error", "err", err)
	}
	cancel()
	_, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyStopping)
	shutCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = httpSrv.Shutdown(shutCtx)
	wg.Wait()
	return err
}

// replay applies every spooled hook event; one that the handler refuses as
// malformed is dropped with a log line, one that fails otherwise stays for
// the next start.
func (d *Daemon) replay(ctx context.Context, spool *libvirthooks.Spool) {
	if d.hooks == nil {
		return
	}
	n := 0
	err := spool.Replay(ctx, func(se libvirthooks.SpooledEvent) error {
		ev := api.HookEvent{
			Driver: string(se.Event.Driver), Object: se.Event.Object, Operation: string(se.Event.Operation),
			SubOperation: string(se.Event.SubOperation), Extra: se.Event.Extra, XML: string(se.XML),
			Received: se.Time, Spooled: true,
		}
		if err := d.applyHook(ctx, ev); err != nil {
			var hs interface{ HTTPStatus() int }
			if errors.As(err, &hs) && hs.HTTPStatus()/100 == 4 {
				d.log.Warn("dropping spooled hook event", "event", se.Event.String(), "err", err)
				return nil
			}
			return err
		}
		n++
		return nil
	})
	if err != nil && ctx.Err() == nil {
		d.log.Warn("spool replay stopped; the rest stays spooled", "err", err)
	}
	if n > 0 {
		d.log.Info("replayed spooled hook events", "count", n)
	}
}

// drainSpool replays whatever appears in the spool, every interval, until
// ctx ends.
func (d *Daemon) drainSpool(ctx context.Context, spool *libvirthooks.Spool, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, _, err := spool.Len(); err == nil && n > 0 {
				d.replay(ctx, spool)
			}
		}
	}
}

// notifySystemd reports readiness once every source has reconciled, and
// feeds the watchdog (internal/sdwatchdog) while the daemon runs. Outside
// systemd it does nothing.
func (d *Daemon) notifySystemd(ctx context.Context) {
	stopWatchdog := sdwatchdog.Start(ctx)
	defer stopWatchdog()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if d.ready() {
				_, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
				d.log.Info("tetherd ready")
				<-ctx.Done()
				return
			}
		}
	}
}
