//go:build linux

package switchd

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/switchconfig"
	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/wire"
)

// stationTx is lab.station with LLDP sent every tx (so that a key enrolled
// or replaced shows in switchd's neighbour table within tx, not 30 s).
func (l *lab) stationTx(t *testing.T, id *hostID, tx time.Duration) *station {
	t.Helper()
	key, _, err := LoadOrCreateKey(l.cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := newStation(t, id, key.Public(), l.A.Listen(t, "eth0", wire.EtherTypeLLDP, false), l.A.Listen(t, "eth0", wire.EtherTypeECP, false),
		netTiming, tx)
	s.start()
	return s
}

// since polls cond every 500 µs for up to 5 s and returns the time from t0
// to the first poll that saw it true.
func since(t *testing.T, t0 time.Time, what string, cond func() bool) time.Duration {
	t.Helper()
	for !cond() {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(500 * time.Microsecond)
	}
	return time.Since(t0)
}

// countRejects counts the frame refusals (no request mode) of reason on
// port, and the LLDP ones apart.
func countRejects(d *Daemon, port, reason string) (frames, lldp int) {
	for _, rj := range d.Rejects() {
		if rj.Port != port || rj.Reason != reason {
			continue
		}
		switch rj.Mode {
		case "":
			frames++
		case "LLDP":
			lldp++
		}
	}
	return frames, lldp
}

// claimRefused sends a signed ASSOCIATE of VM n from s that switchd must
// refuse as signed by an unknown key: no answer, a new unknown-key frame
// refusal on swA, no rule. The station keeps waiting for an answer to that
// VSI (response wait), so each call needs a VM of its own.
func claimRefused(t *testing.T, l *lab, sd *switchd, s *station, n int, pr string) {
	t.Helper()
	before, _ := countRejects(sd.d, "swA", verify.ReasonUnknownKey.String())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.st.Associate(ctx, stationMgr, vsiOf(uuidN(n), macN(n), 0, 1)); err == nil {
		t.Fatalf("%s: the claim of VM%d was accepted", pr, n)
	}
	waitFor(t, 3*time.Second, pr+": an unknown-key refusal", func() bool {
		after, _ := countRejects(sd.d, "swA", verify.ReasonUnknownKey.String())
		return after > before
	})
	if l.allowed(t, "swA", pairN(n, 210)) {
		t.Fatalf("%s: a rule for VM%d", pr, n)
	}
}

// TestNetnsDCHostKeys runs tether-switchd in DC-wide mode with host A
// enrolled only through the policy store (host B only in the file): A's
// signed claims are refused as unknown-key until its host record is
// created, then verified without a restart; deleting the record takes the
// live association's rule out of the kernel at once and refuses the next
// claim; replacing the record's key does the same to the old key's
// association and claims, and a station signing with the new key is
// accepted. A store record of host B (enrolled in the file) with another
// key replaces the file's key until it is deleted. It logs how long each
// store write took to reach switchd and the kernel.
func TestNetnsDCHostKeys(t *testing.T) {
	pki := writeDBPKI(t, t.TempDir())
	db := startPolicyDB(t, pki, 0)
	db.create(t,
		&policy.Profile{Name: "dc-web", VID: 210, Mode: policy.ModeSwitch},
		&policy.PortGroup{Name: "web", Profile: "dc-web", Match: policy.Match{NamePatterns: []string{"*"}}},
		placementOf(1, "web-1", "hostA", policy.StateRunning),
		placementOf(2, "web-2", "hostA", policy.StateRunning),
		placementOf(3, "web-3", "hostA", policy.StateRunning),
		placementOf(4, "web-4", "hostA", policy.StateRunning),
		placementOf(5, "web-5", "hostA", policy.StateRunning),
	)
	l := newDCLab(t, db.policyCfg(20*time.Second))
	l.cfg.HostKeys = switchconfig.HostKeys{Inline: map[string]string{"hostB": pemKey(t, l.hostB.key.Public())}}
	if err := l.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sd := l.start(t)
	ctx := context.Background()
	a := l.stationTx(t, l.hostA, time.Second)

	// Not enrolled: A's LLDP neighbour and its claims are refused.
	waitFor(t, 10*time.Second, "host A's LLDPDU refused as unknown-key", func() bool {
		_, n := countRejects(sd.d, "swA", verify.ReasonUnknownKey.String())
		return n > 0
	})
	claimRefused(t, l, sd, a, 3, "before enrolment")

	// Enrolled through the store: A's next LLDPDU is its neighbour, its
	// claim is verified and the rule is in the kernel.
	recA := &policy.Host{Name: "hostA", Role: policy.RoleHost, PublicKey: pemKey(t, l.hostA.key.Public())}
	t0 := time.Now()
	db.create(t, recA)
	el := since(t, t0, "host A's key enrolled", func() bool {
		_, err := sd.d.keys.Enrolment(ctx, l.hostA.key.ID())
		return err == nil
	})
	t.Logf("store Create of the host record (call included) to the key enrolled in switchd: %v", el.Round(100*time.Microsecond))
	waitNeighbours(t, sd, a, "swA", "hostA")
	res := a.do(wire.VSIAssociate, vsiOf(uuidN(1), macN(1), 0, 1))
	if res.Err != nil || res.Filters[0].VID != 210 || !l.allowed(t, "swA", pairN(1, 210)) {
		t.Fatalf("VM1 after enrolment: %+v (rejects %+v)", res, sd.d.Rejects())
	}
	if vms := sd.d.VMs(); len(vms) != 1 || vms[0].Verified.KeyID != l.hostA.key.ID().String() {
		t.Fatalf("vms: %+v", vms)
	}

	// Deleted from the store: the rule goes, the next claim is refused.
	t0 = time.Now()
	if _, err := db.st.Delete(ctx, policy.KindHosts, "hostA", 0); err != nil {
		t.Fatal(err)
	}
	el = since(t, t0, "VM1's rule removed", func() bool { return !l.allowed(t, "swA", pairN(1, 210)) })
	t.Logf("store Delete of the host record (call included) to the association's rule gone from the kernel: %v", el.Round(100*time.Microsecond))
	if vms := sd.d.VMs(); len(vms) != 0 {
		t.Fatalf("associations left after the key's revocation: %+v", vms)
	}
	claimRefused(t, l, sd, a, 4, "after the record's deletion")

	// Enrolled again, then the record's key replaced: the old key's
	// association ends and its claims are refused; a station signing with
	// the new key is verified.
	// Host A's agent restarts (its station still has the refused
	// requests outstanding, waiting for the VDP response timeout); its
	// shutdown LLDPDU, still refused, leaves the neighbour entry alone.
	a.stopVDP()
	a.stopLLDP()
	db.create(t, recA)
	// Wait for the enrolment itself: host A's neighbour entry, verified
	// under the same key before its revocation, may still be in the table
	// (refused LLDPDUs do not refresh nor remove it; it ages out by its
	// TTL), so the neighbour check alone can pass before switchd applies
	// the record, and a claim sent then is refused as unknown-key with no
	// answer: the station would wait its whole response timeout (16 s).
	waitFor(t, 10*time.Second, "host A's key enrolled again", func() bool {
		_, err := sd.d.keys.Enrolment(ctx, l.hostA.key.ID())
		return err == nil
	})
	a = l.stationTx(t, l.hostA, time.Second)
	waitFor(t, 5*time.Second, "host A's neighbour again", func() bool {
		n, ok := sd.d.neighbours.Neighbour("swA")
		return ok && n.Host == "hostA" && n.Key == l.hostA.key.ID()
	})
	// As tetherd's uplink does, retry a refusal that is not final (the
	// neighbour entry may still be replaced once by the new agent's
	// first LLDPDU).
	var tries []string
	waitFor(t, 40*time.Second, "VM2 verified after re-enrolment", func() bool {
		t0 := time.Now()
		res = a.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(2), 0, 1))
		if res.Err != nil {
			tries = append(tries, fmt.Sprintf("%v after %v", res.Err, time.Since(t0).Round(time.Millisecond)))
		}
		return res.Err == nil
	})
	if len(tries) > 0 {
		t.Logf("VM2 after re-enrolment: refused before it was verified: %q", tries)
	}
	if !l.allowed(t, "swA", pairN(2, 210)) {
		t.Fatalf("VM2 after re-enrolment: no rule (rejects %+v)", sd.d.Rejects())
	}
	newA := newHostID(t, "hostA")
	it, err := db.st.Get(ctx, policy.KindHosts, "hostA")
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if _, err := db.st.Update(ctx, &policy.Host{Name: "hostA", Role: policy.RoleHost, PublicKey: pemKey(t, newA.key.Public())}, it.Revision); err != nil {
		t.Fatal(err)
	}
	el = since(t, t0, "VM2's rule removed", func() bool { return !l.allowed(t, "swA", pairN(2, 210)) })
	t.Logf("store Update of the host's key (call included) to the old key's association gone from the kernel: %v", el.Round(100*time.Microsecond))
	if _, err := sd.d.keys.Enrolment(ctx, l.hostA.key.ID()); err == nil {
		t.Fatal("the old key is still enrolled")
	}
	claimRefused(t, l, sd, a, 5, "old key after the replacement")

	// Host A's agent comes back with the new key (as after a re-key).
	a.stopVDP()
	a.stopLLDP()
	a2 := l.stationTx(t, newA, time.Second)
	waitFor(t, 10*time.Second, "host A's neighbour with the new key", func() bool {
		n, ok := sd.d.neighbours.Neighbour("swA")
		return ok && n.Host == "hostA" && n.Key == newA.key.ID()
	})
	res = a2.do(wire.VSIAssociate, vsiOf(uuidN(2), macN(2), 0, 1))
	if res.Err != nil || res.Filters[0].VID != 210 || !l.allowed(t, "swA", pairN(2, 210)) {
		t.Fatalf("VM2 with the new key: %+v (rejects %+v)", res, sd.d.Rejects())
	}
	if vms := sd.d.VMs(); len(vms) != 1 || vms[0].Verified.KeyID != newA.key.ID().String() {
		t.Fatalf("vms: %+v", vms)
	}
	// Host B, enrolled only in the file, is unaffected by all of it.
	if _, err := sd.d.keys.Enrolment(ctx, l.hostB.key.ID()); err != nil {
		t.Fatalf("host B's file key: %v", err)
	}
	// A store record of host B with another key: a configuration error,
	// logged; the store's key is enrolled, the file's revoked. Deleting
	// the record puts the file's key back.
	otherB := newHostID(t, "hostB")
	db.create(t, &policy.Host{Name: "hostB", Role: policy.RoleHost, PublicKey: pemKey(t, otherB.key.Public())})
	since(t, time.Now(), "the store's key of host B in force", func() bool {
		_, errOld := sd.d.keys.Enrolment(ctx, l.hostB.key.ID())
		e, errNew := sd.d.keys.Enrolment(ctx, otherB.key.ID())
		return errOld != nil && errNew == nil && e.Host == "hostB"
	})
	if _, err := db.st.Delete(ctx, policy.KindHosts, "hostB", 0); err != nil {
		t.Fatal(err)
	}
	since(t, time.Now(), "the file's key of host B back", func() bool {
		_, errOld := sd.d.keys.Enrolment(ctx, l.hostB.key.ID())
		_, errNew := sd.d.keys.Enrolment(ctx, otherB.key.ID())
		return errOld == nil && errNew != nil
	})
	sd.stop(t) // before the store: etcd's Close waits for open watches
}
