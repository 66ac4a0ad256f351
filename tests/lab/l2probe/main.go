// Command l2probe is the lab's data-plane check (tests/lab/demo.sh): it
// sends broadcast test frames out of eth0 in one network namespace, with a
// chosen source MAC and 802.1Q VID, and reports whether eth0 in another
// namespace received one, that is whether the switch between them let that
// (source MAC, VID) pair through.
//
//	l2probe [-wait 1s] FROM_NETNS TO_NETNS SRC_MAC VID
//
// The namespaces are names under /run/netns (tl-hostA). VID 0 sends the
// frames untagged. It prints "crossed" and exits 0, or prints "dropped" and
// exits 1; 2 is an error.
//
//	l2probe -migrate N [-started CMD] [-during CMD] [-transfer D] [-stopped CMD] SRC_NETNS DST_NETNS MAC VID
//
// plays a live migration of the guest with MAC in libvirt's order and
// counts the frames lost on each side (see migrateProbe).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/l2/rawsock"
)

// etherTypeTest is IEEE 802 local experimental EtherType 1.
const etherTypeTest = 0x88b5

var magic = []byte("tether-lab-probe:")

func main() {
	wait := flag.Duration("wait", time.Second, "how long to wait for a frame to arrive")
	migrate := flag.Int("migrate", 0, "migrate mode: play a live migration, sending this many frames from the destination after the switchover (see migrate.go)")
	interval := flag.Duration("interval", 500*time.Microsecond, "migrate mode: the gap between two frames")
	lead := flag.Duration("lead", 50*time.Millisecond, "migrate mode: frames from the source this long before the started hook")
	started := flag.String("started", "true", "migrate mode: the destination's started hook (shell command), run while the source sends")
	during := flag.String("during", "", "migrate mode: a check (shell command) run once the started hook returned, before the switchover")
	transfer := flag.Duration("transfer", 200*time.Millisecond, "migrate mode: the memory transfer, after the started hook (and the check) returned")
	stopped := flag.String("stopped", "true", "migrate mode: the source's stopped hook (shell command), run at the switchover")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: l2probe [-wait 1s] FROM_NETNS TO_NETNS SRC_MAC VID")
		fmt.Fprintln(os.Stderr, "       l2probe -migrate N [-interval 500us] [-lead 50ms] [-started CMD] [-during CMD] [-transfer 200ms] [-stopped CMD] [-wait 1s] SRC_NETNS DST_NETNS MAC VID")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 4 {
		flag.Usage()
		os.Exit(2)
	}
	if *migrate > 0 {
		mac, err := parseMAC(flag.Arg(2))
		var vid uint16
		if err == nil {
			vid, err = parseVID(flag.Arg(3))
		}
		var res migrateResult
		if err == nil {
			res, err = migrateProbe(migrateConfig{src: flag.Arg(0), dst: flag.Arg(1), mac: mac, vid: vid, interval: *interval,
				lead: *lead, started: *started, during: *during, transfer: *transfer, stopped: *stopped, after: *migrate, wait: *wait})
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "l2probe: %v\n", err)
			os.Exit(2)
		}
		fmt.Println(res)
		return
	}
	crossed, err := probe(flag.Arg(0), flag.Arg(1), flag.Arg(2), flag.Arg(3), *wait)
	if err != nil {
		fmt.Fprintf(os.Stderr, "l2probe: %v\n", err)
		os.Exit(2)
	}
	if !crossed {
		fmt.Println("dropped")
		os.Exit(1)
	}
	fmt.Println("crossed")
}

func probe(from, to, srcMAC, vidText string, wait time.Duration) (bool, error) {
	mac, err := net.ParseMAC(srcMAC)
	if err != nil || len(mac) != 6 {
		return false, fmt.Errorf("source MAC %q: want aa:bb:cc:dd:ee:ff", srcMAC)
	}
	vid, err := strconv.ParseUint(vidText, 10, 12)
	if err != nil || vid == 4095 {
		return false, fmt.Errorf("VID %q: want 0 (untagged) to 4094", vidText)
	}
	// Sockets belong to the namespace they are opened in; this thread
	// enters the receiver's, then the sender's, and the process exits
	// without leaving them.
	runtime.LockOSThread()
	rx, err := listenIn(to, unix.ETH_P_ALL)
	if err != nil {
		return false, err
	}
	defer rx.Close()
	tx, err := listenIn(from, 0x88b6) // an EtherType nobody sends: a sender only
	if err != nil {
		return false, err
	}
	defer tx.Close()

	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return false, err
	}
	want := append(append([]byte{}, magic...), nonce[:]...)
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame = append(frame, mac...)
	if vid != 0 {
		frame = binary.BigEndian.AppendUint16(frame, 0x8100)
		frame = binary.BigEndian.AppendUint16(frame, uint16(vid))
	}
	frame = binary.BigEndian.AppendUint16(frame, etherTypeTest)
	frame = append(frame, want...)
	for len(frame) < 60 {
		frame = append(frame, 0)
	}

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := rx.ReadFrame(ctx, buf)
			if err != nil {
				if ctx.Err() != nil {
					got <- false
					return
				}
				continue
			}
			if bytes.Contains(buf[:n], want) {
				got <- true
				return
			}
		}
	}()
	// Three copies, a third of the wait apart: one lost frame is no verdict.
	tick := time.NewTicker(wait / 3)
	defer tick.Stop()
	if err := tx.WriteFrame(ctx, frame); err != nil {
		return false, err
	}
	for sent := 1; ; {
		select {
		case ok := <-got:
			return ok, nil
		case <-tick.C:
			if sent < 3 {
				sent++
				if err := tx.WriteFrame(ctx, frame); err != nil && ctx.Err() == nil {
					return false, err
				}
			}
		}
	}
}

// listenIn opens an AF_PACKET socket on eth0 of the named namespace; the
// calling thread (locked) stays in that namespace.
func listenIn(ns string, etherType uint16) (*rawsock.Socket, error) {
	return listenInOpts(ns, etherType, rawsock.Options{Groups: [][6]byte{}})
}

// listenInOpts is listenIn with socket options.
func listenInOpts(ns string, etherType uint16, opts rawsock.Options) (*rawsock.Socket, error) {
	f, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	s, err := rawsock.Listen("eth0", etherType, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ns, err)
	}
	return s, nil
}
