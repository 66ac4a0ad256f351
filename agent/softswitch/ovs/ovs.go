// Package ovs enforces tether's soft-switch ports on Open vSwitch: one
// bridge (userspace "netdev" or kernel "system" datapath), an optional
// uplink trunk port, and one port per VM vNIC with its VLAN setting, MAC
// allow-list and ingress rate, all through OVSDB (package ovsdb) except
// the allow-list, which is OpenFlow (ovs-ofctl).
//
// Mapping of a softswitch.Port onto the Port and Interface rows:
//
//	STag == 0, VID != 0, no Trunks   vlan_mode=access, tag=VID
//	STag == 0, VID != 0, Trunks      vlan_mode=native-untagged, tag=VID, trunks=Trunks
//	STag == 0, VID == 0              vlan_mode=trunk, trunks={0} ∪ Trunks (VLAN 0 = untagged)
//	STag != 0                        vlan_mode=dot1q-tunnel, tag=STag,
//	                                 other_config:qinq-ethtype=802.1ad,
//	                                 cvlans={VID} ∪ Trunks (empty: every C-VLAN
//	                                 and untagged; set: only those C-VLANs, untagged
//	                                 frames are dropped, as the VM's frames carry VID)
//	RateKbps                         Interface ingress_policing_rate, burst = rate/10 (at least 100 kbit)
//
// Rows tether manages carry external_ids:tether-vif=<MAC> (Port and
// Interface); the S-Tag mode and the C-VID, which OVS has no column for,
// are kept in external_ids too (tether-stag-mode, tether-cvid) so a
// read-back gives the whole softswitch.Port. The priority is not enforced
// by OVS and is copied from the desired port when checking.
//
// MAC allow-list: OVS has no per-port source-MAC filter in OVSDB
// (port security exists only in OVN), so each port gets two OpenFlow rules
// in table 0 with a cookie derived from the port's name:
//
//	priority=200, in_port=N, dl_src=MAC  actions=NORMAL
//	priority=190, in_port=N              actions=drop
//
// Everything else keeps the bridge's default priority=0 NORMAL rule. The
// rules are installed with ovs-ofctl over the bridge's management socket
// (RUNDIR/BRIDGE.mgmt), read back with dump-flows and repaired (missing
// ones added before stale ones are deleted, so a port is never left
// without its drop rule). OpenFlow rules do not survive an ovs-vswitchd
// restart: Check reports them missing and Ensure puts them back.
//
// Drift: Check reads everything back (OVSDB rows, OpenFlow rules) and
// lists the differences; Ensure repairs them; Watch turns OVSDB monitor
// updates into "port X may have drifted" hints for a level-triggered loop.
//
// Datapaths: "netdev" (ovs-vswitchd switches in userspace, no kernel
// module; tested on the host) and "system" (the openvswitch kernel module;
// tested in the kernel VM, tests/kvm). Debian's ovs-vswitchd 3.1 started
// less than 10 s after boot sizes its kernel upcall handlers as 0 and then
// loses every upcall (nothing is forwarded) until restarted; the VM test
// waits for 11 s of uptime first.
//
// QinQ: OVS parses only one VLAN header unless Open_vSwitch
// other_config:vlan-limit allows more; EnsureBridge raises it to 2 when it
// is lower (0, unlimited, is left alone), so C-tagged frames of a
// dot1q-tunnel port are carried under the S-Tag.
package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tether-net/tether/agent/softswitch"
	"github.com/tether-net/tether/agent/softswitch/ovs/ovsdb"
	"github.com/tether-net/tether/wire"
)

// Database is the Open vSwitch database's name.
const Database = "Open_vSwitch"

// External ID keys tether writes on its rows.
const (
	// KeyVIF marks a Port and Interface as tether's; the value is the
	// VM's MAC.
	KeyVIF = "tether-vif"
	// KeyUplink marks the uplink port; the value is the bridge's name.
	KeyUplink = "tether-uplink"
	// KeySTagMode holds the port's S-Tag mode (1 switch, 2 I/O extender).
	KeySTagMode = "tether-stag-mode"
	// KeyCVID holds the C-VID of a dot1q-tunnel port.
	KeyCVID = "tether-cvid"
	// KeyBridge marks a bridge tether created.
	KeyBridge = "tether-bridge"
)

