package agente2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// hookOp returns the i-th (modulo 6) of the qemu hook calls a burst
// makes: libvirt's own argument triples (operation, sub-operation, extra).
func hookOp(i int) [3]string {
	ops := [...][3]string{
		{"prepare", "begin", "-"},
		{"start", "begin", "-"},
		{"started", "begin", "-"},
		{"stopped", "end", "-"},
		{"release", "end", "shutdown"},
		{"reconnect", "begin", "-"},
	}
	return ops[i%len(ops)]
}

// Burst runs the built tether-hook over and over from several goroutines,
// as libvirtd does when many domains start or stop at once, until Stop.
type Burst struct {
	env  *Env
	done chan struct{}
	wg   sync.WaitGroup

	mu   sync.Mutex
	ends []time.Time // when each run ended
	st   BurstStats
}

// BurstStats counts what the runs of a Burst did.
type BurstStats struct {
	// Runs counts the runs; Delivered and Spooled what tether-hook said.
	Runs, Delivered, Spooled int
	// Failed describes the runs that exited non-zero or did not run.
	Failed []string
}

// StartBurst starts workers goroutines that each run tether-hook with a
// random qemu hook event for a random one of doms (its XML on stdin), or,
// one time in ten, for a domain that libvirt does not have. seed makes the
// choices repeatable.
func StartBurst(env *Env, doms []Domain, workers int, seed uint64) *Burst {
	b := &Burst{env: env, done: make(chan struct{})}
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				select {
				case <-b.done:
					return
				default:
				}
				b.runOne(rng, doms)
			}
		}()
	}
	return b
}

// runOne runs tether-hook once and records the outcome.
func (b *Burst) runOne(rng *rand.Rand, doms []Domain) {
	var d Domain
	if len(doms) == 0 || rng.IntN(10) == 0 {
		d = NewDomain(60000+rng.IntN(1000), 2, true) // libvirt does not have it
	} else {
		d = doms[rng.IntN(len(doms))]
	}
	op := hookOp(rng.IntN(6))
	args := []string{"qemu", d.Name, op[0], op[1], op[2]}
	run, err := b.env.RunHook(args, []byte(d.XML()))
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Runs++
	b.ends = append(b.ends, time.Now())
	switch {
	case err != nil:
		b.st.Failed = append(b.st.Failed, err.Error())
	case run.Code != 0:
		b.st.Failed = append(b.st.Failed, fmt.Sprintf("tether-hook %v: exit %d: %s", args, run.Code, run.Stderr))
	case run.Spooled:
		b.st.Spooled++
	default:
		b.st.Delivered++
	}
}

// RunsSince returns how many runs ended after t.
func (b *Burst) RunsSince(t time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for i := len(b.ends) - 1; i >= 0 && b.ends[i].After(t); i-- {
		n++
	}
	return n
}

// Stop stops the workers, waits for the runs in progress to end (a
// tether-hook is never killed: a half-written spool file is not what the
// test is about) and returns the counts.
func (b *Burst) Stop() BurstStats {
	close(b.done)
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}
