// Package etcdembed runs tether-policyd's default policy DB: an embedded
// single-node etcd (go.etcd.io/etcd/server/v3/embed) with its data under a
// directory (DefaultDir), serving clients on a unix socket (nothing on
// TCP then) or on a random 127.0.0.1 port, and optionally to other
// machines (switches' caches) over https with client certificates
// (Config.Remote). Clients reach it through go.etcd.io/etcd/client/v3
// like an external cluster (one code path, policy/store). StartCluster
// starts an N-node embedded cluster in one process for tests.
//
// Start waits until the member serves clients and logs (and returns, by
// StartDuration) how long that took. Close is graceful but etcd's gRPC
// server waits up to its request timeout (7 s) for open watch streams:
// close local clients first.
//
// etcd logs through zap; Config.Log receives its entries at Config.LogLevel
// and above (error by default), so a running etcd is quiet.
package etcdembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// DefaultDir is where tether-policyd keeps the embedded etcd's data.
const DefaultDir = "/var/lib/tether/policy"

// DefaultName is the member name of a single-node policy DB.
const DefaultName = "tether-policy"

// SocketName is the client socket's file name inside Config.Dir when
// Config.Unix is set.
const SocketName = "etcd.sock"

// PeerSocketName is the peer socket's file name inside Config.Dir when
// a single member has Config.Unix set (no peer ever connects to it, but
// etcd needs a peer listener).
const PeerSocketName = "etcd-peer.sock"

// Config configures an embedded etcd member.
type Config struct {
	// Name is the member name; empty means DefaultName.
	Name string
	// Dir holds the member's data (in Dir/member-data) and, with Unix,
	// its sockets; empty means DefaultDir.
	Dir string
	// Unix serves clients on the unix socket Dir/etcd.sock instead of
	// 127.0.0.1, and a single member's peer listener on
	// Dir/etcd-peer.sock, so nothing listens on TCP; Dir (mode 0700)
	// guards both. etcd removes stale sockets.
	Unix bool
	// ClientPort and PeerPort are the 127.0.0.1 ports; 0 picks a free
	// one. ClientPort is unused with Unix.
	ClientPort, PeerPort int
	// Log receives etcd's log entries at LogLevel and above; nil
	// discards them.
	Log *slog.Logger
	// LogLevel is the least severe etcd entry forwarded to Log: "debug",
	// "info", "warn" or "error"; empty means "error".
	LogLevel string
	// TickMs and ElectionMs are raft's heartbeat interval and election
	// timeout; zero means etcd's defaults (100 and 1000).
	TickMs, ElectionMs uint
	// UnsafeNoFsync skips fsync (tests only: a crash loses data).
	UnsafeNoFsync bool
	// QuotaBackendBytes bounds the database size; 0 means etcd's
	// default (2 GiB).
	QuotaBackendBytes int64

	// Remote, when set, also serves clients (switches' caches, remote
	// policy servers) on a TCP address with mutual TLS.
	Remote *Remote

	// InitialCluster, ClusterToken and ClusterState are set by
	// StartCluster; a single member leaves them empty.
	InitialCluster, ClusterToken, ClusterState string
}

// Remote is a client listener for other machines: https on Addr, and
// only clients with a certificate signed by CAFile are served.
type Remote struct {
	// Addr is host:port, e.g. "192.0.2.10:2379".
	Addr string
	// CertFile and KeyFile are the server's certificate and key (PEM).
	CertFile, KeyFile string
	// CAFile is the CA bundle client certificates must chain to.
	CAFile string
}

// Server is a running embedded etcd member.
type Server struct {
	e         *embed.Etcd
	cfg       Config
	endpoints []string
	closing   *atomic.Bool
	t0        time.Time
	startDur  time.Duration
}

// parseLevel maps Config.LogLevel onto slog.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "", "error":
		return slog.LevelError, nil
	case "warn":
		return slog.LevelWarn, nil
	case "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("log level %q is not debug, info, warn or error", s)
}

