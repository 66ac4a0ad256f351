// Package policy holds the profile and port-group model, the etcd-backed
// store and the VM-manager adapters used by tether-policyd and
// tether-switchd. Not built yet: see issue 5.
package policy
