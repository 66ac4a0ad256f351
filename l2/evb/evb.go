package evb

import (
	"fmt"
	"time"

	"github.com/tether-net/tether/wire"
)

// RRSTAT values of the EVB TLV's station status (802.1Qbg-2012 D.2.12;
// values as lldpad sends them).
const (
	// RRStatusNotEnabled: the bridge has not enabled reflective relay.
	RRStatusNotEnabled uint8 = 0
	// RRStatusEnabled: the bridge has enabled reflective relay (RRCTR).
	RRStatusEnabled uint8 = 1
	// RRStatusUnknown: no EVB TLV from a bridge yet.
	RRStatusUnknown uint8 = 3
)

// Field limits of the EVB TLV.
const (
	// MaxR is the largest R (3 bits).
	MaxR = 7
	// MaxExp is the largest RTE, RWD or RKA exponent (5 bits).
	MaxExp = 31
)

// Default EVB parameters (802.1Qbg-2012 D.2.12 and 43.3.x defaults, as
// lldpad uses them): 3 ECP retries, RTE 14 (about 164 ms), RWD 20 (about
// 10.5 s), RKA 20.
const (
	DefaultR   = 3
	DefaultRTE = 14
	DefaultRWD = 20
	DefaultRKA = 20
)

// Config is one side's EVB configuration.
type Config struct {
	// RR asks for reflective relay (station: RRREQ) or offers it (bridge:
	// RRCAP).
	RR bool
	// GroupID says the side supports VSI group IDs (station SGID, bridge
	// BGID).
	GroupID bool
	// R, RTE, RWD and RKA are the proposed values.
	R, RTE, RWD, RKA uint8
}

// DefaultConfig returns the defaults with reflective relay requested or
// offered.
func DefaultConfig() Config {
	return Config{RR: true, R: DefaultR, RTE: DefaultRTE, RWD: DefaultRWD, RKA: DefaultRKA}
}

// validate checks the field widths.
func (c Config) validate() error {
	if c.R > MaxR {
		return fmt.Errorf("evb: R is %d, at most %d", c.R, MaxR)
	}
	for _, f := range []struct {
		name string
		v    uint8
	}{{"RTE", c.RTE}, {"RWD", c.RWD}, {"RKA", c.RKA}} {
		if f.v > MaxExp {
			return fmt.Errorf("evb: %s is %d, at most %d", f.name, f.v, MaxExp)
		}
	}
	return nil
}

// Operating is the outcome of the EVB negotiation on one port: what ECP and
// VDP run with.
type Operating struct {
	// PeerSeen reports an EVB TLV from the peer in the expected role;
	// without it the other fields are the local configuration.
	PeerSeen bool
	// ReflectiveRelay reports that the bridge reflects the station's
	// frames (station RRSTAT enabled / bridge RRCTR).
	ReflectiveRelay bool
	// GroupID reports that both sides support VSI group IDs.
	GroupID bool
	// R is ECP's maximum number of retransmissions.
	R uint8
	// RTE is ECP's retransmission timer exponent.
	RTE uint8
	// RWD is VDP's resource wait delay exponent.
	RWD uint8
	// RKA is VDP's reinit keep-alive exponent.
	RKA uint8
	// RWDRemote and RKARemote report that RWD and RKA are the peer's
	// values (the ROL bits).
	RWDRemote, RKARemote bool
}

// Duration returns 10 µs * 2^exp, the time an RTE, RWD or RKA exponent
// stands for (802.1Qbg-2012 D.2.12).
func Duration(exp uint8) time.Duration {
	if exp > MaxExp {
		exp = MaxExp
	}
	return 10 * time.Microsecond << exp
}

// ECPTimeout returns the ECP retransmission timer.
func (o Operating) ECPTimeout() time.Duration { return Duration(o.RTE) }

// ResourceWaitDelay returns VDP's resource wait delay.
func (o Operating) ResourceWaitDelay() time.Duration { return Duration(o.RWD) }

