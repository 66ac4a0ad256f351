//go:build linux

package rawsock_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// listenIn opens a Socket inside ns and closes it at the end of the test.
func listenIn(t *testing.T, ns *netnstest.NS, ifname string, etherType uint16, opts rawsock.Options) *rawsock.Socket {
	t.Helper()
	var s *rawsock.Socket
	err := ns.Do(func() error {
		var err error
		s, err = rawsock.Listen(ifname, etherType, opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func frame(dst, src [6]byte, etherType uint16, payload string) []byte {
	f := append(append([]byte(nil), dst[:]...), src[:]...)
	f = append(f, byte(etherType>>8), byte(etherType))
	f = append(f, payload...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

func TestSocketVeth(t *testing.T) {
	netnstest.Require(t)
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")

	a := listenIn(t, nsA, "a0", wire.EtherTypeLLDP, rawsock.Options{})
	b := listenIn(t, nsB, "b0", wire.EtherTypeLLDP, rawsock.Options{ReceiveBuffer: 1 << 16})
	ecpB := listenIn(t, nsB, "b0", 0x8940, rawsock.Options{Groups: [][6]byte{}})
	if a.Interface().Name != "a0" || a.Interface().Index == 0 || a.Interface().MAC == ([6]byte{}) {
		t.Fatalf("Interface() = %+v", a.Interface())
	}
	if a.EtherType() != wire.EtherTypeLLDP {
		t.Fatalf("EtherType() = %#x", a.EtherType())
	}

	// The groups are joined on the interface.
	maddr := netnstest.Run(t, "ip", "-n", nsA.Name, "maddr", "show", "dev", "a0")
	for _, g := range []string{"01:80:c2:00:00:00", "01:80:c2:00:00:03", "01:80:c2:00:00:0e"} {
		if !strings.Contains(maddr, g) {
			t.Errorf("a0 has not joined %s:\n%s", g, maddr)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src := a.Interface().MAC
	buf := make([]byte, 2000)
	for _, dst := range rawsock.DefaultGroups() {
		want := frame(dst, src, wire.EtherTypeLLDP, "hello "+string(rune('a'+dst[5])))
		if err := a.WriteFrame(ctx, want); err != nil {
			t.Fatal(err)
		}
		n, err := b.ReadFrame(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("read %x, want %x", buf[:n], want)
		}
	}

	// An ECP frame reaches the ECP socket and not the LLDP one.
	ecp := frame(wire.NearestCustomerBridge, src, 0x8940, "ecp")
	if err := a.WriteFrame(ctx, ecp); err != nil {
		t.Fatal(err)
	}
	n, err := ecpB.ReadFrame(ctx, buf)
	if err != nil || !bytes.Equal(buf[:n], ecp) {
		t.Fatalf("ECP socket read %x, %v", buf[:n], err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if n, err := b.ReadFrame(short, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LLDP socket read %x, %v; want nothing (DeadlineExceeded)", buf[:n], err)
	}

	// The sender does not read back its own frames.
	if n, err := a.ReadFrame(short, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sender read back %x, %v", buf[:n], err)
	}

	// Cancelling the context unblocks a read promptly.
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := b.ReadFrame(cctx, buf)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	ccancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("cancelled read took %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("cancel did not unblock the read")
	}
	// The socket still works after a cancelled read.
	want := frame(wire.NearestBridge, src, wire.EtherTypeLLDP, "after cancel")
	if err := a.WriteFrame(ctx, want); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ReadFrame(ctx, buf); err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("read after cancel: %x, %v", buf[:n], err)
	}

	ks, err := b.KernelStats()
	if err != nil {
		t.Fatal(err)
	}
	if ks.Packets != 4 || ks.Drops != 0 {
		t.Fatalf("kernel stats %+v, want 4 packets and no drops", ks)
	}

	// Close unblocks a read with ErrClosed and leaves the groups.
	go func() {
		_, err := a.ReadFrame(context.Background(), buf)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, rawsock.ErrClosed) {
			t.Fatalf("read across Close = %v, want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock the read")
	}
	if err := a.WriteFrame(ctx, want); !errors.Is(err, rawsock.ErrClosed) {
		t.Fatalf("write after Close = %v, want ErrClosed", err)
	}
	if maddr := netnstest.Run(t, "ip", "-n", nsA.Name, "maddr", "show", "dev", "a0"); strings.Contains(maddr, "01:80:c2:00:00:0e") {
		t.Errorf("a0 still in 01:80:c2:00:00:0e after Close:\n%s", maddr)
	}
}

func TestListenErrors(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t)
	err := ns.Do(func() error {
		_, err := rawsock.Listen("nosuchif0", wire.EtherTypeLLDP, rawsock.Options{})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Fatalf("Listen on a missing interface = %v", err)
	}
	// Loopback has no EUI-48 address, so nothing could be sent from it.
	err = ns.Do(func() error {
		s, err := rawsock.Listen("lo", wire.EtherTypeLLDP, rawsock.Options{Groups: [][6]byte{}})
		if err == nil {
			s.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "EUI-48") {
		t.Fatalf("Listen on lo = %v, want an EUI-48 error", err)
	}
}

// TestReceiverLinkFlap: a Receiver keeps reading across a link flap, which
// Linux reports to packet sockets as ENETDOWN.
func TestReceiverLinkFlap(t *testing.T) {
	netnstest.Require(t)
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	a := listenIn(t, nsA, "a0", wire.EtherTypeLLDP, rawsock.Options{})
	b := listenIn(t, nsB, "b0", wire.EtherTypeLLDP, rawsock.Options{})
	r := rawsock.NewReceiver(b, rawsock.ReceiverOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	netnstest.Run(t, "ip", "-n", nsB.Name, "link", "set", "b0", "down")
	waitFor(t, func() bool { return r.Stats().LinkDown == 1 })
	netnstest.SetUp(t, nsB, "b0")
	want := frame(wire.NearestBridge, a.Interface().MAC, wire.EtherTypeLLDP, "after the flap")
	if err := a.WriteFrame(ctx, want); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-r.Frames():
		if !bytes.Equal(f.Data, want) {
			t.Fatalf("got %x", f.Data)
		}
	case err := <-done:
		t.Fatalf("Run ended across the flap: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no frame after the link came back")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBridgePort checks that a socket on a port of a Linux bridge hears
// ECP and LLDP sent to the nearest customer bridge address only in
// BridgePort mode: the bridge consumes the frame before an EtherType-bound
// socket sees it.
func TestBridgePort(t *testing.T) {
	netnstest.Require(t)
	sw, host := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, sw, "p0", host, "h0")
	netnstest.Run(t, "ip", "-n", sw.Name, "link", "add", "br0", "type", "bridge")
	netnstest.Run(t, "ip", "-n", sw.Name, "link", "set", "p0", "master", "br0")
	netnstest.SetUp(t, sw, "br0")

	plain := listenIn(t, sw, "p0", 0x8940, rawsock.Options{})
	tap := listenIn(t, sw, "p0", 0x8940, rawsock.Options{BridgePort: true})
	lldp := listenIn(t, sw, "p0", wire.EtherTypeLLDP, rawsock.Options{BridgePort: true})
	h := listenIn(t, host, "h0", 0x8940, rawsock.Options{})
	src := h.Interface().MAC

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ecp := frame(wire.NearestCustomerBridge, src, 0x8940, "ecp-to-switchd")
	if err := h.WriteFrame(ctx, ecp); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	n, err := tap.ReadFrame(ctx, buf)
	if err != nil || !bytes.Equal(buf[:n], ecp) {
		t.Fatalf("bridge-port socket: %v, % x", err, buf[:n])
	}
	// The EtherType filter keeps LLDP sockets free of ECP.
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if n, err := lldp.ReadFrame(short, buf); err == nil {
		t.Fatalf("LLDP bridge-port socket got a non-LLDP frame: % x", buf[:n])
	}
	short3, cancel3 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel3()
	if n, err := plain.ReadFrame(short3, buf); err == nil {
		// Kernels may change this; the test documents why BridgePort exists.
		t.Logf("note: an EtherType-bound socket on a bridge port also saw the frame (% x)", buf[:n])
	}
}
