package switchd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	sdaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/edge/vmmanager"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// Names of the files switchd keeps under state_dir.
const (
	// SignCountersFile holds the switch key's reserved signature counters.
	SignCountersFile = "sign.counters"
	// ReplayCountersFile holds the replay marks of the host keys.
	ReplayCountersFile = "replay.counters"
)

// RunOptions adjusts RunConfig.
type RunOptions struct {
	// Version is reported by the API and in LLDP.
	Version string
	// Logger receives the logs (default slog.Default()).
	Logger *slog.Logger
	// NetNS is the path of the network namespace that holds the bridge
	// (for example /run/netns/sw1); empty means switchd's own.
	NetNS string
	// VMManager, when set, replaces the libvirt VM manager the
	// configuration describes.
	VMManager verify.VMManager
	// Tune, when set, may adjust the Daemon's Options before New (timers
	// of tests).
	Tune func(*Options)
	// Started, when set, receives the Daemon once the API listens.
	Started func(*Daemon)
	// Reload, when set, asks for the host keys to be read again (SIGHUP).
	Reload <-chan struct{}
}

// RunConfig runs tether-switchd from its configuration until ctx ends: it
// loads (or on first start creates) the switch key, opens the counter
// stores, reads the host keys, connects to the enforcer (leaving whatever
// an earlier instance installed in place), listens on the API socket and
// runs the Daemon. On return the enforcer's rules stay in the kernel (see
// the package documentation on restarts).
func RunConfig(ctx context.Context, cfg switchconfig.Config, ro RunOptions) (err error) {
	log := ro.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("switchd: state_dir: %w", err)
	}
	key, created, err := LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return err
	}
	if created {
		log.Info("switch key generated", "component", "edge/switchd", "file", cfg.KeyFile, "key", key.ID().String())
	}
	signStore, err := identity.OpenFileCounterStore(filepath.Join(cfg.StateDir, SignCountersFile))
	if err != nil {
		return fmt.Errorf("switchd: %w", err)
	}
	defer signStore.Close()
	// Replay marks are written once per verified frame: the group-commit
	// store shares one fsync among the ports' concurrent marks.
	replayStore, err := verify.OpenGroupCommitStore(filepath.Join(cfg.StateDir, ReplayCountersFile))
	if err != nil {
		return fmt.Errorf("switchd: %w", err)
	}
	defer replayStore.Close()
	hostKeys, err := cfg.LoadHostKeys()
	if err != nil {
		return fmt.Errorf("switchd: %w", err)
	}
	if len(hostKeys) == 0 && cfg.Policy == nil {
		log.Warn("no host key enrolled: every association will be refused", "component", "edge/switchd")
	}

	vmm := ro.VMManager
	if vmm == nil {
		m, err := vmmanager.New(vmmanager.Config{
			Hosts: cfg.VMManagers, URITemplate: cfg.VMManagerURITemplate,
			Timeout: time.Duration(cfg.VMManagerTimeout), Logger: log,
		})
		if err != nil {
			return fmt.Errorf("switchd: VM manager: %w", err)
		}
		defer m.Close()
		vmm = m
	}
	if cfg.Placements != "" {
		pm, err := NewPlacementVMManager(cfg.Placements, vmm, log)
		if err != nil {
			return err
		}
		vmm = pm
	}

	nsfd := 0
	if ro.NetNS != "" {
		f, err := os.Open(ro.NetNS)
		if err != nil {
			return fmt.Errorf("switchd: network namespace: %w", err)
		}
		defer f.Close()
		nsfd = int(f.Fd())
	}
	enf, err := enforce.New(ctx, enforce.Options{Table: cfg.NFTTable, Logger: log, NetNS: nsfd})
	if err != nil {
		return fmt.Errorf("switchd: nftables: %w", err)
	}
	defer enf.Close() // the table and its rules stay

	br, err := ReadBridge(nsfd, cfg.Bridge)
	if err != nil {
		return err
	}
	if br.STP == 0 && !enf.Broute() {
		log.Warn("the bridge floods frames to 01:80:c2:00:00:00 (STP off and no nftables meta broute): "+
			"each host's LLDP (EVB/CDCP) and ECP reach switchd but are also flooded to the other hosts; "+
			"turn STP on (ip link set "+cfg.Bridge+" type bridge stp_state 1)",
			"component", "edge/switchd", "bridge", cfg.Bridge)
	}

	opts := Options{
		Config: cfg, Version: ro.Version, Key: key, SignCounters: signStore, ReplayCounters: replayStore,
		HostKeys: hostKeys, VMManager: vmm, Enforcer: enf, Logger: log,
		OpenPort: func(_ context.Context, name string) (PortConns, error) { return OpenPort(nsfd, name) },
		OpenSChannel: func(_ context.Context, name string, svid uint16) (ecp.Link, func() error, error) {
			return OpenSChannel(nsfd, name, svid)
		},
		ListPorts: func(context.Context) ([]string, error) {
			b, err := ReadBridge(nsfd, cfg.Bridge)
			return b.Ports, err
		},
	}
	var sp *StackProfiles
	if cfg.Path != "" {
		// Stack mode: the file's profiles, reloaded when it changes (and
		// on SIGHUP).
		sp = NewStackProfiles(cfg.Path, cfg.Profiles, 0, log)
		opts.Profiles = sp
		go sp.Run(ctx)
	}
	var dck *dcKeys
	if cfg.Policy != nil {
		// DC-wide mode (dcpolicy.go): the store's profiles and placement
		// records, the file's until the store's first listing.
		fallback := opts.Profiles
		if fallback == nil {
			fallback = StaticProfiles(cfg.Profiles)
		}
		dc, err := StartDCPolicy(ctx, *cfg.Policy, fallback, vmm, log)
		if err != nil {
			return err
		}
		defer dc.Close()
		opts.Profiles, opts.VMManager = dc.Profiles(), dc.VMManager()
		// The store's host records enrol keys too (dckeys.go).
		dck = dc.hostKeys(hostKeys)
		opts.HostKeys = dck.initial()
	}
	if ro.Tune != nil {
		ro.Tune(&opts)
	}
	d, err := New(opts)
	if err != nil {
		return err
	}
	if dck != nil {
		kctx, kcancel := context.WithCancel(ctx)
		kdone := make(chan struct{})
		go func() {
			defer close(kdone)
			dck.run(kctx, d.SetHostKeys)
		}()
		defer func() {
			kcancel()
			<-kdone
		}()
	}

	ln, err := api.Listen(cfg.Socket, cfg.SocketGroup)
	if err != nil {
		return fmt.Errorf("switchd: %w", err)
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server", "component", "edge/switchd", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
		_ = os.Remove(cfg.Socket)
	}()
	if ro.Started != nil {
		ro.Started(d)
	}
	if ro.Reload != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-ro.Reload:
					if sp != nil {
						_ = sp.Check() // logged
					}
					keys, err := cfg.LoadHostKeys()
					switch {
					case err == nil && dck != nil:
						err = dck.setFile(ctx, keys, d.SetHostKeys)
					case err == nil:
						err = d.SetHostKeys(ctx, keys)
					}
					if err != nil {
						log.Error("reload the host keys (the old ones stay)", "component", "edge/switchd", "err", err)
					}
				}
			}
		}()
	}
	_, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyReady)
	defer func() { _, _ = sdaemon.SdNotify(false, sdaemon.SdNotifyStopping) }()
	return d.Run(ctx)
}

