// Package switchapi holds the types of tether-switchd's local API and its
// typed client, which tetherctl's "switch" commands use.
//
// The API is versioned HTTP+JSON over a unix socket (DefaultSocket), like
// tetherd's (package api): every path starts with "/v1/switch/", errors are
// api.Error bodies, and the client reports an unreachable daemon as an
// *api.DaemonDownError and a non-2xx answer as an *api.StatusError, so
// tetherctl explains both the same way for every daemon.
package switchapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tether-net/tether/api"
)

// Paths of the v1 API.
const (
	// DefaultSocket is where tether-switchd listens.
	DefaultSocket = "/run/tether/switchd.sock"
	// Daemon is the daemon's name in error messages.
	Daemon = "tether-switchd"
	// PathStatus answers GET with a Status.
	PathStatus = "/v1/switch/status"
	// PathPorts answers GET with []Port.
	PathPorts = "/v1/switch/ports"
	// PathVMs answers GET with []VM: every verified (or pre-associated)
	// MAC and where it is.
	PathVMs = "/v1/switch/vms"
	// PathRejects answers GET with []Reject, oldest first.
	PathRejects = "/v1/switch/rejects"
)

// Status is switchd's summary of itself.
type Status struct {
	// Switch is the switch's name; KeyID its signing key's ID.
	Switch string `json:"switch"`
	KeyID  string `json:"key_id"`
	// Version is the daemon's build version; Started when it started.
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Bridge and Table name the Linux bridge and the nftables table.
	Bridge string `json:"bridge"`
	Table  string `json:"table"`
	// Broute reports whether the enforcer hands control frames to the
	// ports' sockets itself (nftables meta broute).
	Broute bool `json:"broute"`
	// Grace is the restart grace period.
	Grace Grace `json:"grace"`
	// Ports and VMs count the managed ports and the verified MACs.
	Ports int `json:"ports"`
	VMs   int `json:"vms"`
	// Accepted counts accepted requests; Refused counts refusals by
	// reason.
	Accepted uint64            `json:"accepted"`
	Refused  map[string]uint64 `json:"refused"`
	// RuleLatency is the time from a request reaching the decider to its
	// nftables element being committed, over the last accepted requests.
	RuleLatency Latency `json:"rule_latency"`
}

// Grace describes the restart grace period: rules found in the kernel at
// start are kept until Until, then the kernel is synchronized with the
// associations re-learnt by then.
type Grace struct {
	// Until is when the grace period ends (or ended).
	Until time.Time `json:"until"`
	// Done reports that it is over and the first synchronization ran.
	Done bool `json:"done"`
	// Inherited counts the pairs found in the kernel at start.
	Inherited int `json:"inherited"`
	// Removed counts the inherited pairs removed at the end because no
	// station re-associated them.
	Removed int `json:"removed"`
}

// Latency summarizes durations, in microseconds.
type Latency struct {
	// Count is the number of samples.
	Count int `json:"count"`
	// P50, P99 and Max are percentiles of the samples, in µs.
	P50 int64 `json:"p50_us"`
	P99 int64 `json:"p99_us"`
	Max int64 `json:"max_us"`
}

// Port is one managed port.
type Port struct {
	// Name is the interface; MAC its address (empty until opened).
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	// Running reports that the port's LLDP and ECP sockets are open;
	// Error is the last reason they are not.
	Running bool   `json:"running"`
	Error   string `json:"error,omitempty"`
	// Neighbor is the port's LLDP neighbour, when it has exactly one
	// identity; Neighbors counts the table's entries.
	Neighbor  *Neighbor `json:"neighbor,omitempty"`
	Neighbors int       `json:"neighbors"`
	// EVB is the outcome of the EVB TLV exchange.
	EVB EVB `json:"evb"`
	// SChannels are the S-channels CDCP assigned (the default one first).
	SChannels []SChannel `json:"s_channels,omitempty"`
	// Associated and PreAssociated count the port's VSIs by state.
	Associated    int `json:"associated"`
	PreAssociated int `json:"pre_associated"`
	// Counters are the enforcer's counters (nil when they could not be
	// read).
	Counters *Counters `json:"counters,omitempty"`
	// LLDP and ECP are the protocol counters.
	LLDP LLDPStats `json:"lldp"`
	ECP  ECPStats  `json:"ecp"`
}

// Neighbor is the LLDP neighbour of a port.
type Neighbor struct {
	ChassisID  string `json:"chassis_id"`
	PortID     string `json:"port_id"`
	SystemName string `json:"system_name,omitempty"`
	// Signed reports a valid signature on its last LLDPDU; KeyID is then
	// the key that made it.
	Signed bool   `json:"signed"`
	KeyID  string `json:"key_id,omitempty"`
	// Tether reports tether's capability TLV.
	Tether bool `json:"tether"`
	// LastSeen and ExpiresAt come from its last LLDPDU.
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"`
}

// EVB is the outcome of a port's EVB negotiation.
type EVB struct {
	// PeerSeen reports an EVB TLV from the station; without it the values
	// are the bridge's own.
	PeerSeen bool `json:"peer_seen"`
	// ReflectiveRelay reports reflective relay enabled on the port.
	ReflectiveRelay bool `json:"reflective_relay"`
	// R, RTE, RWD and RKA are the operating values.
	R   uint8 `json:"r"`
	RTE uint8 `json:"rte"`
	RWD uint8 `json:"rwd"`
	RKA uint8 `json:"rka"`
}

