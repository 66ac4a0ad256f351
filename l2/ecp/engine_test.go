package ecp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/wire"
)

// TestNextSentWhenAckArrives runs 500 requests between two engines whose
// clock never moves: every request after the first can only have been sent
// because the ACK of the one before arrived, since no timer ever fires.
func TestNextSentWhenAckArrives(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	a, b := ecptest.Pipe(0)
	p := ecp.Params{R: 3, RTE: 14} // 163.84 ms: lldpad would need 82 s
	ea := newEngine(t, a, ecp.Config{Name: "a", LocalMAC: macA, Clock: clk, Params: &p})
	rec := newRecorder()
	eb := newEngine(t, b, ecp.Config{Name: "b", LocalMAC: macB, Clock: clk, Params: &p, Handler: rec})
	run(t, ea)
	run(t, eb)

	const n = 500
	dl := newDoneLog()
	for i := range n {
		if err := ea.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sender %+v\nreceiver %+v", ea.Stats(), eb.Stats())
		}
	})
	for i, err := range dl.wait(t, n, 10*time.Second) {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	got := rec.wait(t, n, 5*time.Second)
	for i, r := range got {
		if k := payloadNum(t, r); k != uint32(i) {
			t.Fatalf("delivery %d carries request %d", i, k)
		}
	}
	if !clk.Now().Equal(time.Unix(0, 0)) {
		t.Fatal("the clock moved")
	}
	st := ea.Stats()
	if st.TxRequests != n || st.TxAcked != n || st.TxRetransmits != 0 || st.TxGiveUps != 0 {
		t.Errorf("sender stats %+v", st)
	}
	if st := eb.Stats(); st.RxRequests != n || st.RxDelivered != n || st.TxAcks != n || st.RxDuplicates != 0 {
		t.Errorf("receiver stats %+v", st)
	}
}

// TestRetransmitAfterAckTimer loses nothing but withholds the ACK: the
// request goes again, byte for byte, exactly when 10 µs × 2^RTE have
// passed, and the ACK then completes it.
func TestRetransmitAfterAckTimer(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	a, peer := ecptest.Pipe(0)
	p := ecp.Params{R: 3, RTE: 10}
	e := newEngine(t, a, ecp.Config{LocalMAC: macA, Clock: clk, Params: &p})
	run(t, e)
	dl := newDoneLog()
	if err := e.Enqueue(vdpPayload(t, 1), dl.fn(1)); err != nil {
		t.Fatal(err)
	}
	first := readFrame(t, peer, 5*time.Second)
	if first.op != wire.ECPRequest || first.hdr.Dst != wire.NearestCustomerBridge || first.hdr.Src != macA {
		t.Fatalf("first frame %+v", first)
	}
	if d := clk.Deadlines(); len(d) != 1 || d[0] != 10240*time.Microsecond {
		t.Fatalf("armed timers %v, want one of 10.24ms", d)
	}
	clk.Advance(10240*time.Microsecond - time.Nanosecond)
	noFrame(t, peer, 50*time.Millisecond)
	clk.Advance(time.Nanosecond)
	second := readFrame(t, peer, 5*time.Second)
	if !bytes.Equal(first.raw, second.raw) {
		t.Fatalf("retransmission differs:\n% x\n% x", first.raw, second.raw)
	}
	if err := peer.Inject(context.Background(), ecpFrame(macA, macB, wire.ECPAck, second.seq, nil)); err != nil {
		t.Fatal(err)
	}
	if err := dl.wait(t, 1, 5*time.Second)[1]; err != nil {
		t.Fatalf("done: %v", err)
	}
	if st := e.Stats(); st.TxRequests != 1 || st.TxRetransmits != 1 || st.TxAcked != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestGiveUpAfterRRetries never ACKs the first request: it is sent 1+R
// times, dropped with ErrNoAck, and the second request goes out right
// after, with the next sequence number.
func TestGiveUpAfterRRetries(t *testing.T) {
	for _, r := range []uint8{0, 2, 7} {
		clk := ecptest.NewFakeClock(time.Unix(0, 0))
		a, peer := ecptest.Pipe(0)
		p := ecp.Params{R: r, RTE: 0}
		e := newEngine(t, a, ecp.Config{LocalMAC: macA, Clock: clk, Params: &p})
		run(t, e)
		dl := newDoneLog()
		for i := range 2 {
			if err := e.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
				t.Fatal(err)
			}
		}
		var seq uint16
		for k := 0; k <= int(r); k++ {
			f := readFrame(t, peer, 5*time.Second)
			if k == 0 {
				seq = f.seq
			} else if f.seq != seq {
				t.Fatalf("R=%d: transmission %d has sequence %d, want %d", r, k+1, f.seq, seq)
			}
			if !clk.AdvanceToNext() {
				t.Fatalf("R=%d: no ACK timer armed after transmission %d", r, k+1)
			}
		}
		next := readFrame(t, peer, 5*time.Second)
		if next.seq == seq {
			t.Fatalf("R=%d: %d transmissions of the first request, want %d", r, int(r)+2, int(r)+1)
		}
		errs := dl.wait(t, 1, 5*time.Second)
		if !errors.Is(errs[0], ecp.ErrNoAck) {
			t.Fatalf("R=%d: first request: %v, want ErrNoAck", r, errs[0])
		}
		if want := seq + 1; next.seq != want && !(seq == 0xffff && next.seq == 1) {
			t.Errorf("R=%d: next request has sequence %d, want %d", r, next.seq, want)
		}
		if err := peer.Inject(context.Background(), ecpFrame(macA, macB, wire.ECPAck, next.seq, nil)); err != nil {
			t.Fatal(err)
		}
		if err := dl.wait(t, 1, 5*time.Second)[1]; err != nil {
			t.Fatalf("R=%d: second request: %v", r, err)
		}
		if st := e.Stats(); st.TxGiveUps != 1 || st.TxRetransmits != uint64(r) {
			t.Errorf("R=%d: stats %+v", r, st)
		}
	}
}