// Flow priorities of the allow-list.
const (
	PriorityAllow = 200
	PriorityDrop  = 190
)

// cookiePrefix is "teth" in the upper 32 bits of every allow-list rule's
// cookie; the lower 32 bits are the FNV-1a hash of the port's name.
const cookiePrefix = uint64(0x74657468) << 32

// Config says which OVS and bridge to use.
type Config struct {
	// DB is the ovsdb-server address; default
	// "unix:/var/run/openvswitch/db.sock".
	DB string
	// RunDir holds the bridges' OpenFlow management sockets
	// (BRIDGE.mgmt); default /var/run/openvswitch.
	RunDir string
	// Bridge is the bridge's name.
	Bridge string
	// DatapathType is "netdev" (userspace) or "system" (kernel module);
	// "" means system.
	DatapathType string
	// Uplink, if set, is the port toward the edge switch: a trunk of
	// every VLAN.
	Uplink string
	// Ofctl is the ovs-ofctl program; default "ovs-ofctl" on PATH.
	Ofctl string
	// Log receives what the switch changes; nil discards.
	Log *slog.Logger
}

// Switch is one OVS bridge managed through OVSDB and OpenFlow. It
// implements softswitch.Switch.
type Switch struct {
	cfg Config
	db  *ovsdb.Client
	log *slog.Logger
}

var _ softswitch.Switch = (*Switch)(nil)

// ErrNotOurs is returned when asked to remove a port tether did not
// create (no external_ids:tether-vif).
var ErrNotOurs = errors.New("ovs: port is not tether's")

// ofportWait bounds the wait for ovs-vswitchd to attach a new interface.
const ofportWait = 10 * time.Second

// monitorCancelTimeout bounds the monitor_cancel when Watch ends.
const monitorCancelTimeout = 2 * time.Second

// errNoBridge: the bridge is not in OVSDB.
var errNoBridge = errors.New("bridge does not exist (EnsureBridge first)")

// New connects to OVSDB. It changes nothing; call EnsureBridge first.
func New(ctx context.Context, cfg Config) (*Switch, error) {
	if cfg.Bridge == "" || len(cfg.Bridge) > softswitch.MaxIfname {
		return nil, fmt.Errorf("ovs: bridge name %q: want 1-%d bytes", cfg.Bridge, softswitch.MaxIfname)
	}
	switch cfg.DatapathType {
	case "", "system", "netdev":
	default:
		return nil, fmt.Errorf("ovs: datapath type %q: want system or netdev", cfg.DatapathType)
	}
	if cfg.DB == "" {
		cfg.DB = "unix:/var/run/openvswitch/db.sock"
	}
	if cfg.RunDir == "" {
		cfg.RunDir = "/var/run/openvswitch"
	}
	if cfg.Ofctl == "" {
		cfg.Ofctl = "ovs-ofctl"
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "softswitch/ovs", "bridge", cfg.Bridge)
	c, err := ovsdb.Dial(ctx, cfg.DB, log)
	if err != nil {
		return nil, fmt.Errorf("ovs: %w", err)
	}
	return &Switch{cfg: cfg, db: c, log: log}, nil
}

// Close closes the OVSDB connection.
func (s *Switch) Close() error { return s.db.Close() }

// DB is the switch's OVSDB client (for monitors and tests).
func (s *Switch) DB() *ovsdb.Client { return s.db }

// transact runs ops on the Open_vSwitch database.
func (s *Switch) transact(ctx context.Context, what string, ops ...ovsdb.Operation) ([]ovsdb.OpResult, error) {
	res, err := s.db.Transact(ctx, Database, ops...)
	if err != nil {
		return nil, fmt.Errorf("ovs: %s: %w", what, err)
	}
	return res, nil
}

func sel(table string, where ...ovsdb.Condition) ovsdb.Operation {
	return ovsdb.Operation{Op: "select", Table: table, Where: where}
}

