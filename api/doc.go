// Package api holds the types of tether's local API and the one typed
// client shared by tetherctl, tether-hook and the CNI plugin.
//
// The API is versioned HTTP+JSON over a unix socket (tetherd listens on
// DefaultSocket). Every path starts with the version ("/v1/..."); a request
// for a path the daemon does not know gets 404 with an Error body, so a newer
// client talking to an older daemon fails clearly rather than silently.
package api
