package switchd

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tether-net/tether/api"
	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/l2/vdp"
)

// Handler returns the local API's handler (see package switchapi for the
// paths and types). Every path answers GET only.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	get := func(path string, f func(r *http.Request) any) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", http.MethodGet)
				api.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+path+": only GET")
				return
			}
			api.WriteJSON(w, http.StatusOK, f(r))
		})
	}
	get(switchapi.PathStatus, func(r *http.Request) any { return d.Status(r.Context()) })
	get(switchapi.PathPorts, func(r *http.Request) any { return d.Ports(r.Context()) })
	get(switchapi.PathVMs, func(*http.Request) any { return d.VMs() })
	get(switchapi.PathRejects, func(*http.Request) any { return d.Rejects() })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusNotFound, "not_found", "tether-switchd has no "+r.URL.Path+
			" (paths: "+strings.Join([]string{switchapi.PathStatus, switchapi.PathPorts, switchapi.PathVMs, switchapi.PathRejects}, ", ")+")")
	})
	return mux
}

// Status returns the daemon's summary.
func (d *Daemon) Status(_ context.Context) switchapi.Status {
	vs := d.verifier.Stats()
	refused := make(map[string]uint64, len(vs.Refused))
	for r, n := range vs.Refused {
		refused[r.String()] = n
	}
	d.mu.Lock()
	inherited := 0
	for _, pp := range d.inherited {
		inherited += len(pp.Allowed) + len(pp.Pending)
	}
	g := switchapi.Grace{Until: d.graceEnd, Done: d.graceDone, Inherited: inherited, Removed: d.removed}
	nports := len(d.ports)
	d.mu.Unlock()
	nvms := 0
	for _, r := range d.tbl.all() {
		nvms += len(r.pairs)
	}
	return switchapi.Status{
		Switch: d.cfg.Name, KeyID: d.key.ID().String(), Version: d.opts.Version, Started: d.started,
		Bridge: d.cfg.Bridge, Table: d.cfg.NFTTable, Broute: d.enf.Broute(), Grace: g,
		Ports: nports, VMs: nvms, Accepted: vs.Accepted, Refused: refused, RuleLatency: d.lat.summary(),
	}
}

// Ports describes every managed port.
func (d *Daemon) Ports(ctx context.Context) []switchapi.Port {
	counters, err := d.enf.Counters(ctx)
	if err != nil {
		d.log.Warn("read the enforcer's counters", "err", err)
	}
	d.mu.Lock()
	ports := make([]*port, 0, len(d.ports))
	for _, p := range d.ports {
		ports = append(ports, p)
	}
	d.mu.Unlock()
	slices.SortFunc(ports, func(a, b *port) int { return strings.Compare(a.name, b.name) })
	out := make([]switchapi.Port, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.describe(counters))
	}
	return out
}

// describe is the port's API view.
func (p *port) describe(counters map[string]enforce.PortCounters) switchapi.Port {
	p.mu.Lock()
	sp := switchapi.Port{Name: p.name, Running: p.running, Error: p.lastErr,
		EVB: switchapi.EVB{PeerSeen: p.evbOp.PeerSeen, ReflectiveRelay: p.evbOp.ReflectiveRelay,
			R: p.evbOp.R, RTE: p.evbOp.RTE, RWD: p.evbOp.RWD, RKA: p.evbOp.RKA}}
	if p.running {
		sp.MAC = macString(p.iface.MAC)
	}
	for _, c := range p.channels {
		sp.SChannels = append(sp.SChannels, switchapi.SChannel{SCID: c.SCID, SVID: c.SVID})
	}
	ag, br := p.agent, p.bridge
	p.mu.Unlock()
	if ag != nil {
		nbs := ag.Neighbors()
		sp.Neighbors = len(nbs)
		if nb, ok := p.d.neighbours.Neighbour(p.name); ok && len(nbs) > 0 {
			n := &nbs[0]
			sp.Neighbor = &switchapi.Neighbor{
				ChassisID: idString(n.ChassisID.ID), PortID: idString(n.PortID.ID), SystemName: n.SystemName(),
				Signed: nb.Signed, Tether: n.Tether() != nil, LastSeen: n.LastSeen, ExpiresAt: n.ExpiresAt,
			}
			if nb.Signed {
				sp.Neighbor.KeyID = nb.Key.String()
			}
		}
		st := ag.Stats()
		sp.LLDP = switchapi.LLDPStats{FramesIn: st.FramesIn, FramesOut: st.FramesOut, Rejected: st.Rejected,
			Malformed: st.Malformed, Dropped: st.Receive.Dropped()}
	}
	for _, b := range p.bridges() { // every S-channel's
		for _, v := range b.VSIs() {
			switch v.State {
			case vdp.StateAssociated:
				sp.Associated++
			case vdp.StatePreAssociated, vdp.StatePreAssociatedRR:
				sp.PreAssociated++
			}
		}
	}
	if br != nil {
		es := br.Engine().Stats()
		sp.ECP = switchapi.ECPStats{RxRequests: es.RxRequests, TxRequests: es.TxRequests, TxRetransmits: es.TxRetransmits,
			TxGiveUps: es.TxGiveUps}
	}
	if c, ok := counters[p.name]; ok {
		sp.Counters = &switchapi.Counters{
			ControlPackets: c.Control.Packets, AcceptedPackets: c.Accepted.Packets, AcceptedBytes: c.Accepted.Bytes,
			DroppedPackets: c.Dropped.Packets, DroppedBytes: c.Dropped.Bytes,
		}
	}
	return sp
}

// idString renders an LLDP chassis or port ID: text when printable, hex
// otherwise.
func idString(b []byte) string {
	printable := len(b) > 0
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return string(b)
	}
	if len(b) == 6 {
		return macString([6]byte(b))
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

// VMs lists one entry per verified (MAC, VID) pair.
func (d *Daemon) VMs() []switchapi.VM {
	recs := d.tbl.all()
	out := make([]switchapi.VM, 0, len(recs))
	for _, r := range recs {
		note := r.note
		if !r.overlapUntil.IsZero() {
			note = fmt.Sprintf("migrating: source until de-associate (destination port %s; at most until %s)",
				r.overlapTo, r.overlapUntil.UTC().Format(time.RFC3339))
		}
		for _, pr := range r.pairs {
			out = append(out, switchapi.VM{
				MAC: verify.MAC(pr.MAC).String(), VID: pr.VID, SVID: pr.SVID, VM: r.vm.String(), Host: r.host, Port: r.port,
				State: apiState(r.state), Since: r.since, Profile: r.profile,
				Verified: switchapi.Verification{KeyID: keyIDString(r.signer), Counter: r.counter, VMManager: r.vmm,
					Migration: r.migr, At: r.at, Note: note},
			})
		}
	}
	return out
}

func apiState(s vdp.State) string {
	if s == vdp.StateAssociated {
		return "associated"
	}
	return "pre-associated"
}

// Rejects lists the last refusals, oldest first.
func (d *Daemon) Rejects() []switchapi.Reject { return d.rej.list() }
