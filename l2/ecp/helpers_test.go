package ecp_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tether-net/tether/l2/ecp"
	"github.com/tether-net/tether/l2/ecp/ecptest"
	"github.com/tether-net/tether/wire"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
)

// quiet is a logger that drops everything.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// vdpPayload returns a VDPDU (Manager ID and one ASSOCIATE) whose VSIID
// carries n, so payloads can be told apart after a round trip.
func vdpPayload(t testing.TB, n uint32) []byte {
	t.Helper()
	var id [16]byte
	binary.BigEndian.PutUint32(id[12:], n)
	d := wire.VDPDU{TLVs: []wire.TLV{
		&wire.VSIManagerID{ID: [16]byte{'m', 'g', 'r'}},
		&wire.VSI{Mode: wire.VSIAssociate, VSITypeID: 7, VSITypeVersion: 1, VSIIDFormat: wire.VSIIDUUID, VSIID: id,
			FilterFormat: wire.FilterMACVID, Filters: []wire.Filter{{MAC: [6]byte{2, 0, 0, 0, 0, 1}, VID: 100}}},
	}}
	b, err := d.Append(nil, wire.OUI{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// payloadNum returns the number vdpPayload put in r's first VSI.
func payloadNum(t testing.TB, r *ecp.Received) uint32 {
	t.Helper()
	if r.PDU.VDP == nil {
		t.Fatalf("delivered PDU has no VDPDU: %v", &r.PDU)
	}
	v := r.PDU.VDP.VSIs()
	if len(v) != 1 {
		t.Fatalf("delivered VDPDU has %d VSI TLVs", len(v))
	}
	return binary.BigEndian.Uint32(v[0].VSIID[12:])
}

// recorder is a Handler that keeps what it receives.
type recorder struct {
	mu   sync.Mutex
	got  []*ecp.Received
	more chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1)} }

func (r *recorder) Receive(_ context.Context, rx *ecp.Received) {
	r.mu.Lock()
	r.got = append(r.got, rx)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []*ecp.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*ecp.Received(nil), r.got...)
}

// wait waits until n requests were received.
func (r *recorder) wait(t testing.TB, n int, d time.Duration) []*ecp.Received {
	t.Helper()
	deadline := time.After(d)
	for {
		if got := r.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("received %d requests, want %d", len(r.snapshot()), n)
		}
	}
}

// run starts e until the test ends and fails the test if Run returns an
// unexpected error.
func run(t testing.TB, e *ecp.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

// newEngine makes an engine on link with the given fields of cfg filled.
func newEngine(t testing.TB, link ecp.Link, cfg ecp.Config) *ecp.Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	e, err := ecp.New(link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// parsed is a frame the test read off a pipe.
type parsed struct {
	hdr wire.EthernetHeader
	op  wire.ECPOp
	seq uint16
	raw []byte
}

func parse(t testing.TB, f []byte) parsed {
	t.Helper()
	var h wire.EthernetHeader
	p, err := h.Parse(f)
	if err != nil || h.EtherType != wire.EtherTypeECP || len(p) < 4 {
		t.Fatalf("not an ECP frame: % x (%v)", f, err)
	}
	w := binary.BigEndian.Uint16(p)
	return parsed{hdr: h, op: wire.ECPOp(w >> 10 & 3), seq: binary.BigEndian.Uint16(p[2:]), raw: f}
}

// readFrame reads the next frame sent towards end.
func readFrame(t testing.TB, end *ecptest.PipeEnd, d time.Duration) parsed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	f, err := end.ReadSent(ctx)
	if err != nil {
		t.Fatalf("no frame within %v: %v", d, err)
	}
	return parse(t, f)
}

// noFrame checks that nothing is sent towards end for d.
func noFrame(t testing.TB, end *ecptest.PipeEnd, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if f, err := end.ReadSent(ctx); err == nil {
		t.Fatalf("unexpected frame: %+v", parse(t, f))
	}
}

// ecpFrame builds an ECP frame from src to dst.
func ecpFrame(dst, src [6]byte, op wire.ECPOp, seq uint16, payload []byte) []byte {
	b := append(append([]byte(nil), dst[:]...), src[:]...)
	b = binary.BigEndian.AppendUint16(b, wire.EtherTypeECP)
	b = binary.BigEndian.AppendUint16(b, 1<<12|uint16(op)<<10|uint16(wire.ECPSubtypeVDP))
	b = binary.BigEndian.AppendUint16(b, seq)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

// doneLog collects Done outcomes of Enqueue in order.
type doneLog struct {
	mu   sync.Mutex
	errs map[int]error
	ch   chan int
}

func newDoneLog() *doneLog { return &doneLog{errs: map[int]error{}, ch: make(chan int, 100000)} }

func (d *doneLog) fn(i int) func(error) {
	return func(err error) {
		d.mu.Lock()
		d.errs[i] = err
		d.mu.Unlock()
		d.ch <- i
	}
}

// wait waits for n outcomes and returns them by index.
func (d *doneLog) wait(t testing.TB, n int, timeout time.Duration) map[int]error {
	t.Helper()
	deadline := time.After(timeout)
	for k := 0; k < n; k++ {
		select {
		case <-d.ch:
		case <-deadline:
			t.Fatalf("%d of %d requests done", k, n)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[int]error, len(d.errs))
	for k, v := range d.errs {
		out[k] = v
	}
	return out
}
