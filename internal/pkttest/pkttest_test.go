package pkttest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// auxdata builds a PACKET_AUXDATA control message.
func auxdata(status uint32, tci, tpid uint16) []byte {
	d := make([]byte, 20)
	binary.NativeEndian.PutUint32(d[0:4], status)
	binary.NativeEndian.PutUint16(d[16:18], tci)
	binary.NativeEndian.PutUint16(d[18:20], tpid)
	b := make([]byte, unix.CmsgSpace(len(d)))
	h := (*unix.Cmsghdr)(unsafePointer(b))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(len(d)))
	copy(b[unix.CmsgLen(0):], d)
	return b
}

func TestRestoreTag(t *testing.T) {
	frame := append(bytes.Repeat([]byte{0xaa}, 12), 0x88, 0xb5, 1, 2)
	for _, tc := range []struct {
		name string
		oob  []byte
		want []byte
	}{
		{"no control message", nil, frame},
		{"no tag", auxdata(0, 100, 0x8100), frame},
		{"C-Tag", auxdata(unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 100, 0x8100),
			append(append(bytes.Repeat([]byte{0xaa}, 12), 0x81, 0x00, 0, 100), 0x88, 0xb5, 1, 2)},
		{"S-Tag with PCP", auxdata(unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID, 5<<13|2001, 0x88a8),
			append(append(bytes.Repeat([]byte{0xaa}, 12), 0x88, 0xa8, 0xa7, 0xd1), 0x88, 0xb5, 1, 2)},
		{"TPID unknown", auxdata(unix.TP_STATUS_VLAN_VALID, 7, 0x8100),
			append(append(bytes.Repeat([]byte{0xaa}, 12), 0, 0, 0, 7), 0x88, 0xb5, 1, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RestoreTag(bytes.Clone(frame), tc.oob)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("RestoreTag = % x, %v\nwant % x", got, err, tc.want)
			}
		})
	}
	// A frame too short for the addresses stays as it is.
	if got, err := RestoreTag([]byte{1, 2, 3}, auxdata(unix.TP_STATUS_VLAN_VALID, 7, 0x8100)); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("short frame: % x, %v", got, err)
	}
	// A control message whose length runs past the buffer.
	bad := auxdata(unix.TP_STATUS_VLAN_VALID, 7, 0x8100)
	(*unix.Cmsghdr)(unsafePointer(bad)).SetLen(len(bad) + 8)
	if _, err := RestoreTag(frame, bad); err == nil || err.Error() != "pkttest: control messages: invalid argument" {
		t.Errorf("truncated control message: %v", err)
	}
}
