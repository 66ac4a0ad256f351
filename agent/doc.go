// Package agent is the root of the host agent (tetherd): its subpackages
// hold the vNIC inventory, the event sources, the vNIC datapath, the soft
// switch, the uplink protocols and the local API.
package agent
