// Package pcapfile reads and writes capture files in the classic libpcap
// format (https://www.tcpdump.org/manpages/pcap-savefile.5.html, and
// draft-ietf-opsawg-pcap). It reads both byte orders and both the
// microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) magics, and writes
// little-endian microsecond files that every tool reads. pcapng is not
// supported.
//
// The reader works on any io.Reader and trusts nothing in the file: every
// record length is checked against the snapshot length before anything is
// allocated, so a hostile file costs at most MaxSnapLen bytes per record.
package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkTypeEthernet is LINKTYPE_ETHERNET: IEEE 802.3 / Ethernet II frames
// starting at the destination MAC address, without FCS.
const LinkTypeEthernet = 1

// MaxSnapLen is the snapshot length this package writes and the largest
// record it reads (libpcap's MAXIMUM_SNAPLEN). A file header announcing a
// larger snapshot length (or zero, which some writers use) is read with
// MaxSnapLen as the limit.
const MaxSnapLen = 262144

// Header sizes.
const (
	fileHeaderLen   = 24
	recordHeaderLen = 16
)

// Magic numbers, as read in the file's own byte order.
const (
	magicMicro = 0xa1b2c3d4
	magicNano  = 0xa1b23c4d
	// magicPcapng opens a pcapng Section Header Block; recognised only to
	// give a helpful error.
	magicPcapng = 0x0a0d0d0a
)

// Sentinel error kinds. Reader returns a *Error whose Unwrap gives one of
// these (or, for a failing io.Reader, the reader's own error), so callers can
// test with errors.Is.
var (
	// ErrBadMagic means the file does not start with a pcap magic number.
	ErrBadMagic = errors.New("bad magic")
	// ErrTruncated means the file ends inside the file header, a record
	// header or a record's data.
	ErrTruncated = errors.New("truncated")
	// ErrTooLong means a record's captured length exceeds the snapshot
	// length (or MaxSnapLen).
	ErrTooLong = errors.New("record longer than snapshot length")
	// ErrVersion means the file header announces a format version other
	// than 2.x.
	ErrVersion = errors.New("unsupported version")
)

// Error describes what was wrong with a capture file and where.
type Error struct {
	// Record is the 1-based number of the record being read, or 0 for the
	// file header.
	Record int
	// Offset is the byte offset in the file of the header being read.
	Offset int64
	// Err is one of the package's sentinel errors, or the underlying
	// reader's or writer's error.
	Err error
	// Detail says what exactly was found, for a human.
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	where := "file header"
	if e.Record > 0 {
		where = fmt.Sprintf("record %d", e.Record)
	}
	s := fmt.Sprintf("pcapfile: %s at offset %d: %v", where, e.Offset, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the error kind.
func (e *Error) Unwrap() error { return e.Err }

// Record is one captured frame.
type Record struct {
	// Time is the capture timestamp, in UTC.
	Time time.Time
	// Data is the captured bytes (at most the snapshot length).
	Data []byte
	// OrigLen is the frame's length on the wire, which is larger than
	// len(Data) when the capture truncated the frame.
	OrigLen int
}

// Reader reads records from a classic pcap file.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	nano     bool
	snapLen  uint32
	linkType uint32
	limit    uint32
	// record is the number of records returned so far; off the offset of
	// the next record header.
	record int
	off    int64
	hdr    [recordHeaderLen]byte
}

// NewReader reads and checks the file header from r and returns a Reader
// positioned at the first record.
func NewReader(r io.Reader) (*Reader, error) {
	var h [fileHeaderLen]byte
	if n, err := io.ReadFull(r, h[:]); err != nil {
		return nil, readError(0, 0, err, "file header", fileHeaderLen, n)
	}
	pr := &Reader{r: r, off: fileHeaderLen}
	switch {
	case binary.LittleEndian.Uint32(h[0:4]) == magicMicro:
		pr.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[0:4]) == magicMicro:
		pr.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[0:4]) == magicNano:
		pr.order, pr.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[0:4]) == magicNano:
		pr.order, pr.nano = binary.BigEndian, true
	case binary.BigEndian.Uint32(h[0:4]) == magicPcapng:
		return nil, &Error{Err: ErrBadMagic, Detail: "0x0a0d0d0a is pcapng, which is not supported; convert with: editcap -F pcap IN OUT"}
	default:
		return nil, &Error{Err: ErrBadMagic, Detail: fmt.Sprintf("0x%08x is not a pcap magic number", binary.BigEndian.Uint32(h[0:4]))}
	}
	major, minor := pr.order.Uint16(h[4:6]), pr.order.Uint16(h[6:8])
	if major != 2 {
		return nil, &Error{Offset: 4, Err: ErrVersion, Detail: fmt.Sprintf("version %d.%d, want 2.x", major, minor)}
	}
	// h[8:16] are thiszone and sigfigs, always zero in practice and ignored.
	pr.snapLen = pr.order.Uint32(h[16:20])
	pr.linkType = pr.order.Uint32(h[20:24])
	pr.limit = pr.snapLen
	if pr.limit == 0 || pr.limit > MaxSnapLen {
		pr.limit = MaxSnapLen
	}
	return pr, nil
}