// FreePort returns a 127.0.0.1 TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// withDefaults fills the defaults and picks free ports, so that the
// returned Config restarts the same member on the same addresses.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	var err error
	if c.PeerPort == 0 && !c.unixPeer() {
		if c.PeerPort, err = FreePort(); err != nil {
			return c, err
		}
	}
	if c.ClientPort == 0 && !c.Unix {
		if c.ClientPort, err = FreePort(); err != nil {
			return c, err
		}
	}
	return c, nil
}

// peerURL is the member's peer URL.
func (c Config) peerURL() url.URL {
	if c.unixPeer() {
		// etcd listens on the URL's host for unix peers.
		return url.URL{Scheme: "unix", Host: filepath.Join(c.Dir, PeerSocketName)}
	}
	return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.PeerPort))}
}

// unixPeer reports whether the peer listener is a unix socket: a
// single member serving clients on a unix socket needs no TCP port.
func (c Config) unixPeer() bool { return c.Unix && c.InitialCluster == "" }

// clientURL is the member's client URL.
func (c Config) clientURL() url.URL {
	if c.Unix {
		return url.URL{Scheme: "unix", Path: filepath.Join(c.Dir, SocketName)}
	}
	return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ClientPort))}
}

// embedConfig translates c into etcd's configuration.
func (c Config) embedConfig(closing *atomic.Bool) (*embed.Config, error) {
	lvl, err := parseLevel(c.LogLevel)
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = filepath.Join(c.Dir, "member-data")
	purl, curl := c.peerURL(), c.clientURL()
	ec.ListenPeerUrls = []url.URL{purl}
	ec.AdvertisePeerUrls = []url.URL{purl}
	if c.unixPeer() {
		// The listener takes the path from Host, the cluster
		// bootstrap parses the URL string: advertise the parsable form.
		ec.AdvertisePeerUrls = []url.URL{{Scheme: "unix", Path: purl.Host}}
	}
	ec.ListenClientUrls = []url.URL{curl}
	ec.AdvertiseClientUrls = []url.URL{curl}
	if r := c.Remote; r != nil {
		if r.Addr == "" || r.CertFile == "" || r.KeyFile == "" || r.CAFile == "" {
			return nil, fmt.Errorf("remote listener: address, certificate, key and CA are all required")
		}
		if _, _, err := net.SplitHostPort(r.Addr); err != nil {
			return nil, fmt.Errorf("remote listener: %w", err)
		}
		u := url.URL{Scheme: "https", Host: r.Addr}
		ec.ListenClientUrls = append(ec.ListenClientUrls, u)
		ec.AdvertiseClientUrls = append(ec.AdvertiseClientUrls, u)
		ec.ClientTLSInfo = transport.TLSInfo{CertFile: r.CertFile, KeyFile: r.KeyFile, TrustedCAFile: r.CAFile, ClientCertAuth: true}
	}
	ec.InitialCluster = c.Name + "=" + purl.String()
	if c.unixPeer() {
		ec.InitialCluster = c.Name + "=unix://" + purl.Host
	}
	if c.InitialCluster != "" {
		ec.InitialCluster = c.InitialCluster
	}
	if c.ClusterToken != "" {
		ec.InitialClusterToken = c.ClusterToken
	}
	if c.ClusterState != "" {
		ec.ClusterState = c.ClusterState
	}
	if c.TickMs != 0 {
		ec.TickMs = c.TickMs
	}
	if c.ElectionMs != 0 {
		ec.ElectionMs = c.ElectionMs
	}
	ec.UnsafeNoFsync = c.UnsafeNoFsync
	if c.QuotaBackendBytes != 0 {
		ec.QuotaBackendBytes = c.QuotaBackendBytes
	}
	ec.Metrics = "basic"
	ec.ListenMetricsUrls = nil
	ec.Logger = "zap"
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newServerLogger(c.Log, lvl, closing))
	return ec, nil
}

