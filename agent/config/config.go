// Package config loads and validates tetherd's configuration file
// (/etc/tether/tetherd.yaml by default). The file is decoded strictly:
// unknown keys, wrong types and out-of-range values are errors that name the
// key and line, so a typo never silently falls back to a default. Every key
// has a default; an absent or empty file is a valid configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultPath is where tetherd looks for its configuration.
const DefaultPath = "/etc/tether/tetherd.yaml"

// maxFile bounds the configuration file's size.
const maxFile = 1 << 20

// Config is tetherd's validated configuration.
type Config struct {
	// StateDir holds the inventory database and the signature counters.
	StateDir string `yaml:"state_dir"`
	// Socket is the local API's unix socket; SocketGroup may use it.
	Socket      string `yaml:"socket"`
	SocketGroup string `yaml:"socket_group"`
	// SpoolDir is where tether-hook leaves events while tetherd is down.
	SpoolDir string `yaml:"spool_dir"`
	// Libvirt configures the libvirt event source.
	Libvirt Libvirt `yaml:"libvirt"`
	// Log configures logging.
	Log Log `yaml:"log"`
}

// Libvirt configures the connection to libvirtd.
type Libvirt struct {
	// URI is the libvirt connection URI; empty disables the source.
	URI string `yaml:"uri"`
	// ReconnectMin and ReconnectMax bound the reconnect backoff.
	ReconnectMin Duration `yaml:"reconnect_min"`
	ReconnectMax Duration `yaml:"reconnect_max"`
}

// Log configures log/slog.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Duration is a time.Duration written as "1s", "500ms" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return valueError(fmt.Sprintf("line %d: want a duration like \"1s\"", n.Line))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return valueError(fmt.Sprintf("line %d: %q is not a duration (examples: 500ms, 2s, 1m)", n.Line, s))
	}
	*d = Duration(v)
	return nil
}

// valueError is a bad value found by one of our own YAML unmarshalers.
type valueError string

func (e valueError) Error() string { return string(e) }

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the configuration used when the file sets nothing.
func Default() Config {
	return Config{
		StateDir:    "/var/lib/tether",
		Socket:      "/run/tether/tetherd.sock",
		SocketGroup: "tether",
		SpoolDir:    "/var/spool/tether/hooks",
		Libvirt: Libvirt{
			URI:          "qemu:///system",
			ReconnectMin: Duration(time.Second),
			ReconnectMax: Duration(30 * time.Second),
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Load reads and validates the file at path. A missing file at the default
// path yields the defaults; a missing file named explicitly is an error.
func Load(path string, explicit bool) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return Default(), nil
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(io.LimitReader(f, maxFile+1))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration from r, on top of Default().
func Parse(r io.Reader) (Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("read: %w", err)
	}
	if len(b) > maxFile {
		return Config{}, fmt.Errorf("file is over %d bytes", maxFile)
	}
	c := Default()
	if len(bytes.TrimSpace(b)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, yamlError(err)
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return Config{}, errors.New("more than one YAML document")
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// unknownKey rewrites yaml's wording for an unknown key.
var unknownKey = regexp.MustCompile(`field (\S+) not found in type \S+`)

// yamlError turns a yaml decoding error into one line per problem, each
// naming its line, without the library's prefixes.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = unknownKey.ReplaceAllString(m, "unknown key \"$1\"")
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	var ve valueError
	if errors.As(err, &ve) {
		return ve
	}
	return fmt.Errorf("syntax error: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// Validate checks every value; the error names the key.
func (c *Config) Validate() error {
	var errs []error
	abs := func(key, v string) {
		if v == "" || !filepath.IsAbs(v) {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", key, v))
		}
	}
	abs("state_dir", c.StateDir)
	abs("socket", c.Socket)
	abs("spool_dir", c.SpoolDir)
	if c.Libvirt.ReconnectMin <= 0 {
		errs = append(errs, fmt.Errorf("libvirt.reconnect_min: must be positive"))
	}
	if c.Libvirt.ReconnectMax < c.Libvirt.ReconnectMin {
		errs = append(errs, fmt.Errorf("libvirt.reconnect_max: %v is below reconnect_min %v",
			time.Duration(c.Libvirt.ReconnectMax), time.Duration(c.Libvirt.ReconnectMin)))
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	return errors.Join(errs...)
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

// Write prints c as YAML, every key with its value (defaults included), so
// an operator sees what tetherd will use.
func Write(w io.Writer, c Config) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return enc.Close()
}
