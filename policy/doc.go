// Package policy is tether's policy model: profiles (what a vNIC may do on
// the wire), port groups (which VMs get which profile), enrolled host and
// switch keys, and VM placement records (which VM the VM manager runs on
// which host, with which MACs). DESIGN.md and issue 5 describe the policy
// DB; this package holds only the types, their validation and the rule that
// resolves a VM to its port group, so that the store (policy/store, on
// etcd), the switch's watch-fed cache (policy/cache), tether-policyd and
// tetherctl all agree on one model.
//
// Every type has a Validate method whose errors name the object and the
// field, e.g.
//
//	profile "web": vid: 4095 is not 0-4094
//
// and wrap [ErrInvalid]. Objects are stored as JSON with snake_case keys,
// one object per key, under their [Kind] and [Object.Key].
//
// A [Profile] maps one to one onto the profile TLV the switch signs
// ([Profile.Wire] gives the wire.TetherProfile).
//
// # Resolving a VM's port group
//
// [Resolve] picks the port group of a VM from its UUID, name and libvirt
// metadata labels (libvirthooks: <tether:label>). A group matches when any
// of its UUIDs equals the VM's, when any of its name patterns (path.Match
// globs) matches the VM's name, or when all of its labels are present on
// the VM. A label of the form "key=value" on the VM is the pair
// (key, value); any other label "x" is the pair (x, ""), so a match on
// plain label "tenant-a" is written {"tenant-a": ""}. Among matching groups
// the highest Match.Priority wins; on a tie a UUID match beats a label
// match, which beats a name pattern match; then the group whose name sorts
// first wins.
//
// At the switch only the UUID is known: the name and the labels come from
// the VM's [Placement], which the placement writer (policy/placement)
// fills from the domain's libvirt XML and tether metadata, and which
// policy/cache's Lookup consults when the caller gives none.
package policy
