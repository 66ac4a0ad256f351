// Package libvirt is tetherd's libvirt event source: it keeps the
// inventory's VMs and VIFs of source "libvirt" equal to the domains of one
// libvirt connection (libvirt.org/go/libvirt, built with the
// libvirt_dlopen tag so that the binary needs no libvirt-dev at build time
// and loads libvirt.so.0 when it runs).
//
// # Flow
//
// [Source.Run] connects, registers callbacks for domain lifecycle, device
// added, device removed, device removal failed (counted only) and metadata
// changed events and for the connection's close, then does a full
// reconcile: every domain's live XML is read (virDomainGetXMLDesc) and
// parsed ([libvirthooks.ParseDomain], on libvirt.org/go/libvirtxml), its
// run state read (virDomainGetState), and [inventory.Diff] against a
// snapshot gives one Change that the store applies. Afterwards events only
// mark their domain dirty; a single worker takes the dirty set, re-reads
// each domain and applies the diff of that domain alone, so a burst of
// events for one domain costs one read and one commit, and the domains of
// one round share one transaction. When libvirt closes the connection (or
// a call fails on a dead one) Run deregisters, reconnects with exponential
// backoff with jitter between ReconnectMin and ReconnectMax, registers
// again and reconciles again: events lost while disconnected do not matter.
//
// # What is recorded
//
// Every defined domain is a VM with libvirt's run state. Only an active
// domain has VIFs: one per interface of type network, bridge, direct,
// ethernet or hostdev with a MAC, mapped to the inventory's kinds (tap,
// macvtap, vf; partition from tether metadata). A type='network' interface
// whose live XML names no bridge gets its network's kind from the forward
// mode. When a domain stops, its VIFs go to gone; when it is undefined, its
// VIFs go to gone and the VM record is removed once the uplink has deleted
// them (the Source follows the store's feed for that). vhostuser
// interfaces are not recorded (the inventory has no kind for them); an
// interface that cannot be mapped is logged and left out; a domain whose
// XML cannot be used keeps its current records.
//
// # The event loop
//
// libvirt delivers events only through an event loop registered once per
// process before the first connection (virEventRegisterDefaultImpl) and run
// by calling virEventRunDefaultImpl repeatedly; it cannot be stopped.
// This package holds that registration in its one package-level variable:
// [RegisterEventLoop] does it once, and a goroutine runs the loop while at
// least one Source runs. When the last one stops, a private timer armed
// for immediate expiry wakes the blocked poll so that the goroutine sees
// it is no longer needed and exits; the next Run starts a new one.
// Callbacks run on that goroutine and never block: they add a UUID to a
// map under a mutex and poke a channel of capacity one.
//
// # Testing
//
// libvirt's test driver (test:///default) runs in-process and emits
// lifecycle and metadata-change events but no device events (it cannot
// attach or detach devices). All connections to
// test:///default in one process share its domains while at least one of
// them is open (the state is dropped when the last closes), so the tests
// of this package do not run in parallel and each closes its connections.
package libvirt
