package verify_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// TestAttacks runs each attack of issue 4 (and the other refusals) against
// a verifier whose tables already hold an accepted association, and checks
// that it is refused with the right reason, counted, logged, and leaves
// the location and S-Tag tables as they were.
func TestAttacks(t *testing.T) {
	assoc := wire.VSIAssociate
	for _, tc := range []struct {
		name  string
		claim func(w *world) verify.Claim
		want  verify.Reason
	}{
		{
			name: "forged signature",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
				c.Frame[len(c.Frame)-3] ^= 0x40 // a signature byte
				return c
			},
			want: verify.ReasonBadSignature,
		},
		{
			name: "altered VSI under a valid signature",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
				i := strings.Index(string(c.Frame), string(macA3[:]))
				c.Frame[i+5] ^= 1 // the MAC: a different VM's vNIC
				c.VSI.Filters[0].MAC[5] ^= 1
				return c
			},
			want: verify.ReasonBadSignature,
		},
		{
			name: "unknown key",
			claim: func(w *world) verify.Claim {
				return w.claim(w.stranger, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonUnknownKey,
		},
		{
			name: "replayed PDU",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
				w.mustAccept(c)
				if err := w.v.Release(context.Background(), "swp1", vmA3); err != nil {
					w.tb.Fatal(err)
				}
				return c
			},
			want: verify.ReasonReplay,
		},
		{
			name: "replayed PDU in a new buffer",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 7, assocVSI(assoc, vmA3, 100, macA3))
				w.mustAccept(c)
				c.Frame = append([]byte(nil), c.Frame...)
				return c
			},
			want: verify.ReasonReplay,
		},
		{
			// The signature does not cover the S-VID and each S-channel
			// has its own replay window, so identity accepts the frame
			// on a channel where its counter is new; the vNIC's S-Tag
			// binding stops it.
			name: "PDU of one S-channel replayed on another",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 7, assocVSI(assoc, vmA3, 100, macA3))
				w.mustAccept(c)
				c.Channel, c.STag = "swp1/svid=8", 8
				return c
			},
			want: verify.ReasonSTagBoundElsewhere,
		},
		{
			name: "DE-ASSOCIATE of one S-channel replayed on another",
			claim: func(w *world) verify.Claim {
				w.mustAccept(w.claim(w.a, "swp1", 7, assocVSI(assoc, vmA3, 100, macA3)))
				c := w.claim(w.a, "swp1", 9, assocVSI(wire.VSIDeAssociate, vmA3, 100, macA3))
				return c
			},
			want: verify.ReasonSTagBoundElsewhere,
		},
		{
			name: "host A's key on host B's port",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp2", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonKeyNotEnrolledForHost,
		},
		{
			name: "switch key claiming a VM",
			claim: func(w *world) verify.Claim {
				return w.claim(w.sw, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonKeyNotEnrolledForHost,
		},
		{
			name: "port without LLDP neighbour",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp9", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonNoNeighbour,
		},
		{
			name: "host A's other key: not the key of the LLDP neighbour",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a2, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonNeighbourKeyMismatch,
		},
		{
			name: "unsigned LLDP neighbour",
			claim: func(w *world) verify.Claim {
				w.nbrs.Set("swp1", verify.Neighbour{Host: "hostA"})
				return w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonNeighbourKeyMismatch,
		},
		{
			name: "the same MAC claimed from two ports (a cloned MAC)",
			claim: func(w *world) verify.Claim {
				return w.claim(w.b, "swp2", 0, assocVSI(assoc, vmDup, 100, macA1))
			},
			want: verify.ReasonMACLiveElsewhere,
		},
		{
			name: "the same VM and MAC claimed from two ports, VM still runs on the first host",
			claim: func(w *world) verify.Claim {
				w.mustAccept(w.claim(w.a, "swp1", 0, assocVSI(assoc, vmBoth, 100, macBoth)))
				return w.claim(w.b, "swp2", 0, assocVSI(assoc, vmBoth, 100, macBoth))
			},
			want: verify.ReasonMACLiveElsewhere,
		},
		{
			name: "a VM the VM manager does not know there",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp1", 0, assocVSI(assoc, vmB2, 100, macB2))
			},
			want: verify.ReasonVMManagerDenies,
		},
		{
			name: "a VM nobody knows",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp1", 0, assocVSI(assoc, uuidN(0x999), 100, macN(0x999)))
			},
			want: verify.ReasonVMManagerDenies,
		},
		{
			name: "a shut-off VM",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp1", 0, assocVSI(assoc, vmOff, 100, macOff))
			},
			want: verify.ReasonVMManagerDenies,
		},
		{
			name: "a known VM with a MAC it does not have",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macB2))
			},
			want: verify.ReasonVMManagerDenies,
		},
		{
			name: "an S-Tag already bound to another vNIC",
			claim: func(w *world) verify.Claim {
				return w.claim(w.a, "swp1", 10, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonSTagBoundElsewhere,
		},
		{
			name: "unsigned frame",
			claim: func(w *world) verify.Claim {
				vsi := assocVSI(assoc, vmA3, 100, macA3)
				return verify.Claim{Port: "swp1", Channel: "swp1", Frame: w.a.unsignedFrame(w.tb, vsi), VSI: vsi}
			},
			want: verify.ReasonUnsigned,
		},
		{
			name: "claimed VSI not in the signed frame",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
				c.VSI = assocVSI(assoc, vmA1, 100, macA1)
				return c
			},
			want: verify.ReasonMalformed,
		},
		{
			name: "signed LLDPDU passed as a claim",
			claim: func(w *world) verify.Claim {
				c := w.claim(w.a, "swp1", 0, assocVSI(assoc, vmA3, 100, macA3))
				c.Frame[12], c.Frame[13] = 0x88, 0xcc
				return c
			},
			want: verify.ReasonMalformed,
		},
		{
			name: "no MAC filter",
			claim: func(w *world) verify.Claim {
				v := assocVSI(assoc, vmA3, 100, macA3)
				v.FilterFormat = wire.FilterVID
				return w.claim(w.a, "swp1", 0, v)
			},
			want: verify.ReasonMalformed,
		},
		{
			name: "VM manager cannot reach the host",
			claim: func(w *world) verify.Claim {
				w.nbrs.Set("swp3", verify.Neighbour{Host: "hostC", Signed: true, Key: w.a2.key.ID()})
				if err := w.keys.Enrol(verify.Enrolment{Host: "hostC", Public: w.a2.key.Public()}); err != nil {
					w.tb.Fatal(err)
				}
				return w.claim(w.a2, "swp3", 0, assocVSI(assoc, vmA3, 100, macA3))
			},
			want: verify.ReasonVMManagerUnavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{extra: map[string]string{"hostC": "test:///nonexistent/node.xml"}})
			ctx := context.Background()
			// An accepted association that every attack must leave alone:
			// VM a1 with MAC a1 on swp1, S-Tag 10.
			w.mustAccept(w.claim(w.a, "swp1", 10, assocVSI(assoc, vmA1, 100, macA1)))
			c := tc.claim(w)
			before := w.tables()
			refusedBefore := w.v.Refused(tc.want)
			d, err := w.v.Check(ctx, c)
			if err != nil {
				t.Fatalf("internal error: %v", err)
			}
			if d.Accepted || d.Reason != tc.want {
				t.Fatalf("decision %+v, want refused for %s", d, tc.want)
			}
			if d.Message == "" {
				t.Error("no message")
			}
			var re *verify.RefusedError
			if !errors.As(d.Err(), &re) || re.Reason != tc.want {
				t.Errorf("Err() = %v", d.Err())
			}
			if got := w.v.Refused(tc.want) - refusedBefore; got != 1 {
				t.Errorf("refusals of %s counted %d times, want 1", tc.want, got)
			}
			if got := w.v.Stats().Refused[tc.want]; got == 0 {
				t.Errorf("Stats().Refused[%s] = 0", tc.want)
			}
			if l := w.log.lines("claim refused", "reason="+tc.want.String(), "port="+c.Port); len(l) != 1 {
				t.Errorf("%d log lines for the refusal, want 1:\n%s", len(l), w.log.String())
			}
			after := w.tables()
			if !maps.Equal(before.locs, after.locs) || before.stags != after.stags {
				t.Errorf("the refusal changed the tables:\nbefore %+v\nafter  %+v", before, after)
			}
			if loc, ok, _ := w.locs.Lookup(ctx, macA1); !ok || loc.Port != "swp1" || loc.VM != vmA1 {
				t.Errorf("the accepted association moved: %+v %v", loc, ok)
			}
		})
	}
}

