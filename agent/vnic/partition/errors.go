package partition

import (
	"errors"
	"fmt"
)

// ErrSTagBound means the S-Tag is bound to another vNIC on the uplink; the
// error is an *STagBoundError.
var ErrSTagBound = errors.New("partition: S-Tag bound to another vNIC")

// STagBoundError reports the vNIC that holds an S-Tag. It matches
// ErrSTagBound.
type STagBoundError struct {
	// Uplink and STag are the binding asked for.
	Uplink string
	STag   uint16
	// Want is the vNIC that asked for it, Holder the vNIC bound to it.
	Want, Holder string
}

// Error implements error.
func (e *STagBoundError) Error() string {
	return fmt.Sprintf("partition: S-Tag %d on uplink %s is bound to vNIC %s, not %s", e.STag, e.Uplink, e.Holder, e.Want)
}

// Unwrap returns ErrSTagBound.
func (e *STagBoundError) Unwrap() error { return ErrSTagBound }

// ErrForeignDevice means a device tether did not make holds a name a
// partition needs; tether leaves it alone. The error is a
// *ForeignDeviceError.
var ErrForeignDevice = errors.New("partition: device name held by a device tether did not make")

// ForeignDeviceError names the device in the way.
type ForeignDeviceError struct {
	// Name is the device name; Alias its ifalias; Kind its link kind.
	Name, Alias, Kind string
	// Want is the vNIC that needs the name.
	Want string
}

// Error implements error.
func (e *ForeignDeviceError) Error() string {
	return fmt.Sprintf("partition: device %s (kind %s, alias %q) is not tether's; vNIC %s needs the name", e.Name, e.Kind, e.Alias, e.Want)
}

// Unwrap returns ErrForeignDevice.
func (e *ForeignDeviceError) Unwrap() error { return ErrForeignDevice }
