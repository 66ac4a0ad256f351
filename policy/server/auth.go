package server

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Role is what a caller may do: read, or read and write.
type Role int

// Roles, weakest first.
const (
	// RoleNone is an unauthenticated caller.
	RoleNone Role = iota
	// RoleRead may GET.
	RoleRead
	// RoleWrite may GET, POST, PUT and DELETE.
	RoleWrite
)

// String returns "read", "write" or "none".
func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	}
	return "none"
}

// ParseRole parses "read" or "write".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	}
	return RoleNone, fmt.Errorf("role %q is not one of read, write", s)
}

// MaxTokensFile bounds a tokens file's size.
const MaxTokensFile = 1 << 20

// Token is one bearer token as the server keeps it: only its SHA-256.
type Token struct {
	// Role is what the token may do.
	Role Role
	// Hash is the SHA-256 of the token's text.
	Hash [sha256.Size]byte
	// Name identifies the token in logs (the file's third column, or
	// "line N").
	Name string
}

// HashToken returns the lower-case hex SHA-256 of token, the form a tokens
// file holds (the same as `printf %s TOKEN | sha256sum`).
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ParseTokens reads a tokens file: one token per line,
//
//	ROLE SHA256-HEX [NAME]
//
// where ROLE is read or write, SHA256-HEX the 64 hex digits of the SHA-256
// of the token (`printf %s "$TOKEN" | sha256sum`), and NAME an optional
// label for the logs. Blank lines and lines starting with '#' are ignored.
// Errors name the line.
func ParseTokens(r io.Reader) ([]Token, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxTokensFile+1))
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	if len(b) > MaxTokensFile {
		return nil, fmt.Errorf("tokens file is over %d bytes", MaxTokensFile)
	}
	var (
		out  []Token
		seen = map[[sha256.Size]byte]int{}
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), MaxTokensFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want \"ROLE SHA256-HEX [NAME]\", got %d fields", n, len(f))
		}
		role, err := ParseRole(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		raw, err := hex.DecodeString(f[1])
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("line %d: %q is not a SHA-256 in hex (64 hex digits; the file holds hashes, never tokens: printf %%s TOKEN | sha256sum)", n, truncate(f[1], 80))
		}
		t := Token{Role: role, Name: fmt.Sprintf("line %d", n)}
		copy(t.Hash[:], raw)
		if len(f) == 3 {
			t.Name = f[2]
		}
		if prev, ok := seen[t.Hash]; ok {
			return nil, fmt.Errorf("line %d: the same token hash as line %d", n, prev)
		}
		seen[t.Hash] = n
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return out, nil
}

// LoadTokens reads the tokens file at path. The file must not be writable
// by others.
func LoadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("tokens file %s is writable by everyone (mode %v): chmod o-w it", path, st.Mode().Perm())
	}
	t, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

// CertRole maps client certificates to a role: a certificate matches when
// its subject's Common Name equals CN (when CN is set) and one of its
// Organizational Units equals OU (when OU is set).
type CertRole struct {
	// CN is the subject Common Name to match; empty matches any.
	CN string `yaml:"cn,omitempty" json:"cn,omitempty"`
	// OU is a subject Organizational Unit to match; empty matches any.
	OU string `yaml:"ou,omitempty" json:"ou,omitempty"`
	// Role is "read" or "write".
	Role string `yaml:"role" json:"role"`
}

// Auth decides who a request comes from and what it may do. The zero value
// lets nobody in.
type Auth struct {
	// Tokens are the bearer tokens accepted.
	Tokens []Token
	// ClientCAs verifies client certificates; nil means certificates are
	// not used for authentication.
	ClientCAs *x509.CertPool
	// CertRoles map verified client certificates to roles, first match
	// wins; a verified certificate matching none gets no role (403).
	CertRoles []CertRole
}

// Principal is an authenticated caller.
type Principal struct {
	// Name is the token's name or "cert CN=...".
	Name string
	// Role is what the caller may do.
	Role Role
}

// AuthError is why a request was not let in: Status is 401 or 403.
type AuthError struct {
	// Status is http.StatusUnauthorized or http.StatusForbidden.
	Status int
	// Msg says what was wrong.
	Msg string
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge string
}

// Error implements error.
func (e *AuthError) Error() string { return e.Msg }

// realm is the WWW-Authenticate realm.
const realm = `Bearer realm="tether-policyd"`

// Authenticate returns the caller of r, or an *AuthError. A verified client
// certificate is tried first, then the bearer token.
func (a *Auth) Authenticate(r *http.Request) (Principal, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && a.ClientCAs != nil {
		return a.byCert(r)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, &AuthError{Status: http.StatusUnauthorized, Challenge: realm,
			Msg: "authentication required: send Authorization: Bearer TOKEN or a client certificate"}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return Principal{}, &AuthError{Status: http.StatusUnauthorized, Challenge: realm + `, error="invalid_request"`,
			Msg: "malformed Authorization header: want \"Bearer TOKEN\""}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	// Compare with every token, in constant time each, so that neither
	// the match nor its position shows in the time taken.
	found := -1
	for i := range a.Tokens {
		if subtle.ConstantTimeCompare(sum[:], a.Tokens[i].Hash[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, &AuthError{Status: http.StatusUnauthorized, Challenge: realm + `, error="invalid_token"`,
			Msg: "invalid bearer token"}
	}
	return Principal{Name: a.Tokens[found].Name, Role: a.Tokens[found].Role}, nil
}

// byCert verifies the client's chain against ClientCAs and maps it to a
// role.
func (a *Auth) byCert(r *http.Request) (Principal, error) {
	certs := r.TLS.PeerCertificates
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.ClientCAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return Principal{}, &AuthError{Status: http.StatusUnauthorized, Challenge: realm,
			Msg: fmt.Sprintf("client certificate %q not trusted: %v", leaf.Subject.CommonName, certVerifyReason(err))}
	}
	for _, m := range a.CertRoles {
		if m.CN != "" && m.CN != leaf.Subject.CommonName {
			continue
		}
		if m.OU != "" && !contains(leaf.Subject.OrganizationalUnit, m.OU) {
			continue
		}
		role, err := ParseRole(m.Role)
		if err != nil {
			continue
		}
		return Principal{Name: "cert CN=" + leaf.Subject.CommonName, Role: role}, nil
	}
	return Principal{}, &AuthError{Status: http.StatusForbidden,
		Msg: fmt.Sprintf("client certificate %q has no role: no client_roles entry matches its CN or OU", leaf.Subject.CommonName)}
}

// certVerifyReason shortens x509's errors to their kind.
func certVerifyReason(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "signed by an unknown authority"
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		switch ci.Reason {
		case x509.Expired:
			return "expired or not yet valid"
		case x509.IncompatibleUsage:
			return "not valid for client authentication"
		}
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
