// Command tether-hook forwards libvirt hook events to tetherd. libvirt runs
// it through /etc/libvirt/hooks/qemu.d/50-tether and network.d/50-tether as
//
//	tether-hook DRIVER OBJECT OPERATION SUB-OPERATION EXTRA < XML
//
// See package hookrun for what it does and its exit codes.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/libvirthooks"
	"github.com/tether-net/tether/libvirthooks/hookrun"
)

const usage = `usage: tether-hook DRIVER OBJECT OPERATION SUB-OPERATION EXTRA < XML

Run by libvirt for every domain (DRIVER qemu) and network (DRIVER network)
event, through /etc/libvirt/hooks/qemu.d/50-tether and network.d/50-tether.
Forwards the event to tetherd; spools it in $TETHER_SPOOL_DIR (default
/var/spool/tether/hooks) when tetherd is not running. Never writes stdout.

environment:
  TETHER_SOCKET     tetherd's socket (default /run/tether/tetherd.sock)
  TETHER_SPOOL_DIR  the spool directory

exit status: 0 delivered, spooled, or ignored (an operation this version
does not know), 1 internal error, 2 usage, 3 bad XML, 4 input over 4 MiB,
5 spool full.
`

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(0)
	}
	spoolDir := os.Getenv("TETHER_SPOOL_DIR")
	if spoolDir == "" {
		spoolDir = hookrun.DefaultSpoolDir
	}
	code, _ := hookrun.Run(context.Background(), hookrun.Options{
		Args:   os.Args[1:],
		Stdin:  os.Stdin,
		Stderr: os.Stderr,
		Client: &api.Client{Socket: os.Getenv("TETHER_SOCKET")},
		Spool:  &libvirthooks.Spool{Dir: spoolDir},
	})
	if code == libvirthooks.ExitUsage {
		fmt.Fprint(os.Stderr, usage)
	}
	os.Exit(code)
}
