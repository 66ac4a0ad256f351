package vdp

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// State is the state of one VSI's association, as the station or the
// bridge holds it (IEEE 802.1Qbg-2012 41.5: the stable states the VDP
// state machines settle in between requests).
type State uint8

// VSI states.
const (
	// StateNone: not known, or de-associated.
	StateNone State = iota
	// StatePreAssociated: announced with PRE-ASSOCIATE; nothing reserved,
	// no traffic.
	StatePreAssociated
	// StatePreAssociatedRR: pre-associated with resources reserved.
	StatePreAssociatedRR
	// StateAssociated: associated; the VSI's traffic passes.
	StateAssociated
)

// String returns "none", "pre-associated", "pre-associated-rr" or
// "associated".
func (s State) String() string {
	switch s {
	case StateNone:
		return "none"
	case StatePreAssociated:
		return "pre-associated"
	case StatePreAssociatedRR:
		return "pre-associated-rr"
	case StateAssociated:
		return "associated"
	}
	return fmt.Sprintf("state %d", uint8(s))
}

// Mode returns the request that keeps a VSI in s (what a keep-alive
// repeats), or 0 for StateNone.
func (s State) Mode() wire.VSIMode {
	switch s {
	case StatePreAssociated:
		return wire.VSIPreAssociate
	case StatePreAssociatedRR:
		return wire.VSIPreAssociateRR
	case StateAssociated:
		return wire.VSIAssociate
	}
	return 0
}

// stateOf returns the state a successful request of mode leads to.
func stateOf(mode wire.VSIMode) State {
	switch mode {
	case wire.VSIPreAssociate:
		return StatePreAssociated
	case wire.VSIPreAssociateRR:
		return StatePreAssociatedRR
	case wire.VSIAssociate:
		return StateAssociated
	}
	return StateNone
}

// Key identifies a VSI on one channel: its VSIID and the VSIID's format
// (IEEE 802.1Qbg-2012 41.2).
type Key struct {
	Format wire.VSIIDFormat
	ID     [16]byte
}

// KeyOf returns v's key.
func KeyOf(v *wire.VSI) Key { return Key{Format: v.VSIIDFormat, ID: v.VSIID} }

// String formats the VSIID as wire.VSI.VSIIDString does.
func (k Key) String() string {
	if k.Format == 0 {
		return hex.EncodeToString(k.ID[:])
	}
	v := wire.VSI{VSIIDFormat: k.Format, VSIID: k.ID}
	return v.VSIIDString()
}

// Errors of requests and events. Test with errors.Is.
var (
	// ErrBusy means a request for the VSI is already outstanding.
	ErrBusy = errors.New("vdp: a request for this VSI is outstanding")
	// ErrNotAssociated means DE-ASSOCIATE of a VSI the station does not
	// hold.
	ErrNotAssociated = errors.New("vdp: VSI not associated")
	// ErrInvalidTransition means a request the VSI's state does not
	// allow: PRE-ASSOCIATE of an associated VSI (lldpad's transition
	// table, qbg/vdp22sm.c).
	ErrInvalidTransition = errors.New("vdp: request not allowed in the VSI's state")
	// ErrInvalidRequest means the request is malformed (no filter, a
	// null VID among several VID filters, an encoding error).
	ErrInvalidRequest = errors.New("vdp: invalid request")
	// ErrTimeout means the bridge did not answer within the response
	// wait delay (Timing.ResponseWait).
	ErrTimeout = errors.New("vdp: no response from the bridge")
	// ErrResponseMismatch means the bridge answered with filters that do
	// not match the request (other MACs or GroupIDs, another VID where a
	// VID other than the null VID was asked for).
	ErrResponseMismatch = errors.New("vdp: response does not match the request")
	// ErrDeassociatedByBridge means the bridge sent DE-ASSOCIATE.
	ErrDeassociatedByBridge = errors.New("vdp: de-associated by the bridge")
	// ErrStopped means the station or bridge stopped running.
	ErrStopped = errors.New("vdp: stopped")
	// ErrRefused is the kind of a bridge's negative response; the error
	// is a *ResponseError.
	ErrRefused = errors.New("vdp: request refused by the bridge")
)

