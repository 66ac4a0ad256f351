package etcdembed

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewZapLogger returns a zap logger that forwards entries at level min and
// above to log (etcd's server and client log through zap). Entries below
// min are dropped before they are formatted. A nil log discards.
func NewZapLogger(log *slog.Logger, min slog.Level) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{log: log, min: min})
}

// newServerLogger is NewZapLogger for a member: once closing is set,
// errors are logged at debug level (etcd reports its own listeners
// closing as errors).
func newServerLogger(log *slog.Logger, min slog.Level, closing *atomic.Bool) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return zap.New(&slogCore{log: log, min: min, closing: closing})
}

// slogCore is a zapcore.Core writing to a slog.Logger.
type slogCore struct {
	log     *slog.Logger
	min     slog.Level
	attrs   []any
	closing *atomic.Bool
}

// zapToSlog maps a zap level onto slog's.
func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// level returns the slog level of an entry at l.
func (c *slogCore) level(l zapcore.Level) slog.Level {
	sl := zapToSlog(l)
	if c.closing != nil && c.closing.Load() && sl > slog.LevelDebug {
		return slog.LevelDebug
	}
	return sl
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return c.level(l) >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	n := *c
	n.attrs = append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)
	return &n
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)
	if e.LoggerName != "" {
		args = append(args, slog.String("logger", e.LoggerName))
	}
	c.log.Log(context.Background(), c.level(e.Level), e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// fieldAttrs converts zap fields to slog attributes.
func fieldAttrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
