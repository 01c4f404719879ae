// Package grpcserver runs the process's one gRPC server: every rpc.Service contributed
// to the fx group is registered on it, behind the standard interceptor chain (recovery,
// request id and logging, metrics, authorization, error mapping), with a health status
// per service and server reflection.
package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Server is the process's gRPC server with its listener and health server.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server

	listener        net.Listener
	names           []string
	log             *slog.Logger
	shutdownTimeout time.Duration
	served          chan struct{}
}

// Params are New's dependencies.
type Params struct {
	fx.In

	Config     *config.Config
	Listener   *Listener
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Authorizer is provided by the auth package; without one every call but health is
	// refused (deny by default).
	Authorizer rpc.Authorizer `optional:"true"`
	// Auditor, provided by the auth package, records mutating calls after authorization.
	Auditor  rpc.Auditor   `optional:"true"`
	Services []rpc.Service `group:"rpc_services"`
}

// Listener is the process's bound gRPC listener. It is bound when constructed, before
// anything starts, so peers and the gateway know its address (port 0 in tests).
type Listener struct{ net.Listener }

// Listen binds the configured gRPC address.
func Listen(lc fx.Lifecycle, cfg *config.Config) (*Listener, error) {
	ln, err := net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		return nil, fmt.Errorf("grpc listen on %s: %w", cfg.GRPCListen, err)
	}
	l := &Listener{ln}
	// Closing an already served listener is harmless; this covers apps that fail to start.
	lc.Append(fx.StopHook(func() { _ = ln.Close() }))
	return l, nil
}

// DialAddr is the address to dial the listener at: a wildcard host becomes loopback.
func (l *Listener) DialAddr() string {
	host, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return l.Addr().String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// New builds the server with the interceptor chain on the bound listener and registers
// every service. Health reports NOT_SERVING until Start.
func New(p Params) (*Server, error) {
	ln := p.Listener.Listener
	logger := p.Log.With("service", "grpc")
	m, err := newServerMetrics(p.Registerer)
	if err != nil {
		return nil, err
	}
	chain := interceptors{log: logger, metrics: m, authz: p.Authorizer, audit: p.Auditor}
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(chain.unary()...),
		grpc.ChainStreamInterceptor(chain.stream()...),
		grpc.MaxRecvMsgSize(int(p.Config.MaxMessageBytes)),
		grpc.MaxSendMsgSize(int(p.Config.MaxMessageBytes)),
		// Agents hold streams for hours behind NATs: ping idle connections so dead ones
		// are found, and let clients ping every 10 s without being sent away (the default
		// allows one ping per 5 minutes and answers more with GOAWAY).
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)

	s := &Server{
		GRPC: gs, Health: hs, listener: ln, log: logger,
		shutdownTimeout: p.Config.ShutdownTimeout, served: make(chan struct{}),
	}
	seen := map[string]bool{}
	for _, svc := range p.Services {
		if svc.Name == "" || svc.Register == nil {
			return nil, fmt.Errorf("rpc.Service %q: Name and Register are required", svc.Name)
		}
		if seen[svc.Name] {
			return nil, fmt.Errorf("rpc.Service %q contributed twice", svc.Name)
		}
		seen[svc.Name] = true
		svc.Register(gs)
		s.names = append(s.names, svc.Name)
	}
	s.setHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// ServiceNames lists the registered services, in registration order.
func (s *Server) ServiceNames() []string { return append([]string(nil), s.names...) }

func (s *Server) setHealth(st healthpb.HealthCheckResponse_ServingStatus) {
	s.Health.SetServingStatus("", st)
	for _, n := range s.names {
		s.Health.SetServingStatus(n, st)
	}
}

// Start serves in the background and reports every service SERVING.
func (s *Server) Start(context.Context) error {
	go func() {
		defer close(s.served)
		if err := s.GRPC.Serve(s.listener); err != nil {
			s.log.Error("grpc server stopped", log.Err(err))
		}
	}()
	s.setHealth(healthpb.HealthCheckResponse_SERVING)
	s.log.Info("grpc serving", "addr", s.Addr(), "services", s.names)
	return nil
}

// Stop reports NOT_SERVING, lets in-flight calls finish (GracefulStop) and cuts the
// rest off after the shutdown timeout or when ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("grpc drain timed out; closing remaining calls", "timeout", s.shutdownTimeout.String())
		s.GRPC.Stop()
	case <-ctx.Done():
		s.log.Warn("grpc drain cut short by stop deadline")
		s.GRPC.Stop()
	}
	<-done
	s.log.Info("grpc stopped")
	return nil
}