// LinkType returns the file's link-layer header type (LINKTYPE_*), without
// the FCS bits some writers store in its upper bits.
func (r *Reader) LinkType() uint32 { return r.linkType & 0xffff }

// SnapLen returns the snapshot length from the file header, as written.
func (r *Reader) SnapLen() uint32 { return r.snapLen }

// Nanosecond reports whether the file's timestamps have nanosecond
// resolution.
func (r *Reader) Nanosecond() bool { return r.nano }

// Next returns the next record. It returns io.EOF, unwrapped, when the file
// ends cleanly between records, and a *Error for anything else; after an
// error other than io.EOF the Reader must not be used further. Each
// record's Data is freshly allocated and belongs to the caller.
func (r *Reader) Next() (Record, error) {
	num, off := r.record+1, r.off
	n, err := io.ReadFull(r.r, r.hdr[:])
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		return Record{}, readError(num, off, err, "record header", recordHeaderLen, n)
	}
	sec := r.order.Uint32(r.hdr[0:4])
	frac := r.order.Uint32(r.hdr[4:8])
	capLen := r.order.Uint32(r.hdr[8:12])
	origLen := r.order.Uint32(r.hdr[12:16])
	if capLen > r.limit {
		return Record{}, &Error{Record: num, Offset: off, Err: ErrTooLong,
			Detail: fmt.Sprintf("captured length %d, snapshot length %d", capLen, r.limit)}
	}
	data := make([]byte, capLen)
	if n, err := io.ReadFull(r.r, data); err != nil {
		return Record{}, readError(num, off, err, "record data", int(capLen), n)
	}
	r.record = num
	r.off = off + recordHeaderLen + int64(capLen)
	nsec := int64(frac)
	if !r.nano {
		nsec *= 1000
	}
	return Record{
		Time:    time.Unix(int64(sec), nsec).UTC(),
		Data:    data,
		OrigLen: int(origLen),
	}, nil
}

// readError turns an io.ReadFull failure into a *Error: running out of
// input is ErrTruncated, anything else keeps the reader's error.
func readError(record int, off int64, err error, what string, need, have int) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &Error{Record: record, Offset: off, Err: ErrTruncated,
			Detail: fmt.Sprintf("%s: need %d bytes, have %d", what, need, have)}
	}
	return &Error{Record: record, Offset: off, Err: err, Detail: "reading " + what}
}

// Writer writes records to a classic pcap file: little-endian, microsecond
// timestamps, version 2.4, snapshot length MaxSnapLen.
type Writer struct {
	w      io.Writer
	record int
	buf    []byte
}

// NewWriter writes a file header for link type linkType (for example
// LinkTypeEthernet) to w and returns a Writer for the records.
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	var h [fileHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:4], magicMicro)
	binary.LittleEndian.PutUint16(h[4:6], 2)
	binary.LittleEndian.PutUint16(h[6:8], 4)
	binary.LittleEndian.PutUint32(h[16:20], MaxSnapLen)
	binary.LittleEndian.PutUint32(h[20:24], linkType)
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcapfile: writing file header: %w", err)
	}
	return &Writer{w: w}, nil
}

// WriteRecord appends one record. A zero OrigLen means len(rec.Data). The
// timestamp must lie between 1970 and 2106 (the format's 32-bit seconds) and
// is stored with microsecond resolution.
func (w *Writer) WriteRecord(rec Record) error {
	num := w.record + 1
	if len(rec.Data) > MaxSnapLen {
		return fmt.Errorf("pcapfile: record %d: %w: captured length %d, snapshot length %d", num, ErrTooLong, len(rec.Data), MaxSnapLen)
	}
	orig := rec.OrigLen
	if orig == 0 {
		orig = len(rec.Data)
	}
	if orig < len(rec.Data) || int64(orig) > 0xffffffff {
		return fmt.Errorf("pcapfile: record %d: original length %d is less than captured length %d or too large", num, orig, len(rec.Data))
	}
	sec := rec.Time.Unix()
	if sec < 0 || sec > 0xffffffff {
		return fmt.Errorf("pcapfile: record %d: time %s does not fit the format (1970 to 2106)", num, rec.Time)
	}
	b := w.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(sec))
	b = binary.LittleEndian.AppendUint32(b, uint32(rec.Time.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec.Data)))
	b = binary.LittleEndian.AppendUint32(b, uint32(orig))
	b = append(b, rec.Data...)
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("pcapfile: writing record %d: %w", num, err)
	}
	w.record = num
	return nil
}
