package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/fx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Peers dials components by name: the address configured in peers[name], else this
// process's own listener. Every call carries the internal service token and the
// caller's request id. Connections are shared and closed when the app stops.
type Peers struct {
	cfg  *config.Config
	self string

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

var _ rpc.Peers = (*Peers)(nil)

// NewPeers returns the Peers of this process.
func NewPeers(lc fx.Lifecycle, cfg *config.Config, ln *Listener) *Peers {
	p := &Peers{cfg: cfg, self: ln.DialAddr(), conns: map[string]*grpc.ClientConn{}}
	lc.Append(fx.StopHook(p.Close))
	return p
}

// Addr is the address component is reached at.
func (p *Peers) Addr(component string) string {
	if a, ok := p.cfg.Peers[component]; ok && a != "" {
		return a
	}
	return p.self
}

// Conn returns the (shared, lazily connecting) connection to component.
func (p *Peers) Conn(component string) (grpc.ClientConnInterface, error) {
	addr := p.Addr(component)
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	transport := insecure.NewCredentials()
	if p.cfg.PeerTLS {
		transport = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(BearerToken{Token: p.cfg.InternalToken, AllowInsecure: !p.cfg.PeerTLS}),
		grpc.WithChainUnaryInterceptor(PropagateRequestIDUnary),
		grpc.WithChainStreamInterceptor(PropagateRequestIDStream),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", component, addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}

// BearerToken sends "authorization: Bearer <Token>" with every call.
type BearerToken struct {
	Token string
	// AllowInsecure permits sending the token without TLS (loopback, private networks).
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{rpc.MetadataAuthorization: "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b BearerToken) RequireTransportSecurity() bool { return !b.AllowInsecure }

func withOutgoingRequestID(ctx context.Context) context.Context {
	id := log.RequestID(ctx)
	if id == "" {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(log.RequestIDHeader)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, log.RequestIDHeader, id)
}

// PropagateRequestIDUnary forwards the request id of ctx to the called service.
func PropagateRequestIDUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(withOutgoingRequestID(ctx), method, req, reply, cc, opts...)
}

// PropagateRequestIDStream forwards the request id of ctx to the called service.
func PropagateRequestIDStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(withOutgoingRequestID(ctx), desc, cc, method, opts...)
}