// TestAccept checks the happy path: the MAC becomes live at the port, the
// S-Tag is bound, a refresh keeps Since, and DE-ASSOCIATE releases both.
func TestAccept(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	d := w.mustAccept(w.claim(w.a, "swp1", 10, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	if !d.Signed || d.Key != w.a.key.ID() || d.Host != "hostA" || d.VM != vmA1 || d.Migration || len(d.Released) != 0 {
		t.Errorf("decision %+v", d)
	}
	loc, ok, _ := w.locs.Lookup(ctx, macA1)
	if !ok || loc.Switch != testSwitch || loc.Port != "swp1" || loc.VM != vmA1 || loc.Host != "hostA" {
		t.Fatalf("location %+v %v", loc, ok)
	}
	if n, ok, _ := w.stags.Lookup(ctx, "swp1", 10); !ok || n.VM != vmA1 || n.MAC != macA1 {
		t.Fatalf("S-Tag 10: %+v %v", n, ok)
	}
	// A keep-alive: same claim, new counter.
	w.mustAccept(w.claim(w.a, "swp1", 10, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	loc2, _, _ := w.locs.Lookup(ctx, macA1)
	if !loc2.Since.Equal(loc.Since) || loc2.Rev <= loc.Rev {
		t.Errorf("refresh: %+v after %+v", loc2, loc)
	}
	// PRE-ASSOCIATE of another VM commits nothing.
	w.mustAccept(w.claim(w.a, "swp1", 11, assocVSI(wire.VSIPreAssociate, vmA3, 100, macA3)))
	if _, ok, _ := w.locs.Lookup(ctx, macA3); ok || w.stags.Len() != 1 {
		t.Errorf("PRE-ASSOCIATE committed: %v, %d S-Tags", ok, w.stags.Len())
	}
	// DE-ASSOCIATE (signed, checks 1 to 4) releases.
	w.mustAccept(w.claim(w.a, "swp1", 10, assocVSI(wire.VSIDeAssociate, vmA1, 100, macA1)))
	if w.locs.Len() != 0 || w.stags.Len() != 0 {
		t.Errorf("after DE-ASSOCIATE: %d locations, %d S-Tags", w.locs.Len(), w.stags.Len())
	}
	st := w.v.Stats()
	if st.Accepted != 4 || len(st.Refused) != 0 {
		t.Errorf("stats %+v", st)
	}
	// The MAC is free again: host B's VM with the cloned MAC may now
	// take it.
	w.mustAccept(w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vmDup, 100, macA1)))
}

// TestReassociateChangesMACs checks that an association that changes its
// MACs releases those it no longer uses, and that one cannot change its
// S-Tag without a DE-ASSOCIATE.
func TestReassociateChangesMACs(t *testing.T) {
	ctx := context.Background()
	vm := uuidN(0x77)
	w := newWorld(t, worldOptions{vmm: fakeVMM{nil, map[verify.UUID]verify.Confirmation{vm: {Confirmed: true, State: verify.VMRunning}}}})
	m1, m2 := macN(0x771), macN(0x772)
	w.mustAccept(w.claim(w.a, "swp1", 20, assocVSI(wire.VSIAssociate, vm, 100, m1, m2)))
	if w.locs.Len() != 2 {
		t.Fatalf("%d locations, want 2", w.locs.Len())
	}
	d, _ := w.v.Check(ctx, w.claim(w.a, "swp1", 21, assocVSI(wire.VSIAssociate, vm, 100, m2)))
	if d.Reason != verify.ReasonSTagBoundElsewhere {
		t.Errorf("S-Tag change: %+v", d)
	}
	w.mustAccept(w.claim(w.a, "swp1", 20, assocVSI(wire.VSIAssociate, vm, 100, m2)))
	if _, ok, _ := w.locs.Lookup(ctx, m1); ok {
		t.Error("MAC 1 still live after the association dropped it")
	}
	if n, ok, _ := w.stags.Lookup(ctx, "swp1", 20); !ok || n.MAC != m2 {
		t.Errorf("S-Tag 20: %+v %v, want bound to MAC 2", n, ok)
	}
	w.mustAccept(w.claim(w.a, "swp1", 20, assocVSI(wire.VSIDeAssociate, vm, 100, m2)))
	w.mustAccept(w.claim(w.a, "swp1", 21, assocVSI(wire.VSIAssociate, vm, 100, m2)))
	if w.stags.Len() != 1 || w.locs.Len() != 1 {
		t.Errorf("%d S-Tags, %d locations", w.stags.Len(), w.locs.Len())
	}
}

// fakeVMM answers for some VMs itself and asks next for the others.
type fakeVMM struct {
	next    verify.VMManager
	answers map[verify.UUID]verify.Confirmation
}

func (f fakeVMM) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	if c, ok := f.answers[vm]; ok {
		return c, nil
	}
	return f.next.Confirm(ctx, host, vm, mac)
}

// hostVMM answers per host for one VM, and asks next for the others.
type hostVMM struct {
	next    verify.VMManager
	vm      verify.UUID
	answers map[string]verify.Confirmation
	asked   atomic.Int32
}

func (f *hostVMM) Confirm(ctx context.Context, host string, vm verify.UUID, mac verify.MAC) (verify.Confirmation, error) {
	if vm == f.vm {
		f.asked.Add(1)
		return f.answers[host], nil
	}
	return f.next.Confirm(ctx, host, vm, mac)
}

// slowVMM never answers before its context ends.
type slowVMM struct{}

func (slowVMM) Confirm(ctx context.Context, _ string, _ verify.UUID, _ verify.MAC) (verify.Confirmation, error) {
	<-ctx.Done()
	return verify.Confirmation{}, ctx.Err()
}

// TestMigrationCompleted: VM mig was live at swp1 (host A); libvirt now
// has it shut off on A and running on B, so B's ASSOCIATE on swp2 takes
// the MAC over and reports the old location released.
func TestMigrationCompleted(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	old, err := w.locs.Claim(ctx, macMig, verify.Location{Switch: "tor0", Port: "swp7", VM: vmMig, Host: "hostA"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := w.mustAccept(w.claim(w.b, "swp2", 5, assocVSI(wire.VSIAssociate, vmMig, 100, macMig)))
	if !d.Migration || len(d.Released) != 1 || d.Released[0].MAC != macMig || d.Released[0].From != old {
		t.Fatalf("decision %+v, want a migration releasing %+v", d, old)
	}
	if !strings.Contains(d.Message, "left host") {
		t.Errorf("message %q", d.Message)
	}
	loc, _, _ := w.locs.Lookup(ctx, macMig)
	if loc.Switch != testSwitch || loc.Port != "swp2" || loc.Host != "hostB" {
		t.Errorf("location after migration %+v", loc)
	}
	if st := w.v.Stats(); st.Migrations != 1 {
		t.Errorf("stats %+v", st)
	}
	if len(w.log.lines("confirmed migration")) != 1 {
		t.Errorf("migration not logged:\n%s", w.log.String())
	}
}

// TestMigrationInProgress: the VM still runs on A (the source of a live
// migration), B is its destination (libvirt: paused for an incoming
// migration). B's PRE-ASSOCIATE is accepted without moving anything, its
// ASSOCIATE takes the MAC over; the same claim without the migration state
// is refused.
func TestMigrationInProgress(t *testing.T) {
	ctx := context.Background()
	vm, mac := uuidN(0x88), macN(0x88)
	f := &hostVMM{vm: vm, answers: map[string]verify.Confirmation{
		"hostA": {Confirmed: true, State: verify.VMRunning},
		"hostB": {Confirmed: true, State: verify.VMRunning},
	}}
	w := newWorld(t, worldOptions{vmm: f})
	f.next = w.vmm
	w.mustAccept(w.claim(w.a, "swp1", 0, assocVSI(wire.VSIAssociate, vm, 100, mac)))

	// Not migrating: B claims a MAC live on A while A still runs the VM.
	d, err := w.v.Check(ctx, w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vm, 100, mac)))
	if err != nil || d.Accepted || d.Reason != verify.ReasonMACLiveElsewhere {
		t.Fatalf("without migration: %+v %v", d, err)
	}

	f.answers["hostB"] = verify.Confirmation{Confirmed: true, State: verify.VMMigratingIn}
	pre := w.mustAccept(w.claim(w.b, "swp2", 0, assocVSI(wire.VSIPreAssociate, vm, 100, mac)))
	if !pre.Migration || len(pre.Released) != 0 {
		t.Errorf("PRE-ASSOCIATE %+v", pre)
	}
	if loc, _, _ := w.locs.Lookup(ctx, mac); loc.Port != "swp1" {
		t.Errorf("PRE-ASSOCIATE moved the MAC: %+v", loc)
	}
	d = w.mustAccept(w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vm, 100, mac)))
	if !d.Migration || len(d.Released) != 1 || d.Released[0].From.Port != "swp1" {
		t.Errorf("ASSOCIATE %+v", d)
	}
	if loc, _, _ := w.locs.Lookup(ctx, mac); loc.Port != "swp2" || loc.Host != "hostB" {
		t.Errorf("after migration: %+v", loc)
	}
	// The source's late DE-ASSOCIATE does not undo the destination's claim.
	w.mustAccept(w.claim(w.a, "swp1", 0, assocVSI(wire.VSIDeAssociate, vm, 100, mac)))
	if loc, ok, _ := w.locs.Lookup(ctx, mac); !ok || loc.Port != "swp2" {
		t.Errorf("after the source's DE-ASSOCIATE: %+v %v", loc, ok)
	}
}

