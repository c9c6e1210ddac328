// Package telemetry writes gwlock's event lines: one line per event on a
// writer (stderr), logfmt by default or one JSON object per line, each with
// event=<name> and a UTC millisecond time. Writing is best effort: a closed,
// broken or stalled writer never blocks or fails the caller. A Queue in
// front of a slow writer drops lines instead of blocking, and the next line
// that gets through says how many were dropped (dropped=N).
//
// Printable and Value (quote.go) give the lines a caller writes itself the
// event lines' safety: nothing printed can end a line early, pose as another
// line or key, or rewrite a terminal.
//
// The package knows nothing of locks or gateways; callers choose the event
// names and keys.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"slices"
)

// Logger writes one line per event. A nil *Logger discards everything
// (benchmarks, library use).
type Logger struct {
	logger  *slog.Logger
	min     slog.Level // events below it are not written (WarnOnly)
	infoToo []string   // info events written all the same (WarnOnly)
}

// New returns a Logger writing to w: format "json" gives one JSON object per
// line, anything else logfmt. quiet leaves out info events.
func New(w io.Writer, format string, quiet bool) *Logger {
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
	return &Logger{logger: slog.New(h), min: slog.LevelDebug}
}

// WarnOnly is the same Logger with its info events left out: a lock that
// guards another (etcd's local file lock) says only what went wrong.
//
// The info events named in infoToo are written all the same: a guarding
// lock that waits says so, or a wait with no end would be silent.
func (t *Logger) WarnOnly(infoToo ...string) *Logger {
	if t == nil {
		return nil
	}
	return &Logger{logger: t.logger, min: slog.LevelWarn, infoToo: infoToo}
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

func (t *Logger) emit(level slog.Level, event string, kv []any) {
	if t == nil || !t.logger.Enabled(context.Background(), level) {
		return
	}
	if level < t.min && !slices.Contains(t.infoToo, event) {
		return
	}
	t.logger.Log(context.Background(), level, event, kv...)
}

// Info, Warn and Error write one event line at their level; kv are
// alternating keys and values, or slog.Attr values.
func (t *Logger) Info(event string, kv ...any)  { t.emit(slog.LevelInfo, event, kv) }
func (t *Logger) Warn(event string, kv ...any)  { t.emit(slog.LevelWarn, event, kv) }
func (t *Logger) Error(event string, kv ...any) { t.emit(slog.LevelError, event, kv) }

// bestEffort swallows write errors: a closed or broken stderr must never change
// a lock decision. The command catches SIGPIPE for the same reason.
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	_, _ = b.w.Write(p)
	return len(p), nil
}
