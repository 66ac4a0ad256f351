package inventory

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"
)

func storedVIF() VIF {
	v := testVIF(7, 1)
	v.State = StateVerified
	v.Last = Transition{From: StateAssociated, To: StateVerified, Reason: "signed profile verified", At: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)}
	v.Generation = 42
	return v
}

func TestVIFRecordRoundTrip(t *testing.T) {
	vifs := []VIF{storedVIF()}
	ovs := storedVIF()
	ovs.Kind, ovs.STag, ovs.CVID = KindVeth, 0, 0
	ovs.VirtualPort = VirtualPort{Type: VirtualPortOpenvswitch, InterfaceID: testUUID(9), ProfileID: "gold"}
	ovs.Last = Transition{From: StateNone, To: StatePending, Reason: "added"} // zero time
	ovs.State = StatePending
	qbh := storedVIF()
	qbh.Kind, qbh.HostDev, qbh.PortGroup = KindMacvtap, "", ""
	qbh.VirtualPort = VirtualPort{Type: VirtualPort8021Qbh, ProfileID: strings.Repeat("p", MaxFieldLen)}
	part := storedVIF()
	part.Kind, part.VirtualPort = KindPartition, VirtualPort{}
	vifs = append(vifs, ovs, qbh, part)
	for _, v := range vifs {
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", v.MAC, err)
		}
		var got VIF
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", v.MAC, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, v)
		}
	}
	vm := testVM(3)
	vm.Generation = 9
	b, err := vm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var gotVM VM
	if err := gotVM.UnmarshalBinary(b); err != nil || gotVM != vm {
		t.Errorf("VM round trip: %+v, %v", gotVM, err)
	}
}

func TestVIFRecordLayout(t *testing.T) {
	v := storedVIF()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := vifFixedLen + (1 + len("vnet29")) + 1 + (1 + len("web")) + (1 + len("signed profile verified")) + crcLen
	if len(b) != want {
		t.Errorf("record is %d bytes, want %d", len(b), want)
	}
	if b[0] != 'I' || b[1] != 1 {
		t.Errorf("header % x", b[:2])
	}
	if got := MAC(b[2:8]); got != v.MAC {
		t.Errorf("MAC at 2:8 = %s", got)
	}
	if id, ok := vifVM(b); !ok || id != v.VM {
		t.Errorf("vifVM = %s, %v", id, ok)
	}
}

// reseal recomputes a record's checksum after a test edits it.
func reseal(b []byte) []byte {
	body := b[:len(b)-crcLen]
	binary.BigEndian.PutUint32(b[len(body):], crc32.Checksum(body, castagnoli))
	return b
}

func TestVIFRecordCorrupt(t *testing.T) {
	good, err := storedVIF().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "inventory: corrupt record: VIF record of 0 bytes, want at least 91"},
		{"short", good[:50], "inventory: corrupt record: VIF record of 50 bytes, want at least 91"},
		{"tag", edit(func(b []byte) []byte { b[0] = 'M'; return b }), "inventory: corrupt record: VIF record has tag 0x4d, want 0x49"},
		{"version", edit(func(b []byte) []byte { b[1] = 2; return b }), "inventory: corrupt record: VIF record version 2, this tetherd reads version 1"},
		{"bit flip", edit(func(b []byte) []byte { b[40] ^= 0x10; return b }), "inventory: corrupt record: VIF record checksum"},
		{"truncated text", reseal(append(append([]byte(nil), good[:vifFixedLen]...), 5, 'v', 0, 0, 0, 0)), "inventory: corrupt record: offset 88: truncated: need 5 bytes, have 1"},
		{"trailing", edit(func(b []byte) []byte { return reseal(append(b[:len(b)-crcLen], 0, 0, 0, 0, 0)) }), "inventory: corrupt record: offset 123: 1 trailing bytes"},
		{"kind", edit(func(b []byte) []byte { b[24] = 77; return reseal(b) }), "inventory: corrupt record: VIF 52:54:00:00:07:01: invalid kind 77"},
		{"state", edit(func(b []byte) []byte { b[25] = 0; return reseal(b) }), "inventory: corrupt record: VIF 52:54:00:00:07:01: invalid state 0"},
		{"multicast", edit(func(b []byte) []byte { b[2] = 0x53; return reseal(b) }), "inventory: corrupt record: invalid vNIC MAC: 53:54:00:00:07:01 is a multicast address"},
		{"stag", edit(func(b []byte) []byte { b[26], b[27] = 0x0f, 0xff; return reseal(b) }), "inventory: corrupt record: VIF 52:54:00:00:07:01: S-Tag 4095 out of range 1-4094"},
		{"last.to", edit(func(b []byte) []byte { b[78] = byte(StatePending); return reseal(b) }), "inventory: corrupt record: VIF 52:54:00:00:07:01: last transition ends in pending, state is verified"},
		{"typeid", edit(func(b []byte) []byte { b[32] = 1; return reseal(b) }), "inventory: corrupt record: VIF 52:54:00:00:07:01: 802.1Qbg typeid 17970262 exceeds 24 bits"},
	}
	for _, tt := range tests {
		_, err := decodeVIF(tt.b, nil)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v\nwant prefix %q", tt.name, err, tt.want)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v does not wrap ErrCorrupt", tt.name, err)
		}
	}
	// Every single-byte change is caught.
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		if _, err := decodeVIF(b, nil); err == nil {
			t.Errorf("flipping byte %d went unnoticed", i)
		}
	}
}

