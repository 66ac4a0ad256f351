// Package libvirthooks implements the libvirt side of tether-hook: the hook
// protocol (argv and stdin), the translation of domain XML and network port
// XML into tether's VIF model, a durable spool for events that could not be
// delivered to tetherd, and the two-line hook scripts installed into
// /etc/libvirt/hooks/qemu.d/ and /etc/libvirt/hooks/network.d/.
//
// The package is pure: it parses and it writes spool files, but it never
// talks to libvirt (a hook that calls back into libvirtd deadlocks it, see
// https://libvirt.org/hooks.html) and it does not talk to tetherd (the api
// package's client does that).
//
// # Hook protocol
//
// libvirt runs every executable in /etc/libvirt/hooks/DRIVER.d/ as
//
//	SCRIPT OBJECT OPERATION SUB-OPERATION EXTRA
//
// with the object's XML on stdin. The installed scripts (see [Scripts])
// exec /usr/bin/tether-hook with the driver name prepended, so tether-hook
// sees os.Args[1:] = DRIVER OBJECT OPERATION SUB-OPERATION EXTRA, which is
// what [ParseArgs] takes. Drivers and operations (libvirt src/util/virhook.c):
//
//   - qemu: OBJECT is the domain name; operations prepare, start, started,
//     stopped, release, migrate, restore, reconnect, attach. stdin is the
//     domain XML (<domain>); for migrate and restore it is the incoming XML.
//   - network: OBJECT is the network name; operations start, started,
//     stopped, port-created, port-deleted, updated. stdin is
//     <hookData><network/>[<networkport/>]</hookData>; the port is present
//     for port-created and port-deleted.
//
// SUB-OPERATION is begin, end or "-"; EXTRA is free text or "-" (since
// libvirt 10.5.0, "release end" carries the shutoff reason).
//
// For "migrate begin" and "restore begin" libvirt reads the hook's stdout as
// replacement domain XML, and passes it on to the next script in qemu.d/.
// Empty output means "unchanged". tether-hook must therefore never write to
// stdout; see [Event.MustPrintXML].
//
// A non-zero exit status makes libvirt log stderr and, for prepare, start,
// migrate and restore, abort the operation (the VM does not start or the
// incoming migration is cancelled). For stopped and release the exit status
// cannot undo anything.
//
// # Exit codes
//
// [ExitCode] maps an error from this package to the documented exit status
// of tether-hook:
//
//	0  ExitOK        event delivered or spooled
//	1  ExitInternal  anything else (I/O error writing the spool, ...)
//	2  ExitUsage     wrong argument count, unknown driver, unknown
//	                 operation or sub-operation, empty OBJECT,
//	                 OBJECT or EXTRA not UTF-8 or over 1024 bytes
//	3  ExitBadXML    stdin is not well-formed XML, has the wrong root
//	                 element, lacks <uuid>, has an invalid MAC, VLAN,
//	                 virtualport or tether metadata, or names another object
//	4  ExitOversize  stdin is larger than the limit given to ReadXML
//	                 (DefaultXMLLimit, 4 MiB)
//	5  ExitSpoolFull tetherd is unreachable and the spool is full
//
// # tether metadata in domain XML
//
// libvirt has no attribute for an 802.1ad S-Tag, nor for tether's port
// group or labels. They live in the domain's <metadata> under tether's
// namespace [MetadataNamespace], in one container element as
// virDomainSetMetadata (virsh metadata --uri ... --key tether) writes it:
//
//	<metadata>
//	  <tether:tether xmlns:tether="https://tether-net.github.io/xmlns/tether/1">
//	    <tether:label>tenant-a</tether:label>
//	    <tether:vif mac="52:54:00:6b:3c:58" stag="100" portgroup="web" kind="partition">
//	      <tether:label>frontend</tether:label>
//	    </tether:vif>
//	  </tether:tether>
//	</metadata>
//
// <tether:vif> elements directly under <metadata> are accepted too. A vif is
// matched to an <interface> by MAC (case-insensitive). Attributes: mac
// (required), stag (1-4094), portgroup (tether's port group; overrides the
// libvirt <source portgroup>), kind (one of the [Kind] values; overrides the
// kind derived from the interface type, e.g. "partition" for a macvtap on an
// S-channel). <tether:label> text is trimmed, 1-253 bytes, no control
// characters; labels directly under the container apply to the domain
// ([Domain.Labels]), labels under a vif to that VIF. Unknown attributes and
// elements are ignored so that newer metadata does not break older hooks.
package libvirthooks