// TestVMManagerTimeout: a VM manager that does not answer makes the claim
// refused as vm-manager-unavailable within the timeout.
func TestVMManagerTimeout(t *testing.T) {
	w := newWorld(t, worldOptions{vmm: slowVMM{}})
	v, err := verify.New(verify.Config{Switch: testSwitch, Keys: w.keys, Replay: new(identity.MemoryCounterStore),
		Neighbours: w.nbrs, VMManager: slowVMM{}, VMTimeout: 50 * time.Millisecond, Logger: w.log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := v.Check(context.Background(), w.claim(w.a, "swp1", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1)))
	if err != nil || d.Reason != verify.ReasonVMManagerUnavailable {
		t.Fatalf("%+v %v", d, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %s", el)
	}
	if code, hard := d.Reason.VDPCode(); code != wire.VDPUnableToContactManager || hard {
		t.Errorf("VDP code %s hard %v", code, hard)
	}
}

// TestLogRateLimit: a flood of forged frames on one port logs a burst and
// then nothing, while every refusal is counted and another port still
// logs.
func TestLogRateLimit(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	c := w.claim(w.a, "swp1", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1))
	c.Frame[len(c.Frame)-3] ^= 1
	const flood = 200
	for range flood {
		if d, _ := w.v.Check(ctx, c); d.Reason != verify.ReasonBadSignature {
			t.Fatalf("%+v", d)
		}
	}
	if n := w.v.Refused(verify.ReasonBadSignature); n != flood {
		t.Errorf("counted %d, want %d", n, flood)
	}
	lines := len(w.log.lines("claim refused", "port=swp1"))
	if lines < verify.DefaultLogBurst || lines > verify.DefaultLogBurst+2 {
		t.Errorf("%d lines logged for %d refusals", lines, flood)
	}
	if st := w.v.Stats(); st.LogsSuppressed != uint64(flood-lines) {
		t.Errorf("suppressed %d, want %d", st.LogsSuppressed, flood-lines)
	}
	c2 := w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vmB2, 100, macB2))
	c2.Frame[len(c2.Frame)-3] ^= 1
	_, _ = w.v.Check(ctx, c2)
	if len(w.log.lines("claim refused", "port=swp2")) != 1 {
		t.Error("the flood on swp1 silenced swp2")
	}
}

