//go:build linux

package rawsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Options configures a Socket.
type Options struct {
	// Groups are the multicast addresses to join on the interface; nil
	// means DefaultGroups(), an empty non-nil slice joins none.
	Groups [][6]byte
	// ReceiveBuffer sets the socket's receive buffer (SO_RCVBUF) in bytes,
	// bounding what the kernel queues for this port; 0 keeps the system
	// default.
	ReceiveBuffer int
	// BridgePort opens the socket as an ETH_P_ALL tap filtered (classic
	// BPF, in the kernel) to the EtherType. Use it on an interface that is a
	// port of a Linux bridge: the bridge consumes every frame a port
	// receives before EtherType-bound packet sockets see it, but taps see
	// frames first. tether-switchd listens this way; the enforcer then
	// drops the control frames so the bridge does not flood them.
	BridgePort bool
	// Untagged keeps only frames that arrived without a VLAN tag, and
	// SChannel (1-4094) only those that arrived in an 802.1ad S-Tag (TPID
	// 0x88a8) with that S-VID: the default S-channel and one other (IEEE
	// 802.1Qbg-2012 clause 42). Either opens the socket as an ETH_P_ALL tap
	// like BridgePort. The kernel moves a received frame's outer tag into
	// the packet's metadata before any socket sees it, so a frame of an
	// S-channel is read without its S-Tag (and without these options a
	// socket reads every channel's frames alike); write frames of an
	// S-channel with the tag in place (see STagLink).
	Untagged bool
	SChannel uint16
}

// Socket is a Conn on a Linux AF_PACKET socket of type SOCK_RAW, bound to
// one interface and one EtherType. Frames the host sends itself are not
// read back (PACKET_IGNORE_OUTGOING). Reads are serialized, and so are
// writes.
type Socket struct {
	pc        *packet.Conn
	ifi       Interface
	etherType uint16

	readMu  sync.Mutex
	writeMu sync.Mutex

	statsMu sync.Mutex
	stats   KernelStats

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ Conn          = (*Socket)(nil)
	_ KernelStatser = (*Socket)(nil)
)

// Listen opens an AF_PACKET socket for etherType on the interface named
// ifname, in the network namespace of the calling thread, and joins the
// multicast groups of opts. It needs CAP_NET_RAW.
func Listen(ifname string, etherType uint16, opts Options) (*Socket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("rawsock: look up interface %q: %w", ifname, err)
	}
	mac, err := hardwareAddr(ifi)
	if err != nil {
		return nil, err
	}
	proto, cfg := int(etherType), (*packet.Config)(nil)
	if opts.BridgePort || opts.Untagged || opts.SChannel != 0 {
		filter, err := channelFilter(etherType, opts.Untagged, opts.SChannel)
		if err != nil {
			return nil, err
		}
		proto, cfg = unix.ETH_P_ALL, &packet.Config{Filter: filter}
	}
	pc, err := packet.Listen(ifi, packet.Raw, proto, cfg)
	if err != nil {
		return nil, fmt.Errorf("rawsock: open AF_PACKET socket for EtherType %#04x on %s: %w", etherType, ifname, err)
	}
	s := &Socket{
		pc:        pc,
		ifi:       Interface{Name: ifi.Name, Index: ifi.Index, MAC: mac},
		etherType: etherType,
		closed:    make(chan struct{}),
	}
	if err := s.setup(opts); err != nil {
		_ = pc.Close()
		return nil, err
	}
	return s, nil
}

