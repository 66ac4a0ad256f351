// Package hookrun is tether-hook: the program libvirt runs (through the
// two-line scripts in /etc/libvirt/hooks/qemu.d/ and network.d/) for every
// domain and network event. It validates argv and stdin, forwards the event
// to tetherd over the local API, and spools it when tetherd cannot take it,
// so nothing is lost. It never calls libvirt (that would deadlock libvirtd)
// and never writes to stdout (for migrate and restore libvirt would take the
// output as replacement domain XML).
//
// Exit codes are those of libvirthooks.ExitCode: 0 delivered, spooled or
// ignored (an operation or sub-operation a newer libvirt added),
// 1 internal error, 2 usage, 3 bad XML, 4 oversize input, 5 spool full.
// A non-zero status for prepare, start, migrate or restore makes libvirt
// abort the operation, so only input that is really wrong fails.
package hookrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
)

// Defaults for Options.
const (
	// DefaultSpoolDir is where events wait while tetherd is down.
	DefaultSpoolDir = "/var/spool/tether/hooks"
	// DefaultDeliverTimeout bounds the whole exchange with tetherd. A hook
	// blocks libvirtd, so a hung tetherd must not hold it for long: past
	// this the event is spooled (events are idempotent, so an event both
	// delivered late and spooled does no harm).
	DefaultDeliverTimeout = 2 * time.Second
	// DefaultReadTimeout bounds the wait for libvirt to close stdin.
	DefaultReadTimeout = 5 * time.Second
)

// Options configure one run.
type Options struct {
	// Args are the arguments after the program name: DRIVER OBJECT
	// OPERATION SUB-OPERATION EXTRA.
	Args []string
	// Stdin is the XML libvirt writes; Stderr gets diagnostics.
	Stdin  io.Reader
	Stderr io.Writer
	// Client reaches tetherd; nil means the default socket.
	Client *api.Client
	// Spool keeps events tetherd could not take; nil means DefaultSpoolDir.
	Spool *libvirthooks.Spool
	// XMLLimit bounds stdin (libvirthooks.DefaultXMLLimit when 0).
	XMLLimit int64
	// DeliverTimeout and ReadTimeout, 0 for the defaults.
	DeliverTimeout, ReadTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Result says what happened to the event, for tests and logs.
type Result int

// Outcomes of Run.
const (
	// Failed means the input was refused or an internal error occurred.
	Failed Result = iota
	// Delivered means tetherd accepted the event.
	Delivered
	// Spooled means tetherd could not take it and it waits in the spool.
	Spooled
	// Ignored means the operation is one this tether-hook does not know
	// (a newer libvirt's); it exits 0 so libvirt goes on.
	Ignored
)

// Run handles one hook invocation and returns the exit status.
func Run(ctx context.Context, o Options) (int, Result) {
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	fail := func(err error) (int, Result) {
		fmt.Fprintf(stderr, "tether-hook: %v\n", err)
		return libvirthooks.ExitCode(err), Failed
	}
	ev, err := libvirthooks.ParseArgs(o.Args)
	var uo *libvirthooks.UnknownOperationError
	var us *libvirthooks.UnknownSubOperationError
	if errors.As(err, &uo) || errors.As(err, &us) {
		// A newer libvirt may add operations. Failing would abort the
		// domain's start or migration for an event tether cannot use, so
		// say so and let libvirt go on.
		fmt.Fprintf(stderr, "tether-hook: ignoring event: %v\n", err)
		return libvirthooks.ExitOK, Ignored
	}
	if err != nil {
		return fail(err)
	}
	xml, err := readStdin(o.Stdin, o.XMLLimit, durOr(o.ReadTimeout, DefaultReadTimeout))
	if err != nil {
		return fail(err)
	}
	if _, err := libvirthooks.ParseInput(ev, xml); err != nil {
		return fail(err)
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	he := api.HookEvent{
		Driver: string(ev.Driver), Object: ev.Object, Operation: string(ev.Operation),
		SubOperation: string(ev.SubOperation), Extra: ev.Extra, XML: string(xml), Received: now().UTC(),
	}
	client := o.Client
	if client == nil {
		client = &api.Client{}
	}
	dctx, cancel := context.WithTimeout(ctx, durOr(o.DeliverTimeout, DefaultDeliverTimeout))
	derr := client.PostHook(dctx, he)
	cancel()
	if derr == nil {
		return libvirthooks.ExitOK, Delivered
	}
	var se *api.StatusError
	if errors.As(derr, &se) && se.HTTPStatus/100 == 4 && se.HTTPStatus != 408 && se.HTTPStatus != 429 {
		// tetherd understood the event and refused it: spooling would only
		// replay the same refusal. Report it; for stopped/release libvirt
		// just logs it.
		return fail(fmt.Errorf("tetherd refused %s: %w", ev, derr))
	}
	spool := o.Spool
	if spool == nil {
		spool = &libvirthooks.Spool{Dir: DefaultSpoolDir}
	}
	sctx, cancel := context.WithTimeout(ctx, durOr(o.DeliverTimeout, DefaultDeliverTimeout))
	defer cancel()
	if err := spool.Put(sctx, ev, xml); err != nil {
		return fail(fmt.Errorf("tetherd unreachable (%v) and spooling failed: %w", derr, err))
	}
	slog.Debug("event spooled", "component", "tether-hook", "event", ev.String(), "reason", derr)
	fmt.Fprintf(stderr, "tether-hook: %v; event %s spooled in %s for replay when tetherd starts\n", derr, ev, spool.Dir)
	return libvirthooks.ExitOK, Spooled
}

// readStdin reads the hook input with a deadline when r supports one (a
// pipe from libvirt does), so a hook run by hand on a terminal cannot hang.
func readStdin(r io.Reader, limit int64, timeout time.Duration) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	if f, ok := r.(*os.File); ok {
		_ = f.SetReadDeadline(time.Now().Add(timeout))
	}
	data, err := libvirthooks.ReadXML(r, limit)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("no end of input on stdin after %v (libvirt closes it; when testing by hand, redirect stdin from a file)", timeout)
	}
	return data, err
}

func durOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
