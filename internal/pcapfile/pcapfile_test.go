package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fileHeader builds a pcap file header.
func fileHeader(order binary.ByteOrder, magic uint32, snapLen, linkType uint32) []byte {
	b := make([]byte, fileHeaderLen)
	order.PutUint32(b[0:4], magic)
	order.PutUint16(b[4:6], 2)
	order.PutUint16(b[6:8], 4)
	order.PutUint32(b[16:20], snapLen)
	order.PutUint32(b[20:24], linkType)
	return b
}

// recordHeader builds a record header.
func recordHeader(order binary.ByteOrder, sec, frac, capLen, origLen uint32) []byte {
	b := make([]byte, recordHeaderLen)
	order.PutUint32(b[0:4], sec)
	order.PutUint32(b[4:8], frac)
	order.PutUint32(b[8:12], capLen)
	order.PutUint32(b[12:16], origLen)
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// readAll reads every record of b, returning the records and the error that
// ended the loop (nil at a clean io.EOF).
func readAll(t *testing.T, b []byte) (*Reader, []Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r, recs, nil
		}
		if err != nil {
			return r, recs, err
		}
		recs = append(recs, rec)
	}
}

func TestReadByteOrdersAndResolutions(t *testing.T) {
	frame := []byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x52, 0x54, 0x00, 0xaa, 0x00, 0x01, 0x88, 0xcc}
	tests := []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		frac  uint32
		want  time.Time
		nano  bool
	}{
		{"little-endian microseconds", binary.LittleEndian, magicMicro, 574734, time.Unix(1795490559, 574734000), false},
		{"big-endian microseconds", binary.BigEndian, magicMicro, 574734, time.Unix(1795490559, 574734000), false},
		{"little-endian nanoseconds", binary.LittleEndian, magicNano, 574734123, time.Unix(1795490559, 574734123), true},
		{"big-endian nanoseconds", binary.BigEndian, magicNano, 574734123, time.Unix(1795490559, 574734123), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := cat(fileHeader(tt.order, tt.magic, 65535, LinkTypeEthernet),
				recordHeader(tt.order, 1795490559, tt.frac, uint32(len(frame)), 60), frame)
			r, recs, err := readAll(t, b)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if r.LinkType() != LinkTypeEthernet || r.SnapLen() != 65535 || r.Nanosecond() != tt.nano {
				t.Errorf("header: link type %d, snaplen %d, nano %v", r.LinkType(), r.SnapLen(), r.Nanosecond())
			}
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			rec := recs[0]
			if !rec.Time.Equal(tt.want) || rec.Time.Location() != time.UTC {
				t.Errorf("time %v, want %v UTC", rec.Time, tt.want.UTC())
			}
			if !bytes.Equal(rec.Data, frame) || rec.OrigLen != 60 {
				t.Errorf("data %x orig %d, want %x orig 60", rec.Data, rec.OrigLen, frame)
			}
		})
	}
}