// TestDuplicatesAckedDeliveredOnce feeds a receiver retransmissions: each
// request is ACKed, each new sequence number is delivered once, and a
// sequence number is only a duplicate of the one right before it.
func TestDuplicatesAckedDeliveredOnce(t *testing.T) {
	peer, b := ecptest.Pipe(0)
	rec := newRecorder()
	e := newEngine(t, b, ecp.Config{LocalMAC: macB, Handler: rec})
	run(t, e)
	ctx := context.Background()
	steps := []struct {
		seq  uint16
		num  uint32
		want bool // delivered
	}{
		{10, 1, true},
		{10, 1, false}, // retransmission: ACK only
		{10, 1, false},
		{11, 2, true},
		{11, 2, false},
		{10, 3, true}, // not the last one: new (lldpad's receiver agrees)
		{0xffff, 4, true},
		{1, 5, true}, // wrap, skipping 0
		{1, 5, false},
	}
	var want []uint32
	for i, s := range steps {
		if err := peer.Inject(ctx, ecpFrame(macB, macA, wire.ECPRequest, s.seq, vdpPayload(t, s.num))); err != nil {
			t.Fatal(err)
		}
		ack := readFrame(t, peer, 5*time.Second)
		if ack.op != wire.ECPAck || ack.seq != s.seq || ack.hdr.Dst != macA || ack.hdr.Src != macB || len(ack.raw) != 60 {
			t.Fatalf("step %d: reply %+v, want a 60-byte ACK of %d to the sender", i, ack, s.seq)
		}
		if s.want {
			want = append(want, s.num)
		}
	}
	rec.wait(t, len(want), 5*time.Second)
	noFrame(t, peer, 20*time.Millisecond)
	got := rec.snapshot()
	if len(got) != len(want) {
		t.Fatalf("delivered %d requests, want %d", len(got), len(want))
	}
	for i, r := range got {
		if k := payloadNum(t, r); k != want[i] {
			t.Errorf("delivery %d carries %d, want %d", i, k, want[i])
		}
		if r.Header.Src != macA || !bytes.Equal(r.Frame[:6], macB[:]) {
			t.Errorf("delivery %d: header %+v", i, r.Header)
		}
	}
	if st := e.Stats(); st.RxRequests != uint64(len(steps)) || st.TxAcks != uint64(len(steps)) ||
		st.RxDuplicates != uint64(len(steps)-len(want)) || st.RxDelivered != uint64(len(want)) {
		t.Errorf("stats %+v", st)
	}
}

