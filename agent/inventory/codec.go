package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
)

// ErrCorrupt is wrapped by every error about a stored record that cannot be
// decoded: truncated, failing its checksum, of an unknown version, or
// holding values the model forbids.
var ErrCorrupt = errors.New("inventory: corrupt record")

// Record encoding. Each record is
//
//	tag (1 byte: 'M' for a VM, 'I' for a VIF), record version (1 byte),
//	fixed fields (big-endian), variable text fields (each a minimal uvarint
//	length then the bytes), CRC-32C (Castagnoli) of all the preceding bytes
//	(4 bytes, big-endian).
//
// The encoding is canonical: decoding then encoding gives back the input.
const (
	tagVM  = 'M'
	tagVIF = 'I'

	// recordVersion is the version written. A later version may add fields;
	// a decoder refuses versions it does not know.
	recordVersion = 1

	// VM v1 fixed part: tag, version, UUID[16], state, generation[8].
	vmFixedLen = 2 + 16 + 1 + 8
	// VIF v1 fixed part: tag, version, MAC[6], VM UUID[16], kind, state,
	// S-Tag[2], C-VID[2], virtual port type, managerid, typeid[4],
	// typeidversion, instanceid[16], interfaceid[16], generation[8],
	// last.from, last.to, last.at (Unix ns)[8].
	vifFixedLen = 2 + 6 + 16 + 1 + 1 + 2 + 2 + 1 + 1 + 4 + 1 + 16 + 16 + 8 + 1 + 1 + 8
	crcLen      = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes vm as a store record.
func (vm VM) MarshalBinary() ([]byte, error) { return vm.AppendBinary(nil) }

// AppendBinary appends vm's store record to b.
func (vm VM) AppendBinary(b []byte) ([]byte, error) {
	if err := vm.Validate(); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, tagVM, recordVersion)
	b = append(b, vm.UUID[:]...)
	b = append(b, byte(vm.State))
	b = binary.BigEndian.AppendUint64(b, vm.Generation)
	b = appendText(b, vm.Name)
	b = appendText(b, vm.Source)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary decodes a store record into vm. Errors wrap ErrCorrupt.
func (vm *VM) UnmarshalBinary(b []byte) error {
	v, err := decodeVM(b, nil)
	if err != nil {
		return err
	}
	*vm = v
	return nil
}

// MarshalBinary encodes v, store-owned fields included, as a store record.
func (v VIF) MarshalBinary() ([]byte, error) { return v.AppendBinary(nil) }

// AppendBinary appends v's store record to b.
func (v VIF) AppendBinary(b []byte) ([]byte, error) {
	if err := v.validateStored(); err != nil {
		return b, err
	}
	at, err := encodeTime(v.Last.At)
	if err != nil {
		return b, fmt.Errorf("inventory: VIF %s: %w", v.MAC, err)
	}
	start := len(b)
	vp := &v.VirtualPort
	b = append(b, tagVIF, recordVersion)
	b = append(b, v.MAC[:]...)
	b = append(b, v.VM[:]...)
	b = append(b, byte(v.Kind), byte(v.State))
	b = binary.BigEndian.AppendUint16(b, v.STag)
	b = binary.BigEndian.AppendUint16(b, v.CVID)
	b = append(b, byte(vp.Type), vp.ManagerID)
	b = binary.BigEndian.AppendUint32(b, vp.TypeID)
	b = append(b, vp.TypeIDVersion)
	b = append(b, vp.InstanceID[:]...)
	b = append(b, vp.InterfaceID[:]...)
	b = binary.BigEndian.AppendUint64(b, v.Generation)
	b = append(b, byte(v.Last.From), byte(v.Last.To))
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = appendText(b, v.HostDev)
	b = appendText(b, vp.ProfileID)
	b = appendText(b, v.PortGroup)
	b = appendText(b, v.Last.Reason)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

// UnmarshalBinary decodes a store record into v. Errors wrap ErrCorrupt.
func (v *VIF) UnmarshalBinary(b []byte) error {
	d, err := decodeVIF(b, nil)
	if err != nil {
		return err
	}
	*v = d
	return nil
}

// encodeTime gives t as Unix nanoseconds; the zero time is 0.
func encodeTime(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return 0, fmt.Errorf("time %s out of the representable range", t)
	}
	return t.UnixNano(), nil
}

func decodeTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// interner shares the strings that repeat across records (port groups,
// reasons, profile IDs, sources) while a snapshot is decoded. A nil interner
// allocates every string.
type interner map[string]string

const maxInterned = 4096

func (in interner) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if in == nil {
		return string(b)
	}
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < maxInterned {
		in[s] = s
	}
	return s
}

