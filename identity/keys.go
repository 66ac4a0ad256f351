package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyIDLen is the size of a KeyID.
const KeyIDLen = 8

// KeyID names an Ed25519 public key: the first 8 bytes of SHA-256 over the
// 32-byte public key (DESIGN.md "Wire decisions"). It is what the signature
// TLV carries and what the policy store enrolls keys under.
type KeyID [KeyIDLen]byte

// KeyIDOf returns the KeyID of pub.
func KeyIDOf(pub ed25519.PublicKey) KeyID {
	sum := sha256.Sum256(pub)
	return KeyID(sum[:KeyIDLen])
}

// String formats the ID as 16 lower-case hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler (16 hex digits).
func (id KeyID) MarshalText() ([]byte, error) {
	return hex.AppendEncode(nil, id[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *KeyID) UnmarshalText(b []byte) error {
	v, err := ParseKeyID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseKeyID parses 16 hex digits.
func ParseKeyID(s string) (KeyID, error) {
	id, err := parseKeyID(s)
	if err != nil {
		return KeyID{}, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// parseKeyID is ParseKeyID without the package prefix on errors.
func parseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 2*KeyIDLen {
		return id, fmt.Errorf("key ID %q: want %d hex digits", s, 2*KeyIDLen)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return KeyID{}, fmt.Errorf("key ID %q: %w", s, err)
	}
	return id, nil
}

// PrivateKey is a host's or switch's Ed25519 signing key.
type PrivateKey struct {
	priv ed25519.PrivateKey
	id   KeyID
}

// GenerateKey creates a new key from r, or from crypto/rand when r is nil.
func GenerateKey(r io.Reader) (*PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("identity: generate Ed25519 key: %w", err)
	}
	return NewPrivateKey(priv)
}

// NewPrivateKey wraps an existing Ed25519 private key; it keeps a copy
// and checks that the public half matches the seed.
func NewPrivateKey(priv ed25519.PrivateKey) (*PrivateKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity: Ed25519 private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	// Re-derive from the seed, so a key whose public half does not match
	// its seed cannot sign under the wrong key ID.
	k := &PrivateKey{priv: ed25519.NewKeyFromSeed(priv.Seed())}
	if !k.priv.Equal(priv) {
		return nil, errors.New("identity: Ed25519 private key's public half does not match its seed")
	}
	k.id = KeyIDOf(k.Public())
	return k, nil
}

// Public returns a copy of the public key.
func (k *PrivateKey) Public() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), k.priv[ed25519.SeedSize:]...)
}

// ID returns the key's KeyID.
func (k *PrivateKey) ID() KeyID { return k.id }

// pemPrivateKey and pemPublicKey are the PEM block types used on disk.
const (
	pemPrivateKey = "PRIVATE KEY"
	pemPublicKey  = "PUBLIC KEY"
)

// maxKeyFile bounds what LoadPrivateKey reads; a PKCS#8 Ed25519 key in PEM
// is about 120 bytes.
const maxKeyFile = 64 << 10

// Save writes the key to path as PKCS#8 in PEM, with mode 0600, atomically:
// a temporary file in the same directory is written and fsynced, renamed
// over path, and the directory is fsynced, so a crash leaves either the old
// file or the complete new one. It is local file I/O and not cancellable.
func (k *PrivateKey) Save(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return fmt.Errorf("identity: encode private key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der})
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("identity: save private key: %w", err)
	}
	return nil
}

// LoadPrivateKey reads a key written by Save. It refuses a file that group
// or others can access (any of the mode bits 0077), since such a key must
// be assumed leaked, and a file that is not a regular file.
func LoadPrivateKey(path string) (*PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: load private key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: load private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: private key %s is not a regular file (mode %s)", path, fi.Mode())
	}
	switch perm := fi.Mode().Perm(); {
	case perm&0o044 != 0:
		return nil, fmt.Errorf("identity: private key %s is readable by others (mode %04o); chmod 600 it", path, perm)
	case perm&0o033 != 0:
		return nil, fmt.Errorf("identity: private key %s is writable or executable by others (mode %04o); chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read private key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("identity: private key %s is larger than %d bytes", path, maxKeyFile)
	}
	k, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("identity: private key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKeyPEM parses a PEM "PRIVATE KEY" block holding a PKCS#8
// Ed25519 key.
func ParsePrivateKeyPEM(data []byte) (*PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemPrivateKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want an Ed25519 key", key)
	}
	return NewPrivateKey(priv)
}

// MarshalPublicKeyPEM encodes pub as a PEM "PUBLIC KEY" block (PKIX), the
// form enrolled in the policy store and printed by tetherctl.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: Ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("identity: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" block holding an Ed25519 key.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("identity: public key: no PEM block")
	}
	if block.Type != pemPublicKey {
		return nil, fmt.Errorf("identity: public key: PEM block is %q, want %q", block.Type, pemPublicKey)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("identity: public key is %T, want an Ed25519 key", key)
	}
	return pub, nil
}
