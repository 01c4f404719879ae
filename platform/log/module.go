package log

import (
	"log/slog"
	"os"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/vigilhq/vigil/platform/config"
)

// Module provides the process's *slog.Logger (JSON on stderr, level from config).
var Module = fx.Provide(NewFromConfig)

// FxEvents routes fx's own events through the logger at debug level. fx applies a
// logger option only to the module it sits in, so put it at the root of the app.
var FxEvents = fx.WithLogger(FxLogger)

// NewFromConfig builds the logger at the configured level.
func NewFromConfig(cfg *config.Config) (*slog.Logger, error) {
	level, err := config.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	return New(os.Stderr, level), nil
}

// FxLogger logs fx's lifecycle events as debug lines, errors as errors.
func FxLogger(l *slog.Logger) fxevent.Logger {
	fl := &fxevent.SlogLogger{Logger: l.With("service", "fx")}
	fl.UseLogLevel(slog.LevelDebug)
	return fl
}

// ForService returns an fx option for a component's fx.Module that gives every
// *slog.Logger injected inside that module a service=<name> attribute.
func ForService(name string) fx.Option {
	return fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("service", name) })
}
