// Package yamlconf holds what tether's daemons' configuration files share:
// strict decoding (unknown keys, wrong types and a second document are
// errors naming the line), durations written as "2s", and the log section.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFile bounds a configuration file's size.
const MaxFile = 1 << 20

// ReadAll reads a configuration from r, refusing more than MaxFile bytes.
func ReadAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(b) > MaxFile {
		return nil, fmt.Errorf("file is over %d bytes", MaxFile)
	}
	return b, nil
}

// Decode decodes one YAML document from b into v (which holds the
// defaults), strictly: unknown keys and a second document are errors, and
// errors read one line per problem without the library's prefixes. An empty
// or comment-only b leaves v as it is.
func Decode(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return normalize(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// Write prints v as YAML with two-space indentation.
func Write(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return enc.Close()
}

// ValueError is a bad value found by a custom UnmarshalYAML; its text is
// reported as it is (it names the line itself).
type ValueError string

// Error implements error.
func (e ValueError) Error() string { return string(e) }

// unknownKey rewrites yaml's wording for an unknown key.
var unknownKey = regexp.MustCompile(`field (\S+) not found in type \S+`)

// normalize turns a yaml decoding error into one line per problem.
func normalize(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = unknownKey.ReplaceAllString(m, "unknown key \"$1\"")
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var ve ValueError
	if errors.As(err, &ve) {
		return ve
	}
	return fmt.Errorf("syntax error: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// Duration is a time.Duration written as "1s", "500ms" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return ValueError(fmt.Sprintf("line %d: want a duration like \"1s\"", n.Line))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return ValueError(fmt.Sprintf("line %d: %q is not a duration (examples: 500ms, 2s, 1m)", n.Line, s))
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Log configures log/slog.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// DefaultLog is info-level text.
func DefaultLog() Log { return Log{Level: "info", Format: "text"} }

// Validate checks level and format; errors name the key.
func (l Log) Validate() []error {
	var errs []error
	if _, err := l.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if l.Format != "text" && l.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", l.Format))
	}
	return errs
}

// SlogLevel maps Level to a slog.Level.
func (l Log) SlogLevel() (slog.Level, error) {
	switch l.Level {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", l.Level)
}

// Handler returns a slog handler writing to w as configured.
func (l Log) Handler(w io.Writer) slog.Handler {
	lvl, _ := l.SlogLevel()
	opts := &slog.HandlerOptions{Level: lvl}
	if l.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// Load opens the configuration file at path and parses it with parse. A
// missing file that was not named explicitly (the daemon's default path)
// yields def(); a missing file named on the command line is an error.
func Load[T any](path string, explicit bool, def func() T, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return def(), nil
		}
		return zero, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := parse(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return zero, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}
