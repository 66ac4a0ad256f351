package enforce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// link is one lasting nftables netlink socket and the lock that makes its
// operations run one at a time (a Conn buffers the messages of the batch
// being built, and replies must be read in order).
type link struct {
	netns int

	mu   sync.Mutex
	conn *nftables.Conn // nil after an error until the next operation
	nl   *netlink.Conn  // conn's socket, for deadlines
}

// dial opens the socket in the configured namespace. l.mu must be held.
func (l *link) dial() error {
	var nl *netlink.Conn
	c, err := nftables.New(
		nftables.AsLasting(),
		nftables.WithNetNSFd(l.netns),
		nftables.WithSockOptions(func(n *netlink.Conn) error { nl = n; return nil }),
	)
	if err != nil {
		return fmt.Errorf("open nftables netlink socket: %w", err)
	}
	l.conn, l.nl = c, nl
	return nil
}

// close releases the socket. l.mu must be held.
func (l *link) close() error {
	if l.conn == nil {
		return nil
	}
	err := l.conn.CloseLasting()
	l.conn, l.nl = nil, nil
	if err != nil {
		return fmt.Errorf("enforce: close netlink socket: %w", err)
	}
	return nil
}

// do runs fn with the socket under ctx's deadline and cancellation. l.mu
// must be held. After any error the socket is closed, so that no stale
// reply can be taken for the answer to the next request; the next
// operation reconnects.
func (l *link) do(ctx context.Context, what string, fn func(*nftables.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enforce: %s: %w", what, err)
	}
	if l.conn == nil {
		if err := l.dial(); err != nil {
			return fmt.Errorf("enforce: %s: %w", what, err)
		}
	}
	nl := l.nl
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline && nl != nil {
		_ = nl.SetDeadline(deadline)
	}
	var stop func() bool
	if ctx.Done() != nil && nl != nil {
		stop = context.AfterFunc(ctx, func() { _ = nl.SetDeadline(time.Unix(1, 0)) })
	}
	err := fn(l.conn)
	interrupted := stop != nil && !stop()
	if hasDeadline && nl != nil && !interrupted {
		_ = nl.SetDeadline(time.Time{})
	}
	if err != nil || interrupted {
		_ = l.close()
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return fmt.Errorf("enforce: %s: %w", what, err)
	}
	return nil
}
