package libvirthooks

import (
	"errors"
	"fmt"
	"strings"
)

// Exit statuses of tether-hook. See the package documentation.
const (
	ExitOK        = 0
	ExitInternal  = 1
	ExitUsage     = 2
	ExitBadXML    = 3
	ExitOversize  = 4
	ExitSpoolFull = 5
)

// ExitCode returns the exit status tether-hook should use for err: ExitOK for
// nil, the code of the first error in err's chain that carries one (all the
// error types of this package do), and ExitInternal otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return ExitInternal
}

// ArgCountError reports a command line without exactly the five words
// DRIVER OBJECT OPERATION SUB-OPERATION EXTRA.
type ArgCountError struct {
	Got int // number of arguments received
}

// Error implements error.
func (e *ArgCountError) Error() string {
	return fmt.Sprintf("want 5 arguments (DRIVER OBJECT OPERATION SUB-OPERATION EXTRA), got %d", e.Got)
}

// ExitCode returns ExitUsage.
func (e *ArgCountError) ExitCode() int { return ExitUsage }

// UnknownDriverError reports a DRIVER other than qemu or network.
type UnknownDriverError struct {
	Driver string
}

// Error implements error.
func (e *UnknownDriverError) Error() string {
	return fmt.Sprintf("unknown hook driver %q (want qemu or network)", e.Driver)
}

// ExitCode returns ExitUsage.
func (e *UnknownDriverError) ExitCode() int { return ExitUsage }

// UnknownOperationError reports an OPERATION that the driver does not have.
type UnknownOperationError struct {
	Driver    Driver
	Operation string
}

// Error implements error.
func (e *UnknownOperationError) Error() string {
	var names []string
	for _, op := range Operations(e.Driver) {
		names = append(names, string(op))
	}
	return fmt.Sprintf("unknown %s operation %q (want one of %s)", e.Driver, e.Operation, strings.Join(names, ", "))
}

// ExitCode returns ExitUsage.
func (e *UnknownOperationError) ExitCode() int { return ExitUsage }

// UnknownSubOperationError reports a SUB-OPERATION other than begin, end or "-".
type UnknownSubOperationError struct {
	SubOperation string
}

// Error implements error.
func (e *UnknownSubOperationError) Error() string {
	return fmt.Sprintf("unknown sub-operation %q (want begin, end or -)", e.SubOperation)
}

// ExitCode returns ExitUsage.
func (e *UnknownSubOperationError) ExitCode() int { return ExitUsage }

// ArgError reports an unusable OBJECT (domain or network name) or EXTRA
// argument: empty object, not UTF-8, or longer than 1024 bytes.
type ArgError struct {
	Arg    string // "OBJECT" or "EXTRA"
	Value  string // the argument, cut to 32 bytes if it was too long
	Reason string
}

// Error implements error.
func (e *ArgError) Error() string {
	return fmt.Sprintf("bad %s argument %q: %s", e.Arg, e.Value, e.Reason)
}

// ExitCode returns ExitUsage.
func (e *ArgError) ExitCode() int { return ExitUsage }

// OversizeError reports hook input larger than the limit. The input is not
// read beyond limit+1 bytes.
type OversizeError struct {
	Limit int64
}

// Error implements error.
func (e *OversizeError) Error() string {
	return fmt.Sprintf("hook input exceeds the limit of %d bytes", e.Limit)
}

// ExitCode returns ExitOversize.
func (e *OversizeError) ExitCode() int { return ExitOversize }

// Kinds of XML problems, for errors.Is on an *XMLError.
var (
	// ErrMalformedXML: not well-formed, truncated, wrong root element,
	// trailing content after the root, or an element libvirtxml rejects.
	ErrMalformedXML = errors.New("malformed XML")
	// ErrMissingUUID: the document has no <uuid> (or an empty one).
	ErrMissingUUID = errors.New("missing <uuid>")
	// ErrInvalidUUID: the <uuid> is not a UUID.
	ErrInvalidUUID = errors.New("invalid <uuid>")
	// ErrMissingName: the document has no <name>.
	ErrMissingName = errors.New("missing <name>")
	// ErrNameMismatch: the XML's <name> is not the hook's OBJECT.
	ErrNameMismatch = errors.New("name does not match the hook object")
	// ErrInvalidMAC: a MAC address that is not a 48-bit MAC.
	ErrInvalidMAC = errors.New("invalid MAC address")
	// ErrInvalidVLAN: a VLAN tag outside 0-4095.
	ErrInvalidVLAN = errors.New("invalid VLAN tag")
	// ErrInvalidVirtualPort: a virtualport parameter out of range.
	ErrInvalidVirtualPort = errors.New("invalid virtualport")
	// ErrInvalidHostdev: an <interface type='hostdev'> whose <source> is
	// not one PCI function's address (domain 0-0xffff, bus 0-0xff, slot
	// 0-0x1f, function 0-7).
	ErrInvalidHostdev = errors.New("invalid hostdev source")
	// ErrInvalidMetadata: tether metadata that does not follow the format
	// in the package documentation.
	ErrInvalidMetadata = errors.New("invalid tether metadata")
)

// XMLError reports XML input that cannot be turned into tether's model.
// Kind is one of the Err* values above; errors.Is matches it and Err.
type XMLError struct {
	Doc   string // "domain", "network hook data"
	Where string // e.g. "devices/interface[2] <mac address>", empty for the whole document
	Kind  error  // ErrMalformedXML, ErrMissingUUID, ...
	Value string // offending value, if any
	Err   error  // underlying cause, may be nil
}

// Error implements error.
func (e *XMLError) Error() string {
	var b strings.Builder
	b.WriteString(e.Doc)
	b.WriteString(" XML: ")
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.Error())
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Kind and, if set, Err.
func (e *XMLError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ExitCode returns ExitBadXML.
func (e *XMLError) ExitCode() int { return ExitBadXML }

// SpoolFullError reports that Spool.Put refused an event because the spool
// holds MaxFiles files or adding the event would exceed MaxBytes.
type SpoolFullError struct {
	Dir      string
	Files    int
	Bytes    int64
	MaxFiles int
	MaxBytes int64
}

// Error implements error.
func (e *SpoolFullError) Error() string {
	return fmt.Sprintf("spool %s is full: %d files, %d bytes (limits %d files, %d bytes); is tetherd running?",
		e.Dir, e.Files, e.Bytes, e.MaxFiles, e.MaxBytes)
}

// ExitCode returns ExitSpoolFull.
func (e *SpoolFullError) ExitCode() int { return ExitSpoolFull }
