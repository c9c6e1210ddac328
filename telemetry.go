package main

import (
	"context"
	"io"
	"log/slog"
)

// telemetry writes one line per event to stderr: logfmt by default, JSON with
// --log-format json. A nil *telemetry discards everything (benchmarks, library use).
type telemetry struct {
	logger *slog.Logger
}

func newTelemetry(w io.Writer, format string, quiet bool) *telemetry {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: renameAttrs}
	out := bestEffort{w}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(out, opts)
	} else {
		h = slog.NewTextHandler(out, opts)
	}
	return &telemetry{logger: slog.New(h)}
}

// renameAttrs makes every line carry event=<name> and a UTC millisecond time.
func renameAttrs(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "event"
	case slog.TimeKey:
		a.Value = slog.StringValue(a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return a
}

func (t *telemetry) emit(level slog.Level, event string, kv []any) {
	if t == nil || !t.logger.Enabled(context.Background(), level) {
		return
	}
	t.logger.Log(context.Background(), level, event, kv...)
}

func (t *telemetry) info(event string, kv ...any)  { t.emit(slog.LevelInfo, event, kv) }
func (t *telemetry) warn(event string, kv ...any)  { t.emit(slog.LevelWarn, event, kv) }
func (t *telemetry) error(event string, kv ...any) { t.emit(slog.LevelError, event, kv) }

// bestEffort swallows write errors: a closed or broken stderr must never change
// a lock decision (Invariant 6). SIGPIPE is caught in main for the same reason.
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	_, _ = b.w.Write(p)
	return len(p), nil
}