// TestCheckBatch: claims of one multi-VSI frame share one signature check;
// channels run concurrently; a second delivery of the frame (another
// buffer) is a replay.
func TestCheckBatch(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	v1 := assocVSI(wire.VSIAssociate, vmA1, 100, macA1)
	v3 := assocVSI(wire.VSIAssociate, vmA3, 100, macA3)
	frameA := w.a.frame(t, "swp1", v1, v3)
	vb := assocVSI(wire.VSIAssociate, vmB2, 100, macB2)
	frameB := w.b.frame(t, "swp2", vb)
	claims := []verify.Claim{
		{Port: "swp1", Channel: "swp1", Frame: frameA, VSI: v1},
		{Port: "swp1", Channel: "swp1", Frame: frameA, VSI: v3},
		{Port: "swp2", Channel: "swp2", Frame: frameB, VSI: vb},
		{Port: "swp1", Channel: "swp1", Frame: append([]byte(nil), frameA...), VSI: v1},
	}
	res := w.v.CheckBatch(ctx, claims)
	for i, want := range []verify.Reason{verify.ReasonNone, verify.ReasonNone, verify.ReasonNone, verify.ReasonReplay} {
		if res[i].Err != nil || res[i].Decision.Reason != want || res[i].Decision.Accepted != (want == verify.ReasonNone) {
			t.Errorf("claim %d: %+v, want %s", i, res[i], want)
		}
	}
	if w.locs.Len() != 3 {
		t.Errorf("%d locations, want 3", w.locs.Len())
	}
}

