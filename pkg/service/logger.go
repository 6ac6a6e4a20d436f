package service

import (
	"context"
	"fmt"
	"log/slog"

	"go-micro.dev/v4/logger"
)

// microLogger sends go-micro's own log lines (registering, listening,
// deregistering) to the service's slog logger, so a service writes one
// format.
type microLogger struct {
	log  *slog.Logger
	opts logger.Options
}

func newMicroLogger(log *slog.Logger) logger.Logger { return &microLogger{log: log} }

func (l *microLogger) Init(opts ...logger.Option) error {
	for _, o := range opts {
		o(&l.opts)
	}
	return nil
}

func (l *microLogger) Options() logger.Options { return l.opts }
func (l *microLogger) String() string          { return "slog" }

func (l *microLogger) Fields(fields map[string]interface{}) logger.Logger {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return &microLogger{log: l.log.With(args...), opts: l.opts}
}

func (l *microLogger) Log(level logger.Level, v ...interface{}) {
	l.log.Log(context.Background(), slogLevel(level), fmt.Sprint(v...))
}

func (l *microLogger) Logf(level logger.Level, format string, v ...interface{}) {
	l.log.Log(context.Background(), slogLevel(level), fmt.Sprintf(format, v...))
}

// slogLevel maps go-micro's levels. Fatal becomes an error: go-micro's own
// logger exits the process on it, and only main decides that here.
func slogLevel(l logger.Level) slog.Level {
	switch {
	case l <= logger.DebugLevel:
		return slog.LevelDebug
	case l == logger.InfoLevel:
		return slog.LevelInfo
	case l == logger.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
