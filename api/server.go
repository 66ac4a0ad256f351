package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// MaxRequestBody bounds every request body the daemons accept.
const MaxRequestBody = 8 << 20

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with status and an Error body.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, Error{Code: code, Message: msg})
}

// DecodeJSON decodes a request body strictly: at most limit bytes (0 means
// MaxRequestBody), unknown fields rejected, exactly one JSON value. The
// returned error's message is fit to send back to the client; status is the
// HTTP status to answer with.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) (status int, err error) {
	if limit <= 0 {
		limit = MaxRequestBody
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			return http.StatusBadRequest, errors.New("empty request body")
		}
		return http.StatusBadRequest, fmt.Errorf("bad request body: %w", err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("bad request body: more than one JSON value")
	}
	return 0, nil
}

// Listen creates the unix socket at path (replacing a stale one left by a
// crashed daemon), with mode 0660 and, when group is not empty and exists,
// that group, so members of the group may use the API.
func Listen(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("listen on %s: another daemon is already listening there", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			if err := os.Chown(path, -1, gid); err != nil {
				l.Close()
				return nil, fmt.Errorf("chown socket %s to group %s: %w", path, group, err)
			}
		}
	}
	return l, nil
}
