package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// MaxBody bounds a request body: a larger one is answered 413.
const MaxBody = 1 << 20

// Error is an answer other than 2xx: its status, and the body
// {"error": Msg, "field": Field}.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Msg says what was wrong.
	Msg string
	// Field names the request field at fault (JSON name, dotted for
	// nested fields), empty when none is.
	Field string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

func errorf(status int, field, format string, args ...any) *Error {
	return &Error{Status: status, Field: field, Msg: fmt.Sprintf(format, args...)}
}

var unknownField = regexp.MustCompile(`^json: unknown field "(.*)"$`)

// Decode decodes body strictly into v: the content type must be
// application/json (415), the body at most limit bytes (413), one JSON
// value with no unknown fields, no wrong types and nothing after it (400).
// The returned *Error names the field at fault where there is one. Decode
// never reads more than limit+1 bytes.
func Decode(contentType string, body io.Reader, limit int64, v any) *Error {
	if contentType == "" {
		return errorf(http.StatusUnsupportedMediaType, "", "missing Content-Type: send application/json")
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "", "Content-Type %q is not application/json", truncate(contentType, 80))
	}
	lr := &limitReader{r: body, n: limit}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if lr.over {
			return errorf(http.StatusRequestEntityTooLarge, "", "request body over %d bytes", limit)
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if lr.over {
			return errorf(http.StatusRequestEntityTooLarge, "", "request body over %d bytes", limit)
		}
		return errorf(http.StatusBadRequest, "", "trailing data after the JSON object")
	}
	return nil
}

// jsonError turns encoding/json's errors into an *Error naming the field.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "", "empty request body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "", "truncated JSON")
	case errors.As(err, &te):
		if te.Field == "" {
			return errorf(http.StatusBadRequest, "", "want %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return errorf(http.StatusBadRequest, te.Field, "want %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return errorf(http.StatusBadRequest, "", "want a time in RFC 3339 form such as \"2026-01-02T15:04:05Z\", got %s", truncate(pe.Value, 64))
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return errorf(http.StatusBadRequest, m[1], "unknown field")
	}
	return errorf(http.StatusBadRequest, "", "bad request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64":
		return "an integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a non-negative integer in range"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return k
}

// limitReader reads at most n bytes and remembers whether there was more.
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte to tell "exactly at the limit" from "over".
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			l.over = true
			return 0, errors.New("request body too large")
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}
