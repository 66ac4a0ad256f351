package verify

import (
	"fmt"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// Reason says why a claim was refused. The order of the constants is the
// order of the checks.
type Reason uint8

// Refusal reasons.
const (
	// ReasonNone: accepted.
	ReasonNone Reason = iota
	// ReasonUnsigned: the frame carries no tether signature; Check and
	// CheckVerified never accept unsigned claims (interop mode has its
	// own entry point, CheckUnsigned).
	ReasonUnsigned
	// ReasonBadSignature: the signature does not verify under the
	// enrolled key (forged or altered frame).
	ReasonBadSignature
	// ReasonUnknownKey: the signing key is not enrolled.
	ReasonUnknownKey
	// ReasonReplay: the counter is not above the channel's high-water
	// mark (a replayed PDU).
	ReasonReplay
	// ReasonMalformed: the frame or the claim is not a well-formed VDP
	// request signed as a whole: not an ECPDU, the VSI is not in the
	// signed frame, a response, no MAC filter, a VSIID that is not a
	// UUID.
	ReasonMalformed
	// ReasonNoNeighbour: no single signed LLDP neighbour on the port names
	// its host (none learnt yet, or an entry being replaced), so no key can
	// be matched to the port. Transient: the station should retry.
	ReasonNoNeighbour
	// ReasonKeyNotEnrolledForHost: the key is not enrolled for the host
	// that the port's LLDP neighbour names (another host's key, a switch
	// key).
	ReasonKeyNotEnrolledForHost
	// ReasonNeighbourKeyMismatch: the port's LLDP neighbour was not
	// signed by the same key.
	ReasonNeighbourKeyMismatch
	// ReasonVMManagerDenies: the VM manager says the VM is not on that
	// host with that MAC.
	ReasonVMManagerDenies
	// ReasonVMManagerUnavailable: the VM manager could not answer in time.
	ReasonVMManagerUnavailable
	// ReasonMACLiveElsewhere: the MAC is live on another port (or for
	// another VM) and this is not a confirmed migration.
	ReasonMACLiveElsewhere
	// ReasonSTagBoundElsewhere: the S-Tag is bound to another vNIC on the
	// port.
	ReasonSTagBoundElsewhere
	// ReasonInternal: the verifier could not decide (replay store or
	// location table failure, context ended).
	ReasonInternal
	// numReasons counts the reasons.
	numReasons
)

// NumReasons is the number of Reason values, ReasonNone included.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{
	ReasonNone:                  "accepted",
	ReasonUnsigned:              "unsigned-refused",
	ReasonBadSignature:          "bad-signature",
	ReasonUnknownKey:            "unknown-key",
	ReasonReplay:                "replay",
	ReasonMalformed:             "malformed",
	ReasonNoNeighbour:           "no-lldp-neighbour",
	ReasonKeyNotEnrolledForHost: "key-not-enrolled-for-host",
	ReasonNeighbourKeyMismatch:  "neighbour-key-mismatch",
	ReasonVMManagerDenies:       "vm-manager-denies",
	ReasonVMManagerUnavailable:  "vm-manager-unavailable",
	ReasonMACLiveElsewhere:      "mac-live-elsewhere",
	ReasonSTagBoundElsewhere:    "stag-bound-elsewhere",
	ReasonInternal:              "internal",
}

// String returns the reason's name, for example "bad-signature".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason-%d", uint8(r))
}

// MarshalText implements encoding.TextMarshaler (the String form), so
// Stats encode as JSON objects keyed by name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseReason returns the reason named s (String's form).
func ParseReason(s string) (Reason, error) {
	for r, n := range reasonNames {
		if n == s {
			return Reason(r), nil
		}
	}
	return 0, fmt.Errorf("verify: unknown reason %q", s)
}

// VDPCode returns the VDP response code a bridge answers a refusal with
// (IEEE 802.1Qbg-2012 41.2), and whether the error is hard (retrying the
// same request cannot help).
func (r Reason) VDPCode() (code wire.VDPResponseCode, hard bool) {
	switch r {
	case ReasonNone:
		return wire.VDPSuccess, false
	case ReasonMalformed:
		return wire.VDPInvalidFormat, true
	case ReasonUnsigned, ReasonBadSignature, ReasonUnknownKey, ReasonReplay,
		ReasonKeyNotEnrolledForHost, ReasonNeighbourKeyMismatch:
		return wire.VDPOtherFailure, true
	case ReasonNoNeighbour:
		// The port's LLDP neighbour is learnt, ages out and is replaced
		// (a host restarting its agent): worth a retry.
		return wire.VDPOtherFailure, false
	case ReasonVMManagerUnavailable:
		return wire.VDPUnableToContactManager, false
	case ReasonMACLiveElsewhere:
		return wire.VDPInvalidAddress, false
	}
	// VM manager denies (the VM may still be starting), S-Tag bound (the
	// other vNIC may leave), internal: worth a retry.
	return wire.VDPOtherFailure, false
}

// RefusedError is a refusal as an error: the reason and the human
// message. Decision.Err returns it.
type RefusedError struct {
	// Reason is the refusal's reason.
	Reason Reason
	// Message explains it.
	Message string
}

// Error implements error.
func (e *RefusedError) Error() string {
	return "verify: refused (" + e.Reason.String() + "): " + e.Message
}

// Released is a location a confirmed migration took over.
type Released struct {
	// MAC is the MAC that moved.
	MAC MAC
	// From is where it was live before.
	From Location
}

// Decision is the verifier's verdict on one claim.
type Decision struct {
	// Accepted reports that every check passed and, for ASSOCIATE, that
	// the MACs are now live at the port and the S-Tag is bound.
	Accepted bool
	// Reason says why not; ReasonNone when accepted.
	Reason Reason
	// Message explains a refusal in words (and notes a migration).
	Message string
	// Mode is the claim's request.
	Mode wire.VSIMode
	// Signed reports that the frame's signature was verified; Key and
	// Counter are then its key and counter.
	Signed  bool
	Key     identity.KeyID
	Counter uint64
	// Host is the host the key is enrolled for, once known.
	Host string
	// VM is the claim's VSIID.
	VM UUID
	// Migration reports that the claim took over MACs live elsewhere
	// under a confirmed migration (ASSOCIATE), or would (PRE-ASSOCIATE).
	Migration bool
	// Released lists the locations an ASSOCIATE took over: their old
	// ports must stop passing the MACs.
	Released []Released
}

// Err returns nil for an accepted claim and a *RefusedError otherwise.
func (d *Decision) Err() error {
	if d.Accepted {
		return nil
	}
	return &RefusedError{Reason: d.Reason, Message: d.Message}
}