func TestReadMalformed(t *testing.T) {
	le := binary.LittleEndian
	good := fileHeader(le, magicMicro, MaxSnapLen, LinkTypeEthernet)
	rec1 := cat(recordHeader(le, 1, 2, 4, 4), []byte{1, 2, 3, 4})
	badVersion := fileHeader(le, magicMicro, MaxSnapLen, 1)
	le.PutUint16(badVersion[4:6], 3)
	tests := []struct {
		name    string
		in      []byte
		records int // records read before the error
		kind    error
		want    string
	}{
		{
			name: "empty file",
			in:   nil,
			kind: ErrTruncated,
			want: "pcapfile: file header at offset 0: truncated: file header: need 24 bytes, have 0",
		},
		{
			name: "short file header",
			in:   good[:10],
			kind: ErrTruncated,
			want: "pcapfile: file header at offset 0: truncated: file header: need 24 bytes, have 10",
		},
		{
			name: "bad magic",
			in:   cat([]byte{0xde, 0xad, 0xbe, 0xef}, good[4:]),
			kind: ErrBadMagic,
			want: "pcapfile: file header at offset 0: bad magic: 0xdeadbeef is not a pcap magic number",
		},
		{
			name: "pcapng",
			in:   cat([]byte{0x0a, 0x0d, 0x0d, 0x0a}, good[4:]),
			kind: ErrBadMagic,
			want: "pcapfile: file header at offset 0: bad magic: 0x0a0d0d0a is pcapng, which is not supported; convert with: editcap -F pcap IN OUT",
		},
		{
			name: "version 3",
			in:   badVersion,
			kind: ErrVersion,
			want: "pcapfile: file header at offset 4: unsupported version: version 3.4, want 2.x",
		},
		{
			name:    "short record header",
			in:      cat(good, rec1, recordHeader(le, 1, 2, 4, 4)[:7]),
			records: 1,
			kind:    ErrTruncated,
			want:    "pcapfile: record 2 at offset 44: truncated: record header: need 16 bytes, have 7",
		},
		{
			name:    "short record data",
			in:      cat(good, rec1, recordHeader(le, 1, 2, 60, 60), make([]byte, 12)),
			records: 1,
			kind:    ErrTruncated,
			want:    "pcapfile: record 2 at offset 44: truncated: record data: need 60 bytes, have 12",
		},
		{
			name: "record longer than file snaplen",
			in:   cat(fileHeader(le, magicMicro, 64, LinkTypeEthernet), recordHeader(le, 1, 2, 65, 65), make([]byte, 65)),
			kind: ErrTooLong,
			want: "pcapfile: record 1 at offset 24: record longer than snapshot length: captured length 65, snapshot length 64",
		},
		{
			name: "hostile length, huge snaplen in header",
			in:   cat(fileHeader(le, magicMicro, 0xffffffff, LinkTypeEthernet), recordHeader(le, 1, 2, 0xffffffff, 0xffffffff)),
			kind: ErrTooLong,
			want: "pcapfile: record 1 at offset 24: record longer than snapshot length: captured length 4294967295, snapshot length 262144",
		},
		{
			name: "hostile length, zero snaplen in header",
			in:   cat(fileHeader(binary.BigEndian, magicNano, 0, LinkTypeEthernet), recordHeader(binary.BigEndian, 1, 2, MaxSnapLen+1, 0)),
			kind: ErrTooLong,
			want: "pcapfile: record 1 at offset 24: record longer than snapshot length: captured length 262145, snapshot length 262144",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, recs, err := readAll(t, tt.in)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *Error", err)
			}
			if len(recs) != tt.records {
				t.Errorf("read %d records before the error, want %d", len(recs), tt.records)
			}
		})
	}
}

// failingReader returns its data and then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReadPropagatesReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	hdr := fileHeader(binary.LittleEndian, magicMicro, MaxSnapLen, LinkTypeEthernet)
	r, err := NewReader(&failingReader{data: hdr, err: boom})
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) {
		t.Fatalf("Next: %v, want it to wrap %v", err, boom)
	}
	want := "pcapfile: record 1 at offset 24: disk on fire: reading record header"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err.Error(), want)
	}
}

// TestReadCaptures reads the lldpad (802.1Qbg-2012 EVB/ECP/VDP) and lldpd
// captures; the expected values come from capinfos and tshark.
func TestReadCaptures(t *testing.T) {
	tests := []struct {
		file      string
		records   int
		dataBytes int
		first     time.Time
		firstLen  int
		last      time.Time
		lastLen   int
	}{
		{"cap2012.pcap", 74, 3593, time.Unix(1795490559, 574734000), 60, time.Unix(1795490700, 142641000), 60},
		{"caplldpd.pcap", 45, 9266, time.Unix(1795490826, 105145000), 116, time.Unix(1795490982, 766101000), 38},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r, recs, err := readAll(t, b)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if r.LinkType() != LinkTypeEthernet || r.SnapLen() != MaxSnapLen || r.Nanosecond() {
				t.Errorf("header: link type %d, snaplen %d, nano %v", r.LinkType(), r.SnapLen(), r.Nanosecond())
			}
			if len(recs) != tt.records {
				t.Fatalf("%d records, want %d", len(recs), tt.records)
			}
			total := 0
			for _, rec := range recs {
				total += len(rec.Data)
				if rec.OrigLen != len(rec.Data) {
					t.Errorf("record at %v: orig %d, captured %d", rec.Time, rec.OrigLen, len(rec.Data))
				}
			}
			if total != tt.dataBytes {
				t.Errorf("data bytes %d, want %d", total, tt.dataBytes)
			}
			first, last := recs[0], recs[len(recs)-1]
			if !first.Time.Equal(tt.first) || len(first.Data) != tt.firstLen {
				t.Errorf("first record %v len %d, want %v len %d", first.Time, len(first.Data), tt.first, tt.firstLen)
			}
			if !last.Time.Equal(tt.last) || len(last.Data) != tt.lastLen {
				t.Errorf("last record %v len %d, want %v len %d", last.Time, len(last.Data), tt.last, tt.lastLen)
			}
		})
	}
}

