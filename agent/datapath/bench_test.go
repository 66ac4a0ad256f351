package datapath

import (
	"context"
	"fmt"
	"testing"

	"github.com/tether-net/tether/agent/inventory"
	"github.com/tether-net/tether/agent/softswitch"
)

// nopVNICs and nopSwitch do nothing: the benchmark measures the
// reconciler's own cost per pass (snapshot, diff, bookkeeping), not a
// kernel's.
type nopVNICs struct{}

func (nopVNICs) Ensure(context.Context, inventory.VIF, *Answer) (string, error) { return "", nil }
func (nopVNICs) Release(context.Context, inventory.VIF) error                   { return nil }

type nopSwitch struct{}

func (nopSwitch) EnsurePort(context.Context, softswitch.Port) error { return nil }
func (nopSwitch) RemovePort(context.Context, string) error          { return nil }
func (nopSwitch) Check(context.Context, softswitch.Port) ([]softswitch.Difference, error) {
	return nil, nil
}

// BenchmarkPass measures one full pass (every VIF converged: vNIC, port
// read back) and one idle pass (nothing dirty) over 1,000 answered VIFs.
func BenchmarkPass(b *testing.B) {
	st := openStore(b)
	ctx := context.Background()
	c := inventory.Change{}.Add(inventory.UpsertVM(testVM))
	var vifs []inventory.VIF
	for i := range 1000 {
		v := inventory.VIF{MAC: inventory.MAC{0x52, 0x54, 1, 0, byte(i >> 8), byte(i)}, VM: testVM.UUID,
			Kind: inventory.KindTap, HostDev: fmt.Sprintf("vnet%d", i)}
		vifs = append(vifs, v)
		c = c.Add(inventory.UpsertVIF(v))
	}
	if _, err := st.Apply(ctx, c); err != nil {
		b.Fatal(err)
	}
	r, err := New(Config{Store: st, VNICs: map[inventory.Kind]VNICs{inventory.KindTap: nopVNICs{}}, Switch: nopSwitch{}, Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range vifs {
		_ = r.Granted(v, 100, nil)
	}
	if _, err := r.pass(ctx, true); err != nil {
		b.Fatal(err)
	}
	for _, v := range vifs {
		if err := r.Granted(v, 100, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.pass(ctx, true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("idle", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.pass(ctx, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("granted", func(b *testing.B) {
		for b.Loop() {
			_ = r.Granted(vifs[0], 100, nil)
		}
	})
}
