package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"go.uber.org/fx"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/platform"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
)

type mode int

const (
	modeAll mode = iota
	modeServe
)

// appOptions is the whole process: the platform, the chosen components, then the servers
// (root invokes run after the modules', so the servers start after every component's
// start hook and stop before them), then the front door (the load balancer, in `vigil
// all`), which starts last and drains first.
func appOptions(cfg *config.Config, names []string, m mode, extra ...fx.Option) []fx.Option {
	opts := []fx.Option{
		fx.Supply(cfg),
		platform.Options(),
		// Every process authorizes every call against the access table.
		auth.Module,
	}
	for _, n := range names {
		opts = append(opts, components[n])
	}
	opts = append(opts,
		gateway.Module,
		grpcserver.Serve,
		gateway.Serve,
	)
	if m == modeAll {
		opts = append(opts, frontDoor()...)
	}
	// Extra options (tests) come last, so their start hooks see everything started.
	return append(opts, extra...)
}

// prepareConfig settles what a mode changes in the loaded config.
func prepareConfig(cfg *config.Config, m mode) (generatedToken bool, err error) {
	if cfg.InternalToken == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return false, err
		}
		cfg.InternalToken = hex.EncodeToString(b)
		generatedToken = true
	}
	if m == modeAll && !frontDoorAvailable {
		// Until the load balancer exists, the gateway itself takes the public port.
		cfg.HTTPListen = cfg.PublicListen
	}
	return generatedToken, nil
}

// newApp builds the fx app of a process.
func newApp(cfg *config.Config, names []string, m mode, extra ...fx.Option) (*fx.App, error) {
	generated, err := prepareConfig(cfg, m)
	if err != nil {
		return nil, err
	}
	opts := appOptions(cfg, names, m, extra...)
	opts = append(opts,
		fx.StartTimeout(2*time.Minute),
		fx.StopTimeout(cfg.ShutdownTimeout+10*time.Second),
		fx.Invoke(func(l *slog.Logger) {
			l.Info("starting vigil", "version", version, "components", names)
			if generated && m == modeServe {
				l.Warn("internal_token unset: generated one for this process; set VIGIL_INTERNAL_TOKEN so processes can call each other")
			}
		}),
	)
	app := fx.New(opts...)
	if err := app.Err(); err != nil {
		return nil, err
	}
	return app, nil
}

// runUntilSignal starts the process, waits for SIGINT/SIGTERM (or ctx), then stops it,
// draining in-flight requests. SIGHUP never ends it (logSIGHUP).
func runUntilSignal(ctx context.Context, cfg *config.Config, names []string, m mode, extra ...fx.Option) error {
	// Caught for the process's life, from before the start (which may
	// take minutes of migrations) to the end of the drain.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	defer close(done)
	ctx, stop := signalContext(ctx)
	defer stop()
	return run(ctx, cfg, names, m, append(slices.Clip(extra), logSIGHUP(hup, done, slices.Contains(names, "licensing")))...)
}

// logSIGHUP says what a SIGHUP does, until done. Operators send it to
// reload, and Go's default action for it is to exit: one `kill -HUP` (or
// `systemctl reload`) took down every component of a process at once,
// but for the licensing component's time between its start and stop,
// when its watcher catches it. These processes read their config only
// when they start; the licensing component reloads its license file
// (licensing.Watcher), and `vigil lb` its lb.yaml (lb.WatchConfig).
func logSIGHUP(hup <-chan os.Signal, done <-chan struct{}, licensing bool) fx.Option {
	level, msg := slog.LevelWarn, "SIGHUP ignored: this process reads its config only when it starts; restart it to apply changes"
	if licensing {
		level, msg = slog.LevelInfo, "SIGHUP: the licensing component reloads the license file; other config is read only at start"
	}
	return fx.Invoke(func(l *slog.Logger) {
		go func() {
			for {
				select {
				case <-hup:
					l.Log(context.Background(), level, msg)
				case <-done:
					return
				}
			}
		}()
	})
}

// run starts the app, waits until ctx ends, and stops the app. ctx ending
// while the app starts (a signal during start-up) stops what had started
// and is no error: fx's Start then reports the cancellation, even when
// its last hook had already run.
func run(ctx context.Context, cfg *config.Config, names []string, m mode, extra ...fx.Option) error {
	app, err := newApp(cfg, names, m, extra...)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, app.StartTimeout())
	defer cancel()
	if err := app.Start(startCtx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("start: %w", err)
	}
	<-ctx.Done()
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), app.StopTimeout())
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