// SChannel is one S-channel (SCID to S-VID).
type SChannel struct {
	SCID uint16 `json:"scid"`
	SVID uint16 `json:"svid"`
}

// Counters are a port's enforcement counters.
type Counters struct {
	ControlPackets  uint64 `json:"control_packets"`
	AcceptedPackets uint64 `json:"accepted_packets"`
	AcceptedBytes   uint64 `json:"accepted_bytes"`
	DroppedPackets  uint64 `json:"dropped_packets"`
	DroppedBytes    uint64 `json:"dropped_bytes"`
}

// LLDPStats are a port's LLDP counters.
type LLDPStats struct {
	FramesIn  uint64 `json:"frames_in"`
	FramesOut uint64 `json:"frames_out"`
	Rejected  uint64 `json:"rejected"`
	Malformed uint64 `json:"malformed"`
	Dropped   uint64 `json:"dropped"`
}

// ECPStats are a port's ECP counters.
type ECPStats struct {
	RxRequests    uint64 `json:"rx_requests"`
	TxRequests    uint64 `json:"tx_requests"`
	TxRetransmits uint64 `json:"tx_retransmits"`
	TxGiveUps     uint64 `json:"tx_give_ups"`
}

// VM is one MAC a verified association lets through.
type VM struct {
	// MAC and VID are the enforced pair; VID 0 means untagged.
	MAC string `json:"mac"`
	VID uint16 `json:"vid"`
	// SVID is the S-VID of the vNIC's S-channel: its frames pass only
	// inside that 802.1ad S-Tag; 0 for the default S-channel (no S-Tag).
	SVID uint16 `json:"svid,omitempty"`
	// VM is the VM's UUID (the VSIID); Host the hypervisor.
	VM   string `json:"vm"`
	Host string `json:"host"`
	// Port is the switch port.
	Port string `json:"port"`
	// State is "associated" (traffic passes) or "pre-associated" (rule
	// installed held back).
	State string `json:"state"`
	// Since is when the VM became associated (or pre-associated) here.
	Since time.Time `json:"since"`
	// Profile names the profile answered.
	Profile string `json:"profile,omitempty"`
	// Verified says how the association was verified.
	Verified Verification `json:"verified"`
}

// Verification is how an association was verified.
type Verification struct {
	// KeyID is the host key that signed the request (and the port's LLDP
	// neighbour); Counter the request's replay counter.
	KeyID   string `json:"key_id"`
	Counter uint64 `json:"counter"`
	// VMManager is what the VM manager confirmed ("running on hv1").
	VMManager string `json:"vm_manager"`
	// Migration reports a confirmed migration from another port.
	Migration bool `json:"migration,omitempty"`
	// At is when the last verification happened.
	At time.Time `json:"at"`
	// Note is the verifier's remark, if any.
	Note string `json:"note,omitempty"`
}

// Reject is one refused request or frame.
type Reject struct {
	Time time.Time `json:"time"`
	Port string    `json:"port"`
	// Mode is the request (ASSOCIATE, ...); empty for a refused frame.
	Mode string `json:"mode,omitempty"`
	// MAC and VM are the request's first MAC and VSIID, when known.
	MAC string `json:"mac,omitempty"`
	VM  string `json:"vm,omitempty"`
	// Host and KeyID are the signer's, when known.
	Host  string `json:"host,omitempty"`
	KeyID string `json:"key_id,omitempty"`
	// Reason is the refusal's name (verify's reasons, such as
	// mac-live-elsewhere, and switchd's own: no-profile, vid-mismatch,
	// enforce-failed, frame-refused, ...); Message explains it.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// maxResponse bounds how much of one answer the client reads.
const maxResponse = 64 << 20

// Client talks to tether-switchd over its unix socket. The zero value talks
// to DefaultSocket; a Client is safe for concurrent use.
type Client struct {
	// Socket is the daemon's unix socket; empty means DefaultSocket.
	Socket string

	once sync.Once
	http *http.Client
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		sock := c.socket()
		c.http = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableCompression: true,
		}}
	})
	return c.http
}

// get fetches path and decodes the JSON answer into out.
func (c *Client) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+Daemon+path, nil)
	if err != nil {
		return fmt.Errorf("build %s request: %w", path, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return &api.DaemonDownError{Daemon: Daemon, Socket: c.socket(), Err: op.Err}
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		se := &api.StatusError{HTTPStatus: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&se.Body)
		return se
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("decode %s answer from %s: %w", path, Daemon, err)
	}
	return nil
}

// Status returns the daemon's summary.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.get(ctx, PathStatus, &s)
	return s, err
}

// Ports lists the managed ports.
func (c *Client) Ports(ctx context.Context) ([]Port, error) {
	var p []Port
	err := c.get(ctx, PathPorts, &p)
	return p, err
}

// VMs lists the verified MACs.
func (c *Client) VMs(ctx context.Context) ([]VM, error) {
	var v []VM
	err := c.get(ctx, PathVMs, &v)
	return v, err
}

// Rejects lists the last refusals, oldest first.
func (c *Client) Rejects(ctx context.Context) ([]Reject, error) {
	var r []Reject
	err := c.get(ctx, PathRejects, &r)
	return r, err
}