// TestReplayAfterRestart: a frame accepted before a restart is refused
// after it (the mark was durable when the decision was returned).
func TestReplayAfterRestart(t *testing.T) {
	w := newWorld(t, worldOptions{})
	dir := t.TempDir()
	open := func() (*verify.Verifier, *identity.FileCounterStore) {
		st, err := identity.OpenFileCounterStore(dir + "/replay")
		if err != nil {
			t.Fatal(err)
		}
		v, err := verify.New(verify.Config{Switch: testSwitch, Keys: w.keys, Replay: st, Neighbours: w.nbrs, VMManager: w.vmm,
			Logger: w.log.logger()})
		if err != nil {
			t.Fatal(err)
		}
		return v, st
	}
	v, st := open()
	c := w.claim(w.a, "swp1", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1))
	if d, err := v.Check(context.Background(), c); !d.Accepted {
		t.Fatalf("%+v %v", d, err)
	}
	_ = st.Close()
	v, st = open()
	defer st.Close()
	if d, _ := v.Check(context.Background(), c); d.Reason != verify.ReasonReplay {
		t.Fatalf("after restart: %+v", d)
	}
}

// TestConcurrentClaimsOneMAC: two ports race for one MAC (a cloned MAC on
// two hosts); exactly one wins.
func TestConcurrentClaimsOneMAC(t *testing.T) {
	for range 20 {
		w := newWorld(t, worldOptions{})
		ca := w.claim(w.a, "swp1", 0, assocVSI(wire.VSIAssociate, vmA1, 100, macA1))
		cb := w.claim(w.b, "swp2", 0, assocVSI(wire.VSIAssociate, vmDup, 100, macA1))
		res := w.v.CheckBatch(context.Background(), []verify.Claim{ca, cb})
		won := 0
		for _, r := range res {
			if r.Decision.Accepted {
				won++
			} else if r.Decision.Reason != verify.ReasonMACLiveElsewhere {
				t.Fatalf("%+v", r)
			}
		}
		if won != 1 {
			t.Fatalf("%d claims won", won)
		}
	}
}

