// Package libvirtlab starts a real, isolated libvirtd for tests: the
// monolithic libvirtd of Debian 12's libvirt-daemon (9.0; Debian 12 ships no
// virtqemud), with the QEMU driver, real hook scripts, real lifecycle events
// and real tap devices, without touching the host's /etc, /run or /var and
// without adding links to the host's network namespace.
//
// # How it is isolated
//
// [Start] runs, as root,
//
//	unshare --net --mount --propagation private -- tini -s -- /bin/sh supervisor.sh STATE
//
// (with [Options.NetNS], `nsenter --net=/run/netns/NAME` replaces --net). In
// the new mount namespace, whose mounts never propagate back to the host, the
// supervisor script mounts:
//
//   - a tmpfs over /run (so libvirtd's pid file and the host's D-Bus socket
//     are out of the way) and STATE/run over /run/libvirt;
//   - an overlay over /var whose upper layer is in STATE, then STATE/lib,
//     STATE/cache and STATE/log over /var/lib/libvirt, /var/cache/libvirt and
//     /var/log/libvirt;
//   - STATE/etc over /etc/libvirt: a generated libvirtd.conf (unix sockets
//     only, no TLS, no TCP, auth none) and qemu.conf (QEMU runs as root,
//     security_driver "none", no cgroups, no private /dev namespace, QEMU's
//     stdio to a file rather than virtlogd), plus hooks/ and the persistent
//     domain XML under qemu/;
//   - copies of /etc/passwd and /etc/group that contain the libvirt-qemu user
//     and group, which Debian's libvirtd resolves at start even when qemu.conf
//     says root (the user comes with libvirt-daemon-system, which the tests do
//     not need);
//   - a fresh sysfs over /sys, so that libvirtd sees the links of its own
//     network namespace (this hides /sys/fs/cgroup; libvirtd logs that it
//     found no cgroup controller and carries on).
//
// The supervisor then runs libvirtd in a loop so that [Daemon.Restart] keeps
// the namespaces, and tini -s stays the subreaper of the QEMU processes across
// restarts (without a subreaper `virsh destroy` takes seconds, see
// DESIGN.md). Nothing has to be unmounted on the host: the mounts go away
// with the namespace when its last process exits.
//
// # Paths
//
// The state directory is made with os.MkdirTemp (short, because the client
// socket path must fit in 108 bytes). libvirtd's socket is the monolithic
// daemon's libvirt-sock, so the test process, outside the namespaces,
// connects with qemu:///system?socket=STATE/run/libvirt-sock ([Daemon.URI]).
// Paths other than /run, /var, /etc/libvirt, /etc/passwd, /etc/group and /sys
// are the same inside and outside: a hook script can write to a file under
// the test's t.TempDir().
//
// # Hooks
//
// libvirtd scans /etc/libvirt/hooks when it starts and when it gets SIGHUP,
// not when a script is added: [Daemon.InstallHook] writes the script and then
// calls [Daemon.Reload], which waits until libvirtd has rescanned. Real hook
// arguments seen with libvirt 9.0: "NAME prepare begin -", "NAME start begin
// -", "NAME started begin -", "NAME stopped end -", "NAME release end -",
// and after a daemon restart "NAME reconnect begin -".
//
// # Requirements
//
// Root, and the Debian packages libvirt-daemon, libvirt-daemon-driver-qemu,
// libvirt-clients, qemu-system-x86, tini and iproute2 (tests/install-deps.sh
// installs them). Without them [Start] skips the test. No KVM is needed: the
// domains of [TinyDomainXML] run under TCG.
package libvirtlab
