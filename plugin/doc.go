// Package plugin holds the logic of tether's CNI plugin (installed as
// /opt/cni/bin/tether). Not built yet.
package plugin