func TestVIFJSON(t *testing.T) {
	v := storedVIF()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"mac":"52:54:00:00:07:01","vm":"a5000000-0000-0000-0000-000000000007","hostdev":"vnet29","kind":"tap","stag":101,"cvid":10,` +
		`"virtualport":{"type":"802.1Qbg","managerid":12,"typeid":1193046,"typeidversion":1,"instanceid":"a5000000-0000-0000-0000-0000000003ef"},` +
		`"portgroup":"web","state":"verified","last":{"from":"associated","to":"verified","reason":"signed profile verified","at":"2025-03-01T12:00:00.123456789Z"},"generation":42}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	var back VIF
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
}

func TestValidate(t *testing.T) {
	mod := func(f func(v *VIF)) VIF { v := testVIF(1, 0); f(&v); return v }
	tests := []struct {
		v    VIF
		want string
	}{
		{testVIF(1, 0), ""},
		{mod(func(v *VIF) { v.VM = UUID{} }), "inventory: VIF 52:54:00:00:01:00: no VM UUID"},
		{mod(func(v *VIF) { v.Kind = KindUnknown }), "inventory: VIF 52:54:00:00:01:00: invalid kind 0"},
		{mod(func(v *VIF) { v.CVID = 4095 }), "inventory: VIF 52:54:00:00:01:00: C-VID 4095 out of range 1-4094"},
		{mod(func(v *VIF) { v.Kind, v.STag = KindPartition, 0 }), "inventory: VIF 52:54:00:00:01:00: an 802.1ad partition needs an S-Tag"},
		{mod(func(v *VIF) { v.MAC[0] = 0x01 }), "inventory: invalid vNIC MAC: 01:54:00:00:01:00 is a multicast address"},
		{mod(func(v *VIF) { v.VirtualPort.ProfileID = "x" }), "inventory: VIF 52:54:00:00:01:00: 802.1Qbg virtual port has profileid or interfaceid"},
		{mod(func(v *VIF) { v.VirtualPort = VirtualPort{Type: VirtualPort8021Qbh} }), "inventory: VIF 52:54:00:00:01:00: 802.1Qbh virtual port needs a profileid"},
		{mod(func(v *VIF) { v.VirtualPort = VirtualPort{Type: VirtualPort8021Qbh, ProfileID: "p", ManagerID: 1} }), "inventory: VIF 52:54:00:00:01:00: 802.1Qbh virtual port has parameters other than profileid"},
		{mod(func(v *VIF) { v.VirtualPort = VirtualPort{Type: VirtualPortOpenvswitch, TypeID: 1} }), "inventory: VIF 52:54:00:00:01:00: openvswitch virtual port has 802.1Qbg parameters"},
		{mod(func(v *VIF) { v.VirtualPort = VirtualPort{ProfileID: "p"} }), "inventory: VIF 52:54:00:00:01:00: virtual port of type none has parameters"},
		{mod(func(v *VIF) { v.VirtualPort.Type = 9 }), "inventory: VIF 52:54:00:00:01:00: invalid virtual port type 9"},
		{mod(func(v *VIF) { v.PortGroup = strings.Repeat("g", 256) }), "inventory: VIF 52:54:00:00:01:00: port group is 256 bytes long, limit 255"},
		{mod(func(v *VIF) { v.HostDev = "\xff" }), "inventory: VIF 52:54:00:00:01:00: host device is not valid UTF-8"},
	}
	for _, tt := range tests {
		err := tt.v.Validate()
		if (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || err.Error() != tt.want)) {
			t.Errorf("Validate() = %v\nwant %q", err, tt.want)
		}
	}
	if err := (VM{}).Validate(); err == nil || err.Error() != "inventory: VM has the zero UUID" {
		t.Errorf("zero VM: %v", err)
	}
}

func FuzzDecodeVIF(f *testing.F) {
	for _, v := range []VIF{storedVIF(), func() VIF {
		v := storedVIF()
		v.VirtualPort = VirtualPort{Type: VirtualPortOpenvswitch, InterfaceID: testUUID(3), ProfileID: "p"}
		return v
	}()} {
		b, err := v.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-crcLen]) // the body, for the resealed path below
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// As read from disk, and resealed with a valid checksum so that the
		// fuzzer reaches the field decoders, not just the CRC check.
		for _, in := range [][]byte{b, binary.BigEndian.AppendUint32(append([]byte(nil), b...), crc32.Checksum(b, castagnoli))} {
			v, err := decodeVIF(in, interner{})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			out, err := v.MarshalBinary()
			if err != nil {
				t.Fatalf("decoded %+v but cannot encode it: %v", v, err)
			}
			if string(out) != string(in) {
				t.Fatalf("not canonical:\n in % x\nout % x", in, out)
			}
		}
	})
}

func FuzzDecodeVM(f *testing.F) {
	vm := testVM(5)
	vm.Generation = 3
	b, err := vm.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-crcLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, binary.BigEndian.AppendUint32(append([]byte(nil), b...), crc32.Checksum(b, castagnoli))} {
			vm, err := decodeVM(in, nil)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			out, err := vm.MarshalBinary()
			if err != nil || string(out) != string(in) {
				t.Fatalf("not canonical: %v\n in % x\nout % x", err, in, out)
			}
		}
	})
}
