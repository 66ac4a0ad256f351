package uplink_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/wire"
)

// TestUnsignedLLDPInSwitchNameRefused: an unsigned LLDPDU carrying the
// signed switch's chassis ID and port ID (its first three TLVs, cut from
// one of its real LLDPDUs) is refused: the switch stays the uplink's
// usable peer and the verified VIF stays verified. Without the check the
// forged entry replaced the switch's (no EVB TLV, no capability) and every
// association waited for the switch's next LLDPDU.
func TestUnsignedLLDPInSwitchNameRefused(t *testing.T) {
	r := newRig(t)
	r.startSwitch(true, nil)
	_, macs := r.addVM(0)
	up := r.startUplink(true)
	r.waitState(macs, inventory.StateVerified, 10*time.Second)

	// One real LLDPDU of the switch, as it arrives on eth0.
	tap, err := r.host.Listen("eth0", wire.EtherTypeLLDP)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]byte, 2048)
	n, err := tap.ReadFrame(ctx, buf)
	if err != nil {
		t.Fatalf("no LLDPDU from the switch: %v", err)
	}
	// Keep the header and the Chassis ID, Port ID and TTL TLVs, then End.
	off := 14
	for range 3 {
		if off+2 > n {
			t.Fatalf("short LLDPDU from the switch: % x", buf[:n])
		}
		off += 2 + int(binary.BigEndian.Uint16(buf[off:])&0x1ff)
	}
	forged := append(bytes.Clone(buf[:off]), 0, 0)
	for len(forged) < 60 {
		forged = append(forged, 0)
	}
	tx, err := r.sw.Listen("swp1", 0x88b7)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for range 3 {
		if err := tx.WriteFrame(context.Background(), forged); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if st := up.u.Status(); !st.Connected {
			t.Fatalf("the uplink lost its switch to an unsigned LLDPDU: %+v", st)
		}
		if v, err := r.store.VIF(macs[0]); err != nil || v.State != inventory.StateVerified {
			t.Fatalf("VIF after the forgery: %s %q %v", v.State, v.Last.Reason, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
