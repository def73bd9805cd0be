package telemetry

import (
	"context"
	"fmt"
	"log/slog"
)

// NATSLogger adapts slog to the logger interface of an embedded
// nats-server (server.Logger), tagging lines with the server's role.
type NATSLogger struct {
	Log  *slog.Logger
	Role string // "hub", "member eu-west", ...
}

func (l NATSLogger) log(level slog.Level, format string, v []any) {
	if !l.Log.Enabled(context.Background(), level) {
		return
	}
	l.Log.Log(context.Background(), level, "nats: "+fmt.Sprintf(format, v...), "nats_server", l.Role)
}

// Noticef logs at debug: nats-server's notices are its start-up banner
// and routine connection news, which would bury the hub's own lines.
func (l NATSLogger) Noticef(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

// Warnf logs at warn.
func (l NATSLogger) Warnf(format string, v ...any) { l.log(slog.LevelWarn, format, v) }

// Fatalf logs at error; the server stops itself.
func (l NATSLogger) Fatalf(format string, v ...any) { l.log(slog.LevelError, format, v) }

// Errorf logs at error.
func (l NATSLogger) Errorf(format string, v ...any) { l.log(slog.LevelError, format, v) }

// Debugf logs at debug.
func (l NATSLogger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

// Tracef logs below debug.
func (l NATSLogger) Tracef(format string, v ...any) { l.log(slog.LevelDebug-4, format, v) }