// EnsureBridge makes sure the root row, the bridge (with its datapath
// type) and the uplink port exist, and that vlan-limit allows QinQ.
func (s *Switch) EnsureBridge(ctx context.Context) error {
	res, err := s.transact(ctx, "read bridge",
		sel("Open_vSwitch"),
		sel("Bridge", ovsdb.Eq("name", s.cfg.Bridge)),
	)
	if err != nil {
		return err
	}
	var ops []ovsdb.Operation
	var rootWhere []ovsdb.Condition
	switch len(res[0].Rows) {
	case 0:
		ops = append(ops, ovsdb.Operation{Op: "insert", Table: "Open_vSwitch", UUIDName: "root", Row: map[string]any{
			"other_config": map[string]string{"vlan-limit": "2"}}})
	case 1:
		root := res[0].Rows[0]
		rootWhere = []ovsdb.Condition{ovsdb.Eq("_uuid", root.UUID())}
		oc := root.StringMap("other_config")
		if l, err := strconv.Atoi(oc["vlan-limit"]); oc["vlan-limit"] == "" || (err == nil && l > 0 && l < 2) {
			ops = append(ops, ovsdb.Operation{Op: "mutate", Table: "Open_vSwitch", Where: rootWhere, Mutations: []ovsdb.Mutation{
				{Column: "other_config", Mutator: "delete", Value: ovsdb.Set{"vlan-limit"}},
				{Column: "other_config", Mutator: "insert", Value: map[string]string{"vlan-limit": "2"}},
			}})
		}
	default:
		return fmt.Errorf("ovs: %d rows in table Open_vSwitch, want 1", len(res[0].Rows))
	}
	dpType := s.cfg.DatapathType
	if len(res[1].Rows) == 0 {
		row := map[string]any{"name": s.cfg.Bridge, "external_ids": map[string]string{KeyBridge: "true"}}
		if dpType != "" {
			row["datapath_type"] = dpType
		}
		ops = append(ops, ovsdb.Operation{Op: "insert", Table: "Bridge", UUIDName: "br", Row: row})
		mut := ovsdb.Operation{Op: "mutate", Table: "Open_vSwitch", Where: rootWhere, Mutations: []ovsdb.Mutation{
			{Column: "bridges", Mutator: "insert", Value: ovsdb.Set{ovsdb.NamedUUID("br")}}}}
		if rootWhere == nil {
			// The root row is inserted in this transaction: give it the
			// bridge directly.
			ops[0].Row["bridges"] = ovsdb.Set{ovsdb.NamedUUID("br")}
		} else {
			ops = append(ops, mut)
		}
		s.log.Info("creating bridge", "datapath_type", dpType)
	} else if br := res[1].Rows[0]; br.String("datapath_type") != dpType && !(dpType == "system" && br.String("datapath_type") == "") {
		ops = append(ops, ovsdb.Operation{Op: "update", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", br.UUID())},
			Row: map[string]any{"datapath_type": dpType}})
		s.log.Warn("repairing bridge datapath type", "want", dpType, "got", br.String("datapath_type"))
	}
	if len(ops) > 0 {
		if _, err := s.transact(ctx, "ensure bridge", ops...); err != nil {
			return err
		}
	}
	if s.cfg.Uplink != "" {
		if err := s.ensurePort(ctx, s.cfg.Uplink, portCols{externalIDs: map[string]string{KeyUplink: s.cfg.Bridge}}, ifaceCols{}); err != nil {
			return fmt.Errorf("ovs: uplink: %w", err)
		}
	}
	return nil
}

// RemoveBridge deletes the bridge (and with it its ports) if tether
// created it.
func (s *Switch) RemoveBridge(ctx context.Context) error {
	res, err := s.transact(ctx, "read bridge", sel("Bridge", ovsdb.Eq("name", s.cfg.Bridge)))
	if err != nil {
		return err
	}
	if len(res[0].Rows) == 0 {
		return nil
	}
	br := res[0].Rows[0]
	if br.StringMap("external_ids")[KeyBridge] != "true" {
		return fmt.Errorf("ovs: bridge %s: %w", s.cfg.Bridge, ErrNotOurs)
	}
	_, err = s.transact(ctx, "remove bridge", ovsdb.Operation{Op: "mutate", Table: "Open_vSwitch", Mutations: []ovsdb.Mutation{
		{Column: "bridges", Mutator: "delete", Value: ovsdb.Set{br.UUID()}}}})
	return err
}

// portCols is what tether sets in a Port row.
type portCols struct {
	vlanMode    string // "" leaves vlan_mode empty (OVS default: trunk all)
	tag         int64  // 0: no tag
	trunks      []int64
	cvlans      []int64
	otherConfig map[string]string // keys tether owns in other_config (value "" = absent)
	externalIDs map[string]string // keys tether owns in external_ids (value "" = absent)
}

