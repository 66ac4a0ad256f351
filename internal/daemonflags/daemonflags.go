// Package daemonflags is the command-line handling tether's daemons share
// (tetherd, tether-switchd, tether-policyd): parse the flags, answer
// --help and --version, refuse stray arguments, and tell whether
// --config was given (a missing default configuration file means
// defaults; a missing named one is an error).
package daemonflags

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes of Parse's refusals.
const (
	// ExitUsage is a bad flag or argument.
	ExitUsage = 2
)

// Parse parses args with fs, whose ContinueOnError handling and Usage the
// caller has set. It ends the process (through exit, os.Exit in a main)
// on --help (0), a bad flag or a stray argument (ExitUsage), and on
// --version when *showVersion is set, after printing "name version" to
// stdout (0). Otherwise it returns whether the flag "config" was set on
// the command line.
func Parse(fs *flag.FlagSet, args []string, name, version string, showVersion *bool, stdout, stderr io.Writer, exit func(int)) (explicitConfig bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			exit(0)
			return false
		}
		exit(ExitUsage)
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		fs.Usage()
		exit(ExitUsage)
		return false
	}
	if showVersion != nil && *showVersion {
		fmt.Fprintln(stdout, name, version)
		exit(0)
		return false
	}
	fs.Visit(func(f *flag.Flag) { explicitConfig = explicitConfig || f.Name == "config" })
	return explicitConfig
}

// ParseOS is Parse on os.Args[1:], os.Stdout, os.Stderr and os.Exit.
func ParseOS(fs *flag.FlagSet, name, version string, showVersion *bool) bool {
	return Parse(fs, os.Args[1:], name, version, showVersion, os.Stdout, os.Stderr, os.Exit)
}
