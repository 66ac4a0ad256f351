// Package server is tether-policyd's HTTP/JSON API (paths and shapes in
// package policy/client) over the policy store.
//
// Every request is authenticated first (a verified client certificate
// mapped to a role, or a bearer token whose SHA-256 is in the tokens file),
// before its body is read: no credentials or a bad one is 401 with
// WWW-Authenticate, a reader writing is 403. Then the body is decoded
// strictly (Decode: content type, 1 MiB cap, unknown fields, wrong types,
// trailing data), normalized and validated in full, and only then handed to
// the store in one call, so a refused request writes nothing.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tether-net/tether/policy"
	"github.com/tether-net/tether/policy/client"
)

// Store is what the server needs of the policy store (policy/store's
// *Store satisfies it through StoreAdapter). Revisions are etcd
// modification revisions; expected 0 means "whatever the current one".
type Store interface {
	// Create stores obj, which must not exist (policy.ErrExists).
	Create(ctx context.Context, obj policy.Object) (rev int64, err error)
	// Get returns one object (policy.ErrNotFound).
	Get(ctx context.Context, kind policy.Kind, key string) (obj policy.Object, rev int64, err error)
	// List returns every object of kind in key order.
	List(ctx context.Context, kind policy.Kind) ([]Versioned, error)
	// Update replaces an existing object (policy.ErrNotFound), only if
	// its revision is expected when expected > 0 (policy.ErrConflict).
	Update(ctx context.Context, obj policy.Object, expected int64) (rev int64, err error)
	// Delete removes an object (policy.ErrNotFound), only if its
	// revision is expected when expected > 0 (policy.ErrConflict).
	Delete(ctx context.Context, kind policy.Kind, key string, expected int64) error
}

// Versioned is a stored object and its revision.
type Versioned struct {
	// Object is the object.
	Object policy.Object
	// Revision is its modification revision.
	Revision int64
}

// DefaultStoreTimeout bounds one store call.
const DefaultStoreTimeout = 10 * time.Second

// Server serves the API.
type Server struct {
	// Store holds the objects.
	Store Store
	// Auth decides who may do what.
	Auth *Auth
	// AuthFunc, when set, is called for every request instead of reading
	// Auth, so that the credentials can be replaced while serving
	// (tether-policyd reloads them on SIGHUP).
	AuthFunc func() *Auth
	// Version is reported by /v1/healthz.
	Version string
	// StoreTimeout bounds one store call (DefaultStoreTimeout).
	StoreTimeout time.Duration
	// Logger gets the writes and the failures (default slog.Default()).
	Logger *slog.Logger
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(client.PathHealthz, s.healthz)
	mux.HandleFunc(client.PathPrefix+"{kind}", s.collection)
	mux.HandleFunc(client.PathPrefix+"{kind}/{key}", s.member)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r); !ok {
			return
		}
		writeError(w, errorf(http.StatusNotFound, "", "%s is not part of tether-policyd's API (v1)", r.URL.Path))
	})
	return mux
}

func (s *Server) log() *slog.Logger {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "policy/server")
}

func (s *Server) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	d := s.StoreTimeout
	if d <= 0 {
		d = DefaultStoreTimeout
	}
	return context.WithTimeout(r.Context(), d)
}

