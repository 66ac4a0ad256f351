//go:build linux

package rawsock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tether-net/tether/internal/netnstest"
	"github.com/tether-net/tether/l2/rawsock"
	"github.com/tether-net/tether/wire"
)

// readAll reads s until quiet for 200 ms and returns the payload tags of
// the frames ("#n" markers).
func readAll(t *testing.T, s *rawsock.Socket) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 2048)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		n, err := s.ReadFrame(ctx, buf)
		cancel()
		if err != nil {
			return got
		}
		if i := strings.Index(string(buf[:n]), "#"); i >= 0 {
			got = append(got, string(buf[i:i+2]))
		}
	}
}

// TestSChannelSockets: over a real veth pair, an Untagged socket reads the
// untagged ECP frames only, an SChannel socket those in an S-Tag with its
// S-VID only (read without the tag, which the kernel moved to the
// packet's metadata), and STagLink writes frames that the peer's
// SChannel socket of that S-VID reads.
func TestSChannelSockets(t *testing.T) {
	netnstest.Require(t)
	nsA, nsB := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, nsA, "a0", nsB, "b0")
	tx := listenIn(t, nsA, "a0", 0x88b7, rawsock.Options{})
	untagged := listenIn(t, nsB, "b0", wire.EtherTypeECP, rawsock.Options{Untagged: true})
	s5 := listenIn(t, nsB, "b0", wire.EtherTypeECP, rawsock.Options{SChannel: 5})
	s6 := listenIn(t, nsB, "b0", wire.EtherTypeECP, rawsock.Options{SChannel: 6, BridgePort: true})
	all := listenIn(t, nsB, "b0", wire.EtherTypeECP, rawsock.Options{})

	src := tx.Interface().MAC
	tagged := func(tpid, vid uint16, payload string) []byte {
		f := frame(wire.NearestCustomerBridge, src, wire.EtherTypeECP, payload)
		return append(append(append([]byte(nil), f[:12]...), byte(tpid>>8), byte(tpid), byte(vid>>8), byte(vid)), f[12:]...)
	}
	ctx := context.Background()
	for _, f := range [][]byte{
		frame(wire.NearestCustomerBridge, src, wire.EtherTypeECP, "#0"), // untagged
		tagged(0x88a8, 5, "#1"), // S-channel 5
		tagged(0x88a8, 6, "#2"), // S-channel 6
		tagged(0x8100, 5, "#3"), // a C-Tag with VID 5: no S-channel
		frame(wire.NearestCustomerBridge, src, wire.EtherTypeLLDP, "#4"),
	} {
		if err := tx.WriteFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	// STagLink writes in the S-Tag.
	if err := (rawsock.STagLink{Conn: tx, SVID: 5}).WriteFrame(ctx, frame(wire.NearestCustomerBridge, src, wire.EtherTypeECP, "#5")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    *rawsock.Socket
		want string
	}{
		{"Untagged", untagged, "#0"},
		{"SChannel 5", s5, "#1 #5"},
		{"SChannel 6 (bridge port)", s6, "#2"},
		{"no filter", all, "#0 #1 #2 #3 #5"},
	} {
		if got := strings.Join(readAll(t, c.s), " "); got != c.want {
			t.Errorf("%s socket read %q, want %q", c.name, got, c.want)
		}
	}
	if err := (rawsock.STagLink{Conn: tx, SVID: 5}).WriteFrame(ctx, []byte{1, 2, 3}); err == nil ||
		err.Error() != "rawsock: write on S-channel 5: 3-byte frame has no header" {
		t.Errorf("STagLink short frame: %v", err)
	}
	var err error
	for _, o := range []rawsock.Options{{SChannel: 4095}, {SChannel: 5, Untagged: true}} {
		if e := nsB.Do(func() error { _, err = rawsock.Listen("b0", wire.EtherTypeECP, o); return nil }); e != nil {
			t.Fatal(e)
		}
		if err == nil || !strings.Contains(err.Error(), "want 1-4094, or untagged alone") {
			t.Errorf("Listen with %+v: %v", o, err)
		}
	}
}