// TestOrderUnderLoss loses every 3rd frame in each direction (requests,
// retransmissions and ACKs alike) on the real clock: every request still
// arrives once and in order, and nothing is given up.
func TestOrderUnderLoss(t *testing.T) {
	for _, nth := range []uint64{2, 3, 7} {
		a, b := ecptest.Pipe(0)
		a.SetDrop(ecptest.DropEveryNth(nth))
		b.SetDrop(ecptest.DropEveryNth(nth))
		p := ecp.Params{R: 7, RTE: 7} // 1.28 ms
		ea := newEngine(t, a, ecp.Config{Name: "a", LocalMAC: macA, Params: &p})
		rec := newRecorder()
		eb := newEngine(t, b, ecp.Config{Name: "b", LocalMAC: macB, Params: &p, Handler: rec})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 2)
		go func() { errc <- ea.Run(ctx) }()
		go func() { errc <- eb.Run(ctx) }()

		n := 100
		if os.Getenv("TETHER_TEST_ALL") != "" {
			n = 1000
		}
		dl := newDoneLog()
		for i := range n {
			if err := ea.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i, err := range dl.wait(t, n, 60*time.Second) {
			if err != nil {
				t.Errorf("every %dth lost: request %d: %v", nth, i, err)
			}
		}
		got := rec.wait(t, n, 5*time.Second)
		cancel()
		<-errc
		<-errc
		if len(got) != n {
			t.Fatalf("every %dth lost: %d deliveries, want %d", nth, len(got), n)
		}
		for i, r := range got {
			if k := payloadNum(t, r); k != uint32(i) {
				t.Fatalf("every %dth lost: delivery %d carries request %d", nth, i, k)
			}
		}
		sa, sb := ea.Stats(), eb.Stats()
		if sa.TxRetransmits == 0 || sb.RxDuplicates == 0 || a.Lost() == 0 || b.Lost() == 0 {
			t.Errorf("every %dth lost: the loss was not exercised: sender %+v receiver %+v", nth, sa, sb)
		}
		t.Logf("every %dth frame lost: %d requests, %d retransmissions, %d duplicates received, %d+%d frames lost",
			nth, n, sa.TxRetransmits, sb.RxDuplicates, a.Lost(), b.Lost())
	}
}

