package switchconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// maxTLSFile bounds what CheckFiles reads of one TLS file.
const maxTLSFile = 1 << 20

// CheckFiles opens and parses the section's TLS files, as switchd's etcd
// client will at start, so that a missing, unreadable or malformed file is
// reported by tether-switchd --check-config and not only when the daemon
// starts: ca must hold at least one PEM block, each a CERTIFICATE that
// parses; cert and key must be a matching pair whose (first) certificate
// is valid at now. Every problem is reported, each prefixed with its key
// ("policy.ca: ...") and the file's path. Nothing is checked for a file
// that is not set.
func (p *Policy) CheckFiles(now time.Time) error {
	var errs []error
	if p.CA != "" {
		errs = append(errs, checkCA(p.CA))
	}
	if p.Cert != "" && p.Key != "" {
		errs = append(errs, checkKeyPair(p.Cert, p.Key, now))
	}
	return errors.Join(errs...)
}

// readTLSFile reads at most maxTLSFile bytes of path.
func readTLSFile(key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy.%s: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTLSFile+1))
	if err != nil {
		return nil, fmt.Errorf("policy.%s: %s: %w", key, path, err)
	}
	if len(b) > maxTLSFile {
		return nil, fmt.Errorf("policy.%s: %s: larger than %d bytes", key, path, maxTLSFile)
	}
	return b, nil
}

// checkCA parses the CA bundle at path.
func checkCA(path string) error {
	b, err := readTLSFile("ca", path)
	if err != nil {
		return err
	}
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		n++
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("policy.ca: %s: PEM block %d is %q, want CERTIFICATE", path, n, blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("policy.ca: %s: certificate %d: %w", path, n, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("policy.ca: %s: no PEM data", path)
	}
	return nil
}

// checkKeyPair parses the client certificate and key and checks the
// certificate's validity period.
func checkKeyPair(certPath, keyPath string, now time.Time) error {
	cb, err := readTLSFile("cert", certPath)
	kb, kerr := readTLSFile("key", keyPath)
	if err != nil || kerr != nil {
		return errors.Join(err, kerr)
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return fmt.Errorf("policy.cert, policy.key: %s, %s: %w", certPath, keyPath, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("policy.cert: %s: %w", certPath, err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("policy.cert: %s: expired at %s", certPath, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("policy.cert: %s: not valid before %s", certPath, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
