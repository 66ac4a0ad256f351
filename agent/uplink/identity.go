package uplink

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/tether-net/tether/identity"
	"github.com/tether-net/tether/wire"
)

// Counter file names in IdentityConfig.Counters.
const (
	// SignCountersFile holds the counters the host key has used, per
	// channel (identity.Signer).
	SignCountersFile = "host-sign.counters"
	// VerifyCountersFile holds the last counter accepted from each switch
	// key, per channel (identity.Verifier).
	VerifyCountersFile = "switch-verify.counters"
)

// LoadOrCreateKey loads the host key at path, or generates one and saves
// it with mode 0600 (creating the directory, mode 0700, when missing) if
// there is no file. created reports a new key.
func LoadOrCreateKey(path string) (key *identity.PrivateKey, created bool, err error) {
	key, err = identity.LoadPrivateKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("uplink: host key: %w", err)
	}
	key, err = identity.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("uplink: generate host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("uplink: host key directory: %w", err)
	}
	if err := key.Save(path); err != nil {
		return nil, false, fmt.Errorf("uplink: %w", err)
	}
	return key, true, nil
}

// IdentityConfig locates the host's signing identity (config identity.*).
type IdentityConfig struct {
	// KeyFile is the host's private key; generated when missing.
	KeyFile string
	// Counters is the directory of the counter files (created, 0700).
	Counters string
	// SwitchKeys is the directory of the enrolled switches' public keys.
	SwitchKeys string
	// CID is the Company ID of tether's TLVs (zero: wire.DefaultCID).
	CID wire.OUI
}

// Identity is the host key with its Signer and the Verifier of the
// enrolled switch keys, shared by every uplink of the process.
type Identity struct {
	// Key is the host key.
	Key *identity.PrivateKey
	// Signer signs with Key; its counters persist in Counters.
	Signer *identity.Signer
	// Verifier checks the switches' signatures against SwitchKeys.
	Verifier *identity.Verifier
	// Keys is the enrolled switch keys.
	Keys *DirKeys

	stores []*identity.FileCounterStore
}

// OpenIdentity loads (or generates) the host key, opens the counter files
// and loads the switch keys. The counter files are locked: one process at
// a time. Close releases them.
func OpenIdentity(cfg IdentityConfig, log *slog.Logger) (*Identity, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "agent/uplink")
	key, created, err := LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated the host key; enrol its public key with tether-policyd", "key_file", cfg.KeyFile, "key_id", key.ID().String())
	} else {
		log.Info("host key loaded", "key_file", cfg.KeyFile, "key_id", key.ID().String())
	}
	if err := os.MkdirAll(cfg.Counters, 0o700); err != nil {
		return nil, fmt.Errorf("uplink: counters directory: %w", err)
	}
	id := &Identity{Key: key}
	ss, err := identity.OpenFileCounterStore(filepath.Join(cfg.Counters, SignCountersFile))
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	id.stores = append(id.stores, ss)
	vs, err := identity.OpenFileCounterStore(filepath.Join(cfg.Counters, VerifyCountersFile))
	if err != nil {
		_ = id.Close()
		return nil, fmt.Errorf("uplink: %w", err)
	}
	id.stores = append(id.stores, vs)
	if id.Signer, err = identity.NewSigner(key, ss, identity.SignerOptions{CID: cfg.CID}); err != nil {
		_ = id.Close()
		return nil, fmt.Errorf("uplink: %w", err)
	}
	id.Keys = NewDirKeys(cfg.SwitchKeys, log)
	if err := id.Keys.Reload(); err != nil {
		// Not fatal: the directory may be filled later; unknown keys
		// trigger a reload.
		log.Warn("switch keys not loaded", "err", err)
	}
	if id.Verifier, err = identity.NewVerifier(id.Keys, vs, identity.VerifierOptions{CID: cfg.CID}); err != nil {
		_ = id.Close()
		return nil, fmt.Errorf("uplink: %w", err)
	}
	return id, nil
}

// Close releases the counter files.
func (id *Identity) Close() error {
	var errs []error
	for _, s := range id.stores {
		errs = append(errs, s.Close())
	}
	id.stores = nil
	return errors.Join(errs...)
}

// minReload bounds how often an unknown key makes DirKeys re-read its
// directory.
const minReload = 2 * time.Second

// DirKeys is an identity.KeyStore over a directory of PEM public keys, one
// per file (hidden files and subdirectories are skipped). A lookup of an
// unknown key re-reads the directory (at most every 2 s), so a switch
// enrolled while tetherd runs is picked up without a restart.
type DirKeys struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	keys   map[identity.KeyID]ed25519.PublicKey
	loaded time.Time
}

var _ identity.KeyStore = (*DirKeys)(nil)

// NewDirKeys returns a key store over dir; nothing is read until Reload or
// the first lookup.
func NewDirKeys(dir string, log *slog.Logger) *DirKeys {
	if log == nil {
		log = slog.Default()
	}
	return &DirKeys{dir: dir, log: log, keys: map[identity.KeyID]ed25519.PublicKey{}}
}

// Reload reads the directory again. A missing directory holds no keys; a
// file that is not a PEM Ed25519 public key is skipped with a warning and
// reported in the error, the others are still loaded.
func (d *DirKeys) Reload() error {
	keys, err := readKeyDir(d.dir, d.log)
	d.mu.Lock()
	d.keys, d.loaded = keys, time.Now()
	d.mu.Unlock()
	return err
}

// IDs returns the enrolled key IDs, sorted.
func (d *DirKeys) IDs() []identity.KeyID {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]identity.KeyID, 0, len(d.keys))
	for id := range d.keys {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out
}

// PublicKey implements identity.KeyStore.
func (d *DirKeys) PublicKey(_ context.Context, id identity.KeyID) (ed25519.PublicKey, error) {
	d.mu.Lock()
	k, ok := d.keys[id]
	stale := time.Since(d.loaded) >= minReload
	d.mu.Unlock()
	if ok {
		return k, nil
	}
	if stale {
		_ = d.Reload()
		d.mu.Lock()
		k, ok = d.keys[id]
		d.mu.Unlock()
		if ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not in %s", identity.ErrUnknownKey, id, d.dir)
}

// readKeyDir reads every PEM public key in dir.
func readKeyDir(dir string, log *slog.Logger) (map[identity.KeyID]ed25519.PublicKey, error) {
	keys := map[identity.KeyID]ed25519.PublicKey{}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return keys, nil
	}
	if err != nil {
		return keys, fmt.Errorf("uplink: switch keys: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if name[0] == '.' || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := readSmall(path, 64<<10)
		if err == nil {
			var pub ed25519.PublicKey
			if pub, err = identity.ParsePublicKeyPEM(b); err == nil {
				keys[identity.KeyIDOf(pub)] = pub
				continue
			}
		}
		log.Warn("switch key file skipped", "file", path, "err", err)
		errs = append(errs, fmt.Errorf("uplink: switch key %s: %w", path, err))
	}
	return keys, errors.Join(errs...)
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}
