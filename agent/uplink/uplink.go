package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// Defaults of Config.
const (
	// DefaultRetryMin is the first backoff after a refusal or a timeout.
	DefaultRetryMin = time.Second
	// DefaultRetryMax caps the backoff.
	DefaultRetryMax = time.Minute
	// DefaultManagerID is the VSI Manager ID when Config.Manager is zero.
	DefaultManagerID = "tether"
)

// Timing of the uplink itself.
const (
	// sessionRetryMin and sessionRetryMax bound the wait before a new
	// session after one failed (interface missing or down: a link going
	// down ends the session, so the max is how long recovery may lag
	// behind the link coming back).
	sessionRetryMin = time.Second
	sessionRetryMax = 5 * time.Second
	// resync is how often the loop runs without a trigger, as a safety
	// net for a trigger lost to a bug.
	resync = 30 * time.Second
	// settle is how long the loop waits after a trigger for more of them,
	// so a burst of events costs one pass.
	settle = 5 * time.Millisecond
	// subscriptionBuffer is how many committed Changes may wait for the
	// loop before the store drops the subscription (the loop then
	// resubscribes and runs a full pass, which is all it does anyway).
	subscriptionBuffer = 256
)

// ListenFunc opens a raw socket for one EtherType on an interface
// (rawsock.Listen; tests open it inside a network namespace).
type ListenFunc func(ifname string, etherType uint16) (rawsock.Conn, error)

// Config configures an Uplink.
type Config struct {
	// Interface is the uplink's network interface; required.
	Interface string
	// Store is the inventory; required.
	Store *inventory.Store
	// Signer signs LLDPDUs and VDP frames with the host key; required.
	Signer *identity.Signer
	// Verifier checks the switch's signatures against the enrolled
	// switch keys; required.
	Verifier *identity.Verifier
	// RequireSigned refuses plain VDP (config require_signed).
	RequireSigned bool
	// CID is the Company ID of tether's TLVs (zero: wire.DefaultCID). It
	// must be the one Signer and Verifier were made with.
	CID wire.OUI
	// EVB is the station's proposed EVB values; zero R, RTE, RWD and RKA
	// mean evb.DefaultConfig().
	EVB evb.Config
	// ETS and PFC are advertised when not nil.
	ETS *wire.ETSConfiguration
	PFC *wire.PFC
	// Manager is the VSI Manager ID (zero: DefaultManagerID).
	Manager wire.VSIManagerID
	// TypeID and TypeVersion are sent for VMs whose VIFs have no
	// 802.1Qbg virtual port.
	TypeID      uint32
	TypeVersion uint8
	// SystemName is the LLDP System Name (default: the host name).
	SystemName string
	// PostMove turns pre-association off (config migration.mode
	// post-move): a paused VM that is not associated yet gets no request
	// until it runs, the older behaviour kept for comparison.
	PostMove bool
	// RetryMin and RetryMax bound the per-VM backoff (defaults
	// DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// Listen opens the raw sockets (default rawsock.Listen with its
	// default options).
	Listen ListenFunc
	// ListenSChannel opens the ECP socket of S-channel svid: it reads the
	// frames in that S-Tag only (default rawsock.Listen with
	// Options.SChannel). See schannel.go.
	ListenSChannel func(ifname string, svid uint16) (rawsock.Conn, error)
	// Logger receives the logs (default slog.Default()); they carry
	// component=agent/uplink and uplink=Interface.
	Logger *slog.Logger
}

// Uplink runs LLDP, EVB and VDP on one interface and reconciles the
// inventory's VIFs with the switch. It implements daemon.Source.
type Uplink struct {
	cfg Config
	log *slog.Logger

	ready    atomic.Bool
	outcomes atomic.Uint64
	lastErr  atomic.Pointer[string]
	cur      atomic.Pointer[session]
	dp       Datapath // SetDatapath, before Run (datapath.go)
}

