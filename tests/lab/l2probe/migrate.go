package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/l2/rawsock"
)

// etherTypeRARP is Reverse ARP, what QEMU announces a migrated guest's MAC
// with (qemu_announce_self).
const etherTypeRARP = 0x8035

// migrateConfig is migrate mode's script, in libvirt's order of a live
// migration (qemu_migration.c): the destination's started hook runs in
// the Prepare phase, before the memory transfer, while the guest still
// runs on the source; the guest moves at the switchover, with no hook on
// the destination; the source's stopped hook runs after it.
type migrateConfig struct {
	src, dst string // the namespaces of the source and the destination
	mac      net.HardwareAddr
	vid      uint16
	interval time.Duration // between two frames
	lead     time.Duration // frames from the source before the started hook
	started  string        // the destination's started hook (shell command)
	during   string        // a check run once started returned (the overlap), before the switchover
	transfer time.Duration // the memory transfer: frames from the source after started (and during) returned
	stopped  string        // the source's stopped hook, started at the switchover
	after    int           // frames from the destination after the switchover
	wait     time.Duration // how long to wait for stragglers after the last frame
}

// migrateResult is what migrate mode measured.
type migrateResult struct {
	srcSent, srcLost int  // frames from the source (counted at the destination)
	dstSent, dstLost int  // frames from the destination (counted at the source)
	rarp             bool // the destination's RARP reached the source
	dstFirst         int  // the first destination frame that arrived (index from 0; -1: none)
	duringOK         bool // the during check succeeded (true without one)
	stoppedAt        int  // the destination frame being sent when the stopped hook returned
	rxDrops          uint64
	backlogDrops     uint64 // frames the kernel dropped from its per-CPU input backlogs meanwhile (every namespace)
	startedTook      time.Duration
	stoppedTook      time.Duration
}

// String is the one line migrate mode prints: key=value pairs.
func (r migrateResult) String() string {
	return fmt.Sprintf("src_sent=%d src_lost=%d dst_sent=%d dst_lost=%d rarp=%v dst_first_received=%d during_ok=%v stopped_at=%d rx_socket_drops=%d backlog_drops=%d started_cmd=%v stopped_cmd=%v",
		r.srcSent, r.srcLost, r.dstSent, r.dstLost, r.rarp, r.dstFirst, r.duringOK, r.stoppedAt, r.rxDrops, r.backlogDrops,
		r.startedTook.Round(time.Microsecond), r.stoppedTook.Round(time.Microsecond))
}

// parseMAC and parseVID check the command line's MAC and VID.
func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("source MAC %q: want aa:bb:cc:dd:ee:ff", s)
	}
	return mac, nil
}

func parseVID(s string) (uint16, error) {
	vid, err := strconv.ParseUint(s, 10, 12)
	if err != nil || vid == 4095 {
		return 0, fmt.Errorf("VID %q: want 0 (untagged) to 4094", s)
	}
	return uint16(vid), nil
}

// sink counts the numbered frames and the RARPs from mac one socket
// receives.
type sink struct {
	mu   sync.Mutex
	seen map[int]bool
	rarp bool
	done chan struct{}
}

func newSink(ctx context.Context, rx *rawsock.Socket, mac net.HardwareAddr, tag []byte) *sink {
	s := &sink{seen: map[int]bool{}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			k, err := rx.ReadFrame(ctx, buf)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			b := buf[:k]
			if len(b) >= 18 && bytes.Equal(b[6:12], mac) {
				et := binary.BigEndian.Uint16(b[12:])
				if et == 0x8100 {
					et = binary.BigEndian.Uint16(b[16:])
				}
				if et == etherTypeRARP {
					s.mu.Lock()
					s.rarp = true
					s.mu.Unlock()
					continue
				}
			}
			i := bytes.Index(b, tag)
			if i < 0 || i+len(tag)+4 > len(b) {
				continue
			}
			s.mu.Lock()
			s.seen[int(binary.BigEndian.Uint32(b[i+len(tag):]))] = true
			s.mu.Unlock()
		}
	}()
	return s
}

