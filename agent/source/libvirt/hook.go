package libvirt

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
)

// HookError is what Hook returns for an event it cannot use (bad arguments
// or XML). It is the event's fault: HTTPStatus says 400, and a spooled
// event that fails this way is dropped rather than retried.
type HookError struct {
	// Err says what was wrong.
	Err error
}

// Error describes the problem.
func (e *HookError) Error() string { return "libvirt source: bad hook event: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *HookError) Unwrap() error { return e.Err }

// HTTPStatus is 400 Bad Request.
func (e *HookError) HTTPStatus() int { return http.StatusBadRequest }

// Ready reports whether the first full reconcile has finished (it stays
// true across reconnects).
func (s *Source) Ready() bool { return s.reconciles.Load() > 0 }

// Hook takes a libvirt hook event that tether-hook forwarded. It is one
// more "this domain changed" signal, level-triggered like the events: a
// qemu hook marks its domain dirty (by the UUID in its XML), a network
// port-created or port-deleted hook marks the port's owner, and any other
// network hook (a network started, stopped or redefined changes what its
// interfaces are plumbed as) asks for a full reconcile. The worker then
// reads the domain from libvirt as usual. Hook never calls libvirt (a hook
// runs while libvirtd holds the domain's lock) and never waits for the
// worker, so it returns at once; it works before Run, and what it marks is
// handled once Run is connected. Errors are *HookError.
//
// Hooks add nothing that the libvirt events do not say when the domain
// exists: in particular the XML of "migrate begin" on the destination is
// not recorded ahead of libvirt (pre-association from hooks is not done
// here).
func (s *Source) Hook(ctx context.Context, ev api.HookEvent) error {
	s.init()
	extra := ev.Extra
	if extra == "" {
		extra = "-"
	}
	hev, err := libvirthooks.ParseArgs([]string{ev.Driver, ev.Object, ev.Operation, ev.SubOperation, extra})
	if err != nil {
		return &HookError{Err: err}
	}
	if hev.Driver == libvirthooks.DriverNetwork && !hev.HasPort() {
		s.events.Add(1)
		s.requestResync()
		return nil
	}
	if ev.XML == "" {
		return &HookError{Err: fmt.Errorf("%s: no XML", hev)}
	}
	in, err := libvirthooks.ParseInput(hev, []byte(ev.XML))
	if err != nil {
		return &HookError{Err: fmt.Errorf("%s: %w", hev, err)}
	}
	var owner string
	switch {
	case in.Domain != nil:
		owner = in.Domain.UUID
	case in.Network != nil && in.Network.Port != nil:
		owner = in.Network.Port.OwnerUUID
	}
	if owner == "" {
		return &HookError{Err: fmt.Errorf("%s: %w", hev, errors.New("no domain UUID"))}
	}
	id, err := inventory.ParseUUID(owner)
	if err != nil {
		return &HookError{Err: fmt.Errorf("%s: domain uuid: %w", hev, err)}
	}
	s.events.Add(1)
	s.mark(id)
	return nil
}
