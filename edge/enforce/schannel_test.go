package enforce

import (
	"testing"
)

// TestSChannelPairs: with the default TPID (0x8100), a pair with an S-VID
// lets through exactly the frames of its MAC that arrive in an 802.1ad
// S-Tag with that S-VID (real frames over veth into a real bridge, the
// tag moved to the skb's metadata by the kernel): untagged inside the
// S-Tag for VID 0, with that C-Tag inside for VID 100. The same MAC in
// another S-channel, outside any S-Tag, or with another inner VID is
// dropped and counted; Observed reads the S-VID back; RevokePair ends it.
func TestSChannelPairs(t *testing.T) {
	l, e := managedLab(t)
	vm := testMAC(1)
	inner := Pair{MAC: [6]byte(vm), SVID: 5}
	tagged100 := Pair{MAC: [6]byte(vm), SVID: 6, VID: 100}
	for _, p := range []Pair{inner, tagged100} {
		if err := e.AllowPair(l.ctx, portA, p); err != nil {
			t.Fatalf("AllowPair %v: %v", p, err)
		}
	}
	assertObserved(t, e, State{portA: {Allowed: []Pair{inner, tagged100}}})
	s := func(svid uint16, more ...uint16) []uint16 { return append([]uint16{etherTypeSTag, svid}, more...) }
	good := []uint64{
		l.send(t, l.txA, l.macB, vm, s(5), etherTypeTest),
		l.send(t, l.txA, l.macB, vm, s(6, etherTypeCTag, 100), etherTypeTest),
	}
	expectReceived(t, l.rxB, "frames of the S-channel pairs", good...)
	bad := []uint64{
		l.send(t, l.txA, l.macB, vm, s(7), etherTypeTest),                     // another S-channel
		l.send(t, l.txA, l.macB, vm, s(5, etherTypeCTag, 100), etherTypeTest), // VID 100 inside S-VID 5: not allowed
		l.send(t, l.txA, l.macB, vm, s(6), etherTypeTest),                     // untagged inside S-VID 6: not allowed
		l.send(t, l.txA, l.macB, vm, nil, etherTypeTest),                      // no S-Tag
		l.send(t, l.txA, l.macB, vm, tagged(100), etherTypeTest),              // C-Tag only
		l.send(t, l.txA, l.macB, testMAC(2), s(5), etherTypeTest),             // another MAC
		l.send(t, l.txA, l.macB, vm, s(5, etherTypeSTag, 100), etherTypeTest), // double S-Tag
	}
	waitCount(t, e, portA, "dropped", dropped, uint64(len(bad)))
	expectNotReceived(t, l.rxB, "frames outside the S-channel pairs", bad...)

	// A pair without S-VID does not admit its MAC inside an S-Tag.
	if err := e.Allow(l.ctx, portA, vm, 0); err != nil {
		t.Fatal(err)
	}
	id := l.send(t, l.txA, l.macB, vm, s(9), etherTypeTest)
	expectReceived(t, l.rxB, "the untagged pair's frame", l.send(t, l.txA, l.macB, vm, nil, etherTypeTest))
	expectNotReceived(t, l.rxB, "the untagged pair's MAC in S-channel 9", id)

	if err := e.RevokePair(l.ctx, portA, inner); err != nil {
		t.Fatal(err)
	}
	gone := l.send(t, l.txA, l.macB, vm, s(5), etherTypeTest)
	expectNotReceived(t, l.rxB, "S-channel 5 after RevokePair", gone)
	assertObserved(t, e, State{portA: {Allowed: []Pair{{MAC: [6]byte(vm)}, tagged100}}})
	if err := e.AllowPair(l.ctx, portA, Pair{MAC: [6]byte(vm), SVID: 4095}); err == nil ||
		err.Error() != "enforce: invalid (MAC, VID) pair: S-VID 4095 above 4094" {
		t.Errorf("AllowPair with S-VID 4095: %v", err)
	}
}
