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
		slog.String("host", logCap(host)),
		slog.String("path", logCap(path)),
		slog.String("proto", proto),
		slog.String("remote", remote),
		slog.String("route", routeName),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
		slog.Int("status", ex.status),
		extra,
		slog.Duration("duration", d),
	}
	if ex.client != "" {
		// Behind a trusted proxy, the remote is that proxy.
		attrs = append(attrs, slog.String("client", ex.client))
	}
	if id := traceIDOf(traceparent); id != "" {
		// The trace id joins this line to the upstream's spans.
		attrs = append(attrs, slog.String("trace_id", id))
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("err", ex.err.Error()))
	}
	s.accessLog.LogAttrs(context.Background(), level, "request", attrs...)
}

// traceIDOf returns the trace id of a W3C traceparent field
// (version-traceid-parentid-flags, lowercase hex), or "" when the field is
// not one: a client's malformed or all-zero id must not pass for a trace
// in the log. A version past 00 may carry more after the flags.
func traceIDOf(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
		!lowerHex(tp[:2]) || tp[:2] == "ff" || !lowerHex(tp[3:35]) || !lowerHex(tp[36:52]) || !lowerHex(tp[53:55]) ||
		tp[3:35] == "00000000000000000000000000000000" || tp[36:52] == "0000000000000000" ||
		(len(tp) > 55 && (tp[:2] == "00" || tp[55] != '-')) {
		return ""
	}
	return tp[3:35]
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// logFieldMax bounds the client-chosen fields of an access log line
// (host, path): they may be as long as max_header_bytes, and a client
// would otherwise write that much to the log with each request.
const logFieldMax = 2048

// logCap cuts s to logFieldMax bytes, marking the cut.
func logCap(s string) string {
	if len(s) <= logFieldMax {
		return s
	}
	return s[:logFieldMax] + "…(cut)"
}
