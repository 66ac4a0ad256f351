// Command keygen is the lab's enrolment helper (tests/lab/demo.sh): it
// loads the Ed25519 key at PRIVATE, generating it (mode 0600) when it is
// missing, exactly as tetherd and tether-switchd do on their first start,
// and writes its public key as PEM to PUBLIC, so that each side's key can
// be enrolled with the other before the daemons start. It prints the key
// ID.
//
//	keygen PRIVATE PUBLIC
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tether-net/tether/identity"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: keygen PRIVATE PUBLIC")
		os.Exit(2)
	}
	id, err := run(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "keygen: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(id)
}

func run(privPath, pubPath string) (string, error) {
	key, err := identity.LoadPrivateKey(privPath)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = identity.GenerateKey(nil); err != nil {
			return "", err
		}
		if err = os.MkdirAll(filepath.Dir(privPath), 0o700); err != nil {
			return "", err
		}
		err = key.Save(privPath)
	}
	if err != nil {
		return "", err
	}
	pem, err := identity.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(pubPath), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(pubPath, pem, 0o644); err != nil {
		return "", err
	}
	return key.ID().String(), nil
}