// ifaceCols is what tether sets in an Interface row.
type ifaceCols struct {
	rate, burst int64
	externalIDs map[string]string
}

// burstKbit is the policing burst for a rate: a tenth of a second's worth,
// at least 100 kbit (OVS's advice is at least 10% of the rate).
func burstKbit(rateKbps uint32) int64 {
	if rateKbps == 0 {
		return 0
	}
	return max(int64(rateKbps)/10, 100)
}

// desiredCols maps a softswitch.Port onto the rows (see the package doc).
func desiredCols(p softswitch.Port) (portCols, ifaceCols) {
	mac := p.MAC.String()
	pc := portCols{
		otherConfig: map[string]string{"qinq-ethtype": ""},
		externalIDs: map[string]string{KeyVIF: mac, KeySTagMode: "", KeyCVID: ""},
	}
	trunks := make([]int64, 0, len(p.Trunks)+1)
	for _, v := range p.Trunks {
		trunks = append(trunks, int64(v))
	}
	switch {
	case p.STag != 0:
		pc.vlanMode, pc.tag = "dot1q-tunnel", int64(p.STag)
		pc.otherConfig["qinq-ethtype"] = "802.1ad"
		pc.externalIDs[KeySTagMode] = strconv.Itoa(int(p.Mode))
		if p.VID != 0 {
			pc.externalIDs[KeyCVID] = strconv.Itoa(int(p.VID))
			trunks = append(trunks, int64(p.VID))
		}
		pc.cvlans = trunks
	case p.VID != 0 && len(trunks) == 0:
		pc.vlanMode, pc.tag = "access", int64(p.VID)
	case p.VID != 0:
		pc.vlanMode, pc.tag, pc.trunks = "native-untagged", int64(p.VID), trunks
	default:
		pc.vlanMode, pc.trunks = "trunk", append(trunks, 0)
	}
	slices.Sort(pc.trunks)
	slices.Sort(pc.cvlans)
	return pc, ifaceCols{
		rate:        int64(p.RateKbps),
		burst:       burstKbit(p.RateKbps),
		externalIDs: map[string]string{KeyVIF: mac},
	}
}

// observed is one port as read from OVSDB.
type observed struct {
	port, iface  ovsdb.Row
	portOnBridge bool
}

// read fetches our bridge and the named port's rows in one transaction.
func (s *Switch) read(ctx context.Context, name string) (ovsdb.Row, observed, error) {
	res, err := s.transact(ctx, "read port "+name,
		sel("Bridge", ovsdb.Eq("name", s.cfg.Bridge)),
		sel("Port", ovsdb.Eq("name", name)),
		sel("Interface", ovsdb.Eq("name", name)),
	)
	if err != nil {
		return nil, observed{}, err
	}
	if len(res[0].Rows) == 0 {
		return nil, observed{}, fmt.Errorf("ovs: bridge %s: %w", s.cfg.Bridge, errNoBridge)
	}
	br := res[0].Rows[0]
	var o observed
	if len(res[1].Rows) > 0 {
		o.port = res[1].Rows[0]
		o.portOnBridge = slices.Contains(br.UUIDs("ports"), o.port.UUID())
	}
	if len(res[2].Rows) > 0 {
		o.iface = res[2].Rows[0]
	}
	return br, o, nil
}

