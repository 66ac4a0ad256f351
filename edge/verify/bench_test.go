package verify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tether-net/tether/edge/verify"
	"github.com/tether-net/tether/edge/vmmanager"
	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// Size of the benchmark's data centre: benchPorts ports, each with one
// host that runs benchVMs VMs (one vNIC each, S-Tag = VM index + 1).
const (
	benchPorts = 64
	benchVMs   = 64
)

// benchFleet is the benchmark's switch, hosts and VM manager.
type benchFleet struct {
	stations []*station
	keys     *verify.StaticKeys
	nbrs     *verify.NeighbourTable
	vmm      *vmmanager.Manager
}

func newBenchFleet(b *testing.B) *benchFleet {
	b.Helper()
	dir := b.TempDir()
	f := &benchFleet{nbrs: verify.NewNeighbourTable()}
	hosts := make(map[string]string, benchPorts)
	var ens []verify.Enrolment
	for p := range benchPorts {
		host := fmt.Sprintf("hv%02d", p)
		s := newStation(b, host, byte(p+1))
		f.stations = append(f.stations, s)
		ens = append(ens, verify.Enrolment{Host: host, Public: s.key.Public()})
		f.nbrs.Set(fmt.Sprintf("swp%d", p), verify.Neighbour{Host: host, Signed: true, Key: s.key.ID()})
		doms := make([]dom, benchVMs)
		for j := range doms {
			n := p*benchVMs + j
			doms[j] = dom{fmt.Sprintf("vm%d", n), uuidN(n), true, []verify.MAC{macN(n)}}
		}
		hosts[host] = writeNode(b, dir, host, doms)
	}
	var err error
	if f.keys, err = verify.NewStaticKeys(ens...); err != nil {
		b.Fatal(err)
	}
	f.vmm, err = vmmanager.New(vmmanager.Config{Hosts: hosts, CacheTTL: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.vmm.Close() })
	ctx := context.Background()
	for h := range hosts {
		if err := f.vmm.Refresh(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// claims signs n ASSOCIATE claims, perFrame VSIs to a frame, round robin
// over the ports so that consecutive frames come from different channels.
// Frame i goes to port i%benchPorts; its VSIs are the port's VMs in turn.
func (f *benchFleet) claims(b *testing.B, n, perFrame int) []verify.Claim {
	b.Helper()
	out := make([]verify.Claim, 0, n)
	next := make([]int, benchPorts) // next VM per port
	for i := 0; len(out) < n; i++ {
		p := i % benchPorts
		s := f.stations[p]
		port := fmt.Sprintf("swp%d", p)
		vsis := make([]wire.VSI, 0, perFrame)
		stags := make([]uint16, 0, perFrame)
		for k := 0; k < perFrame && len(out)+k < n; k++ {
			j := next[p] % benchVMs
			next[p]++
			vm := p*benchVMs + j
			vsis = append(vsis, assocVSI(wire.VSIAssociate, uuidN(vm), 100, macN(vm)))
			stags = append(stags, uint16(j+1))
		}
		frame := s.frame(b, port, vsis...)
		for k := range vsis {
			out = append(out, verify.Claim{Port: port, Channel: port, Frame: frame, VSI: vsis[k], STag: stags[k]})
		}
	}
	return out
}

// Replay stores of the benchmark.
const (
	storeMemory   = iota // identity.MemoryCounterStore: no fsync
	storeGroup           // verify.GroupCommitStore
	storeIdentity        // identity.FileCounterStore
)

// newVerifier returns a verifier over the fleet with a replay store of
// kind store in a fresh directory; gc is the GroupCommitStore, if that.
func (f *benchFleet) newVerifier(b *testing.B, store int) (v *verify.Verifier, gc *verify.GroupCommitStore) {
	b.Helper()
	var cs identity.CounterStore
	path := filepath.Join(b.TempDir(), "replay")
	switch store {
	case storeMemory:
		cs = new(identity.MemoryCounterStore)
	case storeGroup:
		st, err := verify.OpenGroupCommitStore(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		cs, gc = st, st
	case storeIdentity:
		st, err := identity.OpenFileCounterStore(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		cs = st
	}
	v, err := verify.New(verify.Config{Switch: "tor1", Keys: f.keys, Replay: cs, Neighbours: f.nbrs, VMManager: f.vmm,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return v, gc
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVerifiedAssociates measures the whole pipeline on ASSOCIATE
// claims, from one calling goroutine: Ed25519 signature, replay window
// persisted to a file before any decision, key enrolment, LLDP neighbour,
// VM manager (package vmmanager answering from its snapshot cache, filled
// by Refresh from libvirt test-driver node files), location table and
// S-Tag table, all in memory. 64 ports and hosts, 64 VMs each; after the
// first 4,096 claims the ASSOCIATEs are refreshes of existing
// associations (the same checks, a compare-and-swap on an existing
// location entry).
//
//	serial          Check, one claim after the other: one write per claim
//	batch           CheckBatch of 256 claims (4 frames of 1 VSI per port),
//	                GroupCommitStore
//	batch16         CheckBatch of 1,024 claims in frames of 16 VSIs, as a
//	                VDP bridge batches them (one signature per frame)
//	batch/identity  batch on identity.FileCounterStore
//	batch/mem       batch on identity.MemoryCounterStore: the CPU cost
//	                without writes
//
// associates/s is wall-clock throughput; associates/cpu-s divides by the
// process's CPU time (user and system, all threads), the figure for "one
// core of the switch"; marks/write is the group commit's batch. Run with
// -cpu 1 for GOMAXPROCS=1:
//
//	go test -tags libvirt_dlopen ./edge/verify -run '^$' -bench VerifiedAssociates -cpu 1,2
func BenchmarkVerifiedAssociates(b *testing.B) {
	f := newBenchFleet(b)
	for _, bc := range []struct {
		name            string
		store           int
		batch, perFrame int
	}{
		{"serial", storeGroup, 1, 1},
		{"batch", storeGroup, 256, 1},
		{"batch16", storeGroup, 1024, 16},
		{"batch/identity", storeIdentity, 256, 1},
		{"batch/mem", storeMemory, 256, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, gc := f.newVerifier(b, bc.store)
			claims := f.claims(b, b.N, bc.perFrame)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < len(claims); i += bc.batch {
				end := min(i+bc.batch, len(claims))
				if bc.batch == 1 {
					d, err := v.Check(ctx, claims[i])
					if err != nil || !d.Accepted {
						b.Fatalf("claim %d: %+v %v", i, d, err)
					}
					continue
				}
				for k, r := range v.CheckBatch(ctx, claims[i:end]) {
					if r.Err != nil || !r.Decision.Accepted {
						b.Fatalf("claim %d: %+v", i+k, r)
					}
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "associates/s")
			if cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "associates/cpu-s")
			}
			if gc != nil {
				if w, m := gc.CommitStats(); w > 0 {
					b.ReportMetric(float64(m)/float64(w), "marks/write")
				}
			}
		})
	}
}