func TestParseChannel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		port string
		stag uint16
		ok   bool
	}{
		{"swp3", "swp3", 0, true},
		{"swp3/svid=5", "swp3", 5, true},
		{"swp3/svid=0", "", 0, false},
		{"swp3/svid=4095", "", 0, false},
		{"swp3/vid=5", "", 0, false},
		{"/svid=5", "", 0, false},
	} {
		p, s, err := verify.ParseChannel(tc.in)
		if (err == nil) != tc.ok || p != tc.port || s != tc.stag {
			t.Errorf("ParseChannel(%q) = %q, %d, %v", tc.in, p, s, err)
		}
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := range verify.NumReasons {
		s := verify.Reason(r).String()
		if seen[s] {
			t.Errorf("duplicate name %q", s)
		}
		seen[s] = true
		if got, err := verify.ParseReason(s); err != nil || got != verify.Reason(r) {
			t.Errorf("ParseReason(%q) = %v, %v", s, got, err)
		}
	}
	for _, want := range []string{"bad-signature", "unknown-key", "replay", "key-not-enrolled-for-host",
		"neighbour-key-mismatch", "vm-manager-denies", "mac-live-elsewhere", "stag-bound-elsewhere",
		"unsigned-refused", "vm-manager-unavailable"} {
		if !seen[want] {
			t.Errorf("no reason %q", want)
		}
	}
}