// mapUpdate returns the map with tether's keys applied (value "" removes
// the key) and whether that changed it.
func mapUpdate(cur, ours map[string]string) (map[string]string, bool) {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range ours {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out, !maps.Equal(out, cur)
}

func sortedInts(r ovsdb.Row, col string) []int64 {
	v := r.Ints(col)
	slices.Sort(v)
	return v
}

func optInt(v int64) ovsdb.Set {
	if v == 0 {
		return ovsdb.Set{}
	}
	return ovsdb.Set{v}
}

func intSet(v []int64) ovsdb.Set {
	s := make(ovsdb.Set, len(v))
	for i, x := range v {
		s[i] = x
	}
	return s
}

// portChanges lists the Port columns that differ from pc.
func portChanges(row ovsdb.Row, pc portCols) map[string]any {
	ch := map[string]any{}
	if row.String("vlan_mode") != pc.vlanMode {
		if pc.vlanMode == "" {
			ch["vlan_mode"] = ovsdb.Set{}
		} else {
			ch["vlan_mode"] = pc.vlanMode
		}
	}
	if tag, _ := row.Int("tag"); tag != pc.tag || len(row.Ints("tag")) > 1 {
		ch["tag"] = optInt(pc.tag)
	}
	if !slices.Equal(sortedInts(row, "trunks"), pc.trunks) {
		ch["trunks"] = intSet(pc.trunks)
	}
	if !slices.Equal(sortedInts(row, "cvlans"), pc.cvlans) {
		ch["cvlans"] = intSet(pc.cvlans)
	}
	if m, changed := mapUpdate(row.StringMap("other_config"), pc.otherConfig); changed {
		ch["other_config"] = m
	}
	if m, changed := mapUpdate(row.StringMap("external_ids"), pc.externalIDs); changed {
		ch["external_ids"] = m
	}
	return ch
}

// ifaceChanges lists the Interface columns that differ from ic.
func ifaceChanges(row ovsdb.Row, ic ifaceCols) map[string]any {
	ch := map[string]any{}
	if r, _ := row.Int("ingress_policing_rate"); r != ic.rate {
		ch["ingress_policing_rate"] = ic.rate
	}
	if b, _ := row.Int("ingress_policing_burst"); b != ic.burst {
		ch["ingress_policing_burst"] = ic.burst
	}
	if m, changed := mapUpdate(row.StringMap("external_ids"), ic.externalIDs); changed {
		ch["external_ids"] = m
	}
	return ch
}

// ensurePort creates or repairs the named port on the bridge.
func (s *Switch) ensurePort(ctx context.Context, name string, pc portCols, ic ifaceCols) error {
	br, o, err := s.read(ctx, name)
	if err != nil {
		return err
	}
	brWhere := []ovsdb.Condition{ovsdb.Eq("_uuid", br.UUID())}
	var ops []ovsdb.Operation
	if o.port == nil {
		// A new port, and its interface (a stale Interface row of the
		// same name, if any, belongs to another port and is left to it).
		prow := map[string]any{"name": name, "interfaces": ovsdb.Set{ovsdb.NamedUUID("iface")}}
		maps.Copy(prow, portChanges(ovsdb.Row{}, pc))
		irow := map[string]any{"name": name}
		maps.Copy(irow, ifaceChanges(ovsdb.Row{}, ic))
		ops = append(ops,
			ovsdb.Operation{Op: "insert", Table: "Interface", UUIDName: "iface", Row: irow},
			ovsdb.Operation{Op: "insert", Table: "Port", UUIDName: "port", Row: prow},
			ovsdb.Operation{Op: "mutate", Table: "Bridge", Where: brWhere, Mutations: []ovsdb.Mutation{
				{Column: "ports", Mutator: "insert", Value: ovsdb.Set{ovsdb.NamedUUID("port")}}}},
		)
		s.log.Info("adding port", "port", name)
	} else {
		puuid := o.port.UUID()
		if !o.portOnBridge {
			// On another bridge (or none): move it to ours.
			ops = append(ops,
				ovsdb.Operation{Op: "mutate", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Includes("ports", ovsdb.Set{puuid})},
					Mutations: []ovsdb.Mutation{{Column: "ports", Mutator: "delete", Value: ovsdb.Set{puuid}}}},
				ovsdb.Operation{Op: "mutate", Table: "Bridge", Where: brWhere, Mutations: []ovsdb.Mutation{
					{Column: "ports", Mutator: "insert", Value: ovsdb.Set{puuid}}}},
			)
			s.log.Warn("moving port to the bridge", "port", name)
		}
		if ch := portChanges(o.port, pc); len(ch) > 0 {
			ops = append(ops, ovsdb.Operation{Op: "update", Table: "Port", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", puuid)}, Row: ch})
			s.log.Info("repairing port", "port", name, "columns", slices.Sorted(maps.Keys(ch)))
		}
		ifaces := o.port.UUIDs("interfaces")
		switch {
		case o.iface != nil && slices.Contains(ifaces, o.iface.UUID()):
			if ch := ifaceChanges(o.iface, ic); len(ch) > 0 {
				ops = append(ops, ovsdb.Operation{Op: "update", Table: "Interface", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", o.iface.UUID())}, Row: ch})
				s.log.Info("repairing interface", "port", name, "columns", slices.Sorted(maps.Keys(ch)))
			}
		default:
			// The port lost its interface of the same name: give it one.
			irow := map[string]any{"name": name}
			maps.Copy(irow, ifaceChanges(ovsdb.Row{}, ic))
			ops = append(ops,
				ovsdb.Operation{Op: "insert", Table: "Interface", UUIDName: "iface", Row: irow},
				ovsdb.Operation{Op: "update", Table: "Port", Where: []ovsdb.Condition{ovsdb.Eq("_uuid", puuid)},
					Row: map[string]any{"interfaces": ovsdb.Set{ovsdb.NamedUUID("iface")}}})
			s.log.Warn("repairing port interface", "port", name)
		}
	}
	if len(ops) == 0 {
		return nil
	}
	_, err = s.transact(ctx, "ensure port "+name, ops...)
	return err
}

// Ensure makes port p match the desired state: OVSDB rows and the
// allow-list rules. It only writes what differs.
func (s *Switch) Ensure(ctx context.Context, p softswitch.Port) error {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return fmt.Errorf("ovs: ensure: %w", err)
	}
	pc, ic := desiredCols(p)
	if err := s.ensurePort(ctx, p.Name, pc, ic); err != nil {
		return err
	}
	ofport, err := s.ofport(ctx, p.Name)
	if err != nil {
		return err
	}
	return s.ensureFlows(ctx, p.Name, desiredFlows(ofport, p.MAC))
}

// ofport waits until ovs-vswitchd has attached the interface and returns
// its OpenFlow port number.
func (s *Switch) ofport(ctx context.Context, name string) (int64, error) {
	wait := int(ofportWait.Milliseconds())
	if dl, ok := ctx.Deadline(); ok {
		wait = int(min(max(time.Until(dl).Milliseconds(), 0), ofportWait.Milliseconds()))
	}
	res, err := s.transact(ctx, "wait for ofport of "+name,
		ovsdb.Operation{Op: "wait", Table: "Interface", Where: []ovsdb.Condition{ovsdb.Eq("name", name)},
			Columns: []string{"ofport"}, Until: "!=", Rows: []map[string]any{{"ofport": ovsdb.Set{}}}, Timeout: &wait},
		sel("Interface", ovsdb.Eq("name", name)),
	)
	if err != nil {
		return 0, fmt.Errorf("%w (is ovs-vswitchd running?)", err)
	}
	if len(res[1].Rows) == 0 {
		return 0, fmt.Errorf("ovs: interface %s vanished", name)
	}
	row := res[1].Rows[0]
	n, ok := row.Int("ofport")
	if !ok || n <= 0 {
		return 0, fmt.Errorf("ovs: interface %s has no OpenFlow port (ofport %v): %s", name, row["ofport"], row.String("error"))
	}
	return n, nil
}

// Remove takes tether's port off the bridge (OVSDB garbage-collects its
// Port and Interface rows) and deletes its allow-list rules. A port that
// does not exist is not an error; one without tether's mark is refused
// with ErrNotOurs.
func (s *Switch) Remove(ctx context.Context, name string) error {
	_, o, err := s.read(ctx, name)
	if errors.Is(err, errNoBridge) {
		return nil // no bridge, no port
	}
	if err != nil {
		return err
	}
	if err := s.ensureFlows(ctx, name, nil); err != nil {
		return err
	}
	if o.port == nil {
		return nil
	}
	if o.port.StringMap("external_ids")[KeyVIF] == "" {
		return fmt.Errorf("ovs: remove %s: %w", name, ErrNotOurs)
	}
	puuid := o.port.UUID()
	_, err = s.transact(ctx, "remove port "+name,
		ovsdb.Operation{Op: "mutate", Table: "Bridge", Where: []ovsdb.Condition{ovsdb.Includes("ports", ovsdb.Set{puuid})},
			Mutations: []ovsdb.Mutation{{Column: "ports", Mutator: "delete", Value: ovsdb.Set{puuid}}}})
	if err == nil {
		s.log.Info("removed port", "port", name)
	}
	return err
}

// Ports lists the names of tether's ports on the bridge.
func (s *Switch) Ports(ctx context.Context) ([]string, error) {
	res, err := s.transact(ctx, "list ports",
		sel("Bridge", ovsdb.Eq("name", s.cfg.Bridge)),
		ovsdb.Operation{Op: "select", Table: "Port", Columns: []string{"_uuid", "name", "external_ids"}})
	if err != nil {
		return nil, err
	}
	if len(res[0].Rows) == 0 {
		return nil, nil
	}
	on := res[0].Rows[0].UUIDs("ports")
	var out []string
	for _, r := range res[1].Rows {
		if slices.Contains(on, r.UUID()) && r.StringMap("external_ids")[KeyVIF] != "" {
			out = append(out, r.String("name"))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Observe reads port name back from OVSDB as a softswitch.Port (Priority
// is 0: OVS does not hold it). ok is false when the port is not on the
// bridge.
func (s *Switch) Observe(ctx context.Context, name string) (softswitch.Port, bool, error) {
	_, o, err := s.read(ctx, name)
	if err != nil || o.port == nil || !o.portOnBridge {
		return softswitch.Port{}, false, err
	}
	return observedPort(name, o), true, nil
}

// observedPort inverts desiredCols as far as the rows allow.
func observedPort(name string, o observed) softswitch.Port {
	p := softswitch.Port{Name: name}
	ext := o.port.StringMap("external_ids")
	if mac, err := net.ParseMAC(ext[KeyVIF]); err == nil {
		p.MAC = mac
	}
	tag, _ := o.port.Int("tag")
	toU16 := func(v []int64) []uint16 {
		var out []uint16
		for _, x := range v {
			if x > 0 && x <= softswitch.MaxVID {
				out = append(out, uint16(x))
			}
		}
		return out
	}
	switch o.port.String("vlan_mode") {
	case "dot1q-tunnel":
		p.STag = uint16(tag)
		mode, _ := strconv.Atoi(ext[KeySTagMode])
		p.Mode = wire.TetherSTagMode(mode)
		cv, _ := strconv.Atoi(ext[KeyCVID])
		cvlans := toU16(o.port.Ints("cvlans"))
		if cv > 0 && slices.Contains(cvlans, uint16(cv)) {
			p.VID = uint16(cv)
			cvlans = slices.DeleteFunc(cvlans, func(v uint16) bool { return v == uint16(cv) })
		}
		p.Trunks = cvlans
	default: // access, native-untagged, trunk (VLAN 0 in trunks is untagged)
		p.VID = uint16(tag)
		p.Trunks = toU16(o.port.Ints("trunks"))
	}
	if o.iface != nil {
		if r, ok := o.iface.Int("ingress_policing_rate"); ok && r > 0 {
			p.RateKbps = uint32(r)
		}
	}
	p.Normalize()
	return p
}

// Check reads port p back (OVSDB rows and allow-list rules) and lists
// how it differs from p; nil means consistent. Beyond softswitch.Compare's
// fields it reports "present", "bridge", "vlan_mode", "qinq-ethtype",
// "Interface" and "allow-list".
func (s *Switch) Check(ctx context.Context, p softswitch.Port) ([]softswitch.Difference, error) {
	p.Normalize()
	_, o, err := s.read(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	diff := func(field string, want, got any) softswitch.Difference {
		return softswitch.Difference{Port: p.Name, Field: field, Want: fmt.Sprint(want), Got: fmt.Sprint(got)}
	}
	if o.port == nil {
		return []softswitch.Difference{diff("present", true, false)}, nil
	}
	var out []softswitch.Difference
	if !o.portOnBridge {
		out = append(out, diff("bridge", s.cfg.Bridge, "another bridge"))
	}
	got := observedPort(p.Name, o)
	got.Priority = p.Priority
	out = append(out, softswitch.Compare(p, got)...)
	pc, ic := desiredCols(p)
	if m := o.port.String("vlan_mode"); m != pc.vlanMode {
		out = append(out, diff("vlan_mode", pc.vlanMode, m))
	}
	if q := o.port.StringMap("other_config")["qinq-ethtype"]; q != pc.otherConfig["qinq-ethtype"] {
		out = append(out, diff("qinq-ethtype", pc.otherConfig["qinq-ethtype"], q))
	}
	if o.iface == nil || !slices.Contains(o.port.UUIDs("interfaces"), o.iface.UUID()) {
		out = append(out, diff("Interface", p.Name, "missing"))
		return out, nil
	}
	if b, _ := o.iface.Int("ingress_policing_burst"); b != ic.burst {
		out = append(out, diff("ingress_policing_burst", ic.burst, b))
	}
	ofport, ok := o.iface.Int("ofport")
	if !ok || ofport <= 0 {
		out = append(out, diff("allow-list", "rules on an attached port", "no OpenFlow port"))
		return out, nil
	}
	want := desiredFlows(ofport, p.MAC)
	have, err := s.dumpFlows(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(want, have) {
		out = append(out, diff("allow-list", strings.Join(want, "; "), strings.Join(have, "; ")))
	}
	return out, nil
}

// Cookie is the OpenFlow cookie of port name's allow-list rules.
func Cookie(name string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return cookiePrefix | uint64(h.Sum32())
}

// desiredFlows are the allow-list rules, in the form dump-flows prints
// them (--no-stats --no-names, cookie left out), sorted.
func desiredFlows(ofport int64, mac net.HardwareAddr) []string {
	if mac == nil {
		return nil
	}
	return []string{
		fmt.Sprintf("priority=%d,in_port=%d actions=drop", PriorityDrop, ofport),
		fmt.Sprintf("priority=%d,in_port=%d,dl_src=%s actions=NORMAL", PriorityAllow, ofport, mac),
	}
}

// mgmt is the bridge's OpenFlow management socket.
func (s *Switch) mgmt() string {
	return "unix:" + filepath.Join(s.cfg.RunDir, s.cfg.Bridge+".mgmt")
}

// ofctl runs ovs-ofctl with args (stdin from in when set).
func (s *Switch) ofctl(ctx context.Context, in string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.cfg.Ofctl, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if in != "" {
		cmd.Stdin = strings.NewReader(in)
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ovs: ovs-ofctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dumpFlows returns port name's rules (by cookie) in desiredFlows' form.
func (s *Switch) dumpFlows(ctx context.Context, name string) ([]string, error) {
	out, err := s.ofctl(ctx, "", "--no-stats", "--no-names", "dump-flows", s.mgmt(), fmt.Sprintf("cookie=%#x/-1", Cookie(name)))
	if err != nil {
		return nil, err
	}
	return parseFlows(out), nil
}

// parseFlows reads ovs-ofctl dump-flows output (--no-stats --no-names):
// one rule per line after the reply header, each cut to start at its
// priority (the cookie and anything else before it dropped), sorted.
func parseFlows(out string) []string {
	var flows []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "NXST_FLOW") || strings.HasPrefix(line, "OFPST_FLOW") {
			continue
		}
		// "cookie=0x..., priority=..." : drop the cookie and any other
		// field before priority.
		if i := strings.Index(line, "priority="); i >= 0 {
			line = line[i:]
		}
		flows = append(flows, line)
	}
	slices.Sort(flows)
	return flows
}

// ensureFlows makes port name's rules equal want: missing rules are added
// first, then stale ones deleted (strict match), so the port is never
// without a drop rule while its in_port stays the same.
func (s *Switch) ensureFlows(ctx context.Context, name string, want []string) error {
	have, err := s.dumpFlows(ctx, name)
	if err != nil {
		return err
	}
	cookie := fmt.Sprintf("cookie=%#x,", Cookie(name))
	var add, del []string
	for _, f := range want {
		if !slices.Contains(have, f) {
			add = append(add, cookie+strings.Replace(f, " actions=", ",actions=", 1))
		}
	}
	for _, f := range have {
		if !slices.Contains(want, f) {
			match, _, _ := strings.Cut(f, " actions=")
			del = append(del, match)
		}
	}
	if len(add) > 0 {
		if _, err := s.ofctl(ctx, strings.Join(add, "\n")+"\n", "add-flows", s.mgmt(), "-"); err != nil {
			return err
		}
		s.log.Info("installed allow-list rules", "port", name, "rules", len(add))
	}
	for _, m := range del {
		if _, err := s.ofctl(ctx, "", "--strict", "del-flows", s.mgmt(), m); err != nil {
			return err
		}
		s.log.Info("deleted stale allow-list rule", "port", name, "match", m)
	}
	return nil
}
