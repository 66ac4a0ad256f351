// Package cli holds tetherctl's command tree. cmd/tetherctl only calls Run;
// tests call Run (or NewRootCommand) in-process with their own streams.
//
// Adding a subcommand (status, vms, vifs, ...) means writing a
// newXxxCommand(s *Streams) *cobra.Command constructor in its own file and
// adding it to the list in NewRootCommand. Commands report usage mistakes
// with usageErrorf (exit status 2) and other failures with a plain error
// (exit status 1) or an *ExitError carrying a specific status.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit statuses of tetherctl.
const (
	// ExitOK means the command did everything asked.
	ExitOK = 0
	// ExitFailure means the command ran but something failed (for decode:
	// at least one frame did not decode).
	ExitFailure = 1
	// ExitUsage means the command line was wrong or an input could not be
	// opened: nothing was done.
	ExitUsage = 2
)

// Streams are the standard streams a command uses; tests substitute
// buffers.
type Streams struct {
	// In is standard input.
	In io.Reader
	// Out receives the command's results.
	Out io.Writer
	// Err receives diagnostics and usage text.
	Err io.Writer
}

// ExitError is an error that asks for a specific exit status. When Err is
// nil the command has already reported what went wrong and Run prints
// nothing more.
type ExitError struct {
	// Code is the process exit status.
	Code int
	// Err is the error to print, or nil.
	Err error
}

// Error implements error.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// usageError marks a mistake on the command line; Run exits with ExitUsage
// and points at the command's --help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error for cmd.
func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// usageArgs wraps a cobra positional-argument validator so its failures
// are usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &usageError{cmd: cmd, err: err}
		}
		return nil
	}
}

// helpAsUsage is the RunE of a command that only groups subcommands:
// called without one, it shows its help on s.Err and fails as a usage
// error.
func helpAsUsage(s *Streams) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(s.Err)
		_ = cmd.Help()
		return &ExitError{Code: ExitUsage}
	}
}

// NewRootCommand returns the tetherctl command tree writing to s.
func NewRootCommand(s *Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "tetherctl",
		Short: "Debug and administer tether's daemons and inspect its frames",
		Long: `tetherctl is the operator's tool for tether: it talks to tetherd,
tether-switchd and tether-policyd and decodes the LLDP, EVB, CDCP, DCBX,
ECP and VDP frames tether sends.

Exit status: 0 on success, 1 when the command ran but something failed,
2 for a usage error.`,
		Args:          usageArgs(cobra.NoArgs),
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a subcommand, show the help and fail as a usage error.
		RunE: helpAsUsage(s),
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, err: err}
	})
	root.AddCommand(
		newDecodeCommand(s),
		newStatusCommand(s),
		newVMsCommand(s),
		newVIFsCommand(s),
		newVIFCommand(s),
		newEventsCommand(s),
		newSwitchCommand(s),
		newPolicyCommand(s),
	)
	return root
}

// Run runs tetherctl with args (without the program name) and returns the
// process exit status. Errors are printed to s.Err.
func Run(ctx context.Context, args []string, s *Streams) int {
	root := NewRootCommand(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(s.Err, "%s: %v\nRun '%s --help' for usage.\n", root.Name(), ue.err, ue.cmd.CommandPath())
		return ExitUsage
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(s.Err, "%s: %v\n", root.Name(), ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintf(s.Err, "%s: %v\n", root.Name(), err)
	return ExitFailure
}
