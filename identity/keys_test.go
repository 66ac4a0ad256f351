package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey returns a deterministic key derived from seed.
func testKey(t testing.TB, seed byte) *PrivateKey {
	t.Helper()
	k, err := NewPrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyID(t *testing.T) {
	// RFC 8032 7.1 test 1: public key d75a9801...
	pub := ed25519.PublicKey([]byte{
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
		0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	})
	id := KeyIDOf(pub)
	// echo d75a...511a | xxd -r -p | sha256sum gives 21fe31dfa154a261...
	const want = "21fe31dfa154a261"
	if id.String() != want {
		t.Fatalf("KeyIDOf = %s, want %s", id, want)
	}
	back, err := ParseKeyID(want)
	if err != nil || back != id {
		t.Fatalf("ParseKeyID(%q) = %s, %v", want, back, err)
	}
	j, err := json.Marshal(map[string]KeyID{"key": id})
	if err != nil || string(j) != `{"key":"21fe31dfa154a261"}` {
		t.Fatalf("JSON = %s, %v", j, err)
	}
	var m map[string]KeyID
	if err := json.Unmarshal(j, &m); err != nil || m["key"] != id {
		t.Fatalf("JSON round trip = %v, %v", m, err)
	}
	for _, bad := range []string{"", "21fe31dfa154a2", "21fe31dfa154a26z", "21fe31dfa154a26100"} {
		if _, err := ParseKeyID(bad); err == nil {
			t.Errorf("ParseKeyID(%q) succeeded", bad)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host.key")
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Fatalf("mode after Save = %v, want -rw-------", fi.Mode())
	}
	got, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != k.ID() || !got.Public().Equal(k.Public()) || !got.priv.Equal(k.priv) {
		t.Fatal("loaded key differs from saved key")
	}
	// Saving again replaces the file atomically and leaves no temporary.
	k2 := testKey(t, 2)
	if err := k2.Save(path); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadPrivateKey(path); err != nil || got.ID() != k2.ID() {
		t.Fatalf("after overwrite: %v, %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries after Save, want 1", len(ents))
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("key file does not start with a PKCS#8 PEM block:\n%s", data)
	}
}

func TestLoadRefusesExposedKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host.key")
	if err := testKey(t, 1).Save(path); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode os.FileMode
		want string
	}{
		{0o644, "identity: private key " + path + " is readable by others (mode 0644); chmod 600 it"},
		{0o640, "identity: private key " + path + " is readable by others (mode 0640); chmod 600 it"},
		{0o604, "identity: private key " + path + " is readable by others (mode 0604); chmod 600 it"},
		{0o620, "identity: private key " + path + " is writable or executable by others (mode 0620); chmod 600 it"},
		{0o601, "identity: private key " + path + " is writable or executable by others (mode 0601); chmod 600 it"},
	}
	for _, tt := range tests {
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrivateKey(path)
		if err == nil || err.Error() != tt.want {
			t.Errorf("mode %04o: error\n got %v\nwant %s", tt.mode, err, tt.want)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(path); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPEM, err := MarshalPublicKeyPEM(testKey(t, 1).Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file or directory"},
		{"directory", dir, "is not a regular file"},
		{"not PEM", write("garbage", "hello"), "no PEM block"},
		{"public key", write("pub", string(pubPEM)), `PEM block is "PUBLIC KEY", want "PRIVATE KEY"`},
		{"bad DER", write("der", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "parse PKCS#8"},
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, err := LoadPrivateKey(tt.path)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestPublicKeyPEM(t *testing.T) {
	k := testKey(t, 3)
	b, err := MarshalPublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Fatalf("not a PUBLIC KEY block:\n%s", b)
	}
	pub, err := ParsePublicKeyPEM(b)
	if err != nil || !pub.Equal(k.Public()) || KeyIDOf(pub) != k.ID() {
		t.Fatalf("ParsePublicKeyPEM = %x, %v", pub, err)
	}
	if _, err := MarshalPublicKeyPEM(k.Public()[:31]); err == nil {
		t.Fatal("MarshalPublicKeyPEM accepted a 31-byte key")
	}
	if _, err := ParsePublicKeyPEM([]byte("junk")); err == nil {
		t.Fatal("ParsePublicKeyPEM accepted junk")
	}
}

func TestNewPrivateKeyChecks(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if _, err := NewPrivateKey(priv[:63]); err == nil {
		t.Fatal("accepted a 63-byte key")
	}
	bad := append(ed25519.PrivateKey(nil), priv...)
	bad[40] ^= 1 // public half no longer matches the seed
	if _, err := NewPrivateKey(bad); err == nil {
		t.Fatal("accepted a key whose public half does not match its seed")
	}
}
