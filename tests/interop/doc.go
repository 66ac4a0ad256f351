// Package interop tests tether's 802.1Qbg pieces (l2/lldpagent, l2/evb,
// l2/ecp, l2/vdp) against a real, independent peer: lldpad (open-lldp,
// Debian package lldpad), the reference implementation of IEEE
// 802.1Qbg-2012 EVB, ECP and VDP (issue 4, "Tests that count").
//
// Each test builds two network namespaces joined by a veth pair and runs
// one lldpad per namespace, each with its own tmpfs on /dev/shm (lldpad
// keeps its state there) and its own configuration file written before it
// starts (lldpad reads the VDP role from evbmode once, when the port comes
// up, so it cannot be switched with lldptool afterwards).
//
// The tests skip, saying why, when not run as root or when lldpad is not
// installed (tests/install-deps.sh installs it).
package interop
