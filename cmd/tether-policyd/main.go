// Command tether-policyd is tether's DC-wide policy DB: profiles, port
// groups, enrolled host and switch keys, and VM placements, behind an
// authenticated HTTP/JSON API, stored in etcd (embedded by default). The
// logic lives in package policy/policyd.
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

	"github.com/tether-net/tether/internal/daemonflags"
	"github.com/tether-net/tether/policy/policyd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: tether-policyd [--config FILE] [--check-config] [--version]

tether-policyd keeps tether's policy: profiles (VLAN, S-Tag mode,
EtherTypes, rate, priority), port groups (which VMs get which profile),
enrolled host and switch keys, and VM placements. tether-switchd watches
it; tetherctl policy edits it.

API: HTTP/JSON under /v1/ on listen (default 127.0.0.1:7480). Every call is
authenticated: a bearer token whose SHA-256 is in tokens_file (one line
"ROLE SHA256-HEX [NAME]", ROLE read or write), or, with tls.client_ca, a
client certificate whose CN or OU tls.client_roles maps to a role. Readers
may GET; writers may also POST, PUT and DELETE.

  make a token:   TOKEN=$(head -c 32 /dev/urandom | base64)
                  echo "write $(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1) ops" >> /etc/tether/policyd.tokens
  use it:         echo "$TOKEN" > ~/.tether-token
                  tetherctl policy profile list --token-file ~/.tether-token

Storage: by default an embedded single-node etcd under
/var/lib/tether/policy (etcd.embedded.data_dir); at scale an external
cluster (etcd.endpoints with ca/cert/key). The same code serves both.

SIGHUP reads tokens_file and tls.client_ca again (a broken file is logged
and the credentials in force stay).

Placements: for every host under placement.hosts, tether-policyd asks that
host's libvirt (qemu+ssh://HOST/system) which VMs run there and keeps
their placement records up to date.

flags:
`

func main() {
	fs := flag.NewFlagSet("tether-policyd", flag.ContinueOnError)
	cfgPath := fs.String("config", policyd.DefaultPath, "configuration file (YAML; every key optional)")
	check := fs.Bool("check-config", false, "validate the configuration and the files it names, print it with defaults filled in, and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		_, _ = io.WriteString(os.Stderr, usage)
		fs.PrintDefaults()
	}
	explicit := daemonflags.ParseOS(fs, "tether-policyd", version, showVersion)
	cfg, err := policyd.Load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tether-policyd: %v\n", err)
		os.Exit(2)
	}
	if *check {
		os.Exit(daemonflags.CheckConfig("tether-policyd", *cfgPath, func() error { return policyd.CheckFiles(cfg) },
			func(w io.Writer) error { return policyd.Write(w, cfg) }, os.Stdout, os.Stderr))
	}
	log := slog.New(cfg.Log.Handler(os.Stderr))
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reload := daemonflags.NotifyReload(ctx, syscall.SIGHUP)
	if err := policyd.Run(ctx, cfg, policyd.Options{Version: version, Logger: log, Reload: reload}); err != nil {
		log.Error("tether-policyd failed", "err", err)
		os.Exit(1)
	}
}
