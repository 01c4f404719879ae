package lb

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
)

// logAccess writes one structured line per request.
func (s *Server) logAccess(r *http.Request, reqID string, ex *exchange, d time.Duration) {
	level := slog.LevelInfo
	if ex.status >= 500 {
		level = slog.LevelWarn
	}
	s.writeAccess(level, reqID, r.Method, r.Host, r.URL.Path, r.Proto, r.RemoteAddr, r.Header.Get("Traceparent"), ex,
		slog.Int64("bytes", ex.bytes), d)
}

// logGRPCAccess is logAccess for calls on the native gRPC engine.
func (s *Server) logGRPCAccess(method, host, remote, reqID, traceparent string, ex *exchange, code codes.Code, d time.Duration) {
	level := slog.LevelInfo
	if code == codes.Unavailable || code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		level = slog.LevelWarn
	}
	s.writeAccess(level, reqID, "POST", host, method, "HTTP/2.0", remote, traceparent, ex,
		slog.String("grpc_code", code.String()), d)
}

// writeAccess is the line both engines write; extra is the one field
// that differs (bytes sent, or the gRPC code).
func (s *Server) writeAccess(level slog.Level, reqID, method, host, path, proto, remote, traceparent string, ex *exchange, extra slog.Attr, d time.Duration) {
	routeName := ""
	if ex.route != nil {
		routeName = ex.route.name
	}
	attrs := []slog.Attr{
		slog.String("request_id", reqID),
		slog.String("method", method),
		slog.String("host", host),
		slog.String("path", path),
		slog.String("proto", proto),
		slog.String("remote", remote),
		slog.String("route", routeName),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
		slog.Int("status", ex.status),
		extra,
		slog.Duration("duration", d),
	}
	if len(traceparent) == 55 {
		// W3C trace context: version-traceid-parentid-flags. The trace id
		// joins this line to the upstream's spans.
		attrs = append(attrs, slog.String("trace_id", traceparent[3:35]))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("err", ex.err.Error()))
	}
	s.accessLog.LogAttrs(context.Background(), level, "request", attrs...)
}
