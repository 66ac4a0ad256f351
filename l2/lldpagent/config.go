package lldpagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// Defaults of the 802.1AB-2016 timing variables (9.2.5).
const (
	// DefaultTxInterval is msgTxInterval.
	DefaultTxInterval = 30 * time.Second
	// DefaultTxHold is msgTxHold.
	DefaultTxHold = 4
	// DefaultFastTx is msgFastTx.
	DefaultFastTx = time.Second
	// DefaultTxFastInit is txFastInit.
	DefaultTxFastInit = 4
	// DefaultTxCreditMax is txCreditMax.
	DefaultTxCreditMax = 5
	// DefaultMaxNeighbors bounds the neighbour table per agent (lldpd uses
	// the same figure).
	DefaultMaxNeighbors = 32
)

// SignFunc signs an outgoing frame: it receives the complete Ethernet frame
// (header, LLDPDU with End, no padding) and returns the signed frame. It
// may reuse frame's array.
type SignFunc func(ctx context.Context, frame []byte) ([]byte, error)

// CheckResult is what a CheckFunc learned about an accepted frame.
type CheckResult struct {
	// Signed reports a valid signature.
	Signed bool
	// KeyID is the signing key when Signed.
	KeyID [8]byte
	// Counter is the signature's replay counter when Signed.
	Counter uint64
}

// CheckFunc judges a well-formed received frame before it updates the
// neighbour table; an error drops the frame (counted as Rejected). frame
// is the complete Ethernet frame and du its decoded LLDPDU; both are
// read-only.
type CheckFunc func(ctx context.Context, frame []byte, du *wire.LLDPDU) (CheckResult, error)

// Config configures an Agent. Build is required; every other field has a
// default.
type Config struct {
	// Build returns the LLDPDU to send (its TTL is overwritten). It is
	// called from the agent's goroutine before every transmission and on
	// Update; LocalInfo.LLDPDU is a ready-made builder.
	Build func() (wire.LLDPDU, error)
	// Dest is the destination address of transmitted LLDPDUs; zero means
	// wire.NearestBridge. tether's EVB, CDCP and own TLVs go to
	// wire.NearestCustomerBridge (DESIGN.md "Wire decisions").
	Dest [6]byte
	// Accept lists the destination addresses of the LLDPDUs this agent
	// receives; nil means Dest only (802.1AB: one agent per destination
	// address). Others are counted as OtherDestination and ignored.
	Accept [][6]byte
	// TxInterval is msgTxInterval, whole seconds from 1 s to 3600 s.
	TxInterval time.Duration
	// TxHold is msgTxHold, 1 to 100.
	TxHold int
	// FastTx is msgFastTx, whole seconds from 1 s to 3600 s.
	FastTx time.Duration
	// TxFastInit is txFastInit, 1 to 8.
	TxFastInit int
	// TxCreditMax is txCreditMax, 1 to 10.
	TxCreditMax int
	// MaxNeighbors bounds the neighbour table.
	MaxNeighbors int
	// Sign, when set, signs every outgoing frame, shutdown included.
	Sign SignFunc
	// Check, when set, must accept a received frame before it is used.
	Check CheckFunc
	// OnEvent, when set, is called from the agent's goroutine for every
	// neighbour event. It must not block for long or call Run.
	OnEvent func(Event)
	// Clock is the time source (default SystemClock()).
	Clock Clock
	// Logger receives the agent's logs (default slog.Default()); they
	// carry component=lldpagent and the port name.
	Logger *slog.Logger
	// Receive sets the port's receive budget (see rawsock.Receiver). Its
	// Now defaults to the agent's Clock.
	Receive rawsock.ReceiverOptions
	// TetherCID is the Company ID of tether's TLVs (zero: wire.DefaultCID).
	TetherCID wire.OUI
}

// normalize fills in the defaults and checks the ranges of 802.1AB-2016
// 9.2.5.
func (c Config) normalize() (Config, error) {
	if c.Build == nil {
		return c, errors.New("lldpagent: Config.Build is required")
	}
	if c.Dest == ([6]byte{}) {
		c.Dest = wire.NearestBridge
	}
	if c.Dest[0]&1 == 0 {
		return c, fmt.Errorf("lldpagent: destination %x is not a group address", c.Dest)
	}
	if c.Accept == nil {
		c.Accept = [][6]byte{c.Dest}
	}
	setDur(&c.TxInterval, DefaultTxInterval)
	setDur(&c.FastTx, DefaultFastTx)
	setInt(&c.TxHold, DefaultTxHold)
	setInt(&c.TxFastInit, DefaultTxFastInit)
	setInt(&c.TxCreditMax, DefaultTxCreditMax)
	setInt(&c.MaxNeighbors, DefaultMaxNeighbors)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TxInterval (msgTxInterval)", c.TxInterval}, {"FastTx (msgFastTx)", c.FastTx}} {
		if d.v < time.Second || d.v > 3600*time.Second || d.v%time.Second != 0 {
			return c, fmt.Errorf("lldpagent: %s is %v, want whole seconds from 1s to 3600s", d.name, d.v)
		}
	}
	for _, r := range []struct {
		name     string
		v, lo, h int
	}{
		{"TxHold (msgTxHold)", c.TxHold, 1, 100},
		{"TxFastInit (txFastInit)", c.TxFastInit, 1, 8},
		{"TxCreditMax (txCreditMax)", c.TxCreditMax, 1, 10},
		{"MaxNeighbors", c.MaxNeighbors, 1, 1 << 16},
	} {
		if r.v < r.lo || r.v > r.h {
			return c, fmt.Errorf("lldpagent: %s is %d, want %d to %d", r.name, r.v, r.lo, r.h)
		}
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Receive.Now == nil {
		c.Receive.Now = c.Clock.Now
	}
	return c, nil
}

func setDur(p *time.Duration, def time.Duration) {
	if *p == 0 {
		*p = def
	}
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

// TTL returns the Time To Live the configuration advertises:
// min(65535, msgTxInterval * msgTxHold + 1) seconds (802.1AB-2016 9.2.5.22,
// txTTL). It assumes a normalized Config.
func (c Config) ttl() uint16 {
	v := int64(c.TxInterval/time.Second)*int64(c.TxHold) + 1
	if v > 65535 {
		v = 65535
	}
	return uint16(v)
}
