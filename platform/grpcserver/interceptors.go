package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// healthPrefix is the method prefix of the gRPC health service, which load balancers
// call without credentials.
const healthPrefix = "/grpc.health.v1.Health/"

// interceptors builds the chain, outermost first: recovery, request id and logging,
// metrics, authorization, audit, error mapping.
type interceptors struct {
	log     *slog.Logger
	metrics *serverMetrics
	authz   rpc.Authorizer
	audit   rpc.Auditor // nil: nothing is audited
}

func (c interceptors) unary() []grpc.UnaryServerInterceptor {
	chain := []grpc.UnaryServerInterceptor{c.recoverUnary, c.logUnary, c.metricsUnary, c.authorizeUnary}
	if c.audit != nil {
		chain = append(chain, c.audit.UnaryServerInterceptor())
	}
	return append(chain, c.mapErrorUnary)
}

func (c interceptors) stream() []grpc.StreamServerInterceptor {
	chain := []grpc.StreamServerInterceptor{c.recoverStream, c.logStream, c.metricsStream, c.authorizeStream}
	if c.audit != nil {
		chain = append(chain, c.audit.StreamServerInterceptor())
	}
	return append(chain, c.mapErrorStream)
}

// wrappedStream replaces a server stream's context.
type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func withContext(ss grpc.ServerStream, ctx context.Context) grpc.ServerStream {
	return &wrappedStream{ServerStream: ss, ctx: ctx}
}

// --- recovery: a panic becomes Internal and is logged with its stack; the process lives.

func (c interceptors) recovered(ctx context.Context, method string, p any) error {
	c.log.ErrorContext(ctx, "panic in grpc handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

func (c interceptors) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, c.recovered(ctx, info.FullMethod, p)
		}
	}()
	return h(ctx, req)
}

func (c interceptors) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = c.recovered(ss.Context(), info.FullMethod, p)
		}
	}()
	return h(srv, ss)
}

// --- request id and logging: the id comes from x-request-id (or is generated), is
// echoed in the response header, and is in every log line of the call.

func requestContext(ctx context.Context) (context.Context, string) {
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(log.RequestIDHeader); len(v) > 0 {
			id = v[0]
		}
	}
	id = log.SanitizeRequestID(id)
	return log.WithRequestID(ctx, id), id
}

func (c interceptors) logCall(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelInfo
	if strings.HasPrefix(method, healthPrefix) {
		level = slog.LevelDebug
	}
	attrs := []any{"method", method, "code", code.String(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "peer", p.Addr.String())
	}
	if err != nil {
		attrs = append(attrs, "err", status.Convert(err).Message())
	}
	c.log.Log(ctx, level, "grpc call", attrs...)
}

func (c interceptors) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, id := requestContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs(log.RequestIDHeader, id))
	resp, err := h(ctx, req)
	c.logCall(ctx, info.FullMethod, start, err)
	return resp, err
}

func (c interceptors) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	ctx, id := requestContext(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(log.RequestIDHeader, id))
	err := h(srv, withContext(ss, ctx))
	c.logCall(ctx, info.FullMethod, start, err)
	return err
}

// --- metrics

func (c interceptors) observe(method string, start time.Time, err error) {
	c.metrics.handled.WithLabelValues(method, status.Code(err).String()).Inc()
	c.metrics.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (c interceptors) metricsUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	c.metrics.inFlight.Inc()
	defer c.metrics.inFlight.Dec()
	resp, err := h(ctx, req)
	c.observe(info.FullMethod, start, err)
	return resp, err
}

func (c interceptors) metricsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	c.metrics.inFlight.Inc()
	defer c.metrics.inFlight.Dec()
	err := h(srv, ss)
	c.observe(info.FullMethod, start, err)
	return err
}

// --- authorization: the injected rpc.Authorizer decides every call except health
// checks; without one, nothing but health is served.

func (c interceptors) authorize(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, healthPrefix) {
		return ctx, nil
	}
	if c.authz == nil {
		return nil, status.Error(codes.Unauthenticated, "no authorizer configured in this process")
	}
	ctx, err := c.authz.Authorize(ctx, method)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			c.log.ErrorContext(ctx, "authorizer failed", "method", method, log.Err(err))
			return nil, status.Error(codes.Internal, "internal error")
		}
		return nil, err
	}
	return ctx, nil
}

func (c interceptors) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := c.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (c interceptors) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := c.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, withContext(ss, ctx))
}

// --- error mapping: handlers return statuses; anything else is a bug or an unmapped
// failure, which becomes Internal with a generic message (no internals leak to the
// caller) and is logged once in full.

func (c interceptors) mapError(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	c.log.ErrorContext(ctx, "unmapped error", "method", method, "code", codes.Internal.String(), log.Err(err))
	return status.Error(codes.Internal, "internal error")
}

func (c interceptors) mapErrorUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		// Recovered here too, so a handler panic is logged with its request id and
		// counted by the metrics like any other Internal error.
		if p := recover(); p != nil {
			resp, err = nil, c.recovered(ctx, info.FullMethod, p)
		}
	}()
	resp, err = h(ctx, req)
	return resp, c.mapError(ctx, info.FullMethod, err)
}

func (c interceptors) mapErrorStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = c.recovered(ss.Context(), info.FullMethod, p)
		}
	}()
	return c.mapError(ss.Context(), info.FullMethod, h(srv, ss))
}