// migrateProbe plays a live migration of the guest with mac between the
// namespaces' eth0s: a stream of numbered broadcast frames (one every
// interval) leaves the source from lead before the destination's started
// hook, goes on while the hook runs, while the during check runs, and for
// transfer after; then at the switchover the destination sends a RARP and
// the stream goes on from there (after frames) while the source's stopped
// hook runs. Frames from the source are counted on the destination's
// eth0, those from the destination on the source's: each side's losses.
func migrateProbe(c migrateConfig) (migrateResult, error) {
	res := migrateResult{dstFirst: -1, stoppedAt: -1, duringOK: true}
	backlog0 := softnetDrops()
	runtime.LockOSThread()
	opts := rawsock.Options{Groups: [][6]byte{}, ReceiveBuffer: 64 << 20}
	rxDst, err := listenInOpts(c.dst, unix.ETH_P_ALL, opts)
	if err != nil {
		return res, err
	}
	defer rxDst.Close()
	rxSrc, err := listenInOpts(c.src, unix.ETH_P_ALL, opts)
	if err != nil {
		return res, err
	}
	defer rxSrc.Close()
	txSrc, err := listenIn(c.src, 0x88b6)
	if err != nil {
		return res, err
	}
	defer txSrc.Close()
	txDst, err := listenIn(c.dst, 0x88b6)
	if err != nil {
		return res, err
	}
	defer txDst.Close()

	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return res, err
	}
	header := func(et uint16) []byte {
		f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		f = append(f, c.mac...)
		if c.vid != 0 {
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, c.vid)
		}
		return binary.BigEndian.AppendUint16(f, et)
	}
	// RARP request "who is mac" (RFC 903), as QEMU sends it.
	rarp := header(etherTypeRARP)
	rarp = binary.BigEndian.AppendUint16(rarp, 1)      // Ethernet
	rarp = binary.BigEndian.AppendUint16(rarp, 0x0800) // IPv4
	rarp = append(rarp, 6, 4)
	rarp = binary.BigEndian.AppendUint16(rarp, 3) // reverse request
	rarp = append(rarp, c.mac...)
	rarp = append(rarp, 0, 0, 0, 0)
	rarp = append(rarp, c.mac...)
	rarp = append(rarp, 0, 0, 0, 0)
	tag := append(append([]byte{}, magic...), nonce[:]...)
	hdr := header(etherTypeTest)
	frame := func(seq int) []byte {
		f := append(append(append([]byte{}, hdr...), tag...), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(f[len(f)-4:], uint32(seq))
		for len(f) < 60 {
			f = append(f, 0)
		}
		return f
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	atDst, atSrc := newSink(ctx, rxDst, c.mac, tag), newSink(ctx, rxSrc, c.mac, tag)

	// The sender: one frame every interval, paced on the clock (a late
	// wake-up sends what it owes at once), from the source until the
	// switchover, then from the destination.
	type phase struct {
		tx    *rawsock.Socket
		first bool // send the RARP first
	}
	var (
		mu      sync.Mutex
		cur     = phase{tx: txSrc}
		seq     int
		srcLast = -1 // the last sequence number sent from the source
	)
	stop := make(chan struct{})
	sendErr := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := 0; ; i++ {
			if d := time.Until(start.Add(time.Duration(i+1) * c.interval)); d > 0 {
				time.Sleep(d)
			}
			select {
			case <-stop:
				sendErr <- nil
				return
			default:
			}
			mu.Lock()
			ph := cur
			if ph.first {
				cur.first = false
			}
			n := seq
			seq++
			if ph.tx == txSrc {
				srcLast = n
			}
			mu.Unlock()
			if ph.first {
				if err := ph.tx.WriteFrame(ctx, rarp); err != nil {
					sendErr <- fmt.Errorf("send the RARP: %w", err)
					return
				}
			}
			if err := ph.tx.WriteFrame(ctx, frame(n)); err != nil {
				sendErr <- fmt.Errorf("send frame %d: %w", n, err)
				return
			}
		}
	}()
	fail := func(err error) (migrateResult, error) {
		close(stop)
		<-sendErr
		return res, err
	}
	run := func(cmdline string) (time.Duration, error) {
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", cmdline)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		err := cmd.Run()
		return time.Since(t0), err
	}

	time.Sleep(c.lead)
	// Prepare phase: the destination's started hook, the guest on the
	// source.
	if res.startedTook, err = run(c.started); err != nil {
		return fail(fmt.Errorf("started %q: %w", c.started, err))
	}
	if c.during != "" {
		if _, err := run(c.during); err != nil {
			res.duringOK = false
			fmt.Fprintf(os.Stderr, "l2probe: during %q: %v\n", c.during, err)
		}
	}
	time.Sleep(c.transfer)
	// Switchover: the guest resumes on the destination and announces
	// itself; the source's Confirm phase runs its stopped hook.
	mu.Lock()
	cur = phase{tx: txDst, first: true}
	switchSeq := seq
	mu.Unlock()
	stoppedErr := make(chan error, 1)
	go func() {
		var err error
		res.stoppedTook, err = run(c.stopped)
		mu.Lock()
		res.stoppedAt = seq - switchSeq
		mu.Unlock()
		stoppedErr <- err
	}()
	for {
		mu.Lock()
		n := seq - switchSeq
		mu.Unlock()
		if n >= c.after {
			break
		}
		time.Sleep(c.interval * 10)
	}
	close(stop)
	if err := <-sendErr; err != nil {
		return res, err
	}
	if err := <-stoppedErr; err != nil {
		return res, fmt.Errorf("stopped %q: %w", c.stopped, err)
	}
	time.Sleep(c.wait)
	cancel()
	<-atDst.done
	<-atSrc.done

	mu.Lock()
	end := seq
	mu.Unlock()
	res.srcSent, res.dstSent = srcLast+1, end-switchSeq
	for i := 0; i <= srcLast; i++ {
		if !atDst.seen[i] {
			res.srcLost++
		}
	}
	for i := switchSeq; i < end; i++ {
		if !atSrc.seen[i] {
			res.dstLost++
		} else if res.dstFirst < 0 {
			res.dstFirst = i - switchSeq
		}
	}
	res.rarp = atSrc.rarp
	for _, rx := range []*rawsock.Socket{rxDst, rxSrc} {
		if ks, err := rx.KernelStats(); err == nil {
			res.rxDrops += uint64(ks.Drops)
		}
	}
	res.backlogDrops = softnetDrops() - backlog0
	return res, nil
}

// softnetDrops is the kernel's count of frames dropped from the per-CPU
// input backlogs (/proc/net/softnet_stat's second column, summed over the
// CPUs): a veth frame is queued there before the bridge sees it, and the
// backlogs are shared by every namespace, so another program's flood on
// a starved machine drops the lab's frames there. 0 when unreadable.
func softnetDrops() uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var n uint64
	for line := range bytes.Lines(b) {
		if f := bytes.Fields(line); len(f) >= 2 {
			v, _ := strconv.ParseUint(string(f[1]), 16, 64)
			n += v
		}
	}
	return n
}
