// Package policyd is tether-policyd: its configuration file
// (/etc/tether/policyd.yaml, decoded strictly) and Run, which starts the
// policy DB (an embedded single-node etcd by default, or an external
// cluster by endpoints: one code path through go.etcd.io/etcd/client/v3),
// serves the HTTP API (package policy/server) over TLS or, on loopback
// only, plain HTTP, runs the libvirt placement writers (policy/placement),
// and tells systemd when it is ready.
package policyd
