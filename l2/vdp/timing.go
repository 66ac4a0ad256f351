package vdp

import (
	"fmt"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/wire"
)

// Defaults of the VDP timer exponents when no EVB TLV exchange set them:
// 10 µs × 2^20, about 10.5 s, for both.
const (
	DefaultRWD = 20
	DefaultRKA = 20
)

// Timing holds the four exponents an EVB TLV exchange negotiates
// (IEEE 802.1Q-2018 D.2.12, first in 802.1Qbg-2012): ECP's R and RTE
// (clause 43.3), VDP's resource wait delay RWD and reinit keep-alive RKA
// (clause 41.5). Each timer is 10 µs × 2^exponent.
type Timing struct {
	// R is ECP's number of retransmissions (0-7).
	R uint8
	// RTE is ECP's retransmission timer exponent (0-31).
	RTE uint8
	// RWD is the bridge's resource wait delay exponent (0-31): how long
	// the bridge may take to answer a request.
	RWD uint8
	// RKA is the keep-alive exponent (0-31): how often the station
	// repeats its request for each VSI.
	RKA uint8
}

// DefaultTiming returns lldpad's ECP defaults (R 3, RTE 8) with
// DefaultRWD and DefaultRKA.
func DefaultTiming() Timing {
	return Timing{R: ecp.DefaultR, RTE: ecp.DefaultRTE, RWD: DefaultRWD, RKA: DefaultRKA}
}

// TimingFromEVB returns the operating values after an EVB TLV exchange:
// for each field the larger of the local and the peer's value, as lldpad
// computes them (qbg/lldp_evb22.c, common_tlv). A nil peer gives local's.
func TimingFromEVB(local, peer *wire.EVB) Timing {
	t := Timing{R: local.R, RTE: local.RTE, RWD: local.RWD, RKA: local.RKA}
	if peer != nil {
		t.R = max(t.R, peer.R)
		t.RTE = max(t.RTE, peer.RTE)
		t.RWD = max(t.RWD, peer.RWD)
		t.RKA = max(t.RKA, peer.RKA)
	}
	return t
}

// Validate reports a field out of its range.
func (t Timing) Validate() error {
	if err := t.ECP().Validate(); err != nil {
		return fmt.Errorf("vdp: %w", err)
	}
	if t.RWD > ecp.MaxRTE || t.RKA > ecp.MaxRTE {
		return fmt.Errorf("vdp: RWD %d or RKA %d out of range 0-%d", t.RWD, t.RKA, ecp.MaxRTE)
	}
	return nil
}

// ECP returns the ECP part.
func (t Timing) ECP() ecp.Params { return ecp.Params{R: t.R, RTE: t.RTE} }

// ecpBudget is how long ECP may take to deliver one request in the worst
// case: the first transmission and R retransmissions, each followed by a
// full ACK timer, and the ACK timers of R more (1 + 2R) × 10 µs × 2^RTE,
// as lldpad's vdp22_timeout counts it.
func (t Timing) ecpBudget() time.Duration {
	return time.Duration(1+2*int64(t.R)) * ecp.ExpDuration(t.RTE)
}

// ResponseWait is how long a station waits for the bridge's response
// after sending a request (resourceWaitDelay, IEEE 802.1Qbg-2012 41.5.5.9
// as lldpad cites it): ((1 + 2R) × 2^RTE + 2^RWD) × 10 µs, plus half of
// that.
func (t Timing) ResponseWait() time.Duration {
	d := t.ecpBudget() + ecp.ExpDuration(t.RWD)
	return d + d/2
}

// KeepAlive is the station's keep-alive period (reinitKeepAlive,
// 41.5.5.7): 10 µs × 2^RKA after the last response, the station repeats
// its request for the VSI.
func (t Timing) KeepAlive() time.Duration { return ecp.ExpDuration(t.RKA) }

// ResourceWait is the time the bridge allows itself to decide on a request
// (10 µs × 2^RWD); a Decider still running then is abandoned.
func (t Timing) ResourceWait() time.Duration { return ecp.ExpDuration(t.RWD) }

// KeepAliveTimeout is how long the bridge keeps a VSI without hearing from
// the station: ((1 + 2R) × 2^RTE + 2^RKA) × 10 µs, plus half of that
// (lldpad's bridge keep-alive timer).
func (t Timing) KeepAliveTimeout() time.Duration {
	d := t.ecpBudget() + ecp.ExpDuration(t.RKA)
	return d + d/2
}