// writeError answers with e's status and an ErrorBody.
func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, client.ErrorBody{Error: e.Msg, Field: e.Field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authorize authenticates r and checks its role against its method: GET
// and HEAD need read, anything else write. On failure it has answered.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	a := s.Auth
	if s.AuthFunc != nil {
		a = s.AuthFunc()
	}
	if a == nil {
		a = &Auth{}
	}
	p, err := a.Authenticate(r)
	if err != nil {
		var ae *AuthError
		if !errors.As(err, &ae) {
			ae = &AuthError{Status: http.StatusUnauthorized, Challenge: realm, Msg: err.Error()}
		}
		if ae.Challenge != "" {
			w.Header().Set("WWW-Authenticate", ae.Challenge)
		}
		s.log().Info("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", ae.Status, "reason", ae.Msg)
		writeError(w, &Error{Status: ae.Status, Msg: ae.Msg})
		return Principal{}, false
	}
	need := RoleWrite
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		need = RoleRead
	}
	if p.Role < need {
		s.log().Info("request refused", "method", r.Method, "path", r.URL.Path, "who", p.Name, "role", p.Role, "status", http.StatusForbidden)
		writeError(w, errorf(http.StatusForbidden, "", "%s may only read: %s needs the write role", p.Name, r.Method))
		return Principal{}, false
	}
	return p, true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, errorf(http.StatusMethodNotAllowed, "", "%s: only GET", r.URL.Path))
		return
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	if _, err := s.Store.List(ctx, policy.KindHosts); err != nil {
		writeError(w, errorf(http.StatusServiceUnavailable, "", "policy store not answering: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Version: s.Version})
}

// kindOf returns the path's kind, or answers 404.
func kindOf(w http.ResponseWriter, r *http.Request) (policy.Kind, bool) {
	k := policy.Kind(r.PathValue("kind"))
	if !k.Valid() {
		writeError(w, errorf(http.StatusNotFound, "", "no collection %q: want one of profiles, groups, hosts, placements", truncate(string(k), 64)))
		return "", false
	}
	return k, true
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, errorf(http.StatusMethodNotAllowed, "", "%s %s: allowed: %s", r.Method, r.URL.Path, allow))
}

// begin authorizes r and reads its path's kind; on failure it has
// answered.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (Principal, policy.Kind, bool) {
	p, ok := s.authorize(w, r)
	if !ok {
		return Principal{}, "", false
	}
	kind, ok := kindOf(w, r)
	if !ok {
		return Principal{}, "", false
	}
	return p, kind, true
}

func (s *Server) collection(w http.ResponseWriter, r *http.Request) {
	p, kind, ok := s.begin(w, r)
	if !ok {
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.list(w, r, kind)
	case http.MethodPost:
		s.create(w, r, p, kind)
	default:
		methodNotAllowed(w, r, "GET, HEAD, POST")
	}
}

func (s *Server) member(w http.ResponseWriter, r *http.Request) {
	p, kind, ok := s.begin(w, r)
	if !ok {
		return
	}
	key := r.PathValue("key")
	if kind == policy.KindPlacements {
		key = strings.ToLower(key) // UUIDs are stored in lower case
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, kind, key)
	case http.MethodPut:
		s.replace(w, r, p, kind, key)
	case http.MethodDelete:
		s.remove(w, r, p, kind, key)
	default:
		methodNotAllowed(w, r, "GET, HEAD, PUT, DELETE")
	}
}

// storeError maps a store error to an answer.
func (s *Server) storeError(w http.ResponseWriter, what string, err error) {
	var fe *policy.FieldError
	switch {
	case errors.As(err, &fe):
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Msg: fe.Error(), Field: fe.Field})
	case errors.Is(err, policy.ErrNotFound):
		writeError(w, errorf(http.StatusNotFound, "", "%s: not found", what))
	case errors.Is(err, policy.ErrExists):
		writeError(w, errorf(http.StatusConflict, "", "%s already exists: use PUT to replace it", what))
	case errors.Is(err, policy.ErrConflict):
		writeError(w, errorf(http.StatusPreconditionFailed, "", "%s was changed since the revision in If-Match: read it again", what))
	case errors.Is(err, policy.ErrInvalid):
		writeError(w, errorf(http.StatusUnprocessableEntity, "", "%s: %v", what, err))
	default:
		s.log().Error("store call failed", "what", what, "err", err)
		writeError(w, errorf(http.StatusServiceUnavailable, "", "policy store: %s: %v", what, err))
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, kind policy.Kind) {
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	items, err := s.Store.List(ctx, kind)
	if err != nil {
		s.storeError(w, "list "+string(kind), err)
		return
	}
	out := client.List{Kind: kind, Items: make([]client.Item, 0, len(items))}
	for _, it := range items {
		b, err := json.Marshal(it.Object)
		if err != nil {
			s.storeError(w, "encode "+string(kind), err)
			return
		}
		out.Items = append(out.Items, client.Item{Revision: it.Revision, Object: b})
	}
	writeJSON(w, http.StatusOK, out)
}

