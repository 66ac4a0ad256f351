package wire

import (
	"errors"
	"fmt"
)

// Sentinel error kinds. A decoder returns a *Error whose Unwrap gives one of
// these, so callers can test with errors.Is.
var (
	// ErrTruncated means the input ends before a TLV or field it announces.
	ErrTruncated = errors.New("truncated")
	// ErrOversize means a value exceeds what its format or the frame allows.
	ErrOversize = errors.New("oversize")
	// ErrUnknownSubtype means a subtype, type or format code is not one this
	// package knows and the context does not allow carrying it raw.
	ErrUnknownSubtype = errors.New("unknown subtype")
	// ErrLength means a length field disagrees with the TLV's defined size or
	// with the bytes that follow it.
	ErrLength = errors.New("inconsistent length")
	// ErrInvalid means a field holds a value its standard forbids.
	ErrInvalid = errors.New("invalid value")
	// ErrMissing means a mandatory TLV is absent or out of order.
	ErrMissing = errors.New("missing mandatory TLV")
)

// Error describes what was wrong with a frame, in which TLV and where.
type Error struct {
	// TLV names the TLV or header being decoded or encoded, for example
	// "LLDP Chassis ID", "EVB" or "VDP ASSOCIATE".
	TLV string
	// Offset is the byte offset of the TLV (or field) from the start of the
	// buffer handed to the top-level decoder.
	Offset int
	// Err is one of the package's sentinel errors.
	Err error
	// Detail says what exactly was found, for a human.
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	s := fmt.Sprintf("%s at offset %d: %v", e.TLV, e.Offset, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Err }

// newError builds a *Error; detail is formatted only when args are given.
func newError(tlv string, off int, kind error, detail string, args ...any) *Error {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	return &Error{TLV: tlv, Offset: off, Err: kind, Detail: detail}
}

// errTruncated reports that need bytes were wanted and only have remain.
func errTruncated(tlv string, off, need, have int) *Error {
	return newError(tlv, off, ErrTruncated, "need %d bytes, have %d", need, have)
}
