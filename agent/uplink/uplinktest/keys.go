package uplinktest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-net/tether/identity"
)

// EnrolSwitchKey generates a switch key and enrols its public key as
// tor1.pem in dir/switch-keys, the directory a host's identity
// (identity.switch_keys, uplink.IdentityConfig.SwitchKeys) reads. It
// returns the key, for StartSwitch's SwitchConfig.Key, and the directory.
func EnrolSwitchKey(t testing.TB, dir string) (*identity.PrivateKey, string) {
	t.Helper()
	key, err := identity.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := identity.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "switch-keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "tor1.pem"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return key, keys
}
