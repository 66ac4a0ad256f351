package libvirthooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"time"
)

// Spool file format, version 1:
//
//	TETHER-SPOOL 1 <payload length, decimal> <CRC-32C of payload, 8 hex digits>\n
//	<payload: one JSON object, spoolPayload>
//
// The header makes a truncated or altered file detectable before the JSON
// is looked at; the JSON keeps the file readable with standard tools.
const (
	spoolMagic   = "TETHER-SPOOL"
	spoolVersion = "1"
	// maxSpoolHeader bounds the header line.
	maxSpoolHeader = 64
	// maxSpoolRecord bounds a whole record: DefaultXMLLimit of XML in
	// base64 plus the event fields.
	maxSpoolRecord = DefaultXMLLimit/3*4 + 64<<10
)

// spoolPayload is the JSON body of a spool file.
type spoolPayload struct {
	Time         time.Time `json:"time"`
	Driver       string    `json:"driver"`
	Object       string    `json:"object"`
	Operation    string    `json:"operation"`
	SubOperation string    `json:"sub_operation"`
	Extra        string    `json:"extra"`
	XML          []byte    `json:"xml"` // base64 in JSON: XML need not be valid UTF-8 to survive
}

// castagnoli builds the CRC-32C table; it is cheap and keeps the package
// free of mutable globals.
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// encodeSpoolRecord serialises one event.
func encodeSpoolRecord(ev Event, xmlData []byte, t time.Time) ([]byte, error) {
	payload, err := json.Marshal(spoolPayload{
		Time:         t.UTC(),
		Driver:       string(ev.Driver),
		Object:       ev.Object,
		Operation:    string(ev.Operation),
		SubOperation: string(ev.SubOperation),
		Extra:        ev.Extra,
		XML:          xmlData,
	})
	if err != nil {
		return nil, fmt.Errorf("encode spool record: %w", err)
	}
	header := fmt.Sprintf("%s %s %d %08x\n", spoolMagic, spoolVersion, len(payload), crc32c(payload))
	rec := make([]byte, 0, len(header)+len(payload))
	rec = append(rec, header...)
	rec = append(rec, payload...)
	if int64(len(rec)) > maxSpoolRecord {
		return nil, fmt.Errorf("encode spool record: %d bytes, limit %d", len(rec), maxSpoolRecord)
	}
	return rec, nil
}

// decodeSpoolRecord parses and validates one spool file's content. Any
// error means the file is corrupt.
func decodeSpoolRecord(rec []byte) (Event, []byte, time.Time, error) {
	if int64(len(rec)) > maxSpoolRecord {
		return Event{}, nil, time.Time{}, fmt.Errorf("record is %d bytes, limit %d", len(rec), maxSpoolRecord)
	}
	nl := bytes.IndexByte(rec[:min(len(rec), maxSpoolHeader)], '\n')
	if nl < 0 {
		return Event{}, nil, time.Time{}, errors.New("no header line")
	}
	fields := bytes.Split(rec[:nl], []byte{' '})
	if len(fields) != 4 || string(fields[0]) != spoolMagic {
		return Event{}, nil, time.Time{}, errors.New("bad header")
	}
	if string(fields[1]) != spoolVersion {
		return Event{}, nil, time.Time{}, fmt.Errorf("unsupported version %q", fields[1])
	}
	n, err := strconv.Atoi(string(fields[2]))
	if err != nil || n < 0 {
		return Event{}, nil, time.Time{}, errors.New("bad payload length")
	}
	payload := rec[nl+1:]
	if len(payload) != n {
		return Event{}, nil, time.Time{}, fmt.Errorf("payload is %d bytes, header says %d", len(payload), n)
	}
	if len(fields[3]) != 8 {
		return Event{}, nil, time.Time{}, errors.New("bad checksum field")
	}
	sum, err := strconv.ParseUint(string(fields[3]), 16, 32)
	if err != nil {
		return Event{}, nil, time.Time{}, errors.New("bad checksum field")
	}
	if got := crc32c(payload); got != uint32(sum) {
		return Event{}, nil, time.Time{}, fmt.Errorf("checksum %08x, header says %08x", got, sum)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var p spoolPayload
	if err := dec.Decode(&p); err != nil {
		return Event{}, nil, time.Time{}, fmt.Errorf("payload: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Event{}, nil, time.Time{}, errors.New("payload: trailing data")
	}
	ev := Event{
		Driver:       Driver(p.Driver),
		Object:       p.Object,
		Operation:    Operation(p.Operation),
		SubOperation: SubOperation(p.SubOperation),
		Extra:        p.Extra,
	}
	if err := ev.validate(); err != nil {
		return Event{}, nil, time.Time{}, fmt.Errorf("payload: %w", err)
	}
	if p.Time.IsZero() {
		return Event{}, nil, time.Time{}, errors.New("payload: no time")
	}
	return ev, p.XML, p.Time, nil
}

// crc32c is the CRC-32C (Castagnoli) of b.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli()) }
