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
	"time"

	"golang.org/x/sys/unix"

	"github.com/tether-net/tether/l2/rawsock"
)

// etherTypeRARP is Reverse ARP, what QEMU announces a migrated guest's MAC
// with (qemu_announce_self).
const etherTypeRARP = 0x8035

// streamResult is what stream mode measured.
type streamResult struct {
	sent, received int
	rarp           bool
	firstSeq       int           // the first frame that arrived (-1: none)
	rxDrops        uint64        // frames the receiving socket had no room for (any frame)
	hook           time.Duration // how long the -after command ran
	send           time.Duration // from the RARP to the last frame sent
}

// String is the one line stream mode prints: key=value pairs.
func (r streamResult) String() string {
	return fmt.Sprintf("sent=%d received=%d lost=%d rarp=%v first_received=%d rx_socket_drops=%d after_cmd=%v send=%v",
		r.sent, r.received, r.sent-r.received, r.rarp, r.firstSeq, r.rxDrops, r.hook.Round(time.Microsecond), r.send.Round(time.Microsecond))
}

// streamProbe runs the -after command (the destination's started hook:
// when it returns, libvirt lets the guest run; with concurrent, the guest
// runs at once while the hook runs, as when nothing holds it back), then
// at once sends from
// FROM's eth0, as the guest would after a live migration, a RARP from mac
// and n numbered broadcast frames tagged vidText, one every interval, and
// counts the distinct ones that reach TO's eth0 (waiting up to wait after
// the last).
func streamProbe(from, to, srcMAC, vidText string, n int, interval time.Duration, after string, concurrent bool, wait time.Duration) (streamResult, error) {
	res := streamResult{firstSeq: -1}
	mac, err := net.ParseMAC(srcMAC)
	if err != nil || len(mac) != 6 {
		return res, fmt.Errorf("source MAC %q: want aa:bb:cc:dd:ee:ff", srcMAC)
	}
	vid, err := strconv.ParseUint(vidText, 10, 12)
	if err != nil || vid == 4095 {
		return res, fmt.Errorf("VID %q: want 0 (untagged) to 4094", vidText)
	}
	runtime.LockOSThread()
	// A receive buffer for every frame of the stream: the receiver may be
	// descheduled for a while on a loaded machine, and a frame the socket
	// had no room for would count as lost on the wire.
	rx, err := listenInOpts(to, unix.ETH_P_ALL, rawsock.Options{Groups: [][6]byte{}, ReceiveBuffer: 64 << 20})
	if err != nil {
		return res, err
	}
	defer rx.Close()
	tx, err := listenIn(from, 0x88b6)
	if err != nil {
		return res, err
	}
	defer tx.Close()

	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return res, err
	}
	header := func(et uint16) []byte {
		f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		f = append(f, mac...)
		if vid != 0 {
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, uint16(vid))
		}
		return binary.BigEndian.AppendUint16(f, et)
	}
	// RARP request "who is mac" (RFC 903), as QEMU sends it.
	rarp := header(etherTypeRARP)
	rarp = binary.BigEndian.AppendUint16(rarp, 1)      // Ethernet
	rarp = binary.BigEndian.AppendUint16(rarp, 0x0800) // IPv4
	rarp = append(rarp, 6, 4)
	rarp = binary.BigEndian.AppendUint16(rarp, 3) // reverse request
	rarp = append(rarp, mac...)
	rarp = append(rarp, 0, 0, 0, 0)
	rarp = append(rarp, mac...)
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
	type counts struct {
		seen  map[int]bool
		first int
		rarp  bool
	}
	done := make(chan counts, 1)
	go func() {
		c := counts{seen: make(map[int]bool, n), first: -1}
		buf := make([]byte, 2048)
		for {
			k, err := rx.ReadFrame(ctx, buf)
			if err != nil {
				if ctx.Err() != nil {
					done <- c
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
					c.rarp = true
					continue
				}
			}
			i := bytes.Index(b, tag)
			if i < 0 || i+len(tag)+4 > len(b) {
				continue
			}
			seq := int(binary.BigEndian.Uint32(b[i+len(tag):]))
			if seq < n && !c.seen[seq] {
				if c.first < 0 {
					c.first = seq
				}
				c.seen[seq] = true
			}
		}
	}()

	cmdDone := make(chan error, 1)
	if after != "" {
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", after)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return res, fmt.Errorf("-after %q: %w", after, err)
		}
		go func() {
			err := cmd.Wait()
			res.hook = time.Since(t0)
			cmdDone <- err
		}()
		if !concurrent {
			if err := <-cmdDone; err != nil {
				return res, fmt.Errorf("-after %q: %w", after, err)
			}
			cmdDone <- nil
		}
	} else {
		cmdDone <- nil
	}
	start := time.Now()
	if err := tx.WriteFrame(ctx, rarp); err != nil {
		return res, fmt.Errorf("send the RARP: %w", err)
	}
	for seq := range n {
		// Paced on the clock, not on sleeps, so a late wake-up sends the
		// frames it owes at once.
		if d := time.Until(start.Add(time.Duration(seq+1) * interval)); d > 0 {
			time.Sleep(d)
		}
		if err := tx.WriteFrame(ctx, frame(seq)); err != nil {
			return res, fmt.Errorf("send frame %d: %w", seq, err)
		}
		res.sent++
	}
	res.send = time.Since(start)
	if err := <-cmdDone; err != nil {
		return res, fmt.Errorf("-after %q: %w", after, err)
	}
	time.Sleep(wait)
	cancel()
	c := <-done
	res.received, res.firstSeq, res.rarp = len(c.seen), c.first, c.rarp
	if ks, err := rx.KernelStats(); err == nil {
		res.rxDrops = ks.Drops
	}
	return res, nil
}
