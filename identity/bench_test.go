package identity

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"
)

// benchFrames are the unsigned frames the benchmarks sign and verify: a
// 299-byte LLDPDU (313-byte frame) and a VDP ASSOCIATE (145-byte ECPDU,
// 159-byte frame), sizes once signed.
func benchFrames(id KeyID) map[string][]byte {
	return map[string][]byte{"LLDP": lldpFrame(id), "VDP": vdpFrame()}
}

// BenchmarkSignPDU signs a frame into a reused buffer, counter reservation
// included (MemoryCounterStore, DefaultBlock).
//
//	go test ./identity -run '^$' -bench 'SignPDU|VerifyPDU' -benchmem
func BenchmarkSignPDU(b *testing.B) {
	ctx := context.Background()
	ts := newSetup(b)
	for _, name := range []string{"LLDP", "VDP"} {
		base := benchFrames(ts.key.ID())[name]
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := ts.signer.Sign(ctx, "eth0", append(buf[:0], base...)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyPDU verifies signed frames, replay window included. Each
// frame passes only once, so frames are signed in batches outside the
// timer. The "file" cases persist high-water marks in a FileCounterStore
// in the test's temporary directory: one atomic file write with fsync per
// frame, since nothing runs concurrently to share it.
func BenchmarkVerifyPDU(b *testing.B) {
	ctx := context.Background()
	ts := newSetup(b)
	frames := benchFrames(ts.key.ID())
	for _, bc := range []struct {
		name  string
		frame []byte
		file  bool
	}{
		{"LLDP", frames["LLDP"], false},
		{"VDP", frames["VDP"], false},
		{"LLDP/file", frames["LLDP"], true},
		{"VDP/file", frames["VDP"], true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := ts.verifier
			if bc.file {
				st, err := OpenFileCounterStore(filepath.Join(b.TempDir(), "rx"))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				keys, _ := NewStaticKeys(ts.key.Public())
				if v, err = NewVerifier(keys, st, VerifierOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			const batch = 1024
			signed := make([][]byte, batch)
			for i := range signed {
				signed[i] = make([]byte, 0, 512)
			}
			ch := b.Name()
			sign := func() {
				for i := range signed {
					f, err := ts.signer.Sign(ctx, ch, append(signed[i][:0], bc.frame...))
					if err != nil {
						b.Fatal(err)
					}
					signed[i] = f
				}
			}
			b.ReportAllocs()
			b.StopTimer()
			sign()
			b.StartTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%batch == 0 {
					b.StopTimer()
					sign()
					b.StartTimer()
				}
				if _, err := v.Verify(ctx, ch, signed[i%batch]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEd25519 is the bare signature primitive on a message of the
// signed LLDP frame's size, for comparison.
func BenchmarkEd25519(b *testing.B) {
	k := testKey(b, 1)
	msg := bytes.Repeat([]byte{1}, 14+299-64)
	sig := ed25519.Sign(k.priv, msg)
	b.Run("Sign", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			_ = ed25519.Sign(k.priv, msg)
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		pub := k.Public()
		for i := 0; i < b.N; i++ {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
}
