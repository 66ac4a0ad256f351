package identity

import (
	"errors"
	"fmt"
)

// Errors a Verifier reports; test with errors.Is.
var (
	// ErrUnsigned means the frame carries no tether signature TLV. It
	// wraps the wire error, which also matches wire.ErrMissing. Callers in
	// interop mode may accept such frames as plain standard LLDP/VDP.
	ErrUnsigned = errors.New("identity: frame is not signed")
	// ErrBadSignature means the signature does not verify under the
	// enrolled key: the frame was altered or signed with another key.
	ErrBadSignature = errors.New("identity: bad signature")
	// ErrUnknownKey means the signature's key ID is not enrolled.
	ErrUnknownKey = errors.New("identity: unknown key")
	// ErrReplay means the counter is not above the channel's high-water
	// mark; the error is a *ReplayError.
	ErrReplay = errors.New("identity: replayed counter")
	// ErrCounterExhausted means a channel's 64-bit counter is used up; the
	// key must be rotated.
	ErrCounterExhausted = errors.New("identity: counter exhausted")
)

// ReplayError reports a frame whose counter is not above the high-water mark
// of its key and channel. It matches ErrReplay.
type ReplayError struct {
	// Key is the signing key.
	Key KeyID
	// Channel is the receiving channel.
	Channel string
	// Counter is the frame's counter.
	Counter uint64
	// HighWater is the last counter accepted on the channel.
	HighWater uint64
}

// Error implements error.
func (e *ReplayError) Error() string {
	return fmt.Sprintf("identity: replayed counter: counter %d from key %s on channel %q is not above the high-water mark %d",
		e.Counter, e.Key, e.Channel, e.HighWater)
}

// Unwrap returns ErrReplay.
func (e *ReplayError) Unwrap() error { return ErrReplay }
