// Package gateway is the REST/JSON face of the process: grpc-gateway handlers of every
// registered service over one client connection to the process's own gRPC listener,
// hand-written routes in front of them, /healthz from gRPC health, /metrics,
// /openapi.json and the web apps.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/grpcserver"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/metrics"
	"github.com/vigilhq/vigil/platform/pubsub"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Gateway serves HTTP on its own listener.
type Gateway struct {
	handler  http.Handler
	conn     *grpc.ClientConn
	server   *http.Server
	listener net.Listener
	log      *slog.Logger
	timeout  time.Duration
	served   chan struct{}
	// closing is closed when the gateway stops, ending the WebSockets (which
	// http.Server.Shutdown does not wait for or close).
	closing chan struct{}
}

// Params are New's dependencies.
type Params struct {
	fx.In

	Config     *config.Config
	Log        *slog.Logger
	GRPC       *grpcserver.Listener
	Gatherer   prometheus.Gatherer
	Registerer prometheus.Registerer
	Services   []rpc.Service `group:"rpc_services"`
	// PubSub carries the live notifications the WebSocket endpoint relays.
	PubSub pubsub.PubSub
	// Web serves the web apps; without it the gateway serves a small index page.
	Web *Web `optional:"true"`
}

// New binds the HTTP listener and builds the handler.
func New(p Params) (*Gateway, error) {
	ln, err := net.Listen("tcp", p.Config.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("gateway listen on %s: %w", p.Config.HTTPListen, err)
	}
	g, err := NewWithListener(p, ln)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return g, nil
}

// NewWithListener is New on a listener the caller bound.
func NewWithListener(p Params, ln net.Listener) (*Gateway, error) {
	cfg, err := config.SectionOf[Config](p.Config, "gateway")
	if err != nil {
		return nil, err
	}
	logger := p.Log.With("service", "gateway")
	// One connection for every handler (as grpc-gateway recommends). It carries no
	// credentials of its own: the caller's authorization header is forwarded instead.
	conn, err := grpc.NewClient(p.GRPC.DialAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(int(p.Config.MaxMessageBytes)),
			grpc.MaxCallSendMsgSize(int(p.Config.MaxMessageBytes)),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("gateway: dial grpc: %w", err)
	}
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
	)
	routes := http.NewServeMux()
	for _, svc := range p.Services {
		if svc.Gateway != nil {
			if err := svc.Gateway(context.Background(), mux, conn); err != nil {
				_ = conn.Close()
				return nil, fmt.Errorf("gateway: register %s: %w", svc.Name, err)
			}
		}
	}
	if err := mountHTTPRoutes(routes, mux, conn, p.Services); err != nil {
		_ = conn.Close()
		return nil, err
	}
	closing := make(chan struct{})
	routes.Handle("GET "+NotificationsPath, newNotifications(conn, p.PubSub, logger, cfg.WebSocketOrigins, closing))
	routes.Handle("GET /healthz", healthz(conn))
	routes.Handle("GET /metrics", metrics.Handler(p.Gatherer))
	routes.Handle("GET /openapi.json", openAPI())
	routes.Handle("/v1/", mux)
	routes.Handle("/", web(p.Web))

	hm, err := newHTTPMetrics(p.Registerer)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	handler := withRequestID(hm.wrap(accessLog(logger, cfg.AccessLog, http.MaxBytesHandler(routes, cfg.MaxBodyBytes))))
	g := &Gateway{
		handler: handler, conn: conn, listener: ln, log: logger, closing: closing,
		timeout: p.Config.ShutdownTimeout, served: make(chan struct{}),
		server: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}
	return g, nil
}

// forwardedHeaders are passed to gRPC under their own (lower-case) names, besides
// grpc-gateway's defaults (which already forward Authorization as "authorization").
var forwardedHeaders = map[string]string{
	http.CanonicalHeaderKey(log.RequestIDHeader): log.RequestIDHeader,
	// The alternative to "Authorization: Bearer <key>" for API keys.
	http.CanonicalHeaderKey(apiKeyHeader): apiKeyHeader,
}

const apiKeyHeader = "x-api-key"

func incomingHeader(key string) (string, bool) {
	if md, ok := forwardedHeaders[http.CanonicalHeaderKey(key)]; ok {
		return md, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// Handler is the gateway's whole HTTP handler (for tests and embedding).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.listener.Addr().String() }

// DialAddr is the address to reach the gateway at: a wildcard host becomes loopback.
func (g *Gateway) DialAddr() string {
	host, port, err := net.SplitHostPort(g.Addr())
	if err != nil {
		return g.Addr()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Start serves in the background.
func (g *Gateway) Start(context.Context) error {
	go func() {
		defer close(g.served)
		if err := g.server.Serve(g.listener); err != nil && err != http.ErrServerClosed {
			g.log.Error("gateway stopped", log.Err(err))
		}
	}()
	g.log.Info("gateway serving", "addr", g.Addr())
	return nil
}

// Stop stops accepting, waits for in-flight requests up to the shutdown timeout (or ctx),
// then closes what is left and the gRPC connection.
func (g *Gateway) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	close(g.closing)
	if err := g.server.Shutdown(ctx); err != nil {
		g.log.Warn("gateway drain cut short", log.Err(err))
		_ = g.server.Close()
	}
	<-g.served
	g.log.Info("gateway stopped")
	return g.conn.Close()
}

// Module provides the *Gateway.
var Module = fx.Provide(New)

// Serve starts the gateway with the app; place it after grpcserver.Serve so the gateway
// drains before the gRPC server does.
var Serve = fx.Invoke(func(lc fx.Lifecycle, g *Gateway) {
	lc.Append(fx.Hook{OnStart: g.Start, OnStop: g.Stop})
})
