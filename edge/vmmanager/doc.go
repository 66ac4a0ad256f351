// Package vmmanager is tether-switchd's libvirt-remote VM manager: the
// closed loop's independent witness (package edge/verify) that a VM runs
// on the host that claims it, with the MAC it claims.
//
// Each host has a libvirt URI (qemu+ssh://HOST/system in production;
// test:///default or test:///PATH/node.xml in tests) and one cached
// connection, opened on first use, kept alive with libvirt keepalives and
// reopened with exponential backoff when it dies. Confirm looks the domain
// up by UUID (virDomainLookupByUUID; an 802.1Qbg interface instance ID is
// resolved through a listing), reads its state and reason
// (virDomainGetState), its live XML for the interfaces' MACs, and, for a
// paused domain, its job's direction (virDomainGetJobStats), and maps them
// to a verify.VMState: running, paused, migrating in (the destination of a
// live migration, paused with reason "migration" or with an incoming
// migration job), migrated in (running with reason "migrated" or in
// post-copy), migrating out, or inactive/absent.
//
// Confirm never blocks the verifier for long: it waits at most Timeout
// (and its context) and then reports an error, which the verifier counts
// as vm-manager-unavailable and refuses. The libvirt calls themselves
// cannot be interrupted, so they run on background goroutines, at most
// MaxInFlight per host; a lookup that outlives its caller still fills the
// cache. Present domains are cached for CacheTTL (Refresh fills the cache
// with a snapshot of a host's active domains); absent and inactive ones
// never are.
//
// The package is built with libvirt.org/go/libvirt; build and test with
// -tags libvirt_dlopen so that no libvirt-dev is needed at build time
// (libvirt.so.0 is loaded at run time). It does not use libvirt's event
// loop.
package vmmanager
