// Package dissect holds tests that use independent dissectors, tshark and
// tcpdump, as judges of what tether's encoders put on the wire: frames built
// with package wire are written to a pcap file and the dissectors must read
// back the values that were encoded. The package has no non-test code.
//
// Run with: go test ./tests/dissect (needs tshark and tcpdump; without them
// the tests skip; tests/install-deps.sh installs both).
package dissect
