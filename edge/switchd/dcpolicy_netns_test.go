//go:build linux

package switchd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/internal/testpki"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/etcdembed"
	"github.com/tether-net/tether/policy/store"
	"github.com/tether-net/tether/wire"
)

// policyDB is tether-policyd's store as the switches see it: an embedded
// etcd serving its unix socket (the test writes there, as tether-policyd
// would) and https with client certificates (the switches' caches).
type policyDB struct {
	srv      *etcdembed.Server
	st       *store.Store
	endpoint string
	pki      dbPKI
}

// dbPKI are the files of the store's https listener and of a switch's
// client certificate.
type dbPKI struct{ ca, srvCert, srvKey, cliCert, cliKey string }

// writeDBPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate under dir.
func writeDBPKI(t testing.TB, dir string) dbPKI {
	t.Helper()
	f := testpki.Write(t, dir, "policy-etcd", "tor")
	return dbPKI{ca: f.CA, srvCert: f.ServerCert, srvKey: f.ServerKey, cliCert: f.ClientCert, cliKey: f.ClientKey}
}

// startPolicyDB starts the store's etcd; port 0 picks a free https port.
func startPolicyDB(t testing.TB, pki dbPKI, port int) *policyDB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if port == 0 {
		var err error
		if port, err = etcdembed.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := etcdembed.Start(ctx, etcdembed.Config{Dir: t.TempDir(), Unix: true, UnsafeNoFsync: true,
		Remote: &etcdembed.Remote{Addr: addr, CertFile: pki.srvCert, KeyFile: pki.srvKey, CAFile: pki.ca}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := store.Dial(ctx, store.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
	})
	st, err := store.New(cli, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &policyDB{srv: srv, st: st, endpoint: "https://" + addr, pki: pki}
}

// policyCfg is the policy: section that points a switch at db.
func (db *policyDB) policyCfg(startWait time.Duration) *switchconfig.Policy {
	return &switchconfig.Policy{Endpoints: []string{db.endpoint}, CA: db.pki.ca, Cert: db.pki.cliCert, Key: db.pki.cliKey,
		Prefix: store.DefaultPrefix, DialTimeout: switchconfig.Duration(2 * time.Second), StartWait: switchconfig.Duration(startWait)}
}

// create writes objects (tests' fixtures).
func (db *policyDB) create(t testing.TB, objs ...policy.Object) {
	t.Helper()
	for _, o := range objs {
		if _, err := db.st.Create(context.Background(), o); err != nil {
			t.Fatalf("create %s %s: %v", o.Kind(), o.Key(), err)
		}
	}
}

// update reads the profile name, changes it with f and writes it back.
func (db *policyDB) updateProfile(t testing.TB, name string, f func(*policy.Profile)) {
	t.Helper()
	ctx := context.Background()
	it, err := db.st.Get(ctx, policy.KindProfiles, name)
	if err != nil {
		t.Fatal(err)
	}
	p := it.Object.(*policy.Profile)
	f(p)
	if _, err := db.st.Update(ctx, p, it.Revision); err != nil {
		t.Fatal(err)
	}
}

func placementOf(n int, name, host string, state string) *policy.Placement {
	return &policy.Placement{VM: uuidN(n).String(), Name: name, Host: host, MACs: []string{macN(n).String()}, State: state,
		Source: "test", Updated: time.Now().UTC()}
}

// newDCLab is newLab with the switch in DC-wide mode: no libvirt VM
// manager (the store's placements are the only witness), the file's
// profile "tenant-a" VID 100 (used only before the store is listed).
func newDCLab(t *testing.T, pol *switchconfig.Policy) *lab {
	t.Helper()
	l := newLab(t, 0)
	l.cfg.VMManagers = map[string]string{}
	l.cfg.Policy = pol
	if err := l.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitNeighbours waits until switchd and the station see each other on
// port.
func waitNeighbours(t *testing.T, sd *switchd, s *station, port, host string) {
	t.Helper()
	waitFor(t, 10*time.Second, "LLDP both ways on "+port, func() bool {
		n, ok := sd.d.neighbours.Neighbour(port)
		return ok && n.Host == host && s.switchNeighbour()
	})
}

// TestNetnsDCPolicy runs tether-switchd in DC-wide mode for real (the
// store on an embedded etcd reached over https with a client certificate,
// real nftables, stations on veths): an association is verified against
// the placement written through the store, one whose placement names
// another host is refused, the profile is the one of the VM's port group
// (by UUID, by the name in its placement), a placement written just
// before the claim is seen, and a profile's VID change written to the
// store reaches the kernel's rule of the live association.
func TestNetnsDCPolicy(t *testing.T) {
	pki := writeDBPKI(t, t.TempDir())
	db := startPolicyDB(t, pki, 0)
	db.create(t,
		&policy.Profile{Name: "dc-web", VID: 210, Mode: policy.ModeSwitch, RateKbps: 1000},
		&policy.Profile{Name: "dc-db", VID: 220, Mode: policy.ModeSwitch},
		&policy.PortGroup{Name: "web", Profile: "dc-web", Match: policy.Match{UUIDs: []string{uuidN(1).String()}}},
		&policy.PortGroup{Name: "db", Profile: "dc-db", Match: policy.Match{NamePatterns: []string{"db-*"}}},
		&policy.PortGroup{Name: "rest", Profile: "dc-web", Match: policy.Match{NamePatterns: []string{"*"}, Priority: -1}},
		placementOf(1, "web-1", "hostA", policy.StateRunning),
		placementOf(2, "web-2", "hostA", policy.StateRunning),
		placementOf(3, "db-3", "hostA", policy.StateRunning),
	)
	l := newDCLab(t, db.policyCfg(20*time.Second))
	sd := l.start(t)
	a := l.station(t, l.A, l.hostA)
	b := l.station(t, l.B, l.hostB)
	a.mu.Lock()
	a.reassociate = true
	a.mu.Unlock()
	waitNeighbours(t, sd, a, "swA", "hostA")
	waitNeighbours(t, sd, b, "swB", "hostB")

	// VM1, in group web by UUID: the store's profile dc-web.
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil {
		t.Fatalf("associate VM1: %v (rejects %+v)", res.Err, sd.d.Rejects())
	}
	if res.Filters[0].VID != 210 || res.Profile == nil || res.Profile.Name != "dc-web" || res.Profile.RateKbps != 1000 {
		t.Fatalf("VM1's answer: %+v profile %+v, want dc-web VID 210", res, res.Profile)
	}
	if !l.allowed(t, "swA", pairN(1, 210)) {
		t.Fatal("no kernel rule for VM1 on VID 210")
	}
	// VM3, named db-3 in its placement: group db, VID 220.
	res = a.do(wire.VSIAssociate, vsiOf(uuidN(3), macN(3), 0, 1))
	if res.Err != nil || res.Filters[0].VID != 220 || res.Profile == nil || res.Profile.Name != "dc-db" || !l.allowed(t, "swA", pairN(3, 220)) {
		t.Fatalf("VM3: %+v (rejects %+v)", res, sd.d.Rejects())
	}
	vms := sd.d.VMs()
	groups := map[string]string{}
	for _, v := range vms {
		groups[v.VM] = v.Profile
		if v.Verified.VMManager != "running on hostA with "+v.MAC {
			t.Errorf("VM %s verified as %q", v.VM, v.Verified.VMManager)
		}
	}
	if groups[uuidN(1).String()] != "web" || groups[uuidN(3).String()] != "db" {
		t.Errorf("port groups: %v", groups)
	}

	// Host B claims VM2, whose placement says hostA: refused.
	res = b.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(2), 0, 1))
	refusal(t, res)
	rj, ok := findReject(sd.d, "swB", verify.ReasonVMManagerDenies.String())
	if !ok || !strings.Contains(rj.Message, `puts the VM on host "hostA"`) {
		t.Fatalf("host B's claim of VM2: %+v %v (rejects %+v)", rj, ok, sd.d.Rejects())
	}
	t.Logf("refusal: %s", rj.Message)
	if l.allowed(t, "swB", pairN(2, 210)) {
		t.Fatal("the refused claim installed a rule")
	}

	// A placement written just before the claim is seen (read your
	// writes): VM4 on hostB, in group rest.
	db.create(t, placementOf(4, "app-4", "hostB", policy.StateRunning))
	res = b.do(wire.VSIAssociate, vsiOf(uuidN(4), macN(4), 0, 1))
	if res.Err != nil || res.Filters[0].VID != 210 || !l.allowed(t, "swB", pairN(4, 210)) {
		t.Fatalf("VM4 right after its placement: %+v (rejects %+v)", res, sd.d.Rejects())
	}
	// A placement in state shut-off, or without the MAC, confirms nothing.
	db.create(t, &policy.Placement{VM: uuidN(5).String(), Name: "app-5", Host: "hostB", MACs: []string{macN(5).String()}, State: policy.StateShutOff, Updated: time.Now()},
		&policy.Placement{VM: uuidN(6).String(), Name: "app-6", Host: "hostB", MACs: []string{macN(9).String()}, State: policy.StateRunning, Updated: time.Now()})
	for _, n := range []int{5, 6} {
		refusal(t, b.do(wire.VSIAssociate, vsiOf(uuidN(n), macN(n), 0, 1)))
		rj, _ := findReject(sd.d, "swB", verify.ReasonVMManagerDenies.String())
		t.Logf("VM%d: %s", n, rj.Message)
	}

	// The store's profile changes VID: the live association's rule moves
	// from 210 to 230 in the kernel (revoked, the station associates
	// again and gets the new VID).
	t0 := time.Now()
	db.updateProfile(t, "dc-web", func(p *policy.Profile) { p.VID = 230 })
	written := time.Since(t0)
	waitFor(t, 10*time.Second, "VM1's rule on VID 230", func() bool {
		return l.allowed(t, "swA", pairN(1, 230)) && !l.allowed(t, "swA", pairN(1, 210))
	})
	t.Logf("profile VID change: store write %v, rule changed in the kernel %v after the write returned",
		written.Round(time.Microsecond), (time.Since(t0) - written).Round(time.Millisecond))
	if !l.allowed(t, "swA", pairN(3, 220)) {
		t.Fatal("VM3 (another profile) lost its rule")
	}
	// A change that keeps the VID (rate) is re-granted without a new
	// association: the rule stays.
	db.updateProfile(t, "dc-db", func(p *policy.Profile) { p.RateKbps = 5000 })
	waitFor(t, 5*time.Second, "VM3's grant carries the new rate", func() bool {
		p := grantedProfile(sd.d, "swA", uuidN(3))
		return p != nil && p.RateKbps == 5000
	})
	if !l.allowed(t, "swA", pairN(3, 220)) {
		t.Fatal("VM3's rule went on a rate change")
	}
}

// TestNetnsDCPolicyUnreachableAtStart: with the store unreachable at
// start, switchd starts within start_wait and serves from the file's
// profiles and placements; once the store is up it switches over and the
// live association gets the store's profile (its rule moves in the
// kernel).
func TestNetnsDCPolicyUnreachableAtStart(t *testing.T) {
	pki := writeDBPKI(t, t.TempDir())
	port, err := etcdembed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pol := &switchconfig.Policy{Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", port)}, CA: pki.ca, Cert: pki.cliCert, Key: pki.cliKey,
		Prefix: store.DefaultPrefix, DialTimeout: switchconfig.Duration(time.Second), StartWait: switchconfig.Duration(300 * time.Millisecond)}
	l := newDCLab(t, pol)
	pf := filepath.Join(l.dir, "placements.yaml")
	if err := os.WriteFile(pf, []byte(fmt.Sprintf("hostA:\n  - {uuid: %s, state: running, macs: [%q]}\n", uuidN(1), macN(1))), 0o644); err != nil {
		t.Fatal(err)
	}
	l.cfg.Placements = pf
	t0 := time.Now()
	sd := l.start(t)
	t.Logf("switchd started in %v with the store unreachable", time.Since(t0).Round(time.Millisecond))
	a := l.station(t, l.A, l.hostA)
	a.mu.Lock()
	a.reassociate = true
	a.mu.Unlock()
	waitNeighbours(t, sd, a, "swA", "hostA")
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil || res.Filters[0].VID != 100 || res.Profile == nil || res.Profile.Name != "tenant-a" || !l.allowed(t, "swA", pairN(1, 100)) {
		t.Fatalf("associate from the file: %+v (rejects %+v)", res, sd.d.Rejects())
	}

	db := startPolicyDB(t, pki, port)
	db.create(t,
		&policy.Profile{Name: "dc-web", VID: 210, Mode: policy.ModeSwitch},
		&policy.PortGroup{Name: "web", Profile: "dc-web", Match: policy.Match{UUIDs: []string{uuidN(1).String()}}},
		placementOf(1, "web-1", "hostA", policy.StateRunning),
	)
	up := time.Now()
	waitFor(t, 30*time.Second, "VM1's rule on the store's VID 210", func() bool {
		return l.allowed(t, "swA", pairN(1, 210)) && !l.allowed(t, "swA", pairN(1, 100))
	})
	t.Logf("switched over %v after the store came up", time.Since(up).Round(time.Millisecond))
	if vms := sd.d.VMs(); len(vms) != 1 || vms[0].Profile != "web" {
		t.Fatalf("vms: %+v", vms)
	}
	sd.stop(t) // before the store: etcd's Close waits for open watches
}

// TestNetnsDCPolicyFigure measures the figure: profile change to
// enforced on every switch with many VMs in the store. Several switchd
// daemons (each its own netns, nftables table, cache of the store over
// https) hold live associations of VMs in group "hot"; the test changes
// the VID of hot's profile and reads each switch's table back from the
// kernel until the old pairs are gone and the new ones are in, on every
// switch. Normal run: 1,000 VMs, 2 switches, 6 changes; TETHER_TEST_ALL=1:
// 10,000 VMs, 3 switches, 20 changes.
//
//	TETHER_TEST_ALL=1 go test -tags libvirt_dlopen -count=1 -run TestNetnsDCPolicyFigure -v ./edge/switchd/
func TestNetnsDCPolicyFigure(t *testing.T) {
	vms, switches, changes := 1000, 2, 6
	if os.Getenv("TETHER_TEST_ALL") == "1" {
		vms, switches, changes = 10000, 3, 20
	}
	const live = 4 // associations per switch
	pki := writeDBPKI(t, t.TempDir())
	db := startPolicyDB(t, pki, 0)
	ctx := context.Background()

	// The store: 10 profiles, a group per 100 VMs (by UUID), the VMs'
	// placements, and group "hot" (higher priority) with the live VMs.
	t0 := time.Now()
	for i := 0; i < 10; i++ {
		db.create(t, &policy.Profile{Name: fmt.Sprintf("p%d", i), VID: uint16(500 + i), Mode: policy.ModeSwitch})
	}
	db.create(t, &policy.Profile{Name: "hot", VID: 301, Mode: policy.ModeSwitch})
	var hot []string
	for s := 0; s < switches; s++ {
		for j := 0; j < live; j++ {
			hot = append(hot, uuidN(1+s*live+j).String())
		}
	}
	db.create(t, &policy.PortGroup{Name: "hot", Profile: "hot", Match: policy.Match{UUIDs: hot, Priority: 10}})
	var pls []policy.Placement
	for g := 0; g*100 < vms; g++ {
		var ids []string
		for n := g*100 + 1; n <= min(vms, (g+1)*100); n++ {
			ids = append(ids, uuidN(n).String())
			host := fmt.Sprintf("hv%d", n%50)
			if n <= switches*live {
				host = "hostA"
			}
			pls = append(pls, *placementOf(n, fmt.Sprintf("vm-%d", n), host, policy.StateRunning))
		}
		db.create(t, &policy.PortGroup{Name: fmt.Sprintf("g%d", g), Profile: fmt.Sprintf("p%d", g%10), Match: policy.Match{UUIDs: ids}})
	}
	if _, err := db.st.PutPlacements(ctx, pls); err != nil {
		t.Fatal(err)
	}
	t.Logf("store: %d placements, %d groups, 11 profiles written in %v", vms, (vms+99)/100+1, time.Since(t0).Round(time.Millisecond))

	// The switches, each with its live associations on VID 301.
	type sw struct {
		l    *lab
		sd   *switchd
		vms  []int
		fail string
	}
	sws := make([]*sw, switches)
	for s := range sws {
		l := newDCLab(t, db.policyCfg(60*time.Second))
		l.cfg.Name = fmt.Sprintf("tor%d", s+1)
		ts := time.Now()
		sd := l.start(t)
		t.Logf("switch %s started (cache listed) in %v", l.cfg.Name, time.Since(ts).Round(time.Millisecond))
		a := l.station(t, l.A, l.hostA)
		a.mu.Lock()
		a.reassociate = true
		a.mu.Unlock()
		waitNeighbours(t, sd, a, "swA", "hostA")
		w := &sw{l: l, sd: sd}
		for j := 0; j < live; j++ {
			n := 1 + s*live + j
			res := a.do(wire.VSIAssociate, vsiOf(uuidN(n), macN(n), 0, 1))
			if res.Err != nil || res.Filters[0].VID != 301 {
				t.Fatalf("switch %d: associate VM%d: %+v (rejects %+v)", s, n, res, sd.d.Rejects())
			}
			w.vms = append(w.vms, n)
		}
		sws[s] = w
	}

	// enforced reads the kernel's table of w until every live VM has vid
	// and none the old one.
	enforced := func(w *sw, vid, old uint16) bool {
		st, err := w.l.enf.Observed(ctx)
		if err != nil {
			w.fail = err.Error()
			return false
		}
		for _, n := range w.vms {
			if !slices.Contains(st["swA"].Allowed, pairN(n, vid)) || slices.Contains(st["swA"].Allowed, pairN(n, old)) {
				return false
			}
		}
		return true
	}
	// revoked reads it until no live VM has the old VID.
	revoked := func(w *sw, old uint16) bool {
		st, err := w.l.enf.Observed(ctx)
		if err != nil {
			return false
		}
		for _, n := range w.vms {
			if slices.Contains(st["swA"].Allowed, pairN(n, old)) {
				return false
			}
		}
		return true
	}
	var allEnf, allRev, allReq, writes []time.Duration
	vid := uint16(301)
	for c := 0; c < changes; c++ {
		old := vid
		vid = 301 + uint16((c+1)%2)
		tw := time.Now()
		db.updateProfile(t, "hot", func(p *policy.Profile) { p.VID = vid })
		t0 := time.Now()
		writes = append(writes, t0.Sub(tw))
		var wg sync.WaitGroup
		enf := make([]time.Duration, len(sws))
		rev := make([]time.Duration, len(sws))
		for i, w := range sws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := t0.Add(20 * time.Second)
				for rev[i] == 0 || enf[i] == 0 {
					if rev[i] == 0 && revoked(w, old) {
						rev[i] = time.Since(t0)
					}
					if enforced(w, vid, old) {
						enf[i] = time.Since(t0)
						if rev[i] == 0 {
							rev[i] = enf[i]
						}
					}
					if time.Now().After(deadline) {
						w.fail = fmt.Sprintf("change %d not enforced within 20s", c)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		wg.Wait()
		for _, w := range sws {
			if w.fail != "" {
				t.Fatalf("switch %s: %s (rejects %+v)", w.l.cfg.Name, w.fail, w.sd.d.Rejects())
			}
		}
		// When the stations' new ASSOCIATEs reached each switch's decider
		// (the new association's start).
		reqs := make([]time.Duration, len(sws))
		for i, w := range sws {
			for _, v := range w.sd.d.VMs() {
				reqs[i] = max(reqs[i], v.Since.Sub(t0))
			}
		}
		allReq = append(allReq, slices.Max(reqs))
		t.Logf("change %2d: VID %d -> %d, store write %v, revoked %v, re-association reached the switch %v, enforced %v (per switch)", c+1, old, vid,
			writes[c].Round(100*time.Microsecond), roundAll(rev), roundAll(reqs), roundAll(enf))
		allEnf = append(allEnf, slices.Max(enf))
		allRev = append(allRev, slices.Max(rev))
		time.Sleep(200 * time.Millisecond)
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	t.Logf("profile VID change to enforced on every switch: %d VMs in the store, %d switches, %d live associations each, %d changes",
		vms, switches, live, changes)
	t.Logf("  store Update (returned):                          p50 %v  p99 %v", pct(writes, 0.5), pct(writes, 0.99))
	t.Logf("  old pairs revoked on every switch (after Update):  p50 %v  p99 %v", pct(allRev, 0.5), pct(allRev, 0.99))
	t.Logf("  stations' new ASSOCIATEs reached every switch:     p50 %v  p99 %v", pct(allReq, 0.5), pct(allReq, 0.99))
	t.Logf("  new pairs enforced on every switch (after Update,  p50 %v  p99 %v   (target < 100ms)", pct(allEnf, 0.5), pct(allEnf, 0.99))
	t.Logf("    incl. each station's re-association)")
	for _, w := range sws {
		rl := w.sd.d.Status(ctx).RuleLatency
		t.Logf("  switch %s: request reaching the decider to rule installed (verify incl. the replay mark's fsync, nftables): %d requests, p50 %dµs p99 %dµs max %dµs",
			w.l.cfg.Name, rl.Count, rl.P50, rl.P99, rl.Max)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Microsecond)
	}
	return out
}

// grantedProfile returns the profile port's VDP bridge grants VM vm (what
// the station hears at its next keep-alive), nil when none.
func grantedProfile(d *Daemon, port string, vm verify.UUID) *wire.TetherProfile {
	d.mu.Lock()
	p := d.ports[port]
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	br := p.bridge
	p.mu.Unlock()
	if br == nil {
		return nil
	}
	for _, r := range d.tbl.all() {
		if r.port != port || r.vm != vm {
			continue
		}
		if g, ok := br.Lookup(r.key); ok && g.Profile != nil {
			return g.Profile
		}
	}
	return nil
}