// TestGiveUpKeepsOrder loses every transmission of one request: it alone
// fails with ErrNoAck, the others arrive in order around it.
func TestGiveUpKeepsOrder(t *testing.T) {
	a, b := ecptest.Pipe(0)
	lose := vdpPayload(t, 5)
	a.SetDrop(func(_ uint64, f []byte) bool { return bytes.Contains(f, lose[18:]) })
	p := ecp.Params{R: 2, RTE: 5} // 320 µs
	ea := newEngine(t, a, ecp.Config{LocalMAC: macA, Params: &p})
	rec := newRecorder()
	eb := newEngine(t, b, ecp.Config{LocalMAC: macB, Params: &p, Handler: rec})
	run(t, ea)
	run(t, eb)
	const n = 10
	dl := newDoneLog()
	for i := range n {
		if err := ea.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, err := range dl.wait(t, n, 10*time.Second) {
		if (i == 5) != errors.Is(err, ecp.ErrNoAck) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	got := rec.wait(t, n-1, 5*time.Second)
	var nums []uint32
	for _, r := range got {
		nums = append(nums, payloadNum(t, r))
	}
	want := []uint32{0, 1, 2, 3, 4, 6, 7, 8, 9}
	if len(nums) != len(want) {
		t.Fatalf("delivered %v, want %v", nums, want)
	}
	for i := range want {
		if nums[i] != want[i] {
			t.Fatalf("delivered %v, want %v", nums, want)
		}
	}
	if st := ea.Stats(); st.TxGiveUps != 1 || a.Lost() != 3 {
		t.Errorf("stats %+v, %d lost", st, a.Lost())
	}
}

// TestSignOncePerRequest checks that the signer runs once per request,
// that a retransmission repeats the signed bytes, and that the payload
// budget leaves room for the signature TLV.
func TestSignOncePerRequest(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	a, peer := ecptest.Pipe(0)
	calls := 0
	sign := func(_ context.Context, f []byte) ([]byte, error) {
		calls++
		return append(f, bytes.Repeat([]byte{0xee}, wire.SignatureTLVLen)...), nil
	}
	e := newEngine(t, a, ecp.Config{LocalMAC: macA, Clock: clk, Sign: sign})
	if got, want := e.MaxPayload(), 1500-4-wire.SignatureTLVLen; got != want {
		t.Errorf("MaxPayload %d, want %d", got, want)
	}
	if err := e.Enqueue(make([]byte, e.MaxPayload()+1), nil); !errors.Is(err, ecp.ErrTooLarge) {
		t.Errorf("Enqueue of MaxPayload+1 bytes: %v, want ErrTooLarge", err)
	}
	run(t, e)
	dl := newDoneLog()
	if err := e.Enqueue(vdpPayload(t, 1), dl.fn(0)); err != nil {
		t.Fatal(err)
	}
	f1 := readFrame(t, peer, 5*time.Second)
	clk.AdvanceToNext()
	f2 := readFrame(t, peer, 5*time.Second)
	if !bytes.Equal(f1.raw, f2.raw) || !bytes.HasSuffix(f1.raw, bytes.Repeat([]byte{0xee}, wire.SignatureTLVLen)) {
		t.Fatalf("signed frames differ or lack the signature:\n% x\n% x", f1.raw, f2.raw)
	}
	if err := peer.Inject(context.Background(), ecpFrame(macA, macB, wire.ECPAck, f1.seq, nil)); err != nil {
		t.Fatal(err)
	}
	dl.wait(t, 1, 5*time.Second)
	if calls != 1 {
		t.Errorf("signer called %d times, want 1", calls)
	}
}

// TestSignErrorDropsRequest checks that a signer's error fails the request
// and the next one still goes.
func TestSignErrorDropsRequest(t *testing.T) {
	a, peer := ecptest.Pipe(0)
	boom := errors.New("boom")
	n := 0
	sign := func(_ context.Context, f []byte) ([]byte, error) {
		n++
		if n == 1 {
			return f, boom
		}
		return f, nil
	}
	e := newEngine(t, a, ecp.Config{LocalMAC: macA, Sign: sign})
	run(t, e)
	dl := newDoneLog()
	for i := range 2 {
		if err := e.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
			t.Fatal(err)
		}
	}
	f := readFrame(t, peer, 5*time.Second)
	if err := peer.Inject(context.Background(), ecpFrame(macA, macB, wire.ECPAck, f.seq, nil)); err != nil {
		t.Fatal(err)
	}
	errs := dl.wait(t, 2, 5*time.Second)
	if !errors.Is(errs[0], boom) || errs[1] != nil {
		t.Errorf("outcomes %v", errs)
	}
}

// TestIgnoredFrames checks what the receiver does not act on: other
// EtherTypes and subtypes, its own frames, unicast for others, stale ACKs,
// and requests whose payload does not decode (ACKed, not delivered).
func TestIgnoredFrames(t *testing.T) {
	peer, b := ecptest.Pipe(0)
	rec := newRecorder()
	e := newEngine(t, b, ecp.Config{LocalMAC: macB, Handler: rec})
	run(t, e)
	ctx := context.Background()
	good := vdpPayload(t, 1)
	other := [6]byte{0x02, 9, 9, 9, 9, 9}
	lldp := ecpFrame(macB, macA, wire.ECPRequest, 1, good)
	binary.BigEndian.PutUint16(lldp[12:], 0x88cc)
	pecsp := ecpFrame(macB, macA, wire.ECPRequest, 1, good)
	pecsp[15] = byte(wire.ECPSubtypePECSP)
	v2 := ecpFrame(macB, macA, wire.ECPRequest, 1, good)
	v2[14] = 0x20
	for _, f := range [][]byte{
		lldp, pecsp, v2,
		ecpFrame(macB, macB, wire.ECPRequest, 1, good),  // own source
		ecpFrame(other, macA, wire.ECPRequest, 1, good), // unicast for another station
		ecpFrame(macB, macA, wire.ECPAck, 99, nil),      // nothing outstanding
		macB[:], // runt
	} {
		if err := peer.Inject(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	// A Manager ID, then an ASSOCIATE TLV of 3 bytes (25 at least).
	bad := ecpFrame(macB, macA, wire.ECPRequest, 7, append(append([]byte(nil), good[:18]...), 0x06, 0x03, 1, 2, 3))
	if err := peer.Inject(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if ack := readFrame(t, peer, 5*time.Second); ack.op != wire.ECPAck || ack.seq != 7 {
		t.Fatalf("malformed request: reply %+v, want ACK 7", ack)
	}
	if err := peer.Inject(ctx, ecpFrame(wire.NearestCustomerBridge, macA, wire.ECPRequest, 8, good)); err != nil {
		t.Fatal(err)
	}
	if ack := readFrame(t, peer, 5*time.Second); ack.seq != 8 {
		t.Fatalf("reply %+v, want ACK 8", ack)
	}
	got := rec.wait(t, 1, 5*time.Second)
	noFrame(t, peer, 20*time.Millisecond)
	if len(rec.snapshot()) != 1 || payloadNum(t, got[0]) != 1 {
		t.Fatalf("deliveries %d", len(rec.snapshot()))
	}
	st := e.Stats()
	if st.RxIgnored != 5 || st.RxMalformed != 2 || st.RxStaleAcks != 1 || st.RxDelivered != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestSetParams checks validation and that a new RTE arms the next timer.
func TestSetParams(t *testing.T) {
	if _, err := ecp.New(&ecptest.PipeEnd{}, ecp.Config{LocalMAC: macA, Params: &ecp.Params{R: 8}}); err == nil {
		t.Error("R 8 accepted")
	}
	if _, err := ecp.New(&ecptest.PipeEnd{}, ecp.Config{}); err == nil {
		t.Error("zero LocalMAC accepted")
	}
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	a, peer := ecptest.Pipe(0)
	e := newEngine(t, a, ecp.Config{LocalMAC: macA, Clock: clk})
	if err := e.SetParams(ecp.Params{R: 1, RTE: 32}); err == nil {
		t.Error("RTE 32 accepted")
	}
	if err := e.SetParams(ecp.Params{R: 1, RTE: 3}); err != nil {
		t.Fatal(err)
	}
	run(t, e)
	if err := e.Enqueue(vdpPayload(t, 1), nil); err != nil {
		t.Fatal(err)
	}
	readFrame(t, peer, 5*time.Second)
	if d := clk.Deadlines(); len(d) != 1 || d[0] != 80*time.Microsecond {
		t.Errorf("ACK timer %v, want 80µs", d)
	}
}

// TestSlowHandlerFlowControl fills the delivery queue behind a stuck
// Handler: the next new request waits half an ACK timer for room, then
// goes unacknowledged (lastSeq unchanged), and its retransmission is taken
// as new once the Handler catches up.
func TestSlowHandlerFlowControl(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	peer, b := ecptest.Pipe(0)
	release := make(chan struct{})
	rec := newRecorder()
	h := ecp.HandlerFunc(func(ctx context.Context, r *ecp.Received) {
		<-release
		rec.Receive(ctx, r)
	})
	p := ecp.Params{R: 3, RTE: 10}
	e := newEngine(t, b, ecp.Config{LocalMAC: macB, Handler: h, QueueLen: 1, Clock: clk, Params: &p})
	run(t, e)
	ctx := context.Background()
	send := func(seq uint16) {
		t.Helper()
		if err := peer.Inject(ctx, ecpFrame(macB, macA, wire.ECPRequest, seq, vdpPayload(t, uint32(seq)))); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []uint16{1, 2} { // 1 in the Handler, 2 queued
		send(seq)
		if ack := readFrame(t, peer, 5*time.Second); ack.seq != seq {
			t.Fatalf("ACK %d, want %d", ack.seq, seq)
		}
	}
	send(3)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := clk.WaitArmed(wctx, func(n int) bool { return n == 1 }); err != nil {
		t.Fatal("the reader does not wait for room:", err)
	}
	if d := clk.Deadlines(); d[0] != p.AckTimeout()/2 {
		t.Fatalf("reader waits %v, want half the ACK timer", d[0])
	}
	clk.AdvanceToNext()
	noFrame(t, peer, 50*time.Millisecond)
	if st := e.Stats(); st.RxQueueFull != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	rec.wait(t, 2, 5*time.Second)
	send(3) // the retransmission
	if ack := readFrame(t, peer, 5*time.Second); ack.seq != 3 {
		t.Fatalf("ACK %d, want 3", ack.seq)
	}
	got := rec.wait(t, 3, 5*time.Second)
	for i, r := range got {
		if payloadNum(t, r) != uint32(i+1) {
			t.Fatalf("delivery %d carries %d", i, payloadNum(t, r))
		}
	}
}

// gatedLink holds each request in WriteFrame until the test opens the
// gate, handing the frame to the test first.
type gatedLink struct {
	*ecptest.PipeEnd
	reqs chan []byte
	gate chan struct{}
}

func (g *gatedLink) WriteFrame(ctx context.Context, f []byte) error {
	if len(f) > 15 && f[14]>>2&3 == byte(wire.ECPRequest) {
		g.reqs <- bytes.Clone(f)
		<-g.gate
	}
	return g.PipeEnd.WriteFrame(ctx, f)
}

// TestAckBeatsTimer makes the ACK and the expired ACK timer ready at the
// same moment, while the transmitter is busy sending: when it looks, both
// are there. The ACK must win every time (Go's select picks at random; with
// R 0 a lost pick would drop an acknowledged request).
func TestAckBeatsTimer(t *testing.T) {
	clk := ecptest.NewFakeClock(time.Unix(0, 0))
	a, peer := ecptest.Pipe(0)
	g := &gatedLink{PipeEnd: a, reqs: make(chan []byte), gate: make(chan struct{})}
	p := ecp.Params{R: 0, RTE: 3}
	e := newEngine(t, g, ecp.Config{LocalMAC: macA, Clock: clk, Params: &p})
	run(t, e)
	ctx := context.Background()
	const n = 100
	dl := newDoneLog()
	for i := range n {
		if err := e.Enqueue(vdpPayload(t, uint32(i)), dl.fn(i)); err != nil {
			t.Fatal(err)
		}
		f := parse(t, <-g.reqs) // the transmitter is now inside WriteFrame
		before := e.Stats().RxAcks
		if err := peer.Inject(ctx, ecpFrame(macA, macB, wire.ECPAck, f.seq, nil)); err != nil {
			t.Fatal(err)
		}
		for e.Stats().RxAcks == before { // the reader has queued the ACK
			time.Sleep(10 * time.Microsecond)
		}
		clk.Advance(p.AckTimeout()) // and the timer has fired
		g.gate <- struct{}{}
		readFrame(t, peer, 5*time.Second)
		if err := dl.wait(t, 1, 5*time.Second)[i]; err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if st := e.Stats(); st.TxRetransmits != 0 || st.TxGiveUps != 0 || st.TxAcked != n {
		t.Errorf("stats %+v", st)
	}
}
