package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/gateway"
	"github.com/vigilhq/vigil/lb"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	vlog "github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/metrics"
)

// frontDoorAvailable says whether `vigil all` puts the load balancer in front of the
// gateway (otherwise the gateway itself takes the public port).
const frontDoorAvailable = true

// frontDoor runs the load balancer on public_listen in `vigil all`: REST to the gateway,
// gRPC (h2c) to the gRPC listener. It is the last root invoke, so it starts after the
// gateway and stops (drains) before it.
func frontDoor() []fx.Option {
	return []fx.Option{
		fx.Provide(newFrontDoor),
		fx.Invoke(func(lc fx.Lifecycle, s *lb.Server, cfg *config.Config, l *slog.Logger) {
			lc.Append(fx.Hook{OnStart: s.Start, OnStop: func(ctx context.Context) error {
				// No longer than any server's drain (shutdown_timeout): a
				// stream through the front door that does not end (an
				// agent's) would otherwise take the whole stop time, and
				// fx skips the hooks after one that used it up (the
				// gateway's, the gRPC listener's, every component's).
				ctx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
				defer cancel()
				if err := s.Shutdown(ctx); onlyDeadline(err) {
					l.Warn("lb drain reached shutdown_timeout; the connections left were closed")
				} else if err != nil {
					return err
				}
				return nil
			}})
		}),
	}
}

func newFrontDoor(cfg *config.Config, l *slog.Logger, reg prometheus.Registerer,
	ln *grpcserver.Listener, gw *gateway.Gateway) (*lb.Server, error) {
	return lb.New(frontDoorConfig(cfg, gw.DialAddr(), ln.DialAddr()), l.With("service", "lb"), reg)
}

// frontDoorConfig is the load balancer's config in `vigil all`: the
// public port in front of the gateway and the gRPC listener, with the
// platform config's trusted_proxies, proxy_protocol and forwarded_proto.
func frontDoorConfig(cfg *config.Config, gatewayAddr, grpcAddr string) *lb.Config {
	lc := lb.DefaultAllInOne(cfg.PublicListen, gatewayAddr, grpcAddr)
	lc.TrustedProxies = cfg.TrustedProxies
	lc.Listeners[0].ProxyProtocol = cfg.ProxyProtocol
	lc.Listeners[0].ForwardedProto = cfg.ForwardedProto
	return lc
}

// lbMetricsListenEnv names where a standalone `vigil lb` serves /metrics
// (default 127.0.0.1:9101; empty turns it off).
const lbMetricsListenEnv = "VIGIL_LB_METRICS_LISTEN"

// extraCommands are the subcommands provided by other packages.
func extraCommands(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{licenseCommand(), {
		Use:   "lb",
		Short: "Run the load balancer alone (--config is its YAML; reloaded on SIGHUP and on change)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.configPath == "" {
				return errors.New("lb: --config lb.yaml is required")
			}
			level, err := config.ParseLevel(orDefault(g.logLevel, "info"))
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			keepSIGHUP()
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			lb.TuneStandaloneGC() // standalone only; an operator's GOGC wins
			// The access log writes a line per request: batched, they
			// leave in one write per 32 KiB or 200 ms (vlog.Buffered).
			out := vlog.NewBuffered(os.Stderr, 32<<10, 200*time.Millisecond)
			defer out.Close()
			return runLB(ctx, g.configPath, vlog.New(out, level), envOr(lbMetricsListenEnv, "127.0.0.1:9101"))
		},
	}}
}

// keepSIGHUP keeps SIGHUP from ending the process for its whole life. It
// means "reload" to `vigil lb`, but only WatchConfig catches it, from
// after the start until the drain begins; outside that, Go's default
// action for it is to exit: a `systemctl reload` during the drain cut the
// requests in flight and lost the buffered log lines. The channel is
// never read; package signal drops what does not fit.
func keepSIGHUP() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
}

// runLB serves the load balancer from path until ctx ends, then drains it.
func runLB(ctx context.Context, path string, l *slog.Logger, metricsListen string) error {
	cfg, err := lb.LoadConfig(path)
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	s, err := lb.New(cfg, l.With("service", "lb"), reg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		_ = s.Shutdown(context.Background())
		return err
	}
	var ms *http.Server
	if metricsListen != "" {
		// Bound here, not in the goroutine, so a taken port is an error and the endpoint
		// answers as soon as runLB reports serving.
		ml, err := net.Listen("tcp", metricsListen)
		if err != nil {
			_ = s.Shutdown(context.Background())
			return fmt.Errorf("lb metrics listener: %w", err)
		}
		ms = &http.Server{Handler: metrics.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := ms.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				l.Error("lb metrics listener failed", vlog.Err(err))
			}
		}()
	}
	go func() { _ = lb.WatchConfig(ctx, path, s) }()
	l.Info("lb serving", "addrs", s.Addrs(), "metrics", metricsListen)
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout())
	defer cancel()
	if ms != nil {
		_ = ms.Shutdown(stopCtx)
	}
	if err := s.Shutdown(stopCtx); onlyDeadline(err) {
		// Streams and WebSockets may rightly outlive any drain: closing
		// them then is the drain working, not a failed stop.
		l.Warn("lb drain reached drain_timeout; the connections left were closed", "drain_timeout", s.DrainTimeout())
	} else if err != nil {
		return err
	}
	return nil
}

// onlyDeadline reports whether err, a drain's, is its deadline alone
// (errors.Join of context.DeadlineExceeded, once per server), and not a
// failure that came with it, which must still fail the stop.
func onlyDeadline(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if e != nil && !onlyDeadline(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
