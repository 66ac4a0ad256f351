//go:build linux

package switchd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/lldp"

	"github.com/tether-net/tether/edge/enforce"
	"github.com/tether-net/tether/edge/switchapi"
	"github.com/tether-net/tether/edge/switchd/internal/swlab"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/l2/evb"
	"github.com/tether-net/tether/l2/lldpagent"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/l2/vdp"
	"github.com/tether-net/tether/wire"
)

// logBuffer collects a logger's lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// schanHost is a host uplink that asks CDCP for S-channels: a signed LLDP
// agent whose CDCP TLV requests SCIDs, and a VDP station per assigned
// S-channel on an ECP socket of that S-VID only, writing in its S-Tag
// (rawsock.STagLink), signing on the channel "eth0/svid=N", as tetherd
// does for the vNICs of a NIC partition.
type schanHost struct {
	t     *testing.T
	n     *swlab.NS
	id    *hostID
	ver   *identity.Verifier
	req   wire.CDCP
	agent *lldpagent.Agent
}

func newSChanHost(t *testing.T, l *lab, n *swlab.NS, id *hostID, scids []uint16) *schanHost {
	t.Helper()
	key, _, err := LoadOrCreateKey(l.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := identity.NewStaticKeys(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.NewVerifier(keys, &identity.MemoryCounterStore{}, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := evb.StationRequest(evb.CDCPStationConfig{ChnCap: uint16(len(scids) + 1), SCIDs: scids})
	if err != nil {
		t.Fatal(err)
	}
	lldpC := n.Listen(t, "eth0", wire.EtherTypeLLDP, false)
	ifi := lldpC.Interface()
	_, evbTLV, _ := evb.Station(evb.Config{R: netTiming.R, RTE: netTiming.RTE, RWD: netTiming.RWD, RKA: netTiming.RKA}, nil)
	info := &lldpagent.LocalInfo{
		ChassisID:  wire.ChassisID{Subtype: lldp.ChassisIDSubtypeMACAddress, ID: append([]byte(nil), ifi.MAC[:]...)},
		PortID:     wire.PortID{Subtype: lldp.PortIDSubtypeInterfaceName, ID: []byte(ifi.Name)},
		SystemName: id.name,
		EVB:        &evbTLV,
		CDCP:       &req,
		Tether: &wire.TetherCapability{Version: wire.TetherProtocolVersion, Roles: wire.TetherRoleHostAgent,
			KeyID: id.key.ID(), Flags: wire.TetherFlagRequiresSignature},
	}
	h := &schanHost{t: t, n: n, id: id, ver: ver, req: req}
	h.agent, err = lldpagent.New(lldpC, lldpagent.Config{
		Build: info.LLDPDU, Dest: wire.NearestCustomerBridge,
		Sign:   lldpagent.SignWith(id.signer, ifi.Name),
		Check:  lldpagent.VerifyWith(ver, ifi.Name, true),
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// assigned returns the S-VID the switch's CDCP TLV assigned to each
// requested SCID (none until the switch has answered).
func (h *schanHost) assigned() map[uint16]uint16 {
	for _, nb := range h.agent.Neighbors() {
		c := nb.CDCP()
		if c == nil || !nb.Check.Signed {
			continue
		}
		res, err := evb.StationResult(h.req, c)
		if err != nil {
			return nil
		}
		out := map[uint16]uint16{}
		for _, ch := range res.Channels {
			if ch.SCID != 1 {
				out[ch.SCID] = ch.SVID
			}
		}
		return out
	}
	return nil
}

// station runs a VDP station on S-channel svid until the test ends.
func (h *schanHost) station(svid uint16) *vdp.Station {
	h.t.Helper()
	var sock *rawsock.Socket
	if err := h.n.Do(func() error {
		var err error
		sock, err = rawsock.Listen("eth0", wire.EtherTypeECP, rawsock.Options{SChannel: svid})
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { sock.Close() })
	ch := fmt.Sprintf("eth0/svid=%d", svid)
	timing := netTiming
	st, err := vdp.NewStation(rawsock.STagLink{Conn: sock, SVID: svid}, vdp.StationConfig{
		Name: ch, LocalMAC: sock.Interface().MAC, Timing: &timing, Logger: testLogger(),
		Security: vdp.Security{
			Sign:          vdp.BindingSigner(vdp.IdentitySigner(h.id.signer, ch), wire.OUI{}, svid),
			Verify:        vdp.BindingVerifier(vdp.IdentityVerifier(h.ver, ch), wire.OUI{}, svid),
			PeerCapable:   func() bool { return true },
			RequireSigned: true,
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = st.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done })
	return st
}

func doVDP(t *testing.T, st *vdp.Station, mode wire.VSIMode, v wire.VSI) vdp.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := st.Do(ctx, vdp.Request{Mode: mode, Manager: stationMgr, VSI: v})
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: no result within 20s", mode)
	}
	return res
}

// TestNetnsSChannels runs tether-switchd with S-channels on real frames:
// host A's LLDP asks CDCP for SCIDs 2 and 3, switchd assigns them S-VIDs
// and starts a VDP bridge on each; a station on S-channel s2 (its ECP in
// the S-Tag s2) associates VM1: the claim carries S-Tag s2, the rule is
// (swA, S-VID s2, MAC1, VID 100), and VM1's frames pass in S-Tag s2 only
// (not in s3, not untagged, not C-tagged alone). Then the attack: VM3 (a VM
// the VM manager confirms on host A) claims S-Tag s2 too: refused
// (stag-bound-elsewhere), counted by the verifier and in the rejects,
// logged, and no rule for VM3 anywhere. VM1 replayed on S-channel s3 is
// refused as well (one S-Tag per vNIC). A frame signed for s2 sent on s3
// is refused by its channel binding (channel-binding), and so is it
// untagged on the default S-channel. DE-ASSOCIATE on s2
// frees the S-Tag: VM3 then gets it.
func TestNetnsSChannels(t *testing.T) {
	l := newLab(t, 3)
	l.cfg.CDCP.Channels = 4
	logs := &logBuffer{}
	l.logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sd := l.start(t)
	h := newSChanHost(t, l, l.A, l.hostA, []uint16{2, 3})
	var as map[uint16]uint16
	waitFor(t, 10*time.Second, "CDCP assigns S-VIDs to SCIDs 2 and 3", func() bool {
		as = h.assigned()
		return len(as) == 2
	})
	s2, s3 := as[2], as[3]
	if s2 < 2 || s3 < 2 || s2 == s3 {
		t.Fatalf("assigned S-VIDs %v", as)
	}
	t.Logf("CDCP: SCID 2 -> S-VID %d, SCID 3 -> S-VID %d", s2, s3)
	waitFor(t, 5*time.Second, "switchd runs a VDP bridge on each S-channel", func() bool {
		p := sd.d.port("swA")
		return p != nil && p.bridgeOf(s2) != nil && p.bridgeOf(s3) != nil
	})
	l.WaitForwarding(t)
	st2, st3 := h.station(s2), h.station(s3)

	res := doVDP(t, st2, wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil {
		t.Fatalf("associate VM1 on S-channel %d: %v (rejects %+v)", s2, res.Err, sd.d.Rejects())
	}
	if res.Filters[0].VID != 100 || res.Peer == nil || res.Profile == nil {
		t.Fatalf("answer on S-channel %d: %+v", s2, res)
	}
	pair := enforce.Pair{MAC: macN(1), VID: 100, SVID: s2}
	if !l.allowed(t, "swA", pair) {
		obs, _ := l.enf.Observed(context.Background())
		t.Fatalf("no rule %v once the station heard success: %+v", pair, obs["swA"])
	}
	if l.allowed(t, "swA", pairN(1, 100)) {
		t.Fatal("VM1 allowed outside its S-channel")
	}
	vms := sd.d.VMs()
	if len(vms) != 1 || vms[0].Port != "swA" || vms[0].VM != uuidN(1).String() || vms[0].SVID != s2 {
		t.Fatalf("VMs: %+v", vms)
	}
	if !l.SendTags(t, macN(1), [][2]uint16{{0x88a8, s2}, {0x8100, 100}}, 2*time.Second) {
		t.Fatalf("VM1's frame in S-Tag %d, VID 100 did not reach host B", s2)
	}
	for _, tags := range [][][2]uint16{
		{{0x88a8, s3}, {0x8100, 100}}, // the other S-channel
		{{0x8100, 100}},               // no S-Tag
		{{0x88a8, s2}},                // S-Tag s2, untagged inside (VID 0 not granted)
	} {
		if l.SendTags(t, macN(1), tags, 300*time.Millisecond) {
			t.Fatalf("VM1's frame with tags %v crossed the switch", tags)
		}
	}

	// The attack: S-Tag s2 is bound to VM1's vNIC; VM3 claims it.
	before := sd.d.Status(context.Background()).Refused["stag-bound-elsewhere"]
	res = doVDP(t, st2, wire.VSIAssociate, vsiOf(uuidN(3), macN(3), 0, 1))
	if res.Err == nil || res.State == vdp.StateAssociated {
		t.Fatalf("VM3's claim of S-Tag %d: %+v", s2, res)
	}
	t.Logf("VM3 on S-Tag %d answered: %v (status %#02x)", s2, res.Err, uint8(res.Status))
	if got := sd.d.Status(context.Background()).Refused["stag-bound-elsewhere"]; got != before+1 {
		t.Errorf("stag-bound-elsewhere counted %d times, want %d", got, before+1)
	}
	rjs := sd.d.Rejects()
	if i := slices.IndexFunc(rjs, func(r switchapi.Reject) bool {
		return r.Reason == "stag-bound-elsewhere" && r.VM == uuidN(3).String() && r.Port == "swA" &&
			strings.Contains(r.Message, fmt.Sprintf("S-Tag %d on port swA is bound to", s2))
	}); i < 0 {
		t.Errorf("no stag-bound-elsewhere reject for VM3: %+v", rjs)
	}
	if lines := logs.lines("claim refused", "reason=stag-bound-elsewhere", "vm="+uuidN(3).String(), fmt.Sprintf("stag=%d", s2)); len(lines) != 1 {
		t.Errorf("log lines of the refusal: %q", lines)
	}
	obs, err := l.enf.Observed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range append(obs["swA"].Allowed, obs["swA"].Pending...) {
		if pr.MAC == macN(3) {
			t.Fatalf("the refused claim left a rule: %v", pr)
		}
	}
	if l.SendTags(t, macN(3), [][2]uint16{{0x88a8, s2}, {0x8100, 100}}, 300*time.Millisecond) {
		t.Fatal("VM3's frame in S-Tag s2 crossed the switch")
	}

	// VM1 claimed again on the other S-channel: refused, VM1's rule on s2
	// stays.
	res = doVDP(t, st3, wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err == nil || res.State == vdp.StateAssociated {
		t.Fatalf("VM1 on S-channel %d too: %+v", s3, res)
	}
	if l.allowed(t, "swA", enforce.Pair{MAC: macN(1), VID: 100, SVID: s3}) || !l.allowed(t, "swA", pair) {
		t.Fatal("VM1's claim on the second S-channel changed the rules")
	}

	// A frame signed for S-channel s2 (its binding names s2), sent on
	// S-channel s3: refused before its signature and counter are checked
	// (channel-binding), nothing verified, no rule.
	tx := l.A.Listen(t, "eth0", 0x88b7, false)
	mgr := stationMgr
	v2 := vsiOf(uuidN(2), macN(2), 0, 1)
	v2.Mode = wire.VSIAssociate
	du := wire.ECPDU{Op: wire.ECPRequest, Subtype: wire.ECPSubtypeVDP, Sequence: 7777, VDP: &wire.VDPDU{TLVs: []wire.TLV{&mgr, &v2}}}
	eh := wire.EthernetHeader{Dst: wire.NearestCustomerBridge, Src: tx.Interface().MAC, EtherType: wire.EtherTypeECP}
	raw, err := du.AppendBinary(eh.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := vdp.BindingSigner(vdp.IdentitySigner(h.id.signer, fmt.Sprintf("eth0/svid=%d", s2)), wire.OUI{}, s2)(context.Background(), wire.AppendEnd(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := (rawsock.STagLink{Conn: tx, SVID: s3}).WriteFrame(context.Background(), signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the cross-channel frame refused", func() bool {
		return slices.ContainsFunc(sd.d.Rejects(), func(r switchapi.Reject) bool {
			return r.Port == "swA" && r.Reason == "channel-binding" && strings.Contains(r.Message, fmt.Sprintf("bound to S-channel %d on S-channel %d", s2, s3))
		})
	})
	// The same frame untagged, on the default S-channel: refused too.
	if err := tx.WriteFrame(context.Background(), signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the S-channel frame refused on the default S-channel", func() bool {
		return slices.ContainsFunc(sd.d.Rejects(), func(r switchapi.Reject) bool {
			return r.Port == "swA" && r.Reason == "channel-binding" && strings.Contains(r.Message, fmt.Sprintf("bound to S-channel %d on the default S-channel", s2))
		})
	})
	if slices.ContainsFunc(sd.d.VMs(), func(v switchapi.VM) bool { return v.VM == uuidN(2).String() }) {
		t.Fatal("the cross-channel frame was verified")
	}
	if obs, _ := l.enf.Observed(context.Background()); slices.ContainsFunc(obs["swA"].Allowed, func(p enforce.Pair) bool { return p.MAC == macN(2) }) {
		t.Fatal("the cross-channel frame left a rule")
	}

	// DE-ASSOCIATE frees S-Tag s2; VM3 then gets it.
	if res := doVDP(t, st2, wire.VSIDeAssociate, vsiOf(uuidN(1), macN(1), 100, 1)); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, 2*time.Second, "VM1's rule removed", func() bool { return !l.allowed(t, "swA", pair) })
	if res := doVDP(t, st2, wire.VSIAssociate, vsiOf(uuidN(3), macN(3), 0, 1)); res.Err != nil {
		t.Fatalf("VM3 on the freed S-Tag %d: %v", s2, res.Err)
	}
	if !l.allowed(t, "swA", enforce.Pair{MAC: macN(3), VID: 100, SVID: s2}) {
		t.Fatal("VM3's rule missing")
	}
}
