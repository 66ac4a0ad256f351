package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Allow lets frames from (mac, vid) through on port: VID 0 admits untagged
// (and priority-tagged) frames, any other VID frames whose outer tag
// carries it. It is one element added to the port's allow set, committed
// when Allow returns. Allowing an allowed pair does nothing. A pending
// copy of the pair, if any, stays until Activate, Revoke or Sync; the
// pair counts as allowed meanwhile.
func (e *Enforcer) Allow(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	p, err := NewPair(mac, vid)
	if err != nil {
		return err
	}
	return e.AllowPair(ctx, port, p)
}

// AllowPair is Allow of p, whose SVID may name an S-channel.
func (e *Enforcer) AllowPair(ctx context.Context, port string, p Pair) error {
	return e.pairOp(ctx, "allow", port, p, func(c *nftables.Conn, el []nftables.SetElement) error {
		return c.SetAddElements(e.lay.allowSet(port), el)
	})
}

// Pending installs (mac, vid) on port held back: it is in the kernel, so it
// survives a restart and Observed reports it, but it lets no frame through
// until Activate. This is the pre-association state of IEEE 802.1Qbg VDP
// (PRE-ASSOCIATE with or without resource reservation). Pending on an
// allowed pair leaves it allowed.
func (e *Enforcer) Pending(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	p, err := NewPair(mac, vid)
	if err != nil {
		return err
	}
	return e.PendingPair(ctx, port, p)
}

// PendingPair is Pending of p, whose SVID may name an S-channel.
func (e *Enforcer) PendingPair(ctx context.Context, port string, p Pair) error {
	return e.pairOp(ctx, "hold", port, p, func(c *nftables.Conn, el []nftables.SetElement) error {
		return c.SetAddElements(e.lay.heldSet(port), el)
	})
}

// Activate makes (mac, vid) allowed on port and clears its pending state,
// in one kernel transaction: the move from held back to live is atomic and
// costs one round trip. Activating a pair that is not pending allows it.
func (e *Enforcer) Activate(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	p, err := NewPair(mac, vid)
	if err != nil {
		return err
	}
	return e.ActivatePair(ctx, port, p)
}

// ActivatePair is Activate of p, whose SVID may name an S-channel.
func (e *Enforcer) ActivatePair(ctx context.Context, port string, p Pair) error {
	return e.pairOp(ctx, "activate", port, p, func(c *nftables.Conn, el []nftables.SetElement) error {
		if err := c.SetAddElements(e.lay.allowSet(port), el); err != nil {
			return err
		}
		return deleteIfPresent(c, e.lay.heldSet(port), el)
	})
}

// Revoke removes (mac, vid) from port, allowed or pending, in one kernel
// transaction; frames from it are dropped once Revoke returns. Revoking a
// pair the port does not hold does nothing. This is what a DE-ASSOCIATE, a
// keepalive timeout or a lost LLDP neighbour leads to.
func (e *Enforcer) Revoke(ctx context.Context, port string, mac net.HardwareAddr, vid uint16) error {
	p, err := NewPair(mac, vid)
	if err != nil {
		return err
	}
	return e.RevokePair(ctx, port, p)
}

// RevokePair is Revoke of p, whose SVID may name an S-channel.
func (e *Enforcer) RevokePair(ctx context.Context, port string, p Pair) error {
	return e.pairOp(ctx, "revoke", port, p, func(c *nftables.Conn, el []nftables.SetElement) error {
		if err := deleteIfPresent(c, e.lay.allowSet(port), el); err != nil {
			return err
		}
		return deleteIfPresent(c, e.lay.heldSet(port), el)
	})
}

// deleteIfPresent queues an add followed by a delete of the elements: the
// add makes the delete succeed whether or not they were there (Linux 6.1
// has no DESTROYSETELEM), and both land in the same transaction, so the
// elements are never briefly added.
func deleteIfPresent(c *nftables.Conn, s *nftables.Set, el []nftables.SetElement) error {
	if err := c.SetAddElements(s, el); err != nil {
		return err
	}
	return c.SetDeleteElements(s, el)
}

// pairOp validates its input and runs one transaction built by queue.
func (e *Enforcer) pairOp(ctx context.Context, what, port string, p Pair,
	queue func(*nftables.Conn, []nftables.SetElement) error) error {
	if err := validPort(port); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	el := []nftables.SetElement{{Key: p.key()}}
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	err := e.w.do(ctx, fmt.Sprintf("%s %s on %s", what, p, port), func(c *nftables.Conn) error {
		if err := queue(c, el); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("%w (%w)", ErrNotManaged, err)
			}
			return err
		}
		return nil
	})
	if err == nil && e.log.Enabled(ctx, slog.LevelDebug) {
		e.log.DebugContext(ctx, "pair "+what, "port", port, "pair", p.String())
	}
	return err
}