func describe(kind policy.Kind, key string) string {
	return fmt.Sprintf("%s/%s", kind, truncate(key, 80))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, kind policy.Kind, key string) {
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	obj, rev, err := s.Store.Get(ctx, kind, key)
	if err != nil {
		s.storeError(w, describe(kind, key), err)
		return
	}
	w.Header().Set("ETag", client.ETag(rev))
	writeJSON(w, http.StatusOK, obj)
}

// decodeObject decodes, normalizes and validates the body as an object of
// kind; on failure it has answered.
func decodeObject(w http.ResponseWriter, r *http.Request, kind policy.Kind) (policy.Object, bool) {
	obj, e := DecodeObject(r.Header.Get("Content-Type"), r.Body, kind)
	if e != nil {
		writeError(w, e)
		return nil, false
	}
	return obj, true
}

// DecodeObject is the whole of a write's request decoding: strict JSON
// decoding (Decode, MaxBody) into a new object of kind, then
// policy.Normalize and Validate. A validation failure is 422 naming the
// field.
func DecodeObject(contentType string, body io.Reader, kind policy.Kind) (policy.Object, *Error) {
	obj := policy.New(kind)
	if obj == nil {
		return nil, errorf(http.StatusNotFound, "", "no collection %q", kind)
	}
	if e := Decode(contentType, body, MaxBody, obj); e != nil {
		if kind == policy.KindPlacements && e.Field == "" && strings.HasPrefix(e.Msg, "want a time") {
			e.Field = "updated" // the one time field; encoding/json does not name it
		}
		return nil, e
	}
	policy.Normalize(obj)
	if err := obj.Validate(); err != nil {
		var fe *policy.FieldError
		if errors.As(err, &fe) {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fe.Error(), Field: fe.Field}
		}
		return nil, errorf(http.StatusUnprocessableEntity, "", "%v", err)
	}
	return obj, nil
}

// keyField is the JSON name of kind's key field.
func keyField(kind policy.Kind) string {
	if kind == policy.KindPlacements {
		return "vm"
	}
	return "name"
}

// ifMatch parses If-Match; 0 when absent. On a malformed one it has
// answered 400.
func ifMatch(w http.ResponseWriter, r *http.Request) (int64, bool) {
	v := r.Header.Get("If-Match")
	if v == "" {
		return 0, true
	}
	rev, ok := client.ParseRevision(v)
	if !ok {
		writeError(w, errorf(http.StatusBadRequest, "", "If-Match %q is not a revision (the ETag of a GET, such as \"42\")", truncate(v, 40)))
		return 0, false
	}
	return rev, true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, p Principal, kind policy.Kind) {
	obj, ok := decodeObject(w, r, kind)
	if !ok {
		return
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	rev, err := s.Store.Create(ctx, obj)
	if err != nil {
		s.storeError(w, describe(kind, obj.Key()), err)
		return
	}
	s.log().Info("created", "kind", kind, "key", obj.Key(), "revision", rev, "who", p.Name)
	w.Header().Set("ETag", client.ETag(rev))
	w.Header().Set("Location", client.ObjectPath(kind, obj.Key()))
	writeJSON(w, http.StatusCreated, obj)
}

func (s *Server) replace(w http.ResponseWriter, r *http.Request, p Principal, kind policy.Kind, key string) {
	expected, ok := ifMatch(w, r)
	if !ok {
		return
	}
	obj, ok := decodeObject(w, r, kind)
	if !ok {
		return
	}
	if obj.Key() != key {
		writeError(w, errorf(http.StatusUnprocessableEntity, keyField(kind), "%q does not match the path's %q (renaming is delete and create)", truncate(obj.Key(), 80), truncate(key, 80)))
		return
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	rev, err := s.Store.Update(ctx, obj, expected)
	if err != nil {
		s.storeError(w, describe(kind, key), err)
		return
	}
	s.log().Info("replaced", "kind", kind, "key", key, "revision", rev, "who", p.Name)
	w.Header().Set("ETag", client.ETag(rev))
	writeJSON(w, http.StatusOK, obj)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, p Principal, kind policy.Kind, key string) {
	expected, ok := ifMatch(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	if err := s.Store.Delete(ctx, kind, key, expected); err != nil {
		s.storeError(w, describe(kind, key), err)
		return
	}
	s.log().Info("deleted", "kind", kind, "key", key, "who", p.Name)
	w.WriteHeader(http.StatusNoContent)
}