// LoadOrCreateKey loads the switch key at path, or generates one and saves
// it (mode 0600, directory created 0700) when the file does not exist.
func LoadOrCreateKey(path string) (*identity.PrivateKey, bool, error) {
	k, err := identity.LoadPrivateKey(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("switchd: key_file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("switchd: key_file directory: %w", err)
	}
	k, err = identity.GenerateKey(nil)
	if err != nil {
		return nil, false, fmt.Errorf("switchd: generate the switch key: %w", err)
	}
	if err := k.Save(path); err != nil {
		return nil, false, fmt.Errorf("switchd: save the switch key: %w", err)
	}
	return k, true, nil
}

// ECP sockets get a larger budget than LLDP's default: a mass migration
// brings one ECPDU per round trip.
const ecpReceiveBuffer = 4 << 20

// OpenPort opens the LLDP and ECP AF_PACKET sockets of port in the network
// namespace nsfd (0: the calling thread's), as taps filtered to their
// EtherType (rawsock's BridgePort mode): a bridge port's frames are consumed
// by the bridge before EtherType-bound sockets would see them.
func OpenPort(nsfd int, port string) (PortConns, error) {
	var lldpSock, ecpSock *rawsock.Socket
	err := inNetNS(nsfd, func() error {
		var err error
		lldpSock, err = rawsock.Listen(port, wire.EtherTypeLLDP, rawsock.Options{BridgePort: true})
		if err != nil {
			return err
		}
		// Untagged: the default S-channel's frames only; the other
		// S-channels have sockets of their own (OpenSChannel).
		ecpSock, err = rawsock.Listen(port, wire.EtherTypeECP, rawsock.Options{ReceiveBuffer: ecpReceiveBuffer, BridgePort: true, Untagged: true})
		if err != nil {
			lldpSock.Close()
		}
		return err
	})
	if err != nil {
		return PortConns{}, fmt.Errorf("switchd: open port %s: %w", port, err)
	}
	return PortConns{
		Interface: lldpSock.Interface(),
		LLDP:      lldpSock,
		ECP:       ecpSock,
		Close:     func() error { return errors.Join(lldpSock.Close(), ecpSock.Close()) },
	}, nil
}
