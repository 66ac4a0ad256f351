package inventory

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// testUUID returns a distinct, valid UUID for i.
func testUUID(i uint64) UUID {
	var u UUID
	u[0] = 0xa5
	binary.BigEndian.PutUint64(u[8:], i)
	return u
}

// testMAC returns a QEMU-pool MAC for VM i, vNIC j.
func testMAC(i uint64, j int) MAC {
	return MAC{0x52, 0x54, byte(i >> 16), byte(i >> 8), byte(i), byte(j)}
}

func testVM(i uint64) VM {
	return VM{UUID: testUUID(i), Name: fmt.Sprintf("vm-%d", i), State: VMStateRunning, Source: "libvirt"}
}

func testVIF(i uint64, j int) VIF {
	return VIF{
		MAC:       testMAC(i, j),
		VM:        testUUID(i),
		HostDev:   fmt.Sprintf("vnet%d", 4*i+uint64(j)),
		Kind:      KindTap,
		STag:      100 + uint16(j),
		CVID:      10,
		PortGroup: "web",
		VirtualPort: VirtualPort{
			Type: VirtualPort8021Qbg, ManagerID: 12, TypeID: 0x123456, TypeIDVersion: 1, InstanceID: testUUID(1000 + i),
		},
	}
}

// testDomain is VM i with n vNICs.
func testDomain(i uint64, n int) Domain {
	d := Domain{VM: testVM(i)}
	for j := range n {
		d.VIFs = append(d.VIFs, testVIF(i, j))
	}
	return d
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixedClock returns a clock that advances one millisecond per call.
func fixedClock() func() time.Time {
	t := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Millisecond)
		return t
	}
}

func openTest(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "inventory.db")
	}
	if opts.Logger == nil {
		opts.Logger = discard
	}
	if opts.Now == nil {
		opts.Now = fixedClock()
	}
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustApply(t testing.TB, s *Store, ops ...Op) Result {
	t.Helper()
	r, err := s.Apply(context.Background(), Change{Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
