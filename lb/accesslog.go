package lb

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// logAccess writes one structured line per request.
func (s *Server) logAccess(r *http.Request, reqID string, ex *exchange, d time.Duration) {
	level := slog.LevelInfo
	if ex.status >= 500 {
		level = slog.LevelWarn
	}
	routeName := ""
	if ex.route != nil {
		routeName = ex.route.name
	}
	attrs := []slog.Attr{
		slog.String("request_id", reqID),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.String("remote", r.RemoteAddr),
		slog.String("route", routeName),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
		slog.Int("status", ex.status),
		slog.Int64("bytes", ex.bytes),
		slog.Duration("duration", d),
	}
	if tp := r.Header.Get("Traceparent"); len(tp) == 55 {
		// W3C trace context: version-traceid-parentid-flags. The trace id
		// joins this line to the upstream's spans.
		attrs = append(attrs, slog.String("trace_id", tp[3:35]))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("err", ex.err.Error()))
	}
	s.accessLog.LogAttrs(context.Background(), level, "request", attrs...)
}

// logGRPCAccess is logAccess for calls on the native gRPC engine.
func (s *Server) logGRPCAccess(method, host, remote, reqID string, md metadata.MD, ex *exchange, code codes.Code, d time.Duration) {
	level := slog.LevelInfo
	if code == codes.Unavailable || code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		level = slog.LevelWarn
	}
	routeName := ""
	if ex.route != nil {
		routeName = ex.route.name
	}
	attrs := []slog.Attr{
		slog.String("request_id", reqID),
		slog.String("method", "POST"),
		slog.String("host", host),
		slog.String("path", method),
		slog.String("proto", "HTTP/2.0"),
		slog.String("remote", remote),
		slog.String("route", routeName),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
		slog.Int("status", ex.status),
		slog.String("grpc_code", code.String()),
		slog.Duration("duration", d),
	}
	if tp := firstMD(md, "traceparent"); len(tp) == 55 {
		attrs = append(attrs, slog.String("trace_id", tp[3:35]))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("err", ex.err.Error()))
	}
	s.accessLog.LogAttrs(context.Background(), level, "request", attrs...)
}