// New checks cfg and returns an Uplink; Run starts it.
func New(cfg Config) (*Uplink, error) {
	switch {
	case cfg.Interface == "":
		return nil, errors.New("uplink: Config.Interface is required")
	case cfg.Store == nil:
		return nil, errors.New("uplink: Config.Store is required")
	case cfg.Signer == nil || cfg.Verifier == nil:
		return nil, errors.New("uplink: Config.Signer and Config.Verifier are required")
	}
	if cfg.EVB.R == 0 && cfg.EVB.RTE == 0 && cfg.EVB.RWD == 0 && cfg.EVB.RKA == 0 {
		cfg.EVB = evb.DefaultConfig()
	}
	if _, _, err := evb.Station(cfg.EVB, nil); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	if cfg.Manager == (wire.VSIManagerID{}) {
		cfg.Manager, _ = wire.ManagerIDFromString(DefaultManagerID)
	}
	if cfg.TypeID >= 1<<24 {
		return nil, fmt.Errorf("uplink: VSI type ID %d exceeds 24 bits", cfg.TypeID)
	}
	if cfg.SystemName == "" {
		cfg.SystemName, _ = os.Hostname()
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.Listen == nil {
		cfg.Listen = func(ifname string, et uint16) (rawsock.Conn, error) {
			// ECP: the default S-channel's frames only. The kernel hands
			// frames of other S-channels (in an 802.1ad S-Tag) to an
			// EtherType-bound socket too, with the tag removed.
			return rawsock.Listen(ifname, et, rawsock.Options{Untagged: et == wire.EtherTypeECP})
		}
	}
	if cfg.ListenSChannel == nil {
		cfg.ListenSChannel = func(ifname string, svid uint16) (rawsock.Conn, error) {
			return rawsock.Listen(ifname, wire.EtherTypeECP, rawsock.Options{SChannel: svid})
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Uplink{cfg: cfg, log: log.With("component", "agent/uplink", "uplink", cfg.Interface)}, nil
}

// Name is the uplink's name in the API's source list: "uplink IFNAME".
func (u *Uplink) Name() string { return "uplink " + u.cfg.Interface }

// Ready implements daemon.Source: true once the first session ran its
// first reconcile pass, or failed to start (a missing switch or interface
// must not hold tetherd's readiness back).
func (u *Uplink) Ready() bool { return u.ready.Load() }

// Status implements daemon.Source. Connected means a switch that the
// signing policy accepts is on the link; LastError says why not, or what
// failed last; Events counts the VDP outcomes.
func (u *Uplink) Status() api.SourceStatus {
	st := api.SourceStatus{Name: u.Name(), Events: u.outcomes.Load()}
	if s := u.cur.Load(); s != nil {
		if p := s.peer.Load(); p != nil {
			st.Connected = p.usable
			if !p.usable {
				st.LastError = p.why
			}
		}
	}
	if st.LastError == "" {
		if e := u.lastErr.Load(); e != nil {
			st.LastError = *e
		}
	}
	return st
}

// Station returns the VDP station of the running session, or nil.
func (u *Uplink) Station() *vdp.Station {
	if s := u.cur.Load(); s != nil {
		return s.st
	}
	return nil
}

// setErr records the last error for Status.
func (u *Uplink) setErr(msg string) { u.lastErr.Store(&msg) }

// Run runs sessions until ctx ends and returns nil then. A session that
// fails (the interface is missing, a socket fails) is logged and started
// again after a backoff; every session re-learns the associations.
func (u *Uplink) Run(ctx context.Context) error {
	wait := sessionRetryMin
	var last string
	for {
		start := time.Now()
		err := u.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		u.ready.Store(true)
		if err == nil {
			err = errors.New("session ended")
		}
		u.setErr(err.Error())
		if time.Since(start) > 2*sessionRetryMax {
			wait, last = sessionRetryMin, ""
		}
		// The same failure again (an interface that stays missing or
		// down) is logged once.
		lvl := slog.LevelWarn
		if err.Error() == last {
			lvl = slog.LevelDebug
		}
		last = err.Error()
		u.log.Log(ctx, lvl, "uplink session failed; starting again", "err", err, "in", wait)
		u.forget(ctx, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, sessionRetryMax)
	}
}

// forget moves every VIF the failed session may have associated back to
// pending: with the uplink down (or gone) nothing is associated any more.
func (u *Uplink) forget(ctx context.Context, cause error) {
	msg := cause.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	reason := fmt.Sprintf("uplink %s down: %s", u.cfg.Interface, msg)
	vifs, err := u.cfg.Store.List(ctx, inventory.Filter{})
	if err != nil {
		u.log.Warn("VIF states not reset", "err", err)
		return
	}
	var c inventory.Change
	for i := range vifs {
		switch vifs[i].State {
		case inventory.StateAssociated, inventory.StateVerified, inventory.StatePreAssociated:
			c = c.Add(inventory.SetState(vifs[i].MAC, inventory.StatePending, reason))
		}
	}
	if len(c.Ops) == 0 {
		return
	}
	if _, err := u.cfg.Store.Apply(ctx, c); err != nil {
		// A VIF changed meanwhile; the next session's relearn does it.
		u.log.Debug("VIF states not reset", "err", err)
	}
}

// session opens the sockets, runs the LLDP agent, the VDP station and the
// reconcile loop until one of them fails or ctx ends.
func (u *Uplink) session(ctx context.Context) error {
	ifname := u.cfg.Interface
	lconn, err := u.cfg.Listen(ifname, wire.EtherTypeLLDP)
	if err != nil {
		return fmt.Errorf("uplink %s: LLDP socket: %w", ifname, err)
	}
	defer lconn.Close()
	econn, err := u.cfg.Listen(ifname, wire.EtherTypeECP)
	if err != nil {
		return fmt.Errorf("uplink %s: ECP socket: %w", ifname, err)
	}
	defer econn.Close()

	s := &session{u: u, ifi: lconn.Interface(), dirty: make(chan struct{}, 1), recs: map[inventory.UUID]*vsiRec{}}
	s.peer.Store(&peer{why: s.noSwitch()})
	if s.sch.cdcp, err = evb.StationRequest(evb.CDCPStationConfig{ChnCap: 1}); err != nil {
		return fmt.Errorf("uplink %s: CDCP: %w", ifname, err)
	}
	o, _, _ := evb.Station(u.cfg.EVB, nil)
	s.timing = timingOf(o)
	s.agent, err = lldpagent.New(lconn, lldpagent.Config{
		Build:     s.build,
		Dest:      wire.NearestCustomerBridge,
		Sign:      lldpagent.SignWith(u.cfg.Signer, ifname),
		Check:     s.checkLLDP(s.noDowngrade(lldpagent.VerifyWith(u.cfg.Verifier, ifname, false))),
		OnEvent:   func(lldpagent.Event) { s.markDirty() },
		Logger:    u.cfg.Logger,
		TetherCID: u.cfg.CID,
	})
	if err != nil {
		return fmt.Errorf("uplink %s: %w", ifname, err)
	}
	ch := ifname + "/ecp"
	s.st, err = vdp.NewStation(econn, vdp.StationConfig{
		Name:     ifname,
		LocalMAC: s.ifi.MAC,
		Timing:   &s.timing,
		CID:      u.cfg.CID,
		Security: vdp.Security{
			Sign: vdp.IdentitySigner(u.cfg.Signer, ch),
			// S-VID 0: a frame bound to an S-channel is refused here.
			Verify:        vdp.BindingVerifier(vdp.IdentityVerifier(u.cfg.Verifier, ch), u.cfg.CID, 0),
			PeerCapable:   s.peerCapable,
			RequireSigned: u.cfg.RequireSigned,
		},
		Logger:  u.cfg.Logger,
		OnEvent: s.onVDPEvent,
	})
	if err != nil {
		return fmt.Errorf("uplink %s: %w", ifname, err)
	}
	// Forget what an earlier session (or tetherd run) associated, and
	// put the current digest in the first LLDPDU.
	if err := s.relearn(ctx); err != nil {
		return err
	}
	u.cur.Store(s)
	defer u.cur.Store(nil)
	u.log.Info("uplink started", "mac", macString(s.ifi.MAC), "key_id", u.cfg.Signer.KeyID().String(),
		"require_signed", u.cfg.RequireSigned)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := f(ctx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("%s stopped", name)
			}
			if err != nil && ctx.Err() == nil {
				once.Do(func() { first = err })
			}
			cancel()
		}()
	}
	run("LLDP agent", s.agent.Run)
	run("VDP station", s.st.Run)
	run("reconcile loop", s.loop)
	wg.Wait()
	s.stopStations()
	u.log.Info("uplink stopped")
	return first
}

// macString formats a MAC address.
func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