// setup applies the socket options and joins the groups.
func (s *Socket) setup(opts Options) error {
	rc, err := s.pc.SyscallConn()
	if err != nil {
		return fmt.Errorf("rawsock: %s: raw connection: %w", s.ifi.Name, err)
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		// Without this, the socket reads back every frame the host
		// sends on the interface, its own included (Linux 4.20+).
		if err := unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			serr = fmt.Errorf("rawsock: %s: set PACKET_IGNORE_OUTGOING: %w", s.ifi.Name, os.NewSyscallError("setsockopt", err))
			return
		}
		if opts.ReceiveBuffer > 0 {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, opts.ReceiveBuffer); err != nil {
				serr = fmt.Errorf("rawsock: %s: set SO_RCVBUF to %d: %w", s.ifi.Name, opts.ReceiveBuffer, os.NewSyscallError("setsockopt", err))
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("rawsock: %s: socket options: %w", s.ifi.Name, cerr)
	}
	if serr != nil {
		return serr
	}
	groups := opts.Groups
	if groups == nil {
		groups = DefaultGroups()
	}
	for _, g := range groups {
		if err := s.pc.JoinGroup(net.HardwareAddr(g[:])); err != nil {
			return fmt.Errorf("rawsock: %s: join group %s: %w", s.ifi.Name, net.HardwareAddr(g[:]), err)
		}
	}
	return nil
}

// Interface implements Conn.
func (s *Socket) Interface() Interface { return s.ifi }

// EtherType returns the EtherType the socket is bound to.
func (s *Socket) EtherType() uint16 { return s.etherType }

// longAgo is a deadline in the past, to wake a blocked read or write.
var longAgo = time.Unix(1, 0)

// withDeadline runs op with the socket deadline that set applies, derived
// from ctx: ctx's deadline if it has one, and an immediate deadline when ctx
// is cancelled while op blocks. It maps a timeout caused by ctx to
// ctx.Err() and any error after Close to ErrClosed.
func (s *Socket) withDeadline(ctx context.Context, set func(time.Time) error, op func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dl, _ := ctx.Deadline() // zero when there is none: no deadline
	if err := set(dl); err != nil {
		return s.mapErr(ctx, err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = set(longAgo)
	})
	err := op()
	if !stop() {
		// The AfterFunc ran or is running: wait so that its deadline
		// cannot land on the next operation.
		<-fired
	}
	if err != nil {
		return s.mapErr(ctx, err)
	}
	return nil
}

// mapErr turns errors caused by ctx or Close into ctx.Err() or ErrClosed.
func (s *Socket) mapErr(ctx context.Context, err error) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	if cerr := ctx.Err(); cerr != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return cerr
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

// ReadFrame implements Conn.
func (s *Socket) ReadFrame(ctx context.Context, b []byte) (int, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var n int
	err := s.withDeadline(ctx, s.pc.SetReadDeadline, func() error {
		var err error
		n, _, err = s.pc.ReadFrom(b)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("rawsock: read on %s: %w", s.ifi.Name, err)
	}
	return n, nil
}

// WriteFrame implements Conn.
func (s *Socket) WriteFrame(ctx context.Context, frame []byte) error {
	if err := checkFrame(frame); err != nil {
		return err
	}
	addr := &packet.Addr{HardwareAddr: net.HardwareAddr(frame[:6])}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.withDeadline(ctx, s.pc.SetWriteDeadline, func() error {
		_, err := s.pc.WriteTo(frame, addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("rawsock: write %d-byte frame on %s: %w", len(frame), s.ifi.Name, err)
	}
	return nil
}

// KernelStats implements KernelStatser. The kernel resets its counters on
// every query; Socket keeps the running totals.
func (s *Socket) KernelStats() (KernelStats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	st, err := s.pc.Stats()
	if err != nil {
		return s.stats, fmt.Errorf("rawsock: statistics of %s: %w", s.ifi.Name, err)
	}
	s.stats.Packets += uint64(st.Packets)
	s.stats.Drops += uint64(st.Drops)
	return s.stats, nil
}

// Close implements Conn. It leaves the multicast groups.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		if cerr := s.pc.Close(); cerr != nil {
			err = fmt.Errorf("rawsock: close socket on %s: %w", s.ifi.Name, cerr)
		}
	})
	return err
}
