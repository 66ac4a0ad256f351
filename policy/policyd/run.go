package policyd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tether-net/tether/internal/sdwatchdog"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/placement"
	"github.com/tether-net/tether/policy/server"
	"github.com/tether-net/tether/policy/store"
)

// Options are what main (or a test) hands Run besides the configuration.
type Options struct {
	// Version is reported by /v1/healthz.
	Version string
	// Logger gets the logs (default slog.Default()).
	Logger *slog.Logger
	// Listener, when set, is served instead of listening on cfg.Listen.
	Listener net.Listener
	// Ready, when set, is called once the API serves, with its address
	// and the embedded etcd's start time (0 for an external cluster).
	Ready func(addr net.Addr, etcdStart time.Duration)
	// Reload, when set, makes Run read the tokens file and the client CA
	// again whenever a value arrives (main sends one on SIGHUP); on an
	// error the credentials in force stay.
	Reload <-chan struct{}
	// EmbeddedNoFsync runs the embedded etcd without fsync (tests only).
	EmbeddedNoFsync bool
}

// shutdownGrace bounds the wait for requests in flight at shutdown.
const shutdownGrace = 5 * time.Second

// Run runs tether-policyd until ctx ends: it listens, opens the policy DB,
// serves the API, runs the placement writers, and reports readiness to
// systemd. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, opts Options) error {
	base := opts.Logger
	if base == nil {
		base = slog.Default()
	}
	log := base.With("component", "tether-policyd")
	auth, err := loadAuth(cfg)
	if err != nil {
		return fmt.Errorf("tether-policyd: %w", err)
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return fmt.Errorf("tether-policyd: %w", err)
	}
	ln := opts.Listener
	if ln == nil {
		// Listen first: a taken port fails at once, before etcd starts.
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("tether-policyd: listen: %w", err)
		}
	}
	defer ln.Close()

	cli, etcdStart, closeDB, err := openDB(ctx, cfg.Etcd, base, opts.EmbeddedNoFsync)
	if err != nil {
		return err
	}
	defer closeDB()
	st, err := NewStore(cli, cfg.Etcd.Prefix, base)
	if err != nil {
		return fmt.Errorf("tether-policyd: %w", err)
	}

	// The writers are built before anything serves, so a bad entry
	// fails the start rather than leaving a half-started daemon.
	writers := make([]*placement.Writer, 0, len(cfg.Placement.Hosts))
	for host, uri := range cfg.Placement.Hosts {
		w, err := placement.New(placement.Config{
			Host: host, URI: uri, Sink: st, ResyncInterval: time.Duration(cfg.Placement.ResyncInterval), Logger: base,
		})
		if err != nil {
			return fmt.Errorf("tether-policyd: %w", err)
		}
		writers = append(writers, w)
	}

	var authNow atomic.Pointer[server.Auth]
	authNow.Store(auth)
	srv := &server.Server{Store: st, AuthFunc: authNow.Load, Version: opts.Version, Logger: base}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	var wg sync.WaitGroup
	wctx, stopWriters := context.WithCancel(ctx)
	defer func() {
		stopWriters()
		wg.Wait()
	}()
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Run(wctx)
		}()
	}

	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("tether-policyd serving", "url", scheme+"://"+ln.Addr().String(), "tokens", len(auth.Tokens),
		"mutual_tls", auth.ClientCAs != nil, "placement_hosts", len(cfg.Placement.Hosts), "etcd_start", etcdStart)
	if opts.Ready != nil {
		opts.Ready(ln.Addr(), etcdStart)
	}
	_, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
	stopWatchdog := sdwatchdog.Start(ctx)
	defer stopWatchdog()

wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err := <-serveErr:
			return fmt.Errorf("tether-policyd: serve: %w", err)
		case <-opts.Reload:
			a, err := loadAuth(cfg)
			if err != nil {
				log.Error("reload refused: the credentials in force stay", "err", err)
				continue
			}
			authNow.Store(a)
			log.Info("credentials reloaded", "tokens", len(a.Tokens), "mutual_tls", a.ClientCAs != nil)
		}
	}
	_, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyStopping)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still in flight were cut", "err", err)
	}
	log.Info("tether-policyd stopped")
	return nil
}

// loadAuth reads the tokens file and the client CA.
func loadAuth(cfg Config) (*server.Auth, error) {
	a := &server.Auth{CertRoles: cfg.TLS.ClientRoles}
	if cfg.TokensFile != "" {
		toks, err := server.LoadTokens(cfg.TokensFile)
		if err != nil {
			return nil, err // names the file already
		}
		if len(toks) == 0 && cfg.TLS.ClientCA == "" {
			return nil, fmt.Errorf("tokens file %s holds no token and mutual TLS is off: nobody could use the API", cfg.TokensFile)
		}
		a.Tokens = toks
	}
	if cfg.TLS.ClientCA != "" {
		pool, err := loadPool(cfg.TLS.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca: %w", err)
		}
		a.ClientCAs = pool
	}
	return a, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// serverTLS builds the listener's TLS configuration; nil without TLS.
// Client certificates are requested but verified by server.Auth, so that a
// wrong certificate gets an HTTP answer that says why rather than a
// failed handshake.
func serverTLS(t TLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.cert/tls.key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		c.ClientAuth = tls.RequestClientCert
	}
	return c, nil
}

// openDB starts the embedded etcd or points at the external cluster and
// returns one etcd client either way.
func openDB(ctx context.Context, e Etcd, log *slog.Logger, noFsync bool) (*clientv3.Client, time.Duration, func(), error) {
	endpoints := e.Endpoints
	var (
		emb   *etcdembed.Server
		start time.Duration
	)
	if e.Embedded != nil {
		var err error
		ec := etcdembed.Config{Dir: e.Embedded.DataDir, Unix: true, Log: log.With("component", "etcd"), UnsafeNoFsync: noFsync}
		if r := e.Embedded.Remote; r != nil {
			// Switches' caches watch the store here (mutual TLS).
			ec.Remote = &etcdembed.Remote{Addr: r.Listen, CertFile: r.Cert, KeyFile: r.Key, CAFile: r.ClientCA}
		}
		emb, err = etcdembed.Start(ctx, ec)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("tether-policyd: embedded etcd: %w", err)
		}
		start = emb.StartDuration()
		endpoints = emb.Endpoints()
		log.Info("embedded etcd started", "component", "tether-policyd", "data_dir", e.Embedded.DataDir, "start", start,
			"remote", emb.RemoteEndpoints())
	}
	cli, err := store.Dial(ctx, store.ClientConfig{
		Endpoints: endpoints, CertFile: e.Cert, KeyFile: e.Key, CAFile: e.CA,
		DialTimeout: time.Duration(e.DialTimeout), Log: log.With("component", "etcd-client"),
	})
	if err != nil {
		if emb != nil {
			emb.Close()
		}
		return nil, 0, nil, fmt.Errorf("tether-policyd: %w", err)
	}
	return cli, start, func() {
		_ = cli.Close()
		if emb != nil {
			emb.Close()
		}
	}, nil
}

// CheckFiles loads what the configuration names (tokens file, client CA,
// server certificate and key) without starting anything: --check-config.
func CheckFiles(cfg Config) error {
	if _, err := loadAuth(cfg); err != nil {
		return err
	}
	if _, err := serverTLS(cfg.TLS); err != nil {
		return err
	}
	return nil
}