// KeepAlive returns VDP's reinit keep-alive period.
func (o Operating) KeepAlive() time.Duration { return Duration(o.RKA) }

// common fills the values both roles compute the same way.
func common(local Config, peer *wire.EVB) Operating {
	o := Operating{R: local.R, RTE: local.RTE, RWD: local.RWD, RKA: local.RKA}
	if peer == nil {
		return o
	}
	o.PeerSeen = true
	o.R = max(local.R, peer.R)
	o.RTE = max(local.RTE, peer.RTE)
	if peer.RWD >= local.RWD {
		o.RWD, o.RWDRemote = peer.RWD, true
	}
	if peer.RKA >= local.RKA {
		o.RKA, o.RKARemote = peer.RKA, true
	}
	return o
}

// Station negotiates as the EVB station: local is the station's
// configuration and bridge the EVB TLV last received from the bridge (nil
// when none has been received, or after it aged out). It returns the
// operating parameters and the EVB TLV the station advertises next. A TLV
// whose mode is not "bridge" is an error (and is otherwise ignored, as if
// nil).
func Station(local Config, bridge *wire.EVB) (Operating, wire.EVB, error) {
	if err := local.validate(); err != nil {
		return Operating{}, wire.EVB{}, err
	}
	var perr error
	if bridge != nil && bridge.Mode != wire.EVBModeBridge {
		perr = fmt.Errorf("evb: peer EVB TLV has mode %s, a station expects bridge", bridge.Mode)
		bridge = nil
	}
	o := common(local, bridge)
	tlv := wire.EVB{
		SGID:   local.GroupID,
		RRREQ:  local.RR,
		RRSTAT: RRStatusUnknown,
		Mode:   wire.EVBModeStation,
		R:      o.R,
		RTE:    o.RTE,
		RWD:    o.RWD,
		ROLRWD: o.RWDRemote,
		RKA:    o.RKA,
		ROLRKA: o.RKARemote,
	}
	if bridge != nil {
		// Echo the bridge's status, as 802.1Qbg-2012 D.2.12 and lldpad do.
		tlv.BGID, tlv.RRCAP, tlv.RRCTR = bridge.BGID, bridge.RRCAP, bridge.RRCTR
		tlv.RRSTAT = RRStatusNotEnabled
		if bridge.RRCTR {
			tlv.RRSTAT = RRStatusEnabled
			o.ReflectiveRelay = true
		}
		o.GroupID = bridge.BGID && local.GroupID
	}
	return o, tlv, perr
}

// Bridge negotiates as the EVB Bridge: local is the bridge's configuration
// (RR means RRCAP) and station the EVB TLV last received from the station,
// or nil. It returns the operating parameters and the EVB TLV the bridge
// advertises next, which sets RRCTR when the station requests reflective
// relay and the bridge is capable of it. A TLV whose mode is not "station"
// is an error (and otherwise ignored).
func Bridge(local Config, station *wire.EVB) (Operating, wire.EVB, error) {
	if err := local.validate(); err != nil {
		return Operating{}, wire.EVB{}, err
	}
	var perr error
	if station != nil && station.Mode != wire.EVBModeStation {
		perr = fmt.Errorf("evb: peer EVB TLV has mode %s, a bridge expects station", station.Mode)
		station = nil
	}
	o := common(local, station)
	tlv := wire.EVB{
		BGID:   local.GroupID,
		RRCAP:  local.RR,
		Mode:   wire.EVBModeBridge,
		R:      o.R,
		RTE:    o.RTE,
		RWD:    o.RWD,
		ROLRWD: o.RWDRemote,
		RKA:    o.RKA,
		ROLRKA: o.RKARemote,
	}
	if station != nil {
		// Echo the station's status.
		tlv.SGID, tlv.RRREQ, tlv.RRSTAT = station.SGID, station.RRREQ, station.RRSTAT
		if station.RRREQ && local.RR {
			tlv.RRCTR = true
			o.ReflectiveRelay = true
		}
		o.GroupID = station.SGID && local.GroupID
	}
	return o, tlv, perr
}
