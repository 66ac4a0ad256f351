// Package uplinke2e holds the end-to-end test of tether-switchd against
// tetherd's real uplink (package agent/uplink): a host whose inventory
// holds a running VM associates it over signed LLDP/ECP/VDP, switchd
// verifies it and opens nftables for it, and the host's inventory records
// the VIF as verified. It is a separate package so that work in progress
// on either side breaks only this test, not switchd's own.
package uplinke2e
