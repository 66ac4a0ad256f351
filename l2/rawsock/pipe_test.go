package rawsock

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func testFrame(dst [6]byte, etherType uint16, payload ...byte) []byte {
	f := append([]byte(nil), dst[:]...)
	f = append(f, 0x02, 0, 0, 0, 0, 1, byte(etherType>>8), byte(etherType))
	return append(f, payload...)
}

func TestPipe(t *testing.T) {
	a, b := Pipe(Interface{Name: "a"}, Interface{Name: "b"})
	ctx := context.Background()
	f := testFrame([6]byte{1, 0x80, 0xc2, 0, 0, 0xe}, 0x88cc, 1, 2, 3)
	if err := a.WriteFrame(ctx, f); err != nil {
		t.Fatal(err)
	}
	f[14] = 99 // the pipe copied the frame
	buf := make([]byte, 64)
	n, err := b.ReadFrame(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := testFrame([6]byte{1, 0x80, 0xc2, 0, 0, 0xe}, 0x88cc, 1, 2, 3); !bytes.Equal(buf[:n], want) {
		t.Fatalf("read %x, want %x", buf[:n], want)
	}
	if err := a.WriteFrame(ctx, []byte{1, 2, 3}); err == nil {
		t.Fatal("WriteFrame accepted a 3-byte frame")
	}

	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.ReadFrame(cctx, buf); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame on an idle pipe = %v, want DeadlineExceeded", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadFrame(ctx, buf); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame after Close = %v, want ErrClosed", err)
	}
	if err := a.WriteFrame(ctx, f); err != nil {
		t.Fatalf("WriteFrame to a closed peer = %v, want nil (frame lost)", err)
	}
}

// manualTime is a clock the test moves by hand.
type manualTime struct{ t time.Time }

func (m *manualTime) now() time.Time { return m.t }

func TestReceiverBudget(t *testing.T) {
	a, b := Pipe(Interface{Name: "a"}, Interface{Name: "b"})
	clock := &manualTime{t: time.Unix(1000, 0)}
	r := NewReceiver(b, ReceiverOptions{Queue: 4, Rate: 10, Burst: 5, MaxFrame: 100, Now: clock.now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	dst := [6]byte{1, 0x80, 0xc2, 0, 0, 0}
	// 3 oversize frames, then 20 frames in one instant: the bucket admits
	// 5, the queue holds 4 of them.
	for i := 0; i < 3; i++ {
		if err := a.WriteFrame(ctx, testFrame(dst, 0x88cc, make([]byte, 100)...)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if err := a.WriteFrame(ctx, testFrame(dst, 0x88cc, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return r.Stats().Received == 23 })
	s := r.Stats()
	want := ReceiverStats{Received: 23, Delivered: 4, RateLimited: 15, QueueFull: 1, Oversize: 3}
	if s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
	if s.Dropped() != 19 {
		t.Fatalf("Dropped() = %d, want 19", s.Dropped())
	}
	for i := 0; i < 4; i++ {
		f := <-r.Frames()
		if f.Data[14] != byte(i) {
			t.Fatalf("frame %d carries %d", i, f.Data[14])
		}
	}

	// One second later the bucket holds 5 tokens again (rate 10, burst 5).
	clock.t = clock.t.Add(time.Second)
	for i := 0; i < 6; i++ {
		if err := a.WriteFrame(ctx, testFrame(dst, 0x88cc, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return r.Stats().Received == 29 })
	if s := r.Stats(); s.Delivered != 8 || s.RateLimited != 16 || s.QueueFull != 2 {
		t.Fatalf("after refill: %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}
	n := 0
	for range r.Frames() {
		n++
	}
	if n != 4 {
		t.Fatalf("%d frames left in the closed channel, want 4", n)
	}
}

func TestReceiverConnError(t *testing.T) {
	_, b := Pipe(Interface{Name: "a"}, Interface{Name: "b"})
	r := NewReceiver(b, ReceiverOptions{})
	b.Close()
	if err := r.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run on a closed Conn = %v, want ErrClosed", err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// waitFor polls cond for up to 5 s.
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
