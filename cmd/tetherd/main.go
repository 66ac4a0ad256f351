// Command tetherd is tether's host agent, run by systemd on every
// hypervisor. It keeps the inventory of every VM's vNICs from libvirt events
// and hooks, durably, associates them with the edge switch on its uplinks,
// and serves the local API that tetherctl, tether-hook and the CNI plugin
// use.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tether-net/tether/agent/config"
	"github.com/tether-net/tether/agent/daemon"
	"github.com/tether-net/tether/agent/inventory"
	libvirtsrc "github.com/tether-net/tether/agent/source/libvirt"
	"github.com/tether-net/tether/agent/uplink"
	"github.com/tether-net/tether/internal/daemonflags"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: tetherd [--config FILE] [--check-config] [--version]

tetherd is tether's host agent. It follows libvirt's domains (events, hooks
and a full reconcile after every connect), keeps every vNIC in a crash-safe
inventory under state_dir, associates them with the edge switch on the
configured uplinks (LLDP, EVB, VDP over ECP, signed with the host key), and
serves the local API on socket for tetherctl, tether-hook and the CNI plugin.

flags:
`

func main() {
	fs := flag.NewFlagSet("tetherd", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "configuration file (YAML; every key optional)")
	check := fs.Bool("check-config", false, "validate the configuration, print it with defaults filled in, and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	explicit := daemonflags.ParseOS(fs, "tetherd", version, showVersion)
	cfg, err := config.Load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tetherd: %v\n", err)
		os.Exit(2)
	}
	if *check {
		os.Exit(daemonflags.CheckConfig("tetherd", *cfgPath, nil,
			func(w io.Writer) error { return config.Write(w, cfg) }, os.Stdout, os.Stderr))
	}
	log := slog.New(cfg.Log.Handler(os.Stderr))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("tetherd failed", "err", err)
		os.Exit(1)
	}
}

// run starts tetherd with cfg until ctx ends. listen opens the uplinks'
// sockets (nil: rawsock.Listen; tests pass one that enters a network
// namespace).
func run(ctx context.Context, cfg config.Config, log *slog.Logger, listen uplink.ListenFunc) error {
	var (
		ident *uplink.Identity
		keyID string
	)
	if len(cfg.Uplinks) > 0 {
		var err error
		if ident, err = uplink.OpenIdentity(uplink.IdentityConfigFrom(&cfg), log); err != nil {
			return err
		}
		defer ident.Close()
		keyID = ident.Key.ID().String()
	} else {
		// Without an uplink nothing signs, but the key exists from the
		// first start so that it can be enrolled before the uplink is
		// configured.
		key, created, err := uplink.LoadOrCreateKey(cfg.Identity.KeyFile)
		switch {
		case err != nil:
			log.Warn("no host key (no uplink is configured, so tetherd goes on without one)", "err", err)
		case created:
			keyID = key.ID().String()
			log.Info("generated the host key; enrol its public key with tether-policyd", "key_file", cfg.Identity.KeyFile, "key_id", keyID)
		default:
			keyID = key.ID().String()
			log.Info("host key loaded", "key_file", cfg.Identity.KeyFile, "key_id", keyID)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := daemon.New(openCtx, daemon.Options{
		Config: cfg, Logger: log, Version: version, KeyID: keyID,
		NewSources: newSources(cfg, ident, listen),
	})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// newSources returns the daemon's NewSources: the libvirt source (unless
// libvirt.uri is empty) and one uplink per uplinks entry.
func newSources(cfg config.Config, ident *uplink.Identity, listen uplink.ListenFunc) func(*inventory.Store, *slog.Logger) ([]daemon.Source, daemon.HookHandler, error) {
	return func(store *inventory.Store, log *slog.Logger) ([]daemon.Source, daemon.HookHandler, error) {
		var (
			sources []daemon.Source
			hooks   daemon.HookHandler
		)
		if cfg.Libvirt.URI == "" {
			log.Warn("libvirt source disabled (libvirt.uri is empty): only hooks feed the inventory")
		} else {
			src := &libvirtsrc.Source{
				URI: cfg.Libvirt.URI, Store: store, Logger: log,
				ReconnectMin: time.Duration(cfg.Libvirt.ReconnectMin),
				ReconnectMax: time.Duration(cfg.Libvirt.ReconnectMax),
			}
			sources, hooks = append(sources, src), src
		}
		if len(cfg.Uplinks) == 0 {
			log.Info("no uplink configured: VIFs stay pending")
		}
		for _, ul := range cfg.Uplinks {
			ucfg := uplink.ConfigFrom(&cfg, ul.Interface, store, ident, log)
			ucfg.Listen = listen
			u, err := uplink.New(ucfg)
			if err != nil {
				return nil, nil, err
			}
			sources = append(sources, u)
		}
		return sources, hooks, nil
	}
}