// reader walks a record, remembering the first problem.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: offset %d: %s", ErrCorrupt, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail("truncated: need %d bytes, have %d", n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8() byte {
	if p := r.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.bytes(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.bytes(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.bytes(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) text(what string, limit int, in interner) string {
	if r.err != nil {
		return ""
	}
	n, w := binary.Uvarint(r.b[r.off:])
	if w <= 0 {
		r.fail("%s: bad length", what)
		return ""
	}
	if w != uvarintLen(n) {
		r.fail("%s: non-minimal length encoding", what)
		return ""
	}
	if n > uint64(limit) {
		r.fail("%s: length %d exceeds %d", what, n, limit)
		return ""
	}
	r.off += w
	p := r.bytes(int(n))
	if p == nil {
		return ""
	}
	return in.str(p)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// header checks the tag, version and checksum, and returns a reader over
// the record body without the checksum.
func header(b []byte, tag byte, what string, fixed int) (reader, error) {
	if len(b) < fixed+crcLen {
		return reader{}, fmt.Errorf("%w: %s record of %d bytes, want at least %d", ErrCorrupt, what, len(b), fixed+crcLen)
	}
	if b[0] != tag {
		return reader{}, fmt.Errorf("%w: %s record has tag 0x%02x, want 0x%02x", ErrCorrupt, what, b[0], tag)
	}
	if b[1] != recordVersion {
		return reader{}, fmt.Errorf("%w: %s record version %d, this tetherd reads version %d", ErrCorrupt, what, b[1], recordVersion)
	}
	body := b[:len(b)-crcLen]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(body):]); got != want {
		return reader{}, fmt.Errorf("%w: %s record checksum 0x%08x, computed 0x%08x", ErrCorrupt, what, want, got)
	}
	return reader{b: body, off: 2}, nil
}

func decodeVM(b []byte, in interner) (VM, error) {
	var vm VM
	r, err := header(b, tagVM, "VM", vmFixedLen)
	if err != nil {
		return vm, err
	}
	copy(vm.UUID[:], r.bytes(16))
	vm.State = VMState(r.u8())
	vm.Generation = r.u64()
	vm.Name = r.text("name", MaxNameLen, nil)
	vm.Source = r.text("source", MaxFieldLen, in)
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	if r.err != nil {
		return VM{}, r.err
	}
	if err := vm.Validate(); err != nil {
		return VM{}, fmt.Errorf("%w: %s", ErrCorrupt, strings.TrimPrefix(err.Error(), "inventory: "))
	}
	return vm, nil
}

func decodeVIF(b []byte, in interner) (VIF, error) {
	var v VIF
	r, err := header(b, tagVIF, "VIF", vifFixedLen)
	if err != nil {
		return v, err
	}
	vp := &v.VirtualPort
	copy(v.MAC[:], r.bytes(6))
	copy(v.VM[:], r.bytes(16))
	v.Kind = Kind(r.u8())
	v.State = State(r.u8())
	v.STag = r.u16()
	v.CVID = r.u16()
	vp.Type = VirtualPortType(r.u8())
	vp.ManagerID = r.u8()
	vp.TypeID = r.u32()
	vp.TypeIDVersion = r.u8()
	copy(vp.InstanceID[:], r.bytes(16))
	copy(vp.InterfaceID[:], r.bytes(16))
	v.Generation = r.u64()
	v.Last.From = State(r.u8())
	v.Last.To = State(r.u8())
	v.Last.At = decodeTime(int64(r.u64()))
	v.HostDev = r.text("host device", MaxFieldLen, nil)
	vp.ProfileID = r.text("profileid", MaxFieldLen, in)
	v.PortGroup = r.text("port group", MaxFieldLen, in)
	v.Last.Reason = r.text("reason", MaxNameLen, in)
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	if r.err != nil {
		return VIF{}, r.err
	}
	if err := v.validateStored(); err != nil {
		return VIF{}, fmt.Errorf("%w: %s", ErrCorrupt, strings.TrimPrefix(err.Error(), "inventory: "))
	}
	return v, nil
}

// vifVM returns the VM UUID of an encoded VIF record without decoding it,
// or false if the record is too short or not a VIF record.
func vifVM(b []byte) (UUID, bool) {
	if len(b) < vifFixedLen+crcLen || b[0] != tagVIF || b[1] != recordVersion {
		return UUID{}, false
	}
	return UUID(b[8:24]), true
}
