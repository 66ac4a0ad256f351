package libvirthooks

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// Driver is the libvirt hook driver, the first word tether-hook gets.
type Driver string

// Drivers tether installs hooks for.
const (
	DriverQEMU    Driver = "qemu"
	DriverNetwork Driver = "network"
)

// Operation is the hook's OPERATION argument.
type Operation string

// qemu operations (libvirt virHookQemuOp).
const (
	OpPrepare   Operation = "prepare"   // before resources are labelled; prepare begin
	OpStart     Operation = "start"     // before QEMU is spawned; start begin (also network: before start)
	OpStarted   Operation = "started"   // QEMU is running; started begin (also network: up and running)
	OpStopped   Operation = "stopped"   // QEMU has exited, before labels are restored; stopped end (also network)
	OpRelease   Operation = "release"   // all resources released; release end, EXTRA = shutoff reason
	OpMigrate   Operation = "migrate"   // incoming migration on the destination; migrate begin
	OpRestore   Operation = "restore"   // restoring a saved image; restore begin
	OpReconnect Operation = "reconnect" // libvirtd restarted and reconnects; reconnect begin
	OpAttach    Operation = "attach"    // attaching to an external QEMU process; attach begin
)

// network-only operations (libvirt virHookNetworkOp); start, started and
// stopped are shared with qemu.
const (
	OpPortCreated Operation = "port-created" // an interface was plugged; stdin has <networkport>
	OpPortDeleted Operation = "port-deleted" // an interface was unplugged; stdin has <networkport>
	OpUpdated     Operation = "updated"      // the network definition was updated
)

// SubOperation is the hook's SUB-OPERATION argument.
type SubOperation string

// Sub-operations (libvirt virHookSubop).
const (
	SubNone  SubOperation = "-"
	SubBegin SubOperation = "begin"
	SubEnd   SubOperation = "end"
)

// maxArgLen bounds the OBJECT and EXTRA arguments; libvirt's are far
// shorter.
const maxArgLen = 1024

// Event is one hook invocation, as given on the command line.
type Event struct {
	Driver       Driver
	Object       string // domain name (qemu) or network name (network)
	Operation    Operation
	SubOperation SubOperation
	Extra        string // "-" when libvirt passes nothing; shutoff reason for release
}

// String returns the event as libvirt passes it, e.g. "qemu vm1 start begin -".
func (e Event) String() string {
	return fmt.Sprintf("%s %s %s %s %s", e.Driver, e.Object, e.Operation, e.SubOperation, e.Extra)
}

// IsXMLFilter reports whether libvirt reads the hook's stdout as replacement
// domain XML for this event: qemu migrate and restore (sub-operation begin).
// Empty output means "unchanged".
func (e Event) IsXMLFilter() bool {
	return e.Driver == DriverQEMU && (e.Operation == OpMigrate || e.Operation == OpRestore)
}

// MustPrintXML reports whether tether-hook has to write the domain XML back
// to stdout. It is always false: for the filter events (see IsXMLFilter)
// libvirt treats empty output as "XML unchanged", and tether never rewrites
// a domain, so tether-hook writes nothing to stdout for any event. Printing
// anything there for migrate or restore would replace the domain definition
// (or, if it is not valid XML, cancel the migration or restore).
func (e Event) MustPrintXML() bool {
	return false
}

// HasPort reports whether the network hook's stdin carries a <networkport>
// (port-created and port-deleted).
func (e Event) HasPort() bool {
	return e.Driver == DriverNetwork && (e.Operation == OpPortCreated || e.Operation == OpPortDeleted)
}

// Operations returns the operations libvirt defines for driver d, in
// libvirt's order, or nil for an unknown driver.
func Operations(d Driver) []Operation {
	switch d {
	case DriverQEMU:
		return []Operation{OpStart, OpStopped, OpPrepare, OpRelease, OpMigrate, OpStarted, OpReconnect, OpAttach, OpRestore}
	case DriverNetwork:
		return []Operation{OpStart, OpStarted, OpStopped, OpPortCreated, OpPortDeleted, OpUpdated}
	}
	return nil
}

// ParseArgs parses tether-hook's arguments without the program name
// (os.Args[1:]): DRIVER OBJECT OPERATION SUB-OPERATION EXTRA. Errors are
// *ArgCountError, *UnknownDriverError, *ArgError, *UnknownOperationError
// or *UnknownSubOperationError, all with ExitCode ExitUsage.
func ParseArgs(argv []string) (Event, error) {
	if len(argv) != 5 {
		return Event{}, &ArgCountError{Got: len(argv)}
	}
	ev := Event{
		Driver:       Driver(argv[0]),
		Object:       argv[1],
		Operation:    Operation(argv[2]),
		SubOperation: SubOperation(argv[3]),
		Extra:        argv[4],
	}
	if err := ev.validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// validate checks every field of ev; ParseArgs and the spool decoder share it.
func (e Event) validate() error {
	ops := Operations(e.Driver)
	if ops == nil {
		return &UnknownDriverError{Driver: string(e.Driver)}
	}
	if e.Object == "" {
		return &ArgError{Arg: "OBJECT", Value: e.Object, Reason: "empty"}
	}
	if err := checkArg("OBJECT", e.Object); err != nil {
		return err
	}
	if err := checkArg("EXTRA", e.Extra); err != nil {
		return err
	}
	if !slices.Contains(ops, e.Operation) {
		return &UnknownOperationError{Driver: e.Driver, Operation: string(e.Operation)}
	}
	switch e.SubOperation {
	case SubNone, SubBegin, SubEnd:
	default:
		return &UnknownSubOperationError{SubOperation: string(e.SubOperation)}
	}
	return nil
}

// checkArg checks that a free-text argument is UTF-8 (so that it survives
// JSON in the spool and the API) and at most maxArgLen bytes.
func checkArg(name, v string) error {
	if len(v) > maxArgLen {
		return &ArgError{Arg: name, Value: v[:32] + "...", Reason: fmt.Sprintf("longer than %d bytes", maxArgLen)}
	}
	if !utf8.ValidString(v) {
		return &ArgError{Arg: name, Value: v, Reason: "not valid UTF-8"}
	}
	return nil
}