// Start starts a member and waits until it serves clients (for a member of
// a cluster: until the cluster has a leader), ctx ends or the member
// fails. The start time is logged at info level on cfg.Log and returned by
// StartDuration.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	// Ports Start picks itself may be taken before the member binds them:
	// then it picks again (see StartCluster).
	picked := (cfg.PeerPort == 0 && !cfg.unixPeer()) || (cfg.ClientPort == 0 && !cfg.Unix)
	var s *Server
	for attempt := 1; ; attempt++ {
		c, err := cfg.withDefaults()
		if err != nil {
			return nil, err
		}
		s, err = start(c)
		if err == nil {
			break
		}
		if !picked || !isAddrInUse(err) || attempt == startAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
	if err := s.wait(ctx); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

// start launches the member without waiting for it to be ready.
func start(cfg Config) (*Server, error) {
	closing := new(atomic.Bool)
	ec, err := cfg.embedConfig(closing)
	if err != nil {
		return nil, fmt.Errorf("policy etcd %s: %w", cfg.Name, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("policy etcd %s: %w", cfg.Name, err)
	}
	if cfg.Unix {
		// The directory is what guards the sockets.
		if err := os.Chmod(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("policy etcd %s: %w", cfg.Name, err)
		}
	}
	t0 := time.Now()
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("policy etcd %s: start in %s: %w", cfg.Name, cfg.Dir, err)
	}
	curl := cfg.clientURL()
	return &Server{e: e, cfg: cfg, t0: t0, closing: closing, endpoints: []string{curl.String()}}, nil
}

// RemoteEndpoints returns the https endpoint of Config.Remote, or nil.
func (s *Server) RemoteEndpoints() []string {
	if s.cfg.Remote == nil {
		return nil
	}
	return []string{"https://" + s.cfg.Remote.Addr}
}

// wait blocks until the member is ready.
func (s *Server) wait(ctx context.Context) error {
	select {
	case <-s.e.Server.ReadyNotify():
	case err := <-s.e.Err():
		return fmt.Errorf("policy etcd %s: %w", s.cfg.Name, err)
	case <-ctx.Done():
		return fmt.Errorf("policy etcd %s: waiting for ready: %w", s.cfg.Name, ctx.Err())
	}
	s.startDur = time.Since(s.t0)
	if s.cfg.Log != nil {
		s.cfg.Log.Info("policy etcd ready", "member", s.cfg.Name, "dir", s.cfg.Dir, "endpoints", s.endpoints, "start", s.startDur)
	}
	return nil
}

// Endpoints returns the client endpoints (for clientv3.Config.Endpoints).
func (s *Server) Endpoints() []string { return append([]string(nil), s.endpoints...) }

// Config returns the member's configuration with defaults and ports
// filled in: Start(ctx, s.Config()) restarts the member on the same data
// and addresses after Close.
func (s *Server) Config() Config { return s.cfg }

// StartDuration is the time from starting the member to it serving
// clients.
func (s *Server) StartDuration() time.Duration { return s.startDur }

// IsLeader reports whether the member is the raft leader.
func (s *Server) IsLeader() bool {
	return s.e.Server.Leader() == s.e.Server.MemberID()
}

// Err delivers a fatal error of the running member.
func (s *Server) Err() <-chan error { return s.e.Err() }

// Close stops the member gracefully (a leader first hands leadership to
// a peer) and closes its listeners. Open watch streams hold it up to
// etcd's request timeout (5 s + 2 election timeouts, 7 s by default):
// etcd's gRPC graceful stop waits for clients to end them, so close
// local clients first.
func (s *Server) Close() {
	s.closing.Store(true)
	s.e.Close()
}

// Kill stops the member without handing over leadership, as a crash
// would (the data directory stays consistent: etcd syncs before it
// acknowledges), then closes its listeners. It also stops a member that
// is not ready yet (Close would wait for it to be).
func (s *Server) Kill() {
	s.closing.Store(true)
	s.e.Server.HardStop()
	s.e.Close()
}

// ErrNoLeader is returned by Cluster.Leader when no running member is the
// leader.
var ErrNoLeader = errors.New("no leader")
