package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/nftables"
)

// DefaultTable is the name of the bridge-family table an Enforcer owns when
// Options.Table is empty.
const DefaultTable = "tether"

// Options configures an Enforcer.
type Options struct {
	// Table is the name of the nftables table in the bridge family the
	// Enforcer owns; DefaultTable when empty. Nothing else may write to
	// it: the Enforcer rewrites what it does not recognise.
	Table string
	// Logger receives the Enforcer's logs, with a component attribute;
	// slog.Default() when nil.
	Logger *slog.Logger
	// NetNS is an open file descriptor of the network namespace whose
	// nftables the Enforcer programs; 0 means the namespace of the
	// calling thread. The caller keeps it open for the Enforcer's
	// lifetime (the Enforcer reconnects through it after an error).
	NetNS int
	// TPID is the EtherType of the tag whose VID a Pair names: 0x8100
	// (802.1Q C-Tag, the default when 0) or 0x88a8 (802.1ad S-Tag, for
	// ports in switch mode where the S-Tag identifies the vNIC). Frames
	// tagged with any other TPID never match a tagged pair.
	TPID uint16
	// DisableBroute makes control frames (LLDP, ECP) go on through the
	// bridge after the enforcer accepts them, even on kernels that can
	// hand them to the port's own sockets. See the package documentation.
	DisableBroute bool
}

// Enforcer programs one bridge-family nftables table so that a managed port
// forwards only frames from verified (source MAC, VID) pairs. All methods
// are safe for concurrent use.
//
// It holds two netlink sockets: one for changes, on which the per-pair
// operations run one at a time, and one for reading (Observed, Counters,
// the comparison half of Sync), so that dumping thousands of pairs never
// makes an Allow or a Revoke wait.
type Enforcer struct {
	log  *slog.Logger
	opts Options
	lay  layout

	w link // changes
	r link // reads
}

// New connects to nftables in opts.NetNS, creates the table with its base
// chain, dispatch map and control set if they are missing (repairing them
// if they differ), and probes whether the kernel can broute control
// frames. It leaves every managed port, and every pair in it, as it finds
// them: after a restart, call Observed and Sync.
func New(ctx context.Context, opts Options) (*Enforcer, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if len(opts.Table) > 200 {
		return nil, fmt.Errorf("enforce: table name %q longer than 200 bytes", opts.Table)
	}
	switch opts.TPID {
	case 0:
		opts.TPID = etherTypeCTag
	case etherTypeCTag, etherTypeSTag:
	default:
		return nil, fmt.Errorf("enforce: TPID %#04x: want 0x8100 or 0x88a8", opts.TPID)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Enforcer{
		log:  opts.Logger.With("component", "edge/enforce", "table", opts.Table),
		opts: opts,
		lay: layout{
			table: &nftables.Table{Name: opts.Table, Family: nftables.TableFamilyBridge},
			tpid:  opts.TPID,
		},
		w: link{netns: opts.NetNS},
		r: link{netns: opts.NetNS},
	}
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	err := e.w.do(ctx, "set up table", func(c *nftables.Conn) error {
		if err := e.ensureBase(c); err != nil {
			return err
		}
		if opts.DisableBroute {
			return nil
		}
		ok, err := e.probeBroute(c)
		e.lay.broute = ok
		return err
	})
	if err != nil {
		_ = e.w.close()
		return nil, err
	}
	if !e.lay.broute && !opts.DisableBroute {
		e.log.Warn("kernel lacks nftables meta broute (Linux 6.4+, CONFIG_NFT_BRIDGE_META): LLDP and ECP to 01:80:c2:00:00:00 are accepted but bridged, not handed to the port's sockets")
	}
	e.log.Info("enforcer ready", "broute", e.lay.broute, "tpid", fmt.Sprintf("%#04x", e.lay.tpid))
	return e, nil
}

// Broute reports whether the port chains hand accepted control frames
// (LLDP, ECP) to the port's own sockets instead of bridging them.
func (e *Enforcer) Broute() bool { return e.lay.broute }

// Table returns the name of the table the Enforcer owns.
func (e *Enforcer) Table() string { return e.opts.Table }

// Close releases the netlink sockets. The table, its rules and every pair
// stay in the kernel and keep enforcing: a restarted switchd takes them
// over with New, reads them with Observed and converges with Sync, so a
// restart drops nothing verified. Use Remove to take the rules away.
func (e *Enforcer) Close() error {
	e.w.mu.Lock()
	werr := e.w.close()
	e.w.mu.Unlock()
	e.r.mu.Lock()
	rerr := e.r.close()
	e.r.mu.Unlock()
	return errors.Join(werr, rerr)
}

// Remove deletes the Enforcer's table with every port and pair in it:
// every port forwards unfiltered afterwards. It is not an error when the
// table is already gone.
func (e *Enforcer) Remove(ctx context.Context) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	return e.w.do(ctx, "remove table", func(c *nftables.Conn) error {
		s, err := e.read(c)
		if err != nil || !s.Table {
			return err
		}
		c.DelTable(e.lay.table)
		return c.Flush()
	})
}

// ensureBase reads the shared objects and repairs what differs.
func (e *Enforcer) ensureBase(c *nftables.Conn) error {
	s, err := e.read(c)
	if err != nil {
		return err
	}
	n, err := e.checkBase(c, s)
	if err != nil || !n.any() {
		return err
	}
	if s.Table {
		e.log.Warn("table differs from ours: repairing it", "what", n.description)
	}
	return e.fixBase(c, n)
}

// ensurePort reads a port's objects and repairs what differs; it reports
// whether it changed anything.
func (e *Enforcer) ensurePort(c *nftables.Conn, port string) (bool, error) {
	s, err := e.read(c)
	if err != nil {
		return false, err
	}
	n, err := e.checkPortSetup(c, s, port)
	if err != nil || !n.any() {
		return false, err
	}
	return true, e.fixPort(c, port, n)
}

// ManagePort puts port under enforcement: from the moment it returns, a
// frame arriving on port passes only if it is a control frame (LLDP or ECP
// to an IEEE 802.1 group address) or comes from an allowed pair; all other
// frames are counted and dropped before the bridge learns their source
// address. It is idempotent: on a managed port it repairs whatever differs
// and keeps every pair. The interface need not exist yet.
func (e *Enforcer) ManagePort(ctx context.Context, port string) error {
	if err := validPort(port); err != nil {
		return err
	}
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	return e.w.do(ctx, "manage port "+port, func(c *nftables.Conn) error {
		if err := e.ensureBase(c); err != nil {
			return err
		}
		changed, err := e.ensurePort(c, port)
		if changed && err == nil {
			e.log.Info("port managed", "port", port)
		}
		return err
	})
}

// UnmanagePort takes port out of enforcement and deletes its pairs and
// counters: the port then forwards every frame, as an unmanaged bridge port
// does. It is not an error when port is not managed.
func (e *Enforcer) UnmanagePort(ctx context.Context, port string) error {
	if err := validPort(port); err != nil {
		return err
	}
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	return e.w.do(ctx, "unmanage port "+port, func(c *nftables.Conn) error {
		s, err := e.read(c)
		if err != nil || !s.Table {
			return err
		}
		changed, err := e.removePort(c, s, port)
		if changed && err == nil {
			e.log.Info("port unmanaged", "port", port)
		}
		return err
	})
}
