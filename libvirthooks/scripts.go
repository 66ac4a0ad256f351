package libvirthooks

import (
	"embed"
	"fmt"
	"io/fs"
)

// scriptFiles holds the hook scripts. An embed.FS has to be a package-level
// variable; it is read-only.
//
//go:embed scripts/qemu scripts/network
var scriptFiles embed.FS

// Script is one hook script and where packaging installs it.
type Script struct {
	Driver      Driver
	Name        string // path inside Scripts(): "qemu" or "network"
	InstallPath string // e.g. /etc/libvirt/hooks/qemu.d/50-tether
	Mode        fs.FileMode
}

// HookScripts lists the hook scripts tether installs. Each is two lines,
// "#!/bin/sh" and "exec /usr/bin/tether-hook DRIVER "$@"", so that libvirt's
// arguments reach tether-hook with the driver name in front.
func HookScripts() []Script {
	return []Script{
		{Driver: DriverQEMU, Name: "qemu", InstallPath: "/etc/libvirt/hooks/qemu.d/50-tether", Mode: 0o755},
		{Driver: DriverNetwork, Name: "network", InstallPath: "/etc/libvirt/hooks/network.d/50-tether", Mode: 0o755},
	}
}

// Scripts returns the hook scripts as a read-only file system with the files
// "qemu" and "network" (libvirthooks/scripts/ in the source tree).
func Scripts() fs.FS {
	sub, err := fs.Sub(scriptFiles, "scripts")
	if err != nil {
		// fs.Sub fails only for an invalid path; "scripts" is valid.
		return scriptFiles
	}
	return sub
}

// ScriptContent returns the content of the hook script for driver d.
func ScriptContent(d Driver) ([]byte, error) {
	for _, s := range HookScripts() {
		if s.Driver == d {
			b, err := fs.ReadFile(Scripts(), s.Name)
			if err != nil {
				return nil, fmt.Errorf("read embedded hook script %s: %w", s.Name, err)
			}
			return b, nil
		}
	}
	return nil, &UnknownDriverError{Driver: string(d)}
}
