// Command tether-switchd is tether's edge switch daemon: on every managed
// port of a Linux bridge it speaks the bridge role of LLDP, EVB, CDCP and
// VDP/ECP, verifies every association against the host's key and an
// independent VM manager, lets only verified (source MAC, VID) pairs through
// with nftables, and serves the local API that `tetherctl switch` uses.
// The logic lives in package edge/switchd.
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

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/switchd"
	"github.com/tether-net/tether/internal/daemonflags"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: tether-switchd [--config FILE] [--check-config] [--netns PATH] [--version]

tether-switchd runs the bridge role of LLDP, EVB, CDCP and VDP on every
managed port of a Linux bridge, verifies each VM association (host key,
LLDP neighbour, VM manager, MAC uniqueness), enforces the verified
(MAC, VID) pairs with nftables, and serves the local API on socket.
SIGHUP reads the enrolled host keys again.

flags:
`

func main() {
	fs := flag.NewFlagSet("tether-switchd", flag.ContinueOnError)
	cfgPath := fs.String("config", switchconfig.DefaultPath, "configuration file (YAML; every key optional)")
	check := fs.Bool("check-config", false, "validate the configuration, print it with defaults filled in, and exit")
	netns := fs.String("netns", "", "network namespace holding the bridge (a path such as /run/netns/sw1); default: this process's")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	explicit := daemonflags.ParseOS(fs, "tether-switchd", version, showVersion)
	cfg, err := switchconfig.Load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-switchd: %v\n", err)
		os.Exit(2)
	}
	if *check {
		checkFiles := func() error {
			if _, err := cfg.LoadHostKeys(); err != nil {
				return err
			}
			if cfg.Policy != nil {
				// The etcd client's TLS files, opened and parsed as at start.
				return cfg.Policy.CheckFiles(time.Now())
			}
			return nil
		}
		os.Exit(daemonflags.CheckConfig("tether-switchd", *cfgPath, checkFiles,
			func(w io.Writer) error { return switchconfig.Write(w, cfg) }, os.Stdout, os.Stderr))
	}
	log := slog.New(cfg.Log.Handler(os.Stderr))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reload := daemonflags.NotifyReload(ctx, syscall.SIGHUP)
	if err := switchd.RunConfig(ctx, cfg, switchd.RunOptions{Version: version, Logger: log, NetNS: *netns, Reload: reload}); err != nil {
		log.Error("tether-switchd failed", "err", err)
		os.Exit(1)
	}
}
