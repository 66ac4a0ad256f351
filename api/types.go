package api

import "time"

// Paths of the v1 API.
const (
	// DefaultSocket is where tetherd listens.
	DefaultSocket = "/run/tether/tetherd.sock"
	// PathStatus answers GET with a Status.
	PathStatus = "/v1/status"
	// PathVMs answers GET with []VM.
	PathVMs = "/v1/vms"
	// PathVIFs answers GET with []VIF; PathVIFs + "/" + MAC with one VIF.
	PathVIFs = "/v1/vifs"
	// PathEvents streams Event values as JSON lines (one per line) until the
	// client goes away; ?since=GENERATION replays what the daemon still has.
	PathEvents = "/v1/events"
	// PathHook accepts POST of a HookEvent from tether-hook.
	PathHook = "/v1/hook"
)

// Status is tetherd's summary of itself.
type Status struct {
	// Version is the daemon's build version.
	Version string `json:"version"`
	// Hostname is the hypervisor's host name.
	Hostname string `json:"hostname"`
	// Started is when the daemon started.
	Started time.Time `json:"started"`
	// Ready is true once the first full reconcile finished.
	Ready bool `json:"ready"`
	// VMs and VIFs count the inventory.
	VMs  int `json:"vms"`
	VIFs int `json:"vifs"`
	// Generation increases with every committed inventory change.
	Generation uint64 `json:"generation"`
	// KeyID is the host key's ID (16 hex digits), the name under which
	// the key is enrolled; empty when tetherd has no host key.
	KeyID string `json:"key_id,omitempty"`
	// Sources reports each event source ("libvirt", "hooks", "cni") and
	// whether it is connected, with its last error.
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus is the health of one event source.
type SourceStatus struct {
	// Name is "libvirt", "hooks", "cni" or "uplink IFNAME".
	Name string `json:"name"`
	// Connected is true when the source is delivering events.
	Connected bool `json:"connected"`
	// LastError is the most recent error, empty when none.
	LastError string `json:"last_error,omitempty"`
	// Events counts the events this source delivered.
	Events uint64 `json:"events"`
	// VNICs are the vNICs the source configures (the datapath's SR-IOV
	// VFs and NIC partitions), each with its state; empty for the others.
	VNICs []VNICStatus `json:"vnics,omitempty"`
}

// VNICStatus is the state of one vNIC tetherd configures itself.
type VNICStatus struct {
	// VIF is the vNIC's MAC address.
	VIF string `json:"vif"`
	// Kind is "vf" (an SR-IOV virtual function) or "partition" (an
	// 802.1ad S-Tag device on the uplink).
	Kind string `json:"kind"`
	// Device names the vNIC's device: "PF/vfN" for a VF, the S-Tag
	// device (and "+" the C-VLAN device on top) for a partition.
	Device string `json:"device,omitempty"`
	// State is "ok", "pending" (not read back yet), "drifted" (differs
	// from the desired state and datapath.drift is report-only) or
	// "error".
	State string `json:"state"`
	// Drift lists how the device differs from the desired state.
	Drift []string `json:"drift,omitempty"`
	// LastError is the last failure to configure it, empty after a
	// success.
	LastError string `json:"last_error,omitempty"`
}

// VM is one virtual machine as the inventory knows it.
type VM struct {
	// UUID is the libvirt domain UUID.
	UUID string `json:"uuid"`
	// Name is the domain name.
	Name string `json:"name"`
	// State is the domain's run state ("running", "paused", "shutoff", ...).
	State string `json:"state"`
	// VIFs are the VM's MACs.
	VIFs []string `json:"vifs"`
}

// VIF is one virtual interface.
type VIF struct {
	// MAC is the vNIC's MAC address, lower case.
	MAC string `json:"mac"`
	// Vendor is the hypervisor vendor pool the MAC belongs to.
	Vendor string `json:"vendor"`
	// VM is the owning VM's UUID; VMName its name.
	VM     string `json:"vm"`
	VMName string `json:"vm_name,omitempty"`
	// Device is the host-side device (tap name, VF, partition).
	Device string `json:"device,omitempty"`
	// Kind is tap, macvtap, sriov-vf, partition or veth.
	Kind string `json:"kind"`
	// STag is the 802.1ad S-Tag, 0 when none.
	STag uint16 `json:"stag,omitempty"`
	// CVID is the 802.1Q C-VLAN, 0 when none.
	CVID uint16 `json:"cvid,omitempty"`
	// PortGroup is the profile group the VIF asks for.
	PortGroup string `json:"port_group,omitempty"`
	// VirtualPort holds libvirt's <virtualport> type and parameters.
	VirtualPort map[string]string `json:"virtualport,omitempty"`
	// State is the lifecycle state: pending, pre-associated, associated,
	// verified, rejected or gone.
	State string `json:"state"`
	// Reason says why the VIF entered State.
	Reason string `json:"reason,omitempty"`
	// Since is when it entered State.
	Since time.Time `json:"since"`
}

// Event is one committed inventory change.
type Event struct {
	// Generation is the inventory generation the change produced.
	Generation uint64 `json:"generation"`
	// Time is when it was committed.
	Time time.Time `json:"time"`
	// Kind is "vm" or "vif"; Op is "upsert", "remove" or "transition".
	Kind string `json:"kind"`
	Op   string `json:"op"`
	// Key is the VM UUID or the VIF MAC.
	Key string `json:"key"`
	// From and To are the states of a transition; Reason its reason.
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// HookEvent is what tether-hook forwards: libvirt's argv and stdin.
type HookEvent struct {
	// Driver is "qemu" or "network".
	Driver string `json:"driver"`
	// Object is the domain or network name.
	Object string `json:"object"`
	// Operation and SubOperation are libvirt's (e.g. "started", "begin").
	Operation    string `json:"operation"`
	SubOperation string `json:"sub_operation"`
	// Extra is libvirt's fourth argument.
	Extra string `json:"extra,omitempty"`
	// XML is the document libvirt wrote on stdin.
	XML string `json:"xml,omitempty"`
	// Received is when the hook ran; Spooled is true when the event was
	// replayed from the spool after tetherd was down.
	Received time.Time `json:"received"`
	Spooled  bool      `json:"spooled,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	// Code is a stable machine-readable word ("not_found", "bad_request").
	Code string `json:"code"`
	// Message says what was wrong and what to do, for a human.
	Message string `json:"message"`
}