func TestWriterRoundTrip(t *testing.T) {
	recs := []Record{
		{Time: time.Unix(1795490559, 574734000).UTC(), Data: []byte{1, 2, 3}, OrigLen: 3},
		{Time: time.Unix(1795490560, 0).UTC(), Data: bytes.Repeat([]byte{0xab}, 1500), OrigLen: 1514},
		{Time: time.Unix(0, 999999000).UTC(), Data: []byte{}, OrigLen: 60},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if err := w.WriteRecord(rec); err != nil {
			t.Fatalf("WriteRecord: %v", err)
		}
	}
	// The header is the one tcpdump writes.
	wantHdr := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0}
	if !bytes.Equal(buf.Bytes()[:24], wantHdr) {
		t.Errorf("file header % x, want % x", buf.Bytes()[:24], wantHdr)
	}
	_, got, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read back %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !got[i].Time.Equal(recs[i].Time) || !bytes.Equal(got[i].Data, recs[i].Data) || got[i].OrigLen != recs[i].OrigLen {
			t.Errorf("record %d: got %+v, want %+v", i, got[i], recs[i])
		}
	}
}

func TestWriterDefaultsAndErrors(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord(Record{Time: time.Unix(5, 1500), Data: []byte{9, 9}}); err != nil {
		t.Fatal(err)
	}
	_, got, err := readAll(t, buf.Bytes())
	if err != nil || len(got) != 1 || got[0].OrigLen != 2 || !got[0].Time.Equal(time.Unix(5, 1000)) {
		t.Fatalf("zero OrigLen: got %+v, %v; want OrigLen 2, time truncated to the microsecond", got, err)
	}

	for _, tt := range []struct {
		name string
		rec  Record
		want string
	}{
		{"too long", Record{Time: time.Unix(1, 0), Data: make([]byte, MaxSnapLen+1)},
			"pcapfile: record 2: record longer than snapshot length: captured length 262145, snapshot length 262144"},
		{"orig shorter than data", Record{Time: time.Unix(1, 0), Data: make([]byte, 10), OrigLen: 5},
			"pcapfile: record 2: original length 5 is less than captured length 10 or too large"},
		{"before 1970", Record{Time: time.Unix(-1, 0).UTC(), Data: []byte{1}},
			"pcapfile: record 2: time 1969-12-31 23:59:59 +0000 UTC does not fit the format (1970 to 2106)"},
	} {
		if err := w.WriteRecord(tt.rec); err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}

	boom := errors.New("pipe closed")
	if _, err := NewWriter(&failingWriter{err: boom}, LinkTypeEthernet); !errors.Is(err, boom) {
		t.Errorf("NewWriter on a failing writer: %v, want it to wrap %v", err, boom)
	}
}

type failingWriter struct{ err error }

func (f *failingWriter) Write([]byte) (int, error) { return 0, f.err }

// FuzzReader feeds arbitrary bytes to the reader: it must never panic, never
// return a record longer than MaxSnapLen, and every record it returns must
// survive a write/read round trip.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"cap2012.pcap", "caplldpd.pcap"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 400)])
	}
	le, be := binary.LittleEndian, binary.BigEndian
	f.Add(cat(fileHeader(be, magicNano, 0, 1), recordHeader(be, 1, 2, 3, 3), []byte{1, 2, 3}))
	f.Add(cat(fileHeader(le, magicMicro, 10, 1), recordHeader(le, 1, 2, 0xffffffff, 3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("NewReader error %T is not a *Error: %v", err, err)
			}
			return
		}
		var out bytes.Buffer
		w, err := NewWriter(&out, r.LinkType())
		if err != nil {
			t.Fatal(err)
		}
		var recs []Record
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("Next error %T is not a *Error: %v", err, err)
				}
				break
			}
			if len(rec.Data) > MaxSnapLen {
				t.Fatalf("record of %d bytes", len(rec.Data))
			}
			if rec.OrigLen < len(rec.Data) || rec.Time.Unix() < 0 || rec.Time.Unix() > 0xffffffff {
				continue // valid to read, not representable by the writer
			}
			recs = append(recs, rec)
			if err := w.WriteRecord(rec); err != nil {
				t.Fatalf("WriteRecord(%+v): %v", rec, err)
			}
		}
		_, back, err := readAll(t, out.Bytes())
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if len(back) != len(recs) {
			t.Fatalf("read back %d records, wrote %d", len(back), len(recs))
		}
		for i := range recs {
			// Nanosecond files lose resolution in the microsecond writer.
			if !back[i].Time.Equal(recs[i].Time.Truncate(time.Microsecond)) || !bytes.Equal(back[i].Data, recs[i].Data) || back[i].OrigLen != recs[i].OrigLen {
				t.Fatalf("record %d: read back %+v, wrote %+v", i, back[i], recs[i])
			}
		}
	})
}