// ResponseError is a bridge's negative response: the error code and the
// KEEP and hard-error bits of the VSI TLV's status (IEEE 802.1Qbg-2012
// 41.2). It matches ErrRefused.
type ResponseError struct {
	// Mode is the mode of the response TLV (the request's, or
	// DE-ASSOCIATE when the bridge tears the VSI down in its answer).
	Mode wire.VSIMode
	// Status is the status octet as received.
	Status wire.VSIStatus
}

// Error implements error.
func (e *ResponseError) Error() string {
	s := fmt.Sprintf("vdp: %s refused by the bridge: %s", e.Mode, e.Status.Code())
	if e.Status.Keep() {
		s += " (previous state kept)"
	}
	if e.Status.Hard() {
		s += " (hard error: do not retry)"
	}
	return s
}

// Unwrap returns ErrRefused.
func (e *ResponseError) Unwrap() error { return ErrRefused }

// Code returns the response's error code.
func (e *ResponseError) Code() wire.VDPResponseCode { return e.Status.Code() }

// Keep reports the KEEP bit: the bridge kept the VSI's previous state.
func (e *ResponseError) Keep() bool { return e.Status.Keep() }

// Hard reports the hard-error bit: retrying will not help.
func (e *ResponseError) Hard() bool { return e.Status.Hard() }

// EventKind says what happened to a VSI without a request of the local
// user being answered.
type EventKind uint8

// Event kinds.
const (
	// EventKeepaliveFailed (station): a keep-alive was refused or not
	// answered; State says where the VSI is now.
	EventKeepaliveFailed EventKind = iota + 1
	// EventBridgeDeassociated (station): the bridge sent DE-ASSOCIATE.
	EventBridgeDeassociated
	// EventFrameRefused (both): a received frame failed the signing
	// policy (bad or missing signature, replay, unknown key) and was
	// dropped; Err says why.
	EventFrameRefused
	// EventAssociated (bridge): a VSI was associated, pre-associated or
	// pre-associated with resources; State says which.
	EventAssociated
	// EventRejected (bridge): the Decider refused a request; Status
	// holds the answer.
	EventRejected
	// EventDeassociated (bridge): the station de-associated a VSI.
	EventDeassociated
	// EventKeepaliveExpired (bridge): no request for the VSI within
	// Timing.KeepAliveTimeout; the bridge de-associated it.
	EventKeepaliveExpired
	// EventResponseLost (bridge): ECP gave up on a frame of responses.
	EventResponseLost
)

// String names the kind.
func (k EventKind) String() string {
	switch k {
	case EventKeepaliveFailed:
		return "keepalive-failed"
	case EventBridgeDeassociated:
		return "bridge-deassociated"
	case EventFrameRefused:
		return "frame-refused"
	case EventAssociated:
		return "associated"
	case EventRejected:
		return "rejected"
	case EventDeassociated:
		return "deassociated"
	case EventKeepaliveExpired:
		return "keepalive-expired"
	case EventResponseLost:
		return "response-lost"
	}
	return fmt.Sprintf("event %d", uint8(k))
}

// Event reports a change the local user did not ask for, or (bridge) the
// outcome of a station's request.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// Key is the VSI (zero for EventFrameRefused and EventResponseLost).
	Key Key
	// State is the VSI's state after the event.
	State State
	// Mode is the request involved, if any.
	Mode wire.VSIMode
	// Status is the response's status, if any.
	Status wire.VSIStatus
	// Peer is the verified signer of the frame involved, nil for an
	// unsigned frame.
	Peer *identity.Verified
	// Err says what went wrong, if anything.
	Err error
}
